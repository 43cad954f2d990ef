"""order-management: orders are made by checkout completion; what happens to them after (payments,
refunds, shipments, cancelling) is in their own modules, and `order_state` keeps them agreed."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import counters, events, order_state
from checkout_cli.engine.catalog import move_stock
from checkout_cli.engine.core import Engine, loads, new_token
from checkout_cli.engine.paging import page
from checkout_cli.engine.reservations import reserved_by_others
from checkout_cli.errors import ConflictError, NotFoundError

# Not a smoke run's order (engine/smoke_runs.py): lists show the shop's orders only.
REAL_ORDER = "checkout_id NOT IN (SELECT id FROM checkouts WHERE test_run IS NOT NULL)"
# An invoice left unpaid: money still due, not cancelled, made before the cutoff
# (invoice_due_days ago, ``overdue_cutoff``).
OVERDUE = "cancelled_at IS NULL AND total_cents > amount_paid_cents AND created_at <= ?"
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


def order_summary(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    """The ``order`` part of the checkout object."""
    return {
        "order_id": row["order_id"],
        "order_number": row["order_number"],
        "status": row["status"],
        "payment_status": row["payment_status"],
    }


def next_order_number(conn: sqlite3.Connection, year: int) -> str:
    """Short, sequential, readable over the phone: ``2026-000042``."""
    return f"{year}-{counters.next_value(conn, f'order_number:{year}'):06d}"


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
    created = engine.now()
    cur = conn.execute(
        "INSERT INTO orders (order_id, order_number, checkout_id, payment_id, status, "
        "payment_status, currency, customer, shipping_address, billing_address, subtotal_cents, "
        "shipping_cents, tax_cents, total_cents, created_at, external_reference, updated_at, "
        "amount_paid_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            created,
            co["external_reference"],
            created,
            payment["amount_cents"] if paid else 0,
        ),
    )
    if paid:  # the money the checkout was paid with is the order's first payment
        conn.execute(
            "INSERT INTO order_payments (order_id, payment_id, method, amount_cents, currency, "
            "reference, created_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cur.lastrowid,
                payment["id"],
                payment["provider"],
                payment["amount_cents"],
                payment["currency"],
                None,
                created,
                engine.actor,
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
    return order_state.refresh(engine, conn, cur.lastrowid or 0)


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
        "updated_at": row["updated_at"] or row["created_at"],
        "external_reference": row["external_reference"],
        "amount_paid_cents": row["amount_paid_cents"],
        "amount_refunded_cents": row["amount_refunded_cents"],
        "balance_due_cents": order_state.balance_due(row),
        "fulfilment_status": row["fulfilment_status"],
        "cancelled_at": row["cancelled_at"],
        "cancel_reason": row["cancel_reason"],
        "payments": payment_objects(conn, row["id"]),
        "refunds": refund_objects(conn, row["id"]),
        "fulfilments": fulfilment_objects(conn, row["id"]),
        "timeline": events.order_timeline(conn, row),
    }


def payment_objects(conn: sqlite3.Connection, order_row_id: int) -> list[dict[str, Any]]:
    """Money received for the order: the checkout's payment, bank transfers, payment links."""
    rows = conn.execute(
        "SELECT q.*, p.provider_payment_id FROM order_payments q "
        "LEFT JOIN payments p ON p.id = q.payment_id WHERE q.order_id = ? ORDER BY q.id",
        (order_row_id,),
    ).fetchall()
    return [
        {
            "payment_id": f"opay_{r['id']}",
            "method": r["method"],
            "amount_cents": r["amount_cents"],
            "currency": r["currency"],
            "reference": r["reference"],
            "provider_payment_id": r["provider_payment_id"],
            "paid_on": r["paid_on"],
            "forced": bool(r["forced"]),
            "note": r["note"],
            "recorded_at": r["created_at"],
            "recorded_by": r["actor"],
        }
        for r in rows
    ]


def _line_quantities(
    conn: sqlite3.Connection, table: str, owner: str, order_row_id: int
) -> dict[int, list[dict[str, int]]]:
    """Per refund or shipment (``owner``), the order lines and units it covers."""
    lines: dict[int, list[dict[str, int]]] = {}
    for line in conn.execute(
        f"SELECT {owner}, line_no, quantity FROM {table} WHERE order_id = ? ORDER BY id",
        (order_row_id,),
    ):
        lines.setdefault(line[owner], []).append(
            {"line_id": line["line_no"], "quantity": line["quantity"]}
        )
    return lines


def refund_objects(conn: sqlite3.Connection, order_row_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM refunds WHERE order_id = ? ORDER BY id", (order_row_id,)
    ).fetchall()
    lines = _line_quantities(conn, "refund_lines", "refund_id", order_row_id)
    return [
        {
            "refund_id": f"ref_{r['id']}",
            "kind": r["kind"],
            "provider": r["provider"],
            "provider_refund_id": r["provider_refund_id"],
            "status": r["status"],
            "amount_cents": r["amount_cents"],
            "currency": r["currency"],
            "reason": r["reason"],
            "lines": lines.get(r["id"], []),
            "restocked": bool(r["restocked"]),
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


def fulfilment_objects(conn: sqlite3.Connection, order_row_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM fulfilments WHERE order_id = ? ORDER BY id", (order_row_id,)
    ).fetchall()
    lines = _line_quantities(conn, "fulfilment_lines", "fulfilment_id", order_row_id)
    return [
        {
            "fulfilment_id": f"ful_{r['id']}",
            "carrier": r["carrier"],
            "tracking_number": r["tracking_number"],
            "tracking_url": r["tracking_url"],
            "lines": lines.get(r["id"], []),
            "created_at": r["created_at"],
            "created_by": r["actor"],
        }
        for r in rows
    ]


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


def overdue_cutoff(engine: Engine) -> str:
    """Orders made at or before this moment are overdue while money is still due."""
    from datetime import timedelta

    from checkout_cli.engine import settings
    from checkout_cli.engine.core import iso

    days = settings.read(engine.conn, "invoice_due_days")
    return iso(engine.clock() - timedelta(days=days))


def get_order(engine: Engine, body: requests.OrderRef) -> dict[str, Any]:
    with engine.read() as conn:
        return order_object(conn, load_order(conn, body.order_id))


def list_orders(engine: Engine, body: requests.ListOrders) -> dict[str, Any]:
    sql, params = f"SELECT * FROM orders WHERE {REAL_ORDER}", []
    if status := body.status:
        sql += " AND status = ?"
        params.append(status)
    if payment_status := body.payment_status:
        sql += " AND payment_status = ?"
        params.append(payment_status)
    if fulfilment_status := body.fulfilment_status:
        sql += " AND fulfilment_status = ?"
        params.append(fulfilment_status)
    if body.overdue:
        sql += f" AND {OVERDUE}"
        params.append(overdue_cutoff(engine))
    if email := body.email:
        sql += " AND json_extract(customer, '$.email') = ?"
        params.append(email)
    if reference := body.reference:
        sql += " AND external_reference = ?"
        params.append(reference)
    if payment := body.payment_reference:
        sql += " AND id IN (SELECT order_id FROM order_payments WHERE reference = ?)"
        params.append(payment)
    with engine.read() as conn:
        rows, paging = page(conn, sql, params, "id DESC", body, default_limit=100)
        return {"orders": [order_object(conn, r) for r in rows], **paging}
