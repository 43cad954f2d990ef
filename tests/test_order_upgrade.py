"""A store from before orders had a life after completion (schema 8) upgrades to one whose
orders say what they were paid, with nothing else changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from checkout_cli.backends.local import LocalBackend
from checkout_cli.engine.invariants import check_invariants
from checkout_cli.engine.schema import MIGRATIONS, SCHEMA_VERSION

ORDERS = "order-management"
AT = "2026-11-02T10:00:00.000000Z"


def _store_of_release_8(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    for version in range(1, 9):
        MIGRATIONS[version](conn)
    conn.execute("PRAGMA user_version = 8")
    conn.execute(
        "INSERT INTO products (sku, name, price_cents, currency, stock, created_at) "
        "VALUES ('CASE', 'Case', 1000, 'EUR', NULL, ?)",
        (AT,),
    )
    for n, (provider, status, order_status) in enumerate(
        [("stripe", "paid", "paid"), ("invoice", "unpaid", "pending")], start=1
    ):
        conn.execute(
            "INSERT INTO carts (id, token, status, currency, created_at) "
            "VALUES (?, ?, 'converted', 'EUR', ?)",
            (n, f"cart_{n}", AT),
        )
        conn.execute(
            "INSERT INTO checkouts (id, token, cart_id, status, currency, customer, "
            "subtotal_cents, shipping_cents, tax_cents, total_cents, created_at, updated_at, "
            "expires_at) VALUES (?, ?, ?, 'completed', 'EUR', ?, 2000, 0, 0, 2000, ?, ?, ?)",
            (
                n,
                f"chk_{n}",
                n,
                '{"email": "a@example.com", "name": "A", "phone": null, "company": null}',
                AT,
                AT,
                AT,
            ),
        )
        conn.execute(
            "INSERT INTO checkout_lines (checkout_id, line_no, product_sku, name, quantity, "
            "unit_price_cents, line_total_cents, tax_cents) VALUES (?, 1, 'CASE', 'Case', 2, "
            "1000, 2000, 0)",
            (n,),
        )
        conn.execute(
            "INSERT INTO payments (id, checkout_id, provider, provider_payment_id, status, "
            "amount_cents, currency, created_at) VALUES (?, ?, ?, ?, ?, 2000, 'EUR', ?)",
            (n, n, provider, "cs_1" if provider == "stripe" else None, status, AT),
        )
        conn.execute(
            "INSERT INTO orders (id, order_id, order_number, checkout_id, payment_id, status, "
            "payment_status, currency, customer, subtotal_cents, shipping_cents, tax_cents, "
            "total_cents, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'EUR', ?, 2000, 0, 0, 2000, ?)",
            (
                n,
                f"ord_{n}",
                f"2026-00000{n}",
                n,
                n,
                order_status,
                "paid" if status == "paid" else "unpaid",
                '{"email": "a@example.com", "name": "A", "phone": null, "company": null}',
                AT,
            ),
        )
        conn.execute(
            "INSERT INTO order_lines (order_id, line_no, product_sku, name, quantity, "
            "unit_price_cents, line_total_cents, tax_cents, meta) VALUES (?, 1, 'CASE', 'Case', "
            "2, 1000, 2000, 0, '{}')",
            (n,),
        )
        conn.execute(
            "INSERT INTO outbox (order_id, kind, recipient, status, created_at) "
            "VALUES (?, 'order_confirmation', 'a@example.com', 'sent', ?)",
            (n, AT),
        )
        conn.execute(
            "INSERT INTO events (checkout_id, at, actor, kind, from_status, to_status) "
            "VALUES (?, ?, 'operator', 'checkout_completed', 'completable', 'completed')",
            (n, AT),
        )
    conn.execute("COMMIT")
    conn.close()


def test_orders_of_release_8_say_what_they_were_paid(tmp_path):
    path = tmp_path / "shop.db"
    _store_of_release_8(path)
    backend = LocalBackend(path, actor="test")
    try:
        paid = backend.call(ORDERS, "get-order", {"order_id": "2026-000001"})
        unpaid = backend.call(ORDERS, "get-order", {"order_id": "2026-000002"})
        conn = backend.engine.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert check_invariants(conn) == []
    finally:
        backend.close()
    assert (paid["status"], paid["payment_status"], paid["fulfilment_status"]) == (
        "paid",
        "paid",
        "unfulfilled",
    )
    assert (paid["amount_paid_cents"], paid["balance_due_cents"]) == (2000, 0)
    assert [
        (p["method"], p["amount_cents"], p["provider_payment_id"]) for p in paid["payments"]
    ] == [("stripe", 2000, "cs_1")]
    assert (unpaid["status"], unpaid["payment_status"]) == ("pending", "unpaid")
    assert (unpaid["amount_paid_cents"], unpaid["balance_due_cents"]) == (0, 2000)
    assert unpaid["payments"] == []
    assert [e["kind"] for e in paid["timeline"]] == ["checkout_completed"]
    assert paid["updated_at"] == paid["created_at"] == AT
