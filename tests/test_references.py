"""What an operator may type for a checkout: its token, its order number (2026-000042) or
`--last`; a mistyped token is refused (exit 3) with the close ones, never picked for them."""

from __future__ import annotations

import json
import sqlite3
import string
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkout_cli.engine.near_tokens import is_close, near_clause
from tests.conftest import Result, dump, ready_checkout
from tests.serve_helpers import StandIn, create_token, served_fixture  # noqa: F401
from tests.terminal import Terminal, starter
from tests.test_cli_flow import CUSTOMER_FLAGS, error_line, new_cart, status_of

FLOW = "checkout-flow"


def completed(backend: Any) -> dict[str, Any]:
    """A completed invoice checkout: its status, with the order's number."""
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    backend.call(FLOW, "complete-checkout", {"checkout_token": token})
    return status_of(backend, token)


def typos(token: str) -> dict[str, str]:
    """The mistakes made reading a token over the phone: case, and one character off."""
    # Inside the random part, where two neighbours differ (else swapping them changes nothing).
    body = next(i for i in range(8, len(token) - 1) if token[i] != token[i + 1])
    return {
        "case": token.swapcase(),
        "lower": token.lower(),
        "different": token[:body] + ("x" if token[body] != "x" else "y") + token[body + 1 :],
        "missing": token[:body] + token[body + 1 :],
        "extra": token[:body] + "q" + token[body:],
        "swapped": token[:body] + token[body + 1] + token[body] + token[body + 2 :],
        "missing first": token[:4] + token[5:],
    }


def suggested(result: Result, token: str) -> str:
    line = error_line(result, 3)
    assert "did you mean" in line and token in line, line
    return line


# -- order numbers ---------------------------------------------------------------------------


def test_status_inspect_and_complete_take_the_order_number(backend, cli):
    co = completed(backend)
    number, token = co["order"]["order_number"], co["checkout_token"]

    status = cli("--json", "status", number)
    assert status.exit_code == 0, status.stderr
    assert status.json()["checkout_token"] == token

    inspect = cli("--json", "inspect", number, "--no-live")
    assert inspect.exit_code == 0, inspect.stderr
    assert inspect.json()["checkout"]["checkout_token"] == token

    again = cli("--json", "complete-checkout", number)
    assert again.exit_code == 0, again.stderr
    assert again.json()["already_completed"] is True
    assert again.json()["order"]["order_number"] == number

    # A write that the checkout's state refuses is refused as such, not as "not found".
    cancel = cli("cancel-checkout", number, "--yes")
    assert "not found" not in error_line(cancel, 4)


def test_an_unknown_order_number_is_not_found(backend, cli, db_path):
    completed(backend)
    before = dump(db_path)
    line = error_line(cli("complete-checkout", "2026-999999"), 3)
    assert "no order 2026-999999" in line and "checkout orders list" in line
    assert "six digits" in error_line(cli("status", "2026-42"), 3)
    assert dump(db_path) == before


def test_the_order_number_over_a_real_server(served, cli):
    remote = served.remote()
    co = completed(remote)
    number, token = co["order"]["order_number"], co["checkout_token"]
    env = served.cli_env()

    status = cli(*served.remote_args(), "--json", "status", number, env=env)
    assert status.exit_code == 0, status.stderr
    assert status.json()["checkout_token"] == token
    inspect = cli(*served.remote_args(), "--json", "inspect", number, "--no-live", env=env)
    assert inspect.exit_code == 0, inspect.stderr
    assert inspect.json()["checkout"]["checkout_token"] == token
    again = cli(*served.remote_args(), "--json", "complete-checkout", number, env=env)
    assert again.exit_code == 0, again.stderr
    assert again.json()["already_completed"] is True


# -- did you mean ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mistake", ["case", "lower", "different", "missing", "extra", "swapped", "missing first"]
)
def test_a_mistyped_token_is_refused_with_the_right_one(backend, cli, db_path, mistake):
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    ready_checkout(backend, [("LENS-MONTH-6", 1)])  # another checkout, not close to it
    before = dump(db_path)

    typed = typos(token)[mistake]
    line = suggested(cli("complete-checkout", typed), token)
    assert line.lower().count("chk_") == 2, line  # the one typed and the one meant: no other
    assert dump(db_path) == before  # nothing completed, neither of them

    as_json = cli("--json", "status", typed)
    error = json.loads(as_json.stderr)["error_object"]
    assert (as_json.exit_code, error["code"]) == (3, "checkout_not_found")
    assert token in error["recovery"]


def test_every_command_taking_a_checkout_suggests(backend, cli, db_path):
    token = ready_checkout(backend)
    typed = token.lower()
    before = dump(db_path)
    for args in (
        ("status", typed),
        ("inspect", typed, "--no-live"),
        ("set-customer", typed, *CUSTOMER_FLAGS),
        ("create-payment", typed, "--provider", "invoice"),
        ("set-payment", typed, "--provider", "bank", "--reference", "R1", "--status", "paid"),
        ("set-line-meta", typed, "LENS-DAILY-30", "--def", "lens_prescription", "x=1"),
        ("complete-checkout", typed),
        ("cancel-checkout", typed, "--yes"),
        ("refund-payment", typed, "tr_123", "--yes"),
    ):
        suggested(cli(*args), token)
    assert dump(db_path) == before


def test_an_unrelated_token_gets_no_suggestion(backend, cli):
    token = ready_checkout(backend)
    line = error_line(cli("status", "chk_" + "Z" * 20), 3)
    assert "did you mean" not in line and token not in line
    # Half a token is not close either.
    assert "did you mean" not in error_line(cli("status", token[:14]), 3)


def test_suggestions_over_a_real_server_with_a_read_token(served, cli):
    remote = served.remote()
    cart = new_cart(remote)
    token = remote.call(FLOW, "initiate-checkout", {"cart_token": cart})["checkout_token"]
    # The served store lives for the session and this test runs once per store kind.
    read_token = create_token(served.db, f"phone-read-{uuid.uuid4().hex[:8]}", scope="read")
    env = {"CHECKOUT_TOKEN": read_token}
    suggested(cli(*served.remote_args(), "status", token.swapcase(), env=env), token)


def test_a_caller_who_may_not_list_checkouts_gets_no_suggestion(served, cli):
    remote = served.remote()
    token = remote.call(FLOW, "initiate-checkout", {"cart_token": new_cart(remote)})[
        "checkout_token"
    ]
    forward = StandIn.proxy(served.url)._respond

    def no_listing(request: Any) -> tuple[int, dict[str, str], bytes]:
        if request.path.endswith("/list-checkouts"):
            error = {"type": "forbidden", "code": "forbidden_scope", "message": "not allowed"}
            body = json.dumps({"success": False, "error_object": error}).encode()
            return 403, {"Content-Type": "application/json"}, body
        return forward(request)

    with StandIn(no_listing) as stand_in:
        args = ["--remote", stand_in.url, "--project", served.project]
        line = error_line(cli(*args, "status", token.lower(), env=served.cli_env()), 3)
    assert "did you mean" not in line and token not in line
    assert any(r.path.endswith("/list-checkouts") for r in stand_in.requests)


# -- --last ----------------------------------------------------------------------------------


def test_last_is_the_checkout_just_created(backend, cli):
    older = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    created = cli("--json", "initiate-checkout", new_cart(backend))
    assert created.exit_code == 0, created.stderr
    token = created.json()["checkout_token"]

    status = cli("--json", "status", "--last")
    assert status.exit_code == 0 and status.json()["checkout_token"] == token
    assert token in status.stderr  # says which one it took

    # Reading another checkout does not move --last; changing one does.
    assert cli("status", older).exit_code == 0
    assert cli("--json", "status", "--last").json()["checkout_token"] == token
    paid = cli("create-payment", older, "--provider", "invoice")
    assert paid.exit_code == 0, paid.stderr
    assert cli("--json", "status", "--last").json()["checkout_token"] == older
    done = cli("--json", "complete-checkout", "--last")
    assert done.exit_code == 0, done.stderr
    assert done.json()["status"] == "completed" and done.json()["checkout_token"] == older


def test_last_with_nothing_yet_is_not_found(backend, cli, db_path):
    ready_checkout(backend)  # made by someone else, not through this operator's CLI
    before = dump(db_path)
    line = error_line(cli("complete-checkout", "--last"), 3)
    assert "no last checkout" in line
    assert dump(db_path) == before


def test_last_is_per_operator_and_per_store(backend, cli, tmp_path):
    def as_operator(name: str, *args: str) -> Result:
        return cli(*args, env={"LOGNAME": name, "USER": name})

    anna = as_operator("anna", "--json", "initiate-checkout", new_cart(backend)).json()
    bram = as_operator("bram", "--json", "initiate-checkout", new_cart(backend)).json()
    anna_last = as_operator("anna", "--json", "status", "--last").json()["checkout_token"]
    assert anna_last == anna["checkout_token"]
    bram_last = as_operator("bram", "--json", "status", "--last").json()["checkout_token"]
    assert bram_last == bram["checkout_token"]
    other_store = cli("--db", str(tmp_path / "other.db"), "status", "--last")
    assert "no last checkout" in error_line(other_store, 3)


def test_last_and_a_checkout_together_is_a_usage_error(backend, cli):
    token = ready_checkout(backend)
    assert "not both" in error_line(cli("status", token, "--last"), 2)
    assert "--last" in error_line(cli("status"), 2)


def test_set_line_meta_with_last_starts_at_the_sku(backend, cli):
    created = cli("--json", "initiate-checkout", new_cart(backend, [("LENS-TORIC-6", 1)]))
    token = created.json()["checkout_token"]
    result = cli(
        "--json",
        "set-line-meta",
        "--last",
        "LENS-TORIC-6",
        "--def",
        "lens_prescription",
        "right_sphere=-1.25",
        "left_sphere=-1.50",
        "prescribed_on=2026-09-01",
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["checkout_token"] == token
    [line] = result.json()["items"]
    assert line["meta"]["lens_prescription"]["right_sphere"] == "-1.25"


# -- the lookup behind "did you mean" --------------------------------------------------------

TOKEN_TEXT = st.text(string.ascii_letters + string.digits, min_size=20, max_size=20)


@given(TOKEN_TEXT, st.integers(0, 23), st.sampled_from(["sub", "del", "ins", "swap", "case"]))
def test_one_edit_is_close_and_the_query_keeps_it(random_part, at, kind):
    token = "chk_" + random_part
    at = min(at, len(token) - 2)
    edited = {
        "sub": token[:at] + ("0" if token[at] != "0" else "1") + token[at + 1 :],
        "del": token[:at] + token[at + 1 :],
        "ins": token[:at] + "Q" + token[at:],
        "swap": token[:at] + token[at + 1] + token[at] + token[at + 2 :],
        "case": token.swapcase(),
    }[kind]
    assert is_close(token, edited) and is_close(edited, token)
    # SQLite's half-token filter never drops a close token before is_close sees it.
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE checkouts (id INTEGER PRIMARY KEY, token TEXT)")
    conn.execute("INSERT INTO checkouts (token) VALUES (?)", (token,))
    clause, params = near_clause(edited)
    assert conn.execute("SELECT token FROM checkouts WHERE 1 = 1" + clause, params).fetchall()


@pytest.mark.parametrize(
    "typed",
    [
        "chk_AbCdEfGhIjKlMnOpQrSt"[:6] + "XY" + "chk_AbCdEfGhIjKlMnOpQrSt"[8:],  # two replaced
        "chk_AbCdEfGhIjKlMnOpQrSt"[:6] + "chk_AbCdEfGhIjKlMnOpQrSt"[8:],  # two missing
        "chk_AbCdEfGhIjKlMnOpQrStUv",  # two extra
        "chk_BAdCEfGhIjKlMnOpQrSt",  # swapped twice
        "chk_AbCdEfGhIj",  # the first half
    ],
)
def test_two_edits_are_not_close(typed):
    assert not is_close("chk_AbCdEfGhIjKlMnOpQrSt", typed)


def test_list_checkouts_near_finds_exactly_the_close_ones(backend):
    tokens = [ready_checkout(backend) for _ in range(5)]
    for token in tokens:
        for typed in typos(token).values():
            found = backend.call("checkout-admin", "list-checkouts", {"near": typed, "limit": 10})[
                "checkouts"
            ]
            assert [c["checkout_token"] for c in found] == [token], typed


# -- phone-order --resume --------------------------------------------------------------------


@pytest.fixture
def phone(db_path, tmp_path):
    yield from starter(lambda *args: Terminal(db_path, tmp_path, "phone-order", *args))


def test_phone_order_resumes_by_order_number_and_refuses_a_typo_before_asking(backend, phone):
    co = completed(backend)
    number, token = co["order"]["order_number"], co["checkout_token"]
    by_number = phone("--resume", number)
    by_number.at("Read this out")
    assert by_number.finish() == 0
    assert number in by_number.text

    typo = phone("--resume", token.lower())
    assert typo.finish() == 3
    assert "did you mean" in typo.text and token in typo.text
    assert "?" not in typo.text.split("did you mean")[0]  # no question was asked first


def test_phone_order_last_resumes_the_checkout_just_made(backend, cli, phone):
    token = cli("--json", "initiate-checkout", new_cart(backend)).json()["checkout_token"]
    op = phone("--last")
    op.at("Customer email")
    op.child.send("\x03")
    op.at(r"Resume with: checkout phone-order --resume (chk_\w+)")
    assert op.child.match.group(1) == token
    assert op.finish() == 130
