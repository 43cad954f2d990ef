"""order-management through the engine: orders are what completion made, read back."""

from __future__ import annotations

import pytest

from checkout_cli.errors import NotFoundError, ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import (
    FLOW,
    ORDERS,
    assert_invariants,
    complete,
    invoice,
    prescription,
    refused,
    status,
)


def placed(backend, items=None, *, paid=False, email=None):
    token = ready_checkout(backend, items)
    if email:
        co = status(backend, token)
        backend.call(
            FLOW,
            "set-customer",
            {
                "checkout_token": token,
                "customer": {**co["customer"], "email": email},
                "shipping_address": co["shipping_address"],
            },
        )
    if paid:
        backend.call(
            FLOW,
            "set-payment",
            {"checkout_token": token, "provider": "bank", "reference": "R", "status": "paid"},
        )
    else:
        invoice(backend, token)
    return complete(backend, token)


def test_get_order_by_id_or_number(backend):
    done = placed(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    order = backend.call(ORDERS, "get-order", {"order_id": done["order"]["order_id"]})
    assert backend.call(ORDERS, "get-order", {"order_id": done["order"]["order_number"]}) == order
    assert order == {
        **done["order"],
        "checkout_token": done["checkout_token"],
        "currency": "EUR",
        "customer": done["customer"],
        "shipping_address": done["shipping_address"],
        "billing_address": done["billing_address"],
        "items": done["items"],
        "totals": done["totals"],
        "created_at": order["created_at"],
        "updated_at": order["created_at"],
        "external_reference": None,
        "amount_paid_cents": 0,
        "amount_refunded_cents": 0,
        "balance_due_cents": done["totals"]["total_cents"],
        "fulfilment_status": "unfulfilled",
        "cancelled_at": None,
        "cancel_reason": None,
        "payments": [],
        "refunds": [],
        "fulfilments": [],
        "timeline": order["timeline"],
    }
    assert [e["kind"] for e in order["timeline"]] == ["checkout_completed"]
    assert order["created_at"].endswith("Z")
    assert (order["status"], order["payment_status"]) == ("pending", "unpaid")


def test_paid_order(backend):
    done = placed(backend, paid=True)
    order = backend.call(ORDERS, "get-order", {"order_id": done["order"]["order_number"]})
    assert (order["status"], order["payment_status"]) == ("paid", "paid")


def test_get_order_errors(backend):
    refused(
        backend,
        ORDERS,
        "get-order",
        {"order_id": "ord_nope"},
        NotFoundError,
        "order_not_found",
        "order_id",
    )
    refused(
        backend,
        ORDERS,
        "get-order",
        {"order_id": "2026-999999"},
        NotFoundError,
        "order_not_found",
        "order_id",
    )
    refused(backend, ORDERS, "get-order", {}, ValidationError, "missing_field", "order_id")


def test_list_orders_newest_first_with_filters(backend):
    assert backend.call(ORDERS, "list-orders", {}) == {
        "orders": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }
    first = placed(backend, [("LENS-MONTH-6", 1)])
    second = placed(backend, [("LENS-MONTH-6", 1)], paid=True)
    third = placed(backend, [("LENS-MONTH-6", 1)], email="bob@example.com")
    numbers = [o["order_number"] for o in backend.call(ORDERS, "list-orders", {})["orders"]]
    assert numbers == [d["order"]["order_number"] for d in (third, second, first)]
    paid = backend.call(ORDERS, "list-orders", {"status": "paid"})["orders"]
    assert [o["order_number"] for o in paid] == [second["order"]["order_number"]]
    pending = backend.call(ORDERS, "list-orders", {"status": "pending"})["orders"]
    assert len(pending) == 2
    bob = backend.call(ORDERS, "list-orders", {"email": "bob@example.com"})["orders"]
    assert [o["order_number"] for o in bob] == [third["order"]["order_number"]]
    assert bob[0]["customer"]["email"] == "bob@example.com"
    limited = backend.call(ORDERS, "list-orders", {"limit": 1})["orders"]
    assert [o["order_number"] for o in limited] == [third["order"]["order_number"]]
    assert_invariants(backend.db_path)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"limit": 0}, "value_out_of_range", "limit"),
        ({"limit": "ten"}, "invalid_type", "limit"),
        ({"sort": "asc"}, "unknown_field", "sort"),
    ],
)
def test_list_orders_bad_input(backend, body, code, field):
    refused(backend, ORDERS, "list-orders", body, ValidationError, code, field)


def test_get_line_meta(backend):
    token = ready_checkout(backend, [("CASE-TRAVEL", 1), ("LENS-TORIC-6", 1)])
    for sku, def_key, values in [
        ("CASE-TRAVEL", "engraving", {"text": "Anna", "gift_wrap": True}),
        ("LENS-TORIC-6", "lens_prescription", prescription()),
    ]:
        backend.call(
            FLOW,
            "set-line-meta",
            {"checkout_token": token, "product_sku": sku, "def_key": def_key, "values": values},
        )
    invoice(backend, token)
    done = complete(backend, token)
    number = done["order"]["order_number"]
    meta = backend.call(ORDERS, "get-line-meta", {"order_id": number})
    assert meta["order_number"] == number
    assert meta["order_id"] == done["order"]["order_id"]
    assert [(line["line_id"], line["product_sku"]) for line in meta["lines"]] == [
        (1, "CASE-TRAVEL"),
        (2, "LENS-TORIC-6"),
    ]
    assert meta["lines"][0]["meta"] == {"engraving": done["items"][0]["meta"]["engraving"]}
    only = backend.call(ORDERS, "get-line-meta", {"order_id": number, "def_key": "engraving"})
    assert [line["product_sku"] for line in only["lines"]] == ["CASE-TRAVEL"]
    refused(
        backend,
        ORDERS,
        "get-line-meta",
        {"order_id": "ord_nope"},
        NotFoundError,
        "order_not_found",
        "order_id",
    )
    assert_invariants(backend.db_path)
