"""Support after the order: list filters and --overdue, and stuck orders with their fix."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from checkout_cli.errors import ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import (
    ADMIN,
    FLOW,
    ORDERS,
    complete,
    invoice,
    refused,
    setting,
    shift_clock,
)


def place(backend, *, paid: bool, items=None) -> dict:
    token = ready_checkout(backend, items or [("CASE-TRAVEL", 1)])
    if paid:
        backend.call(
            FLOW,
            "set-payment",
            {"checkout_token": token, "provider": "bank", "reference": "B", "status": "paid"},
        )
    else:
        invoice(backend, token)
    return complete(backend, token)["order"]


def numbers(backend, **body) -> list[str]:
    found = backend.call(ORDERS, "list-orders", body)
    assert found["total"] == len(found["orders"])
    return sorted(o["order_number"] for o in found["orders"])


def cancel_by_hand(db_path, order) -> None:
    """What cancel-order (its own endpoint) leaves on an order."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE orders SET cancelled_at = '2026-01-02T00:00:00Z', status = 'cancelled' "
            "WHERE order_id = ?",
            (order["order_id"],),
        )
    conn.close()


def refund_row(db_path, order, status: str, created_at: str, reason: str | None = None) -> None:
    """A provider refund of the order as refund-order (its own endpoint) records it."""
    conn = sqlite3.connect(db_path)
    with conn:
        oid, checkout_id, payment_id = conn.execute(
            "SELECT id, checkout_id, payment_id FROM orders WHERE order_id = ?",
            (order["order_id"],),
        ).fetchone()
        conn.execute(
            "INSERT INTO refunds (payment_id, checkout_id, order_id, provider, provider_refund_id, "
            "status, amount_cents, currency, reason, kind, created_at, updated_at) "
            "VALUES (?, ?, ?, 'stripe', ?, ?, 500, 'EUR', ?, 'provider', ?, ?)",
            (payment_id, checkout_id, oid, f"re_{status}", status, reason, created_at, created_at),
        )
    conn.close()


def test_filters_by_each_status(backend):
    shipped = place(backend, paid=True)
    backend.call(ORDERS, "fulfil-order", {"order_id": shipped["order_number"]})
    paid = place(backend, paid=True, items=[("LENS-DAILY-30", 2)])
    backend.call(
        ORDERS,
        "fulfil-order",
        {
            "order_id": paid["order_number"],
            "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 1}],
        },
    )
    owing = place(backend, paid=False)
    assert numbers(backend, status="completed") == [shipped["order_number"]]
    assert numbers(backend, status="pending") == [owing["order_number"]]
    assert numbers(backend, payment_status="paid") == sorted(
        [shipped["order_number"], paid["order_number"]]
    )
    assert numbers(backend, payment_status="unpaid") == [owing["order_number"]]
    assert numbers(backend, fulfilment_status="partially_fulfilled") == [paid["order_number"]]
    assert numbers(backend, fulfilment_status="unfulfilled") == [owing["order_number"]]
    assert numbers(backend, payment_status="paid", fulfilment_status="fulfilled") == [
        shipped["order_number"]
    ]
    refused(
        backend,
        ORDERS,
        "list-orders",
        {"payment_status": "half"},
        ValidationError,
        "invalid_payment_status",
        "payment_status",
    )
    refused(
        backend,
        ORDERS,
        "list-orders",
        {"fulfilment_status": "shipped"},
        ValidationError,
        "invalid_fulfilment_status",
        "fulfilment_status",
    )


def test_overdue_is_an_invoice_unpaid_past_its_days(backend, db_path):
    shift_clock(backend, -timedelta(days=20))  # these orders were made 20 days ago
    old_unpaid = place(backend, paid=False)
    old_paid = place(backend, paid=True)
    old_cancelled = place(backend, paid=False)
    cancel_by_hand(db_path, old_cancelled)
    shift_clock(backend, -timedelta(days=3))
    recent = place(backend, paid=False)
    shift_clock(backend, timedelta(0))
    assert numbers(backend, overdue=True) == [old_unpaid["order_number"]]  # 14 days by default
    setting(backend, "invoice_due_days", 2)
    assert numbers(backend, overdue=True) == sorted(
        [old_unpaid["order_number"], recent["order_number"]]
    )
    setting(backend, "invoice_due_days", 30)
    assert numbers(backend, overdue=True) == []
    assert old_paid["order_number"] not in numbers(backend, overdue=True)
    # paged in SQL: the total counts every overdue order, not the page
    setting(backend, "invoice_due_days", 2)
    page = backend.call(ORDERS, "list-orders", {"overdue": True, "limit": 1})
    assert (page["total"], len(page["orders"])) == (2, 1)


def test_cli_list_filters_and_overdue(backend, cli):
    shift_clock(backend, -timedelta(days=15))
    owing = place(backend, paid=False)
    shift_clock(backend, timedelta(0))
    paid = place(backend, paid=True)
    listed = cli("orders", "list", "--overdue", "--quiet")
    assert listed.exit_code == 0 and listed.stdout.split() == [owing["order_number"]]
    listed = cli(
        "orders",
        "list",
        "--payment-status",
        "paid",
        "--fulfilment-status",
        "unfulfilled",
        "--quiet",
    )
    assert listed.stdout.split() == [paid["order_number"]]
    bad = cli("orders", "list", "--fulfilment-status", "shipped")
    assert bad.exit_code == 2 and "unfulfilled" in bad.stderr


def reasons(backend, token: str) -> list[str]:
    found = backend.call(ADMIN, "list-checkouts", {"stuck": True})
    return next(
        (c["stuck_reasons"] for c in found["checkouts"] if c["checkout_token"] == token), []
    )


def fixes(backend, token: str) -> list[str]:
    inspected = backend.call(ADMIN, "inspect-checkout", {"checkout_token": token, "live": False})
    return [d["fix"] for d in inspected["diagnosis"]]


def test_paid_order_not_shipped_in_time_is_stuck(backend):
    shift_clock(backend, -timedelta(days=4))
    order = place(backend, paid=True)
    owing = place(backend, paid=False)  # not paid: not held up by shipping
    shift_clock(backend, timedelta(0))
    token = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})["checkout_token"]
    owing_token = backend.call(ORDERS, "get-order", {"order_id": owing["order_number"]})[
        "checkout_token"
    ]
    assert reasons(backend, token) == ["paid_not_shipped"]
    assert "paid_not_shipped" not in reasons(backend, owing_token)
    assert (
        f"checkout orders fulfil {order['order_number']} --carrier CARRIER --tracking NUMBER"
        in fixes(backend, token)
    )
    setting(backend, "ship_within_days", 5)
    assert reasons(backend, token) == []
    setting(backend, "ship_within_days", 3)
    backend.call(ORDERS, "fulfil-order", {"order_id": order["order_number"]})
    assert reasons(backend, token) == []
    assert fixes(backend, token) == [f"checkout status {token}"]  # nothing looks wrong


def test_refunds_pending_too_long_and_refused_are_stuck(backend, db_path):
    order = place(backend, paid=True)
    backend.call(ORDERS, "fulfil-order", {"order_id": order["order_number"]})
    token = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})["checkout_token"]
    refund_row(db_path, order, "pending", "2020-01-01T00:00:00Z")
    assert reasons(backend, token) == ["refund_pending_too_long"]
    assert fixes(backend, token) == ["checkout reconcile"]
    refund_row(db_path, order, "failed", "2020-01-02T00:00:00Z", reason="damaged")
    assert reasons(backend, token) == ["refund_pending_too_long", "refund_failed"]
    inspected = backend.call(ADMIN, "inspect-checkout", {"checkout_token": token, "live": False})
    failed = next(d for d in inspected["diagnosis"] if "refused" in d["problem"])
    assert (
        failed["fix"]
        == f"checkout orders refund {order['order_number']} --amount-cents 500 --reason damaged"
    )
    assert inspected["stuck_reasons"] == ["refund_pending_too_long", "refund_failed"]
    # a later refund took the refused one's place: it is no longer stuck
    refund_row(db_path, order, "succeeded", "2020-01-03T00:00:00Z")
    assert reasons(backend, token) == ["refund_pending_too_long"]


def test_a_young_pending_refund_is_not_stuck(backend, db_path):
    order = place(backend, paid=True)
    backend.call(ORDERS, "fulfil-order", {"order_id": order["order_number"]})
    token = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})["checkout_token"]
    from checkout_cli.engine.core import iso, utc_now

    refund_row(db_path, order, "pending", iso(utc_now() - timedelta(days=6)))
    assert reasons(backend, token) == []
    setting(backend, "refund_pending_days", 5)
    assert reasons(backend, token) == ["refund_pending_too_long"]


def test_inspect_by_order_number_shows_the_orders_life(backend, cli):
    shift_clock(backend, -timedelta(days=5))
    order = place(backend, paid=True, items=[("LENS-DAILY-30", 2)])
    backend.call(
        ORDERS,
        "fulfil-order",
        {
            "order_id": order["order_number"],
            "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 1}],
            "carrier": "PostNL",
            "tracking_number": "3S9",
        },
    )
    shown = cli("inspect", order["order_number"], "--no-live")
    assert shown.exit_code == 0, shown.stderr
    out = shown.stdout
    assert (
        f"Order {order['order_number']}  status paid · payment paid · shipping partially_fulfilled"
        in out
    )
    assert "balance due € 0.00" in out
    lines = out.splitlines()
    shipment = lines[lines.index("Shipments") + 1].split("\t")
    assert shipment[2:] == ["LENS-DAILY-30 × 1", "PostNL", "3S9"]
    assert "\torder_fulfilled\t" in out
    assert (
        f"fix: checkout orders fulfil {order['order_number']} --carrier CARRIER --tracking NUMBER"
        in out
    )
    as_json = cli("--json", "inspect", order["order_number"], "--no-live").json()
    assert as_json["order"]["order_number"] == order["order_number"]
    assert as_json["stuck_reasons"] == ["paid_not_shipped"]
    listed = cli("checkouts", "list", "--stuck", "--format", "csv")
    assert "paid_not_shipped" in listed.stdout
