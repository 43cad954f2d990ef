"""The confirmation email: a real SMTP server (aiosmtpd on 127.0.0.1) and the file transport.

The server requires AUTH (LOGIN/PLAIN, allowed without TLS for the test) as user ``shop``; the
password goes into the store's vault, never anywhere else.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import sqlite3
import ssl
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from checkout_cli.money import format_money
from tests.conftest import CUSTOMER, WATCH, encodings, ready_checkout
from tests.engine_helpers import query
from tests.serve_helpers import serving

pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"  # on purpose, on 127.0.0.1
)

SMTP_USER = "shop"
SMTP_PASSWORD = WATCH.secret("smtp-Pa55word-for-the-shop-7f3c9e")
WRONG_PASSWORD = WATCH.secret("not-the-smtp-password-81b2d4")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1 that demands AUTH as ``shop`` and keeps what it accepts."""

    def __init__(
        self,
        password: str,
        port: int | None = None,
        *,
        mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        refusal: str | None = None,
        tls: tuple[str, ssl.SSLContext] | None = None,
    ) -> None:
        self.password = password
        self.tls = tls  # ("starttls" (required) or "implicit", the server's context)
        self.port = port or free_port()
        self.mechanisms = mechanisms
        self.refusal = refusal  # a 535 reply of our own, e.g. one that echoes what it got
        self.received: list[dict[str, Any]] = []
        self.auth_attempts: list[tuple[str, bool]] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # aiosmtpd handler hook
    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            self.received.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "authenticated": session.authenticated,
                    "tls": server.transport.get_extra_info("ssl_object") is not None,
                    "raw": envelope.original_content or envelope.content,
                }
            )
        return "250 Message accepted for delivery"

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == self.password.encode()
        )
        self.auth_attempts.append((mechanism, ok))
        if not ok and self.refusal:
            given = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else ""
            return AuthResult(success=False, handled=False, message=self.refusal.format(given))
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        tls: dict[str, Any] = {}
        if self.tls is not None:
            kind, context = self.tls
            tls = (
                {"ssl_context": context}
                if kind == "implicit"
                else {"tls_context": context, "require_starttls": True}
            )
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,
            auth_exclude_mechanism=[
                m for m in ("PLAIN", "LOGIN", "CRAM-MD5") if m not in self.mechanisms
            ],
            **tls,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(m["raw"], policy=policy.default) for m in self.received]


class EchoingServer(SmtpServer):
    """A server that refuses every login and echoes, in its 535 reply, the AUTH exchange as
    it received it: base64 of ``\\0user\\0password`` (PLAIN), of the user and of the
    password (LOGIN), of the user and the HMAC digest (CRAM-MD5). ``answers`` keeps what
    the client sent, decoded."""

    def __init__(self, mechanism: str) -> None:
        super().__init__(SMTP_PASSWORD, mechanisms=(mechanism,))
        self.answers: list[bytes] = []

    def _refuse(self, mechanism: str, *sent: bytes) -> AuthResult:
        self.answers += sent
        self.auth_attempts.append((mechanism, False))
        echoed = " ".join(base64.b64encode(answer).decode() for answer in sent)
        return AuthResult(
            success=False, handled=False, message=f"535 5.7.8 refused: AUTH {mechanism} {echoed}"
        )

    async def auth_PLAIN(self, server, args: list[str]) -> AuthResult:
        sent = args[1] if len(args) > 1 else None
        answer = base64.b64decode(sent) if sent else await server.challenge_auth("")
        return self._refuse("PLAIN", answer)

    async def auth_LOGIN(self, server, args: list[str]) -> AuthResult:
        if len(args) > 1:
            user = base64.b64decode(args[1])
        else:
            user = await server.challenge_auth("Username:")
        return self._refuse("LOGIN", user, await server.challenge_auth("Password:"))

    async def auth_CRAM__MD5(self, server, args: list[str]) -> AuthResult:
        return self._refuse("CRAM-MD5", await server.challenge_auth(b"<1896.697170952@shop>"))


def configure_smtp(backend, port: int, password: str | None = SMTP_PASSWORD) -> None:
    for key, value in {
        "email_transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_user": SMTP_USER,
    }.items():
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    if password is not None:
        backend.call("checkout-admin", "set-vault", {"name": "smtp_password", "value": password})


@pytest.fixture
def smtp(backend):
    with SmtpServer(SMTP_PASSWORD) as server:
        configure_smtp(backend, server.port)
        yield server


def invoice_order(backend) -> dict[str, Any]:
    token = ready_checkout(backend)
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    return backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})


def outbox_rows(backend) -> list[dict[str, Any]]:
    return backend.call("checkout-admin", "list-outbox", {})["emails"]


def parts(message: EmailMessage) -> tuple[str, str | None]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return text.get_content(), html.get_content() if html is not None else None


def assert_confirmation(message: EmailMessage, result: dict[str, Any], payment: str) -> None:
    number = result["order"]["order_number"]
    total = format_money(result["totals"]["total_cents"], result["currency"])
    assert message["To"] == CUSTOMER["customer"]["email"]
    assert message["From"].addresses[0].addr_spec == "orders@lensshop.example"
    assert number in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert number in text
    assert f"Total:    {total}" in text
    assert html is not None and number in html and total in html
    assert payment in text and payment in html
    assert CUSTOMER["shipping_address"]["line1"] in text


# --- SMTP: the happy paths ---------------------------------------------------------------


def test_invoice_confirmation_arrives_over_smtp(backend, smtp):
    result = invoice_order(backend)
    assert result["status"] == "completed"
    totals = result["totals"]
    assert totals["total_cents"] == sum(
        totals[k] for k in ("subtotal_cents", "shipping_cents", "tax_cents")
    )
    assert len(smtp.received) == 1
    envelope = smtp.received[0]
    assert envelope["rcpt_tos"] == ["anna@example.com"]
    assert envelope["mail_from"] == "orders@lensshop.example"
    assert envelope["authenticated"] is True
    assert smtp.auth_attempts == [("PLAIN", True)]
    message = smtp.messages()[0]
    assert_confirmation(message, result, "to be invoiced")
    assert format_money(totals["total_cents"], "EUR").startswith("€ ")  # e.g. "€ 65.33"
    [row] = outbox_rows(backend)
    assert row["order_number"] == result["order"]["order_number"]
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["sent_at"]


def test_auth_login_works_too(backend):
    with SmtpServer(SMTP_PASSWORD, mechanisms=("LOGIN",)) as server:
        configure_smtp(backend, server.port)
        result = invoice_order(backend)
        assert server.auth_attempts == [("LOGIN", True)]
        [message] = server.messages()
        assert_confirmation(message, result, "to be invoiced")


def test_paid_order_says_paid(backend, smtp):
    token = ready_checkout(backend, [("LENS-MONTH-6", 1), ("LENS-DAILY-30", 1)])
    status = backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    backend.call(
        "checkout-flow",
        "set-payment",
        {
            "checkout_token": token,
            "provider": "bank",
            "reference": "NL-4711",
            "status": "paid",
            "amount_cents": status["totals"]["total_cents"],
        },
    )
    result = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    assert result["order"]["payment_status"] == "paid"
    [message] = smtp.messages()
    assert_confirmation(message, result, "Payment: paid")
    text, html = parts(message)
    assert "invoiced" not in text and "invoiced" not in html
    assert outbox_rows(backend)[0]["status"] == "sent"


def test_completing_twice_delivers_once(backend, smtp, cli):
    token = ready_checkout(backend)
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    first = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    again = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    assert again["already_completed"] is True
    assert again["order"] == first["order"]
    via_cli = cli("--json", "complete-checkout", token)
    assert via_cli.exit_code == 0, via_cli.stderr
    assert via_cli.json()["already_completed"] is True
    assert len(smtp.received) == 1
    assert backend.call("checkout-admin", "send-outbox", {})["sent"] == 0
    assert len(smtp.received) == 1
    assert [r["status"] for r in outbox_rows(backend)] == ["sent"]


# --- SMTP failures: completion succeeds, the email waits for `outbox send` ----------------


def test_wrong_password_fails_then_send_outbox_delivers_once(backend):
    with SmtpServer(SMTP_PASSWORD) as server:
        configure_smtp(backend, server.port, password=WRONG_PASSWORD)
        result = invoice_order(backend)
        assert result["status"] == "completed" and result["order"]["order_number"]
        assert server.received == []
        assert server.auth_attempts and not any(ok for _, ok in server.auth_attempts)
        [row] = outbox_rows(backend)
        assert row["status"] == "failed"
        assert row["attempts"] == 1
        assert "SMTPAuthenticationError" in row["last_error"]
        for secret in (WRONG_PASSWORD, SMTP_PASSWORD):
            assert secret not in row["last_error"]
        # A retry with the same wrong password fails again, and says so.
        retry = backend.call("checkout-admin", "send-outbox", {})
        assert (retry["sent"], retry["failed"]) == (0, 1)
        assert WRONG_PASSWORD not in str(retry)

        backend.call(
            "checkout-admin", "set-vault", {"name": "smtp_password", "value": SMTP_PASSWORD}
        )
        sent = backend.call("checkout-admin", "send-outbox", {})
        assert (sent["sent"], sent["failed"]) == (1, 0)
        assert len(server.received) == 1
        assert_confirmation(server.messages()[0], result, "to be invoiced")
        [row] = outbox_rows(backend)
        assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 3, None)

        nothing = backend.call("checkout-admin", "send-outbox", {})
        assert (nothing["sent"], nothing["failed"], nothing["results"]) == (0, 0, [])
        assert len(server.received) == 1


def test_server_down_then_cli_outbox_send_delivers_once(backend, cli):
    port = free_port()  # nothing listens here yet
    configure_smtp(backend, port)
    token = ready_checkout(backend)
    assert cli("create-payment", token, "--provider", "invoice").exit_code == 0
    completed = cli("--json", "complete-checkout", token)
    assert completed.exit_code == 0, completed.stderr
    result = completed.json()
    assert result["status"] == "completed"
    [row] = outbox_rows(backend)
    assert row["status"] == "failed"
    assert "refused" in row["last_error"].lower()
    assert SMTP_PASSWORD not in row["last_error"]

    still_down = cli("outbox", "send")
    assert still_down.exit_code == 6
    assert "sent 0, failed 1" in still_down.stderr + still_down.stdout

    with SmtpServer(SMTP_PASSWORD, port=port) as server:
        sent = cli("--json", "outbox", "send")
        assert sent.exit_code == 0, sent.stderr
        assert (sent.json()["sent"], sent.json()["failed"]) == (1, 0)
        assert len(server.received) == 1
        assert_confirmation(server.messages()[0], result, "to be invoiced")

        again = cli("outbox", "send")
        assert again.exit_code == 0, again.stderr
        assert "sent 0, failed 0" in again.stderr + again.stdout
        assert len(server.received) == 1

    [row] = outbox_rows(backend)
    assert (row["status"], row["last_error"]) == ("sent", None)


def test_a_server_that_echoes_the_password_does_not_put_it_in_last_error(backend, cli):
    echo = "535 5.7.8 credentials rejected for shop with password {}"
    with SmtpServer(SMTP_PASSWORD, refusal=echo) as server:
        configure_smtp(backend, server.port, password=WRONG_PASSWORD)
        invoice_order(backend)
        assert [ok for _, ok in server.auth_attempts] == [False, False]  # PLAIN, then LOGIN
        [row] = outbox_rows(backend)
        assert row["status"] == "failed"
        assert "credentials rejected" in row["last_error"]
        assert "[redacted]" in row["last_error"]
        assert WRONG_PASSWORD not in row["last_error"]
        shown = cli("--json", "outbox", "send")
        assert shown.exit_code == 6
        assert WRONG_PASSWORD not in shown.stdout + shown.stderr


def forms_of_the_login(server: EchoingServer) -> set[str]:
    """Every form of the password, and of what the client answered in AUTH (CRAM-MD5's
    digest is as good as the password to a guesser)."""
    forms = encodings(SMTP_PASSWORD)
    for answer in server.answers:
        if answer != SMTP_USER.encode():
            forms |= encodings(answer.decode()) | {base64.b64encode(answer).decode()}
    return forms


def assert_no_form_in(forms: set[str], where: str, text: str) -> None:
    leaked = [form for form in forms if form in text]
    assert not leaked, f"{where} holds the SMTP password in some form"


async def _mcp_outbox(tmp_path: Path, db: Path) -> list[str]:
    from tests.test_mcp import local, mcp_session

    async with mcp_session(tmp_path, *local(db)) as session:
        texts = []
        for tool in ("checkout-admin_list_outbox", "checkout-admin_send_outbox"):
            result = await session.call_tool(tool, {})
            texts.append(json.dumps(result.structured_content))
        return texts


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_a_server_echoing_the_auth_exchange_sees_no_form_of_the_password_come_back(
    backend, cli, db_path, tmp_path, mechanism
):
    """Not in last_error in the store, nor in `outbox list --json`, nor over HTTP, nor MCP."""
    import anyio

    with EchoingServer(mechanism) as server:
        configure_smtp(backend, server.port)
        invoice_order(backend)
        assert [m for m, _ in server.auth_attempts] == [mechanism]
        forms = forms_of_the_login(server)
        [(last_error,)] = query(db_path, "SELECT last_error FROM outbox")
        assert f"535, b'5.7.8 refused: AUTH {mechanism} " in last_error
        assert "[redacted]" in last_error
        assert_no_form_in(forms, "last_error", last_error)
        listed = cli("--json", "outbox", "list")
        assert listed.exit_code == 0 and listed.json()["emails"][0]["last_error"] == last_error
        assert_no_form_in(forms, "outbox list --json", listed.stdout + listed.stderr)

        token = WATCH.secret(
            backend.call("checkout-admin", "create-token", {"name": "t", "scope": "admin"})["token"]
        )
        with serving(db_path, token, project="local", workers=1) as served:
            remote = served.remote()
            try:
                answers = [
                    remote.call("checkout-admin", name, {})
                    for name in ("list-outbox", "send-outbox")  # a new attempt, by the server
                ]
            finally:
                remote.close()
        assert answers[1]["failed"] == 1 and len(server.auth_attempts) == 2
        assert_no_form_in(forms_of_the_login(server), "HTTP answers", json.dumps(answers))

        tools = anyio.run(_mcp_outbox, tmp_path, db_path)
        assert len(server.auth_attempts) == 3
        assert_no_form_in(forms_of_the_login(server), "MCP results", "\n".join(tools))
        [(last_error,)] = query(db_path, "SELECT last_error FROM outbox")
        assert_no_form_in(forms_of_the_login(server), "last_error", last_error)


def test_smtplib_debug_output_is_redacted(backend, capsys, monkeypatch):
    monkeypatch.setattr(smtplib.SMTP, "debuglevel", 1)  # as a developer would turn it on
    with EchoingServer("PLAIN") as server:
        configure_smtp(backend, server.port)
        invoice_order(backend)
    debug = capsys.readouterr().err
    assert "send: 'AUTH PLAIN [redacted]" in debug and "refused: AUTH PLAIN" in debug
    assert_no_form_in(forms_of_the_login(server), "smtplib's debug output", debug)


def test_a_shop_name_with_a_line_break_cannot_break_the_headers(backend, smtp):
    backend.call(
        "checkout-admin",
        "set-setting",
        {"key": "shop_name", "value": "Lens Shop\nBcc: thief@evil.example"},
    )
    result = invoice_order(backend)
    assert result["status"] == "completed"
    [envelope] = smtp.received
    assert envelope["rcpt_tos"] == ["anna@example.com"]
    [message] = smtp.messages()
    assert message["Bcc"] is None
    assert message["Subject"] == (
        f"Lens Shop Bcc: thief@evil.example: order {result['order']['order_number']} confirmed"
    )
    assert outbox_rows(backend)[0]["status"] == "sent"


def test_any_failure_after_the_claim_is_recorded_not_left_sending(backend, monkeypatch):
    from checkout_cli.engine import emails

    real = emails.build_message

    def broken(*args: Any) -> EmailMessage:
        raise ValueError("cannot build this message")

    monkeypatch.setattr(emails, "build_message", broken)
    result = invoice_order(backend)
    assert result["status"] == "completed"
    [row] = outbox_rows(backend)
    assert (row["status"], row["last_error"]) == ("failed", "ValueError: cannot build this message")

    monkeypatch.setattr(emails, "build_message", real)
    assert backend.call("checkout-admin", "send-outbox", {})["sent"] == 1
    assert outbox_rows(backend)[0]["status"] == "sent"


def test_a_busy_store_after_commit_leaves_the_email_queued(backend, smtp, monkeypatch):
    """Completion committed; if the claim cannot be taken, the email simply waits."""
    from checkout_cli.engine import outbox
    from checkout_cli.errors import UnavailableError

    def busy(engine, rows):
        raise UnavailableError("database_busy", "the store is busy")

    deliver = outbox._deliver
    monkeypatch.setattr(outbox, "_deliver", busy)
    result = invoice_order(backend)
    assert result["status"] == "completed" and result["already_completed"] is False
    assert outbox_rows(backend)[0]["status"] == "queued"
    monkeypatch.setattr(outbox, "_deliver", deliver)  # not undo(): that drops the test's dirs
    assert backend.call("checkout-admin", "send-outbox", {})["sent"] == 1
    assert len(smtp.received) == 1


def test_missing_password_and_refused_starttls_stay_queued(backend):
    with SmtpServer(SMTP_PASSWORD) as server:
        configure_smtp(backend, server.port, password=None)
        invoice_order(backend)
        [row] = outbox_rows(backend)
        assert row["status"] == "failed"
        assert "checkout vault set smtp_password" in row["last_error"]

        # The server offers no STARTTLS: with it required, nothing goes out in clear text.
        backend.call(
            "checkout-admin", "set-vault", {"name": "smtp_password", "value": SMTP_PASSWORD}
        )
        backend.call("checkout-admin", "set-setting", {"key": "smtp_starttls", "value": True})
        assert backend.call("checkout-admin", "send-outbox", {})["failed"] == 1
        assert "STARTTLS" in outbox_rows(backend)[0]["last_error"]
        assert server.received == [] and server.auth_attempts == []

        backend.call("checkout-admin", "set-setting", {"key": "smtp_starttls", "value": False})
        assert backend.call("checkout-admin", "send-outbox", {})["sent"] == 1
        assert len(server.received) == 1


# --- SMTP over TLS: STARTTLS and implicit TLS (SMTPS), with a test CA ----------------------


@pytest.fixture
def test_ca(monkeypatch, tmp_path) -> trustme.CA:
    """A CA this process trusts (as the system's CAs are trusted) for 127.0.0.1."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    return ca


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("starttls", {"smtp_starttls": True}),
        ("implicit", {"smtp_ssl": True}),
        ("implicit", {"smtp_ssl": True, "smtp_starttls": True}),  # SMTPS wins: no STARTTLS
    ],
)
def test_tls_delivers_encrypted(backend, test_ca, kind, settings):
    with SmtpServer(SMTP_PASSWORD, tls=(kind, server_context(test_ca))) as server:
        configure_smtp(backend, server.port)
        for key, value in settings.items():
            backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
        result = invoice_order(backend)
        [envelope] = server.received
        assert envelope["tls"] is True and envelope["authenticated"] is True
        assert_confirmation(server.messages()[0], result, "to be invoiced")
        assert outbox_rows(backend)[0]["status"] == "sent"


def test_implicit_tls_to_an_untrusted_certificate_sends_nothing(backend):
    with SmtpServer(SMTP_PASSWORD, tls=("implicit", server_context(trustme.CA()))) as server:
        configure_smtp(backend, server.port)
        backend.call("checkout-admin", "set-setting", {"key": "smtp_ssl", "value": True})
        invoice_order(backend)
        [row] = outbox_rows(backend)
        assert row["status"] == "failed" and "CERTIFICATE_VERIFY_FAILED" in row["last_error"]
        assert server.received == [] and server.auth_attempts == []


def test_implicit_tls_to_a_plain_server_sends_nothing(backend, test_ca):
    with SmtpServer(SMTP_PASSWORD) as server:
        configure_smtp(backend, server.port)
        backend.call("checkout-admin", "set-setting", {"key": "smtp_ssl", "value": True})
        invoice_order(backend)
        assert outbox_rows(backend)[0]["status"] == "failed"
        assert server.received == [] and server.auth_attempts == []


# --- the file transport --------------------------------------------------------------------


def test_file_transport_writes_a_parseable_eml_named_by_order_number(backend, tmp_path):
    folder = tmp_path / "mails"
    backend.call("checkout-admin", "set-setting", {"key": "email_transport", "value": "file"})
    backend.call("checkout-admin", "set-setting", {"key": "email_outbox_dir", "value": str(folder)})
    result = invoice_order(backend)
    number = result["order"]["order_number"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{number}.eml"]
    with (folder / f"{number}.eml").open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    assert_confirmation(message, result, "to be invoiced")
    assert message["Message-ID"]
    sent_at = message["Date"].datetime  # RFC 5322's origination date, when it was sent
    assert sent_at.tzinfo is not None
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 300
    [row] = outbox_rows(backend)
    assert (row["status"], row["attempts"]) == ("sent", 1)
    # Completing again writes nothing new.
    backend.call("checkout-flow", "complete-checkout", {"checkout_token": result["checkout_token"]})
    assert sorted(p.name for p in folder.iterdir()) == [f"{number}.eml"]


def test_file_transport_default_folder_is_beside_the_store(backend, tmp_path):
    backend.call("checkout-admin", "set-setting", {"key": "email_outbox_dir", "value": ""})
    result = invoice_order(backend)
    # Beside an SQLite file; for a PostgreSQL store, in this machine's data dir, by its name.
    pg_files = tmp_path / "data" / "checkout-cli" / "postgresql"
    beside = tmp_path if isinstance(backend.db_path, Path) else pg_files
    found = list(beside.rglob(f"outbox/{result['order']['order_number']}.eml"))
    assert len(found) == 1, list(tmp_path.rglob("*.eml"))


# --- the password stays in the vault ------------------------------------------------------


def _store_text(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f"SELECT * FROM [{t}]"))
    finally:
        conn.close()


def test_smtp_password_never_leaves_the_vault(backend, cli, db_path):
    with SmtpServer(SMTP_PASSWORD) as server:
        configure_smtp(backend, server.port, password=WRONG_PASSWORD)
        invoice_order(backend)  # fails: wrong password
        set_right = cli("vault", "set", "smtp_password", input=SMTP_PASSWORD + "\n")
        assert set_right.exit_code == 0, set_right.stderr
        sent = cli("--json", "outbox", "send")
        assert sent.exit_code == 0, sent.stderr
        assert len(server.received) == 1
        raw = server.received[0]["raw"].decode("utf-8", "replace")

    outputs = {"delivered message": raw, "outbox send": sent.stdout + sent.stderr}
    for args in (
        ("--json", "outbox", "list"),
        ("--json", "vault", "list"),
        ("--json", "settings", "show"),
        ("outbox", "list"),
        ("vault", "list"),
        ("settings", "show"),
    ):
        shown = cli(*args)
        assert shown.exit_code == 0, (args, shown.stderr)
        outputs[" ".join(args)] = shown.stdout + shown.stderr
    vault = {s["name"]: s for s in cli("--json", "vault", "list").json()["secrets"]}
    assert vault["smtp_password"]["set"] is True
    outputs["every row of the store, the vault's included"] = _store_text(db_path)
    for where, text in outputs.items():
        for secret in (SMTP_PASSWORD, WRONG_PASSWORD):
            assert secret not in text, f"{where} shows an SMTP password"
    # The check above means something: the vault does hold the value, sealed.
    from checkout_cli.engine.vault import secret

    assert secret(backend.engine.conn, "smtp_password") == SMTP_PASSWORD


def test_an_email_cut_off_mid_send_is_retried_only_on_request(backend, cli):
    from tests.conftest import ready_checkout

    token = ready_checkout(backend)
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    conn = backend.engine.conn
    # A process killed between claiming and recording the result leaves the row 'sending'.
    conn.execute("UPDATE outbox SET status = 'sending', claimed_at = '2000-01-01T00:00:00Z'")
    assert backend.call("checkout-admin", "send-outbox", {})["sent"] == 0
    inspect = backend.call(
        "checkout-admin", "inspect-checkout", {"checkout_token": token, "live": False}
    )
    assert "checkout outbox send --retry-stuck" in [d["fix"] for d in inspect["diagnosis"]]
    result = cli("--json", "outbox", "send", "--retry-stuck")
    assert result.exit_code == 0, result.stderr
    assert (result.json()["released"], result.json()["sent"]) == (1, 1)
    assert conn.execute("SELECT status FROM outbox").fetchone()[0] == "sent"


def test_a_half_sent_email_in_its_grace_period_says_when_it_may_be_retried(backend, cli):
    from datetime import timedelta

    from checkout_cli.engine.core import iso
    from tests.conftest import ready_checkout

    token = ready_checkout(backend)
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    conn = backend.engine.conn
    # Claimed 3 minutes ago: another process may still be sending it, 7 minutes to wait.
    claimed = iso(backend.engine.clock() - timedelta(minutes=3))
    conn.execute("UPDATE outbox SET status = 'sending', claimed_at = ?", (claimed,))
    result = cli("outbox", "send", "--retry-stuck")
    assert result.exit_code == 0, result.stderr
    said = result.stdout + result.stderr
    assert "sent 0, failed 0" in said
    assert "--retry-stuck may retry it in 7 minutes" in said
    waiting = cli("--json", "outbox", "send", "--retry-stuck").json()["waiting"]
    assert [w["retry_in_minutes"] for w in waiting] == [7]
    assert conn.execute("SELECT status FROM outbox").fetchone()[0] == "sending"
    inspect = cli("--json", "inspect", token, "--no-live").json()
    assert "may be retried in 7 minutes" in inspect["diagnosis"][0]["problem"]
