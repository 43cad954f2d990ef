"""After a phone order, on a pseudo-terminal as support staff work: the order taken by
`checkout phone-order`, paid by bank transfer, then the customer calls back: a line refunded
and restocked, then the rest cancelled with its refund. Each step asks to confirm first; the
stock and the order's money agree with the store's invariants at the end."""

from __future__ import annotations

import re

import pytest

from checkout_cli.money import format_money
from tests.engine_helpers import ORDERS, assert_invariants, scalar
from tests.terminal import Terminal, starter
from tests.test_phone_order import Operator, Q, orders


@pytest.fixture
def operator(db_path, tmp_path):
    yield from starter(
        lambda *args: Operator(db_path, tmp_path, "phone-order", *args, dimensions=(50, 140))
    )


@pytest.fixture
def support(db_path, tmp_path):
    yield from starter(lambda *args: Terminal(db_path, tmp_path, *args, dimensions=(40, 160)))


def _stock(db_path) -> int:
    return scalar(db_path, "SELECT stock FROM products WHERE sku = 'LENS-DAILY-30'")


def _phone_order(operator, backend) -> dict:
    op = operator()
    op.search("daily", "Daily contact lenses, 30 pack")
    op.at(Q + r"Quantity", "2\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add lens_prescription for line 1 \(LENS-DAILY-30\)\?", "n")
    op.at(Q + r"Payment", "\r")  # Invoice (pay later)
    op.at("Read this out")
    assert op.finish() == 0, op.text
    [order] = orders(backend)
    return order


def test_a_phone_order_refunded_by_line_then_cancelled_with_its_refund(
    backend, db_path, operator, support
):
    stock = _stock(db_path)
    order = _phone_order(operator, backend)
    number, total = order["order_number"], order["totals"]["total_cents"]
    assert _stock(db_path) == stock - 2
    backend.call(
        ORDERS,
        "record-payment",
        {"order_id": number, "amount_cents": total, "method": "bank_transfer", "reference": "T1"},
    )

    refund = support(
        "orders", "refund", number, "--line", "LENS-DAILY-30=1", "--restock", "--reason", "torn"
    )
    refundable = format_money(total, order["currency"])
    refund.at(
        re.escape(
            f"Refund 1 × LENS-DAILY-30 of order {number} to Anna de Vries "
            f"({refundable} refundable)?"
        ),
        "y",
    )
    assert refund.finish() == 0, refund.text
    assert f"order {number}: refunded" in refund.text
    shown = backend.call(ORDERS, "get-order", {"order_id": number})
    assert shown["payment_status"] == "partially_refunded"
    assert _stock(db_path) == stock - 1  # the torn pack is back on the shelf

    cancel = support("orders", "cancel", number, "--refund", "--reason", "customer's request")
    cancel.at(re.escape(f"Cancel order {number} and refund what it was paid?"), "y")
    assert cancel.finish() == 0, cancel.text
    assert f"order {number} cancelled" in cancel.text
    shown = backend.call(ORDERS, "get-order", {"order_id": number})
    assert (shown["status"], shown["payment_status"]) == ("cancelled", "refunded")
    assert shown["amount_refunded_cents"] == total
    assert _stock(db_path) == stock  # the other pack back too, not the first one twice
    assert_invariants(db_path)


def test_an_unpaid_phone_order_cancelled_after_declining_once(backend, db_path, operator, support):
    stock = _stock(db_path)
    number = _phone_order(operator, backend)["order_number"]
    declined = support("orders", "cancel", number)
    declined.at(re.escape(f"Cancel order {number}?"), "n")
    assert declined.finish() == 0, declined.text
    assert backend.call(ORDERS, "get-order", {"order_id": number})["status"] == "pending"
    assert _stock(db_path) == stock - 2
    cancel = support("orders", "cancel", number, "--reason", "ordered twice by phone")
    cancel.at(re.escape(f"Cancel order {number}?"), "y")
    assert cancel.finish() == 0, cancel.text
    assert "back in stock: 2 × LENS-DAILY-30" in cancel.text
    assert backend.call(ORDERS, "get-order", {"order_id": number})["status"] == "cancelled"
    assert _stock(db_path) == stock
    assert_invariants(db_path)
