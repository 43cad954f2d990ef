"""shopping-cart: carts and their lines. Prices are read live from the catalog."""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import settings
from checkout_cli.engine.catalog import load_product, product_not_found
from checkout_cli.engine.core import Engine, new_token
from checkout_cli.engine.pricing import check_amount
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError

MAX_LINE_QUANTITY = 9999


def load_cart(conn: sqlite3.Connection, token: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM carts WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise NotFoundError(
            "cart_not_found",
            f"no cart with token {token!r}",
            field="cart_token",
            recovery="create one with `checkout cart add SKU`",
        )
    return row


def visitor_cart(conn: sqlite3.Connection, visitor_id: str) -> sqlite3.Row:
    """The visitor's active linked cart."""
    row = conn.execute(
        "SELECT * FROM carts WHERE visitor_id = ? AND status = 'active' ORDER BY id DESC",
        (visitor_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(
            "cart_not_found",
            f"visitor {visitor_id!r} has no active cart",
            field="visitor_id",
            recovery="link one with `checkout cart link-visitor CART VISITOR_ID`",
        )
    return row


def cart_lines(conn: sqlite3.Connection, cart_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT ci.product_sku, ci.quantity, p.name, p.price_cents, p.currency, p.status, "
        "p.stock, p.allow_backorder FROM cart_items ci JOIN products p ON p.sku = ci.product_sku "
        "WHERE ci.cart_id = ? ORDER BY ci.id",
        (cart_id,),
    ).fetchall()


def cart_object(conn: sqlite3.Connection, cart: sqlite3.Row) -> dict[str, Any]:
    items = [
        {
            "product_sku": line["product_sku"],
            "name": line["name"],
            "quantity": line["quantity"],
            "unit_price_cents": line["price_cents"],
            "line_total_cents": line["price_cents"] * line["quantity"],
        }
        for line in cart_lines(conn, cart["id"])
    ]
    return {
        "cart_token": cart["token"],
        "status": cart["status"],
        "currency": cart["currency"],
        "items": items,
        "subtotal_cents": sum(i["line_total_cents"] for i in items),
        "visitor_id": cart["visitor_id"],
    }


def _active_cart(conn: sqlite3.Connection, token: str) -> sqlite3.Row:
    cart = load_cart(conn, token)
    if cart["status"] != "active":
        raise ConflictError(
            "cart_not_active",
            f"cart {token} is {cart['status']}",
            field="cart_token",
            recovery="start a new cart with `checkout cart add`",
        )
    return cart


def _why_unsellable(sku: str, product: sqlite3.Row, currency: str) -> tuple[str, str] | None:
    """(code, message) if ``product`` (a row with its status and currency) can't be sold."""
    if product["status"] != "active":
        return "product_not_active", f"product {sku} is {product['status']}"
    if product["currency"] != currency:
        return (
            "currency_mismatch",
            f"product {sku} is priced in {product['currency']}, the cart in {currency}",
        )
    return None


def _sellable(
    conn: sqlite3.Connection, sku: str, currency: str, test_run: str | None = None
) -> sqlite3.Row:
    product = load_product(conn, sku)
    if product["test_run"] != test_run:
        # A smoke run's cart holds its own product only, and its product is in no other
        # cart: no real sale can be hidden in a run (engine/smoke_runs.py).
        if test_run is None:
            raise product_not_found(sku)  # as if it did not exist
        raise ConflictError(
            "smoke_cart",
            f"this cart belongs to smoke run {test_run}: it holds that run's product only",
            field="product_sku",
        )
    if why := _why_unsellable(sku, product, currency):
        raise ConflictError(*why, field="product_sku")
    return product


def unsellable_warnings(cart: sqlite3.Row, lines: list[sqlite3.Row]) -> list[dict[str, Any]]:
    """For a checkout reused as it is: the products in it that could not be sold today."""
    warnings = []
    for line in lines:
        if why := _why_unsellable(line["product_sku"], line, cart["currency"]):
            code, message = why
            warnings.append({"code": code, "product_sku": line["product_sku"], "message": message})
    return warnings


def require_sellable(cart: sqlite3.Row, lines: list[sqlite3.Row]) -> None:
    """Refuse a cart holding a product archived, or repriced in another currency, since."""
    for line in lines:
        if why := _why_unsellable(line["product_sku"], line, cart["currency"]):
            raise ConflictError(
                *why,
                field="cart_token",
                recovery="remove it from the cart: "
                f"`checkout cart remove {cart['token']} {line['product_sku']}`",
            )


def _touch(engine: Engine, conn: sqlite3.Connection, cart_id: int) -> None:
    conn.execute("UPDATE carts SET updated_at = ? WHERE id = ?", (engine.now(), cart_id))


def _check_quantity(quantity: int) -> None:
    if quantity > MAX_LINE_QUANTITY:
        raise ValidationError(
            "invalid_quantity",
            f"quantity: {quantity} is more than {MAX_LINE_QUANTITY} on one line",
            field="quantity",
        )


def add_item(engine: Engine, body: requests.AddItem) -> dict[str, Any]:
    with engine.write() as conn:
        if token := body.cart_token:
            cart = _active_cart(conn, token)
        else:
            currency = settings.read(conn, "currency")
            _sellable(conn, body.product_sku, currency)  # nothing is created for a bad SKU
            now = engine.now()
            cur = conn.execute(
                "INSERT INTO carts (token, status, currency, created_at, updated_at) "
                "VALUES (?, 'active', ?, ?, ?)",
                (new_token("cart"), currency, now, now),
            )
            cart = conn.execute("SELECT * FROM carts WHERE id = ?", (cur.lastrowid,)).fetchone()
        if body.cart_token:  # a new cart's currency was checked above, and it is in no run
            _sellable(conn, body.product_sku, cart["currency"], cart["test_run"])
        row = conn.execute(
            "SELECT quantity FROM cart_items WHERE cart_id = ? AND product_sku = ?",
            (cart["id"], body.product_sku),
        ).fetchone()
        quantity = body.quantity + (row["quantity"] if row else 0)
        _check_quantity(quantity)
        conn.execute(
            "INSERT INTO cart_items (cart_id, product_sku, quantity, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(cart_id, product_sku) DO UPDATE SET quantity = excluded.quantity",
            (cart["id"], body.product_sku, quantity, engine.now()),
        )
        _touch(engine, conn, cart["id"])
        return _bounded(cart_object(conn, cart))


def _bounded(cart: dict[str, Any]) -> dict[str, Any]:
    """The cart, if its subtotal keeps to the amount bound; else the write is undone."""
    check_amount(cart["subtotal_cents"], "the cart's subtotal")
    return cart


def update_item(engine: Engine, body: requests.UpdateItem) -> dict[str, Any]:
    with engine.write() as conn:
        cart = _active_cart(conn, body.cart_token)
        sku, quantity = body.product_sku, body.quantity
        _require_line(conn, cart, sku)
        if quantity == 0:
            conn.execute(
                "DELETE FROM cart_items WHERE cart_id = ? AND product_sku = ?", (cart["id"], sku)
            )
        else:
            conn.execute(
                "UPDATE cart_items SET quantity = ? WHERE cart_id = ? AND product_sku = ?",
                (quantity, cart["id"], sku),
            )
        _touch(engine, conn, cart["id"])
        return _bounded(cart_object(conn, cart))


def _require_line(conn: sqlite3.Connection, cart: sqlite3.Row, sku: str) -> None:
    if not conn.execute(
        "SELECT 1 FROM cart_items WHERE cart_id = ? AND product_sku = ?", (cart["id"], sku)
    ).fetchone():
        raise NotFoundError(
            "cart_item_not_found", f"{sku} is not in cart {cart['token']}", field="product_sku"
        )


def remove_item(engine: Engine, body: requests.CartLine) -> dict[str, Any]:
    with engine.write() as conn:
        cart = _active_cart(conn, body.cart_token)
        _require_line(conn, cart, body.product_sku)
        conn.execute(
            "DELETE FROM cart_items WHERE cart_id = ? AND product_sku = ?",
            (cart["id"], body.product_sku),
        )
        _touch(engine, conn, cart["id"])
        return cart_object(conn, cart)


def get_cart(engine: Engine, body: requests.GetCart) -> dict[str, Any]:
    if body.given("cart_token") == body.given("visitor_id"):
        raise ValidationError(
            "missing_field" if body.cart_token is None else "invalid_value",
            "give cart_token or visitor_id (one of the two)",
            field="cart_token",
        )
    with engine.read() as conn:
        if body.cart_token is None:
            assert body.visitor_id is not None
            return cart_object(conn, visitor_cart(conn, body.visitor_id))
        return cart_object(conn, load_cart(conn, body.cart_token))


def clear_cart(engine: Engine, body: requests.CartRef) -> dict[str, Any]:
    with engine.write() as conn:
        cart = _active_cart(conn, body.cart_token)
        conn.execute("DELETE FROM cart_items WHERE cart_id = ?", (cart["id"],))
        _touch(engine, conn, cart["id"])
        return cart_object(conn, cart)
