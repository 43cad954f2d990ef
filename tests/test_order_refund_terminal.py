"""`checkout orders refund` and `checkout orders cancel` as support staff run them: on a
pseudo-terminal they ask to confirm; piped, they need --yes (exit 2, nothing written)."""

from __future__ import annotations

import json
import re

import pytest

from checkout_cli.money import format_money
from tests.conftest import dump, ready_checkout
from tests.engine_helpers import FLOW, ORDERS, assert_invariants, complete, invoice, scalar
from tests.terminal import Terminal, starter


@pytest.fixture
def terminal(db_path, tmp_path):
    yield from starter(lambda *args: Terminal(db_path, tmp_path, *args, dimensions=(40, 160)))


def bank_order(backend) -> str:
    token = ready_checkout(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-TX-9", "status": "paid"},
    )
    return complete(backend, token)["order"]["order_number"]


def invoice_order(backend) -> str:
    token = ready_checkout(backend)
    invoice(backend, token)
    return complete(backend, token)["order"]["order_number"]


def _paid(backend, number: str) -> str:
    """The confirm question's ending: the customer, and what is refundable."""
    order = backend.call(ORDERS, "get-order", {"order_id": number})
    refundable = format_money(order["amount_paid_cents"], order["currency"])
    return f"{order['customer']['name']} ({refundable} refundable)?"


def test_refund_asks_first_and_declining_refunds_nothing(backend, terminal):
    number = bank_order(backend)
    before = dump(backend.db_path)
    t = terminal("orders", "refund", number, "--line", "CASE-TRAVEL=1")
    paid = _paid(backend, number)
    t.at(re.escape(f"Refund 1 × CASE-TRAVEL of order {number} to {paid}"), "n")
    assert t.finish() == 0, t.text  # declining is a choice, not a failure
    assert "not refunded" in t.text
    assert dump(backend.db_path) == before


def test_refund_confirmed_on_the_terminal(backend, terminal):
    number = bank_order(backend)
    t = terminal("orders", "refund", number, "--amount-cents", "1000", "--reason", "late")
    # The money as the customer sees it, and whose it is: not a bare number of cents.
    t.at(
        re.escape(
            f"Refund {format_money(1000, 'EUR')} of order {number} to {_paid(backend, number)}"
        ),
        "y",
    )
    assert t.finish() == 0, t.text
    assert f"order {number}: refunded" in t.text and "credit (bank)" in t.text
    assert scalar(backend.db_path, "SELECT amount_cents FROM refunds") == 1000
    order = backend.call(ORDERS, "get-order", {"order_id": number})
    assert order["payment_status"] == "partially_refunded"
    assert_invariants(backend.db_path)


def test_cancel_asks_first_then_cancels(backend, terminal):
    number = invoice_order(backend)
    declined = terminal("orders", "cancel", number)
    declined.at(re.escape(f"Cancel order {number}?"), "n")
    assert declined.finish() == 0, declined.text
    assert backend.call(ORDERS, "get-order", {"order_id": number})["status"] == "pending"
    t = terminal("orders", "cancel", number, "--reason", "customer changed their mind")
    t.at(re.escape(f"Cancel order {number}?"), "y")
    assert t.finish() == 0, t.text
    assert f"order {number} cancelled" in t.text and "back in stock: 2 × LENS-DAILY-30" in t.text
    assert backend.call(ORDERS, "get-order", {"order_id": number})["status"] == "cancelled"
    assert_invariants(backend.db_path)


def test_a_paid_order_cancel_says_how_to_refund_and_with_refund_asks_about_it(backend, terminal):
    number = bank_order(backend)
    t = terminal("orders", "cancel", number)
    t.at(re.escape(f"Cancel order {number}?"), "y")
    assert t.finish() == 5, t.text
    assert f"checkout orders cancel {number} --refund" in t.text
    refunded = terminal("orders", "cancel", number, "--refund")
    refunded.at(re.escape(f"Cancel order {number} and refund what it was paid?"), "y")
    assert refunded.finish() == 0, refunded.text
    order = backend.call(ORDERS, "get-order", {"order_id": number})
    assert (order["status"], order["payment_status"]) == ("cancelled", "refunded")
    assert_invariants(backend.db_path)


def test_piped_without_yes_is_refused_with_nothing_written(backend, cli):
    number = bank_order(backend)
    before = dump(backend.db_path)
    for args in (("orders", "refund", number), ("orders", "cancel", number, "--refund")):
        result = cli("--json", *args)
        assert result.exit_code == 2, result.stderr
        assert "--yes" in json.loads(result.stderr)["error_object"]["message"]
    bad = cli("--json", "orders", "refund", number, "--line", "CASE-TRAVEL", "--yes")
    assert bad.exit_code == 2, bad.stderr
    assert json.loads(bad.stderr)["error_object"]["code"] == "invalid_line"
    assert dump(backend.db_path) == before
    done = cli("--json", "orders", "refund", number, "--line", "CASE-TRAVEL=1", "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.json()["refunds"][0]["kind"] == "credit"
    over = cli("--json", "orders", "refund", number, "--line", "CASE-TRAVEL=1", "--yes")
    assert over.exit_code == 4
    assert json.loads(over.stderr)["error_object"]["code"] == "refund_exceeds_ordered"
