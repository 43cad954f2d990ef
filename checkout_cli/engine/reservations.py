"""Stock reservations: held while a provider payment is pending, so a paid checkout cannot
fail on stock. Reserved units stay in ``products.stock`` (it changes only at completion);
they only lower what other checkouts may take."""

from __future__ import annotations

import sqlite3

from checkout_cli.engine.core import Engine
from checkout_cli.errors import ConflictError

HOLDING_STATES = ("payment_pending", "completable")


def reserved_by_others(conn: sqlite3.Connection, sku: str, checkout_id: int) -> int:
    return conn.execute(
        "SELECT COALESCE(SUM(quantity), 0) FROM stock_reservations "
        "WHERE sku = ? AND checkout_id != ?",
        (sku, checkout_id),
    ).fetchone()[0]


def reserve(engine: Engine, conn: sqlite3.Connection, checkout_id: int) -> None:
    """Reserve every tracked line of a checkout, or refuse if another checkout holds the stock."""
    if conn.execute(
        "SELECT 1 FROM stock_reservations WHERE checkout_id = ?", (checkout_id,)
    ).fetchone():
        return
    lines = conn.execute(
        "SELECT l.product_sku, SUM(l.quantity) AS quantity, p.stock, p.allow_backorder "
        "FROM checkout_lines l JOIN products p ON p.sku = l.product_sku "
        "WHERE l.checkout_id = ? GROUP BY l.product_sku, p.sku",
        (checkout_id,),
    ).fetchall()
    for line in lines:
        if line["stock"] is None:
            continue
        available = line["stock"] - reserved_by_others(conn, line["product_sku"], checkout_id)
        if not line["allow_backorder"] and available < line["quantity"]:
            raise ConflictError(
                "insufficient_stock",
                f"{line['product_sku']}: {max(available, 0)} available, {line['quantity']} needed",
                field="items",
                recovery=f"restock with `checkout products set-stock {line['product_sku']} N`",
            )
        conn.execute(
            "INSERT INTO stock_reservations (checkout_id, sku, quantity, created_at) "
            "VALUES (?, ?, ?, ?)",
            (checkout_id, line["product_sku"], line["quantity"], engine.now()),
        )


def release(conn: sqlite3.Connection, checkout_id: int) -> None:
    conn.execute("DELETE FROM stock_reservations WHERE checkout_id = ?", (checkout_id,))
