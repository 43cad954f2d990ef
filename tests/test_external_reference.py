"""An order's external reference: carried from initiate to the order, one order per
reference per store, searchable."""

from __future__ import annotations

import sqlite3

import pytest

from checkout_cli.errors import ConflictError
from tests.engine_helpers import (
    FLOW,
    ORDERS,
    assert_invariants,
    cart_with,
    complete,
    invoice,
    refused,
    set_customer,
)


def referenced_checkout(backend, reference: str) -> str:
    cart = cart_with(backend, [("LENS-DAILY-30", 1)])
    token = backend.call(
        FLOW, "initiate-checkout", {"cart_token": cart, "external_reference": reference}
    )["checkout_token"]
    set_customer(backend, token)
    invoice(backend, token)
    return token


def test_order_carries_the_reference_and_is_found_by_it(backend):
    done = complete(backend, referenced_checkout(backend, "INV-1"))
    order = backend.call(ORDERS, "get-order", {"order_id": done["order"]["order_number"]})
    assert order["external_reference"] == "INV-1"
    found = backend.call(ORDERS, "list-orders", {"reference": "INV-1"})["orders"]
    assert [o["order_number"] for o in found] == [done["order"]["order_number"]]
    assert backend.call(ORDERS, "list-orders", {"reference": "INV-2"})["orders"] == []


def test_a_second_checkout_of_an_ordered_reference_is_refused(backend):
    complete(backend, referenced_checkout(backend, "INV-1"))
    cart = cart_with(backend, [("LENS-DAILY-30", 1)])
    refused(
        backend,
        FLOW,
        "initiate-checkout",
        {"cart_token": cart, "external_reference": "INV-1"},
        ConflictError,
        "reference_already_ordered",
        "external_reference",
    )


def test_two_open_checkouts_of_one_reference_make_one_order(backend):
    # Two runs that both got as far as a checkout: only the first to complete gets an order.
    first = referenced_checkout(backend, "INV-1")
    second = referenced_checkout(backend, "INV-1")
    complete(backend, first)
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": second},
        ConflictError,
        "reference_already_ordered",
    )
    assert len(backend.call(ORDERS, "list-orders", {"reference": "INV-1"})["orders"]) == 1
    assert_invariants(backend.db_path)


@pytest.mark.sqlite_only
def test_the_store_refuses_a_second_order_row_for_a_reference(backend):
    complete(backend, referenced_checkout(backend, "INV-1"))
    conn = sqlite3.connect(backend.db_path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO orders (order_id, order_number, checkout_id, status, payment_status, "
            "currency, subtotal_cents, shipping_cents, tax_cents, total_cents, created_at, "
            "external_reference) SELECT 'ord_x', 'X', checkout_id, status, payment_status, "
            "currency, 0, 0, 0, 0, created_at, external_reference FROM orders"
        )
    conn.close()
