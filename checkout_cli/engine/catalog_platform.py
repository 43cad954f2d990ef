"""product-catalog by the hosted platform's endpoint names: create-, update-, delete-,
search- and bulk-upsert-products (upsert-product and set-stock stay in catalog.py)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from checkout_cli import requests
from checkout_cli.engine.catalog import _upsert, load_product, product_object
from checkout_cli.engine.core import Engine
from checkout_cli.engine.paging import page
from checkout_cli.errors import CheckoutError, ConflictError, ValidationError
from checkout_cli.schema import validate

# What refers to a product by SKU: while any row does, delete-product archives it instead.
REFERRERS = (
    ("order_lines", "product_sku"),
    ("checkout_lines", "product_sku"),
    ("cart_items", "product_sku"),
    ("stock_reservations", "sku"),
)


def create_product(engine: Engine, body: requests.CreateProduct) -> dict[str, Any]:
    with engine.write() as conn:
        if _exists(conn, body.sku):
            raise ConflictError(
                "product_exists",
                f"a product with SKU {body.sku!r} exists already",
                field="sku",
                recovery=f"change it with `checkout products update {body.sku} …`",
            )
        return product_object(_upsert(engine, conn, body))


def update_product(engine: Engine, body: requests.UpdateProduct) -> dict[str, Any]:
    with engine.write() as conn:
        row = load_product(conn, body.sku, field="sku")
        given = body.model_dump(exclude_none=True)
        # _upsert keeps what is left out, except the name and price it always takes.
        full = validate(
            requests.UpsertProduct,
            {"name": row["name"], "price_cents": row["price_cents"], **given},
        )
        return product_object(_upsert(engine, conn, full))


def delete_product(engine: Engine, body: requests.ProductRef) -> dict[str, Any]:
    with engine.write() as conn:
        row = load_product(conn, body.sku, field="sku")
        if row["status"] == "archived":
            return {"sku": body.sku, "action": "archived"}
        if _referred_to(conn, body.sku):
            conn.execute(
                "UPDATE products SET status = 'archived', updated_at = ? WHERE sku = ?",
                (engine.now(), body.sku),
            )
            return {"sku": body.sku, "action": "archived"}
        conn.execute("DELETE FROM stock_movements WHERE sku = ?", (body.sku,))
        conn.execute("DELETE FROM products WHERE sku = ?", (body.sku,))
        return {"sku": body.sku, "action": "deleted"}


def search_products(engine: Engine, body: requests.SearchProducts) -> dict[str, Any]:
    words = body.query.split()
    if not words:
        raise ValidationError(
            "missing_field",
            "query has no words to search for",
            field="query",
            recovery="e.g. `checkout products search 'daily lens'`",
        )
    sql = "SELECT * FROM products WHERE test_run IS NULL"
    params: list[Any] = []
    if not body.include_archived:
        sql += " AND status = 'active'"
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql += " AND (sku LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')"
        params += [pattern, pattern]
    with engine.read() as conn:
        rows, paging = page(conn, sql, params, "sku", body, default_limit=1000)
    return {"products": [product_object(r) for r in rows], **paging}


def bulk_upsert_products(engine: Engine, body: requests.BulkUpsertProducts) -> dict[str, Any]:
    limit = requests.BULK_UPSERT_LIMIT
    if len(body.products) > limit:
        raise ValidationError(
            "too_many_items",
            f"{len(body.products)} products in one call; at most {limit}",
            field="products",
            recovery=f"send them in calls of at most {limit}",
        )
    items: list[dict[str, Any]] = []
    with engine.write() as conn:
        for index, raw in enumerate(body.products):
            given = raw.get("sku") if isinstance(raw, dict) else None
            sku = given if isinstance(given, str) else None
            conn.execute("SAVEPOINT bulk_item")
            try:
                product = validate(requests.UpsertProduct, raw)
                status = "updated" if _exists(conn, product.sku) else "created"
                _upsert(engine, conn, product)
            except CheckoutError as exc:
                conn.execute("ROLLBACK TO bulk_item")
                conn.execute("RELEASE bulk_item")
                items.append({"index": index, "sku": sku, "status": "failed", "error": _error(exc)})
                continue
            except BaseException:
                conn.execute("ROLLBACK TO bulk_item")
                conn.execute("RELEASE bulk_item")
                raise
            conn.execute("RELEASE bulk_item")
            items.append({"index": index, "sku": product.sku, "status": status})
    by_action = Counter({"created": 0, "updated": 0, "failed": 0})
    by_action.update(item["status"] for item in items)
    by_error_type = Counter(item["error"]["type"] for item in items if "error" in item)
    return {
        "items": items,
        "summary": {
            "total": len(items),
            "by_action": dict(by_action),
            "by_error_type": dict(by_error_type),
        },
    }


def _error(exc: CheckoutError) -> dict[str, Any]:
    error: dict[str, Any] = {"type": exc.type, "code": exc.code, "message": exc.message}
    if exc.field is not None:
        error["field"] = exc.field
    return error


def _exists(conn: sqlite3.Connection, sku: str) -> bool:
    return conn.execute("SELECT 1 FROM products WHERE sku = ?", (sku,)).fetchone() is not None


def _referred_to(conn: sqlite3.Connection, sku: str) -> bool:
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (sku,)).fetchone()
        for table, column in REFERRERS
    )
