"""order-management: orders are created by checkout completion and never change after."""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine.catalog import move_stock
from checkout_cli.engine.core import Engine, loads, new_token
from checkout_cli.engine.paging import page
from checkout_cli.engine.reservations import reserved_by_others
from checkout_cli.errors import ConflictError, NotFoundError

# Not a smoke run's order (engine/smoke_runs.py): lists show the shop's orders only.
REAL_ORDER = "checkout_id NOT IN (SELECT id FROM checkouts WHERE test_run IS NOT NULL)"
ORDER_COLUMNS = ("subtotal_cents", "shipping_cents", "tax_cents", "total_cents")


def line_objects(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [
        {
            "line_id": r["line_no"],
            "product_sku": r["product_sku"],
            "name": r["name"],
            "quantity": r["quantity"],
            "unit_price_cents": r["unit_price_cents"],
            "line_total_cents": r["line_total_cents"],
            "tax_cents": r["tax_cents"],
            "meta": loads(r["meta"]) or {},
        }
        for r in rows
    ]


def order_summary(row: sqlite3.Row) -> dict[str, Any]:
    """The ``order`` part of the checkout object."""
    return {
        "order_id": row["order_id"],
        "order_number": row["order_number"],
        "status": row["status"],
        "payment_status": row["payment_status"],
    }


def next_order_number(conn: sqlite3.Connection, year: int) -> str:
    """Short, sequential, readable over the phone: ``2026-000042``."""
    name = f"order_number:{year}"
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (name,),
    )
    value = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]
    return f"{year}-{value:06d}"


def _order_number(engine: Engine, conn: sqlite3.Connection, co: sqlite3.Row) -> str:
    """A smoke run's order is numbered outside the shop's sequence, which it leaves as it is."""
    if co["test_run"] is not None:
        return f"TEST-{co['test_run']}-{co['id']}"
    return next_order_number(conn, engine.clock().year)


def create_order(
    engine: Engine, conn: sqlite3.Connection, co: sqlite3.Row, payment: sqlite3.Row
) -> sqlite3.Row:
    """Order, order lines and stock decrement, inside the completing transaction."""
    lines = conn.execute(
        "SELECT * FROM checkout_lines WHERE checkout_id = ? ORDER BY line_no", (co["id"],)
    ).fetchall()
    refuse_ordered_reference(conn, co["external_reference"])
    order_id = new_token("ord")
    for line in lines:
        _take_stock(engine, conn, line["product_sku"], line["quantity"], order_id, co["id"])
    # The order says what its payment row says: an invoice linked as paid is a paid order.
    paid = payment["status"] == "paid"
    cur = conn.execute(
        "INSERT INTO orders (order_id, order_number, checkout_id, payment_id, status, "
        "payment_status, currency, customer, shipping_address, billing_address, subtotal_cents, "
        "shipping_cents, tax_cents, total_cents, created_at, external_reference) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order_id,
            _order_number(engine, conn, co),
            co["id"],
            payment["id"],
            "paid" if paid else "pending",
            "paid" if paid else "unpaid",
            co["currency"],
            co["customer"],
            co["shipping_address"],
            co["billing_address"],
            *(co[c] for c in ORDER_COLUMNS),
            engine.now(),
            co["external_reference"],
        ),
    )
    # Meta is copied as the stored JSON text, so the order line carries it byte for byte.
    conn.execute(
        "INSERT INTO order_lines (order_id, line_no, product_sku, name, quantity, "
        "unit_price_cents, line_total_cents, tax_cents, meta) "
        "SELECT ?, line_no, product_sku, name, quantity, unit_price_cents, line_total_cents, "
        "tax_cents, meta FROM checkout_lines WHERE checkout_id = ?",
        (cur.lastrowid, co["id"]),
    )
    return conn.execute("SELECT * FROM orders WHERE id = ?", (cur.lastrowid,)).fetchone()


def refuse_ordered_reference(conn: sqlite3.Connection, reference: str | None) -> None:
    """An external reference makes one order per store (the UNIQUE index is the backstop)."""
    if reference is None:
        return
    row = conn.execute(
        "SELECT order_number FROM orders WHERE external_reference = ?", (reference,)
    ).fetchone()
    if row is not None:
        raise ConflictError(
            "reference_already_ordered",
            f"reference {reference!r} already has order {row['order_number']}",
            field="external_reference",
            recovery=f"see it with `checkout orders show {row['order_number']}`",
        )


def _take_stock(
    engine: Engine,
    conn: sqlite3.Connection,
    sku: str,
    quantity: int,
    order_id: str,
    checkout_id: int,
) -> None:
    # In place, under the write lock; stock other checkouts hold for pending payments stays.
    updated = conn.execute(
        "UPDATE products SET stock = stock - :q WHERE sku = :s AND stock IS NOT NULL "
        "AND (allow_backorder = 1 OR stock - :q >= (SELECT COALESCE(SUM(quantity), 0) "
        "FROM stock_reservations WHERE sku = :s AND checkout_id != :c))",
        {"q": quantity, "s": sku, "c": checkout_id},
    ).rowcount
    if updated:
        move_stock(engine, conn, sku, -quantity, "order", order_id)
        return
    product = conn.execute("SELECT stock FROM products WHERE sku = ?", (sku,)).fetchone()
    if product is not None and product["stock"] is None:
        return  # stock not tracked
    available = (product["stock"] if product else 0) - reserved_by_others(conn, sku, checkout_id)
    raise ConflictError(
        "insufficient_stock",
        f"{sku}: {max(available, 0)} available, {quantity} needed",
        field="items",
        recovery=f"restock with `checkout products set-stock {sku} N`, or cancel the checkout",
    )


def order_object(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    lines = conn.execute(
        "SELECT * FROM order_lines WHERE order_id = ? ORDER BY line_no", (row["id"],)
    ).fetchall()
    token = conn.execute(
        "SELECT token FROM checkouts WHERE id = ?", (row["checkout_id"],)
    ).fetchone()[0]
    return {
        **order_summary(row),
        "checkout_token": token,
        "currency": row["currency"],
        "customer": loads(row["customer"]),
        "shipping_address": loads(row["shipping_address"]),
        "billing_address": loads(row["billing_address"]),
        "items": line_objects(lines),
        "totals": {c: row[c] for c in ORDER_COLUMNS},
        "created_at": row["created_at"],
        "external_reference": row["external_reference"],
    }


def load_order(conn: sqlite3.Connection, key: str) -> sqlite3.Row:
    row = conn.execute(
        "SELECT * FROM orders WHERE order_id = ? OR order_number = ?", (key, key)
    ).fetchone()
    if row is None:
        raise NotFoundError(
            "order_not_found",
            f"no order {key!r}",
            field="order_id",
            recovery="list orders with `checkout orders list`",
        )
    return row


def get_order(engine: Engine, body: requests.OrderRef) -> dict[str, Any]:
    with engine.read() as conn:
        return order_object(conn, load_order(conn, body.order_id))


def list_orders(engine: Engine, body: requests.ListOrders) -> dict[str, Any]:
    sql, params = f"SELECT * FROM orders WHERE {REAL_ORDER}", []
    if status := body.status:
        sql += " AND status = ?"
        params.append(status)
    if email := body.email:
        sql += " AND json_extract(customer, '$.email') = ?"
        params.append(email)
    if reference := body.reference:
        sql += " AND external_reference = ?"
        params.append(reference)
    with engine.read() as conn:
        rows, paging = page(conn, sql, params, "id DESC", body, default_limit=100)
        return {"orders": [order_object(conn, r) for r in rows], **paging}
