"""An order's stock given back: ledger movements (reason ``restock``), never more than taken.

What an order took is its ``order`` movements (ref = the order id); what it gave back, its
``restock`` movements. A refund's lines (``--restock``) and a cancellation both give back
through ``put_back``, inside the caller's write transaction, so stock = Σ ledger holds and no
SKU of an order is ever given back twice (doctor, invariant 3).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from checkout_cli.engine.catalog import move_stock
from checkout_cli.engine.core import Engine

RESTOCK = "restock"


def restockable(conn: sqlite3.Connection, order: sqlite3.Row, sku: str) -> int:
    """Units of ``sku`` the order took from stock and has not given back yet."""
    moved = conn.execute(
        "SELECT COALESCE(SUM(CASE WHEN reason = 'order' THEN -delta ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN reason = ? THEN delta ELSE 0 END), 0) FROM stock_movements "
        "WHERE ref = ? AND sku = ?",
        (RESTOCK, order["order_id"], sku),
    ).fetchone()
    return max(moved[0] - moved[1], 0)


def put_back(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row, wanted: Iterable[tuple[str, int]]
) -> list[dict[str, int | str]]:
    """Give back up to ``wanted`` (sku, units) of what the order took; returns what was."""
    totals: dict[str, int] = {}
    for sku, units in wanted:
        totals[sku] = totals.get(sku, 0) + units
    done: list[dict[str, int | str]] = []
    for sku, units in totals.items():
        units = min(units, restockable(conn, order, sku))
        if units <= 0:
            continue
        updated = conn.execute(
            "UPDATE products SET stock = stock + ? WHERE sku = ? AND stock IS NOT NULL",
            (units, sku),
        ).rowcount
        if updated:  # a product no longer tracked takes nothing back
            move_stock(engine, conn, sku, units, RESTOCK, order["order_id"])
            done.append({"product_sku": sku, "quantity": units})
    return done
