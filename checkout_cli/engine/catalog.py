"""product-catalog: products, stock and the stock ledger."""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import meta_definitions, settings
from checkout_cli.engine.core import Engine, dumps, loads
from checkout_cli.engine.paging import page
from checkout_cli.errors import NotFoundError, ValidationError


def product_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "sku": row["sku"],
        "name": row["name"],
        "price_cents": row["price_cents"],
        "currency": row["currency"],
        "stock": row["stock"],
        "allow_backorder": bool(row["allow_backorder"]),
        "status": row["status"],
        "meta_defs": loads(row["meta_defs"]) or [],
        "config": loads(row["config"]) or {},
    }


def load_product(conn: sqlite3.Connection, sku: str, field: str = "product_sku") -> sqlite3.Row:
    row = conn.execute("SELECT * FROM products WHERE sku = ?", (sku,)).fetchone()
    if row is None:
        raise product_not_found(sku, field)
    return row


def product_not_found(sku: str, field: str = "product_sku") -> NotFoundError:
    return NotFoundError(
        "product_not_found",
        f"no product with SKU {sku!r}",
        field=field,
        recovery="list products with `checkout products list`",
    )


def move_stock(
    engine: Engine, conn: sqlite3.Connection, sku: str, delta: int, reason: str, ref: str | None
) -> None:
    """Record a stock change in the ledger (the stock column itself is updated by the caller)."""
    if delta:
        conn.execute(
            "INSERT INTO stock_movements (sku, delta, reason, ref, at) VALUES (?, ?, ?, ?, ?)",
            (sku, delta, reason, ref, engine.now()),
        )


def list_products(engine: Engine, body: requests.ListProducts) -> dict[str, Any]:
    sql = "SELECT * FROM products WHERE test_run IS NULL"  # a smoke run's is no one's to pick
    params: list[Any] = []
    if not body.include_archived:
        sql += " AND status = 'active'"
    if query := body.query:
        sql += " AND (sku LIKE ? OR name LIKE ?)"
        params += [f"%{query}%", f"%{query}%"]
    with engine.read() as conn:
        rows, paging = page(conn, sql, params, "sku", body, default_limit=1000)
    return {"products": [product_object(r) for r in rows], **paging}


def get_product(engine: Engine, body: requests.ProductRef) -> dict[str, Any]:
    return product_object(load_product(engine.conn, body.sku, field="sku"))


def upsert_product(engine: Engine, body: requests.UpsertProduct) -> dict[str, Any]:
    with engine.write() as conn:
        return product_object(_upsert(engine, conn, body))


def _upsert(engine: Engine, conn: sqlite3.Connection, body: requests.UpsertProduct) -> sqlite3.Row:
    sku = body.sku
    meta_defs = (
        None
        if body.meta_defs is None
        else [ref.model_dump(exclude_none=True) for ref in body.meta_defs]
    )
    meta_definitions.require_definitions(conn, meta_defs or [])
    existing = conn.execute("SELECT * FROM products WHERE sku = ?", (sku,)).fetchone()
    # An update keeps the product's currency unless one is given, like its other fields.
    currency = body.currency or (
        existing["currency"] if existing is not None else settings.read(conn, "currency")
    )
    now = engine.now()
    if existing is None:
        stock = body.stock
        conn.execute(
            "INSERT INTO products (sku, name, price_cents, currency, stock, allow_backorder, "
            "status, meta_defs, config, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sku,
                body.name,
                body.price_cents,
                currency,
                stock,
                int(bool(body.allow_backorder)),
                body.status or "active",
                dumps(meta_defs or []),
                dumps(body.config or {}),
                now,
                now,
            ),
        )
        if stock is not None:
            move_stock(engine, conn, sku, stock, "initial", None)
    else:
        conn.execute(
            "UPDATE products SET name = ?, price_cents = ?, currency = ?, allow_backorder = ?, "
            "status = ?, meta_defs = ?, config = ?, updated_at = ? WHERE sku = ?",
            (
                body.name,
                body.price_cents,
                currency,
                int(
                    existing["allow_backorder"]
                    if body.allow_backorder is None
                    else body.allow_backorder
                ),
                body.status or existing["status"],
                dumps(loads(existing["meta_defs"]) if meta_defs is None else meta_defs),
                dumps(loads(existing["config"]) if body.config is None else body.config),
                now,
                sku,
            ),
        )
        if body.stock is not None:
            _set_stock(engine, conn, existing, body.stock)
    return load_product(conn, sku)


def _set_stock(
    engine: Engine, conn: sqlite3.Connection, row: sqlite3.Row, stock: int | None
) -> None:
    old = row["stock"]
    conn.execute(
        "UPDATE products SET stock = ?, updated_at = ? WHERE sku = ?",
        (stock, engine.now(), row["sku"]),
    )
    if stock is None:
        # No longer tracked: the ledger restarts when tracking does.
        conn.execute("DELETE FROM stock_movements WHERE sku = ?", (row["sku"],))
    elif old is None:
        conn.execute("DELETE FROM stock_movements WHERE sku = ?", (row["sku"],))
        move_stock(engine, conn, row["sku"], stock, "initial", None)
    else:
        move_stock(engine, conn, row["sku"], stock - old, "adjustment", None)


def set_stock(engine: Engine, body: requests.SetStock) -> dict[str, Any]:
    if (body.stock is not None) == bool(body.untracked):
        raise ValidationError(
            "missing_field",
            "give either stock or untracked",
            field="stock",
            recovery="e.g. `checkout products set-stock SKU 25` or `--untracked`",
        )
    with engine.write() as conn:
        row = load_product(conn, body.sku, field="sku")
        _set_stock(engine, conn, row, body.stock)
        return product_object(load_product(conn, body.sku))
