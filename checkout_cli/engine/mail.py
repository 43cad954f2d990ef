"""Email transports: ``file`` writes ``.eml`` files, ``smtp`` talks to a mail server; and
blanking an SMTP password older releases left in stored errors (a schema upgrade)."""

from __future__ import annotations

import os
import smtplib
import sqlite3
import ssl
import tempfile
from email.message import Message
from pathlib import Path
from typing import Any, Protocol, overload

from checkout_cli.engine import network, settings
from checkout_cli.engine.redaction import Redactor


class Transport(Protocol):
    def send(self, message: Message, name: str) -> str:
        """Deliver one message; return where it went. Raise on failure."""


class FileTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: Message, name: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{name}.eml"
        # Written whole or not at all: a temp file renamed into place.
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(message.as_bytes())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(target)


class DeliveryFailed(Exception):
    """A transport's failure, its text already free of every form of the SMTP password."""


class _RedactingSession(smtplib.SMTP):
    """An SMTP session that remembers every answer it gives in AUTH (whatever the mechanism:
    PLAIN, LOGIN, CRAM-MD5) so those are redacted too, and redacts smtplib's debug output.
    Put before ``smtplib.SMTP`` or ``smtplib.SMTP_SSL`` in the bases of the class used."""

    def __init__(self, redactor: Redactor, *args: Any, **kwargs: Any) -> None:
        self.redactor = redactor
        super().__init__(*args, **kwargs)

    def auth(
        self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        # smtplib's contract for an authobject: asked without a challenge it may have no
        # initial response; asked a challenge it answers one.
        @overload
        def answer(challenge: None = None, /) -> str | None: ...
        @overload
        def answer(challenge: bytes, /) -> str: ...
        def answer(challenge: bytes | None = None, /) -> str | None:
            response = authobject(challenge)
            if response == self.user:  # LOGIN's first answer: only its base64 is hidden
                self.redactor.add_encoded(response)
            elif response is not None:
                self.redactor.add(response)
            return response

        return super().auth(mechanism, answer, initial_response_ok=initial_response_ok)

    def _print_debug(self, *args: Any) -> None:
        # _print_debug is private to smtplib.SMTP, so typeshed leaves it out of its stub.
        super()._print_debug(  # type: ignore[misc]
            *(self.redactor.redact(str(arg)) for arg in args)
        )


class _Smtp(_RedactingSession, smtplib.SMTP):
    pass


class _Smtps(_RedactingSession, smtplib.SMTP_SSL):
    pass


def redactor_for(user: str, password: str | None) -> Redactor:
    """Every form of the password this transport sends or a server may echo back, known
    before the first byte goes out: raw, and base64 of PLAIN (with and without authzid) and of
    LOGIN's answers. The session adds what it actually answers (e.g. CRAM-MD5's digest)."""
    redactor = Redactor()
    if password:
        redactor.add(password)
        redactor.add(f"\0{user}\0{password}")
        redactor.add(f"{user}\0{user}\0{password}")
        redactor.add_encoded(user)
    return redactor


class SmtpTransport:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        implicit_tls: bool,
        starttls: bool,
        user: str,
        password: str | None,
    ) -> None:
        self.host, self.port = host, port
        self.implicit_tls, self.starttls = implicit_tls, starttls
        self.user, self._password = user, password

    def __repr__(self) -> str:  # never show the password, even in a debug traceback
        return f"SmtpTransport({self.host}:{self.port}, user={self.user!r})"

    def send(self, message: Message, name: str) -> str:
        """Deliver ``message``; any failure is ``DeliveryFailed`` with the password redacted
        in every form from its text (the one place SMTP errors become text)."""
        redactor = redactor_for(self.user, self._password)
        try:
            with self._connect(redactor) as smtp:
                if self.user:
                    if self._password is None:
                        raise RuntimeError(
                            "smtp_password is not in the vault (`checkout vault set smtp_password`)"
                        )
                    smtp.login(self.user, self._password)
                smtp.send_message(message)
        except Exception as exc:
            # from None: the original, unredacted exception is not chained into tracebacks.
            raise DeliveryFailed(redactor.redact(f"{type(exc).__name__}: {exc}")) from None
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"

    def _connect(self, redactor: Redactor) -> smtplib.SMTP:
        """A session that is already encrypted if the settings ask for TLS either way."""
        if self.implicit_tls:
            context = ssl.create_default_context()
            return _Smtps(redactor, self.host, self.port, timeout=30, context=context)
        smtp = _Smtp(redactor, self.host, self.port, timeout=30)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
        return smtp


def uses_password(settings: dict[str, Any]) -> bool:
    """Whether delivery needs the SMTP password (so the vault is read only then)."""
    return settings["email_transport"] == "smtp" and bool(settings["smtp_user"])


def transport_for(settings: dict[str, Any], password: str | None, data_dir: Path) -> Transport:
    if settings["email_transport"] == "smtp":
        network.check("the mail server")
        return SmtpTransport(
            settings["smtp_host"],
            settings["smtp_port"],
            implicit_tls=settings["smtp_ssl"],
            starttls=settings["smtp_starttls"],
            user=settings["smtp_user"],
            password=password,
        )
    folder = Path(settings["email_outbox_dir"] or data_dir / "outbox")
    return FileTransport(folder)


def redact_stored_password(conn: sqlite3.Connection) -> None:
    """Blank the SMTP password out of errors older releases stored: a server that echoed AUTH
    PLAIN put its base64 in ``last_error`` and in the remembered HTTP answer of that
    ``send-outbox``. Run by the upgrade that seals the vault, while the password is still
    plaintext there."""
    row = conn.execute("SELECT value FROM vault WHERE name = 'smtp_password'").fetchone()
    if row is None:
        return
    redactor = redactor_for(settings.read(conn, "smtp_user"), row["value"])
    for table, column, key in (
        ("outbox", "last_error", "id"),
        ("idempotent_requests", "response", "key"),
    ):
        for stored in conn.execute(f"SELECT {key}, {column} FROM {table}").fetchall():
            text = stored[column]
            if text and (clean := redactor.redact(text)) != text:
                conn.execute(
                    f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (clean, stored[key])
                )
