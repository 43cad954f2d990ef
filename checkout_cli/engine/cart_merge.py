"""shopping-cart: merge-cart and link-visitor, as the hosted platform names them.

A merge adds the source cart's lines into the target (same SKU: quantities add, bounded as
add-item bounds them) and leaves the source ``abandoned`` with ``merged_into`` naming the
target, in one write. A visitor has at most one active linked cart: linking another one
unlinks the first.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.endpoints import OPEN_CHECKOUT_STATES
from checkout_cli.engine.carts import (
    _active_cart,
    _bounded,
    _check_quantity,
    _touch,
    cart_object,
    load_cart,
)
from checkout_cli.engine.core import Engine
from checkout_cli.errors import ConflictError, ValidationError


def _refuse_open_checkout(conn: sqlite3.Connection, cart: sqlite3.Row) -> None:
    """A cart being checked out keeps its lines: its checkout is a snapshot of them."""
    marks = ", ".join("?" * len(OPEN_CHECKOUT_STATES))
    co = conn.execute(
        f"SELECT token FROM checkouts WHERE cart_id = ? AND status IN ({marks})",
        (cart["id"], *OPEN_CHECKOUT_STATES),
    ).fetchone()
    if co is not None:
        raise ConflictError(
            "cart_has_open_checkout",
            f"cart {cart['token']} has the open checkout {co['token']}",
            field="source_cart_token",
            recovery=f"finish or cancel it first: `checkout cancel-checkout {co['token']}`",
        )


def merge_cart(engine: Engine, body: requests.MergeCart) -> dict[str, Any]:
    if body.source_cart_token == body.target_cart_token:
        raise ValidationError(
            "same_cart",
            "source_cart_token: a cart cannot be merged into itself",
            field="source_cart_token",
        )
    with engine.write() as conn:
        source = load_cart(conn, body.source_cart_token)
        target = load_cart(conn, body.target_cart_token)
        if source["merged_into"] == target["id"]:
            return {**cart_object(conn, target), "already_merged": True}
        if source["status"] != "active":
            raise ConflictError(
                "cart_not_active",
                f"cart {source['token']} is {source['status']}",
                field="source_cart_token",
            )
        target = _active_cart(conn, body.target_cart_token)
        if source["currency"] != target["currency"]:
            raise ConflictError(
                "currency_mismatch",
                f"cart {source['token']} is in {source['currency']}, "
                f"cart {target['token']} in {target['currency']}",
                field="source_cart_token",
            )
        if source["test_run"] != target["test_run"]:
            raise ConflictError(
                "smoke_cart",
                "a smoke run's cart merges only with a cart of the same run",
                field="source_cart_token",
            )
        _refuse_open_checkout(conn, source)
        lines = conn.execute(
            "SELECT product_sku, quantity FROM cart_items WHERE cart_id = ? ORDER BY id",
            (source["id"],),
        ).fetchall()
        now = engine.now()
        for line in lines:
            row = conn.execute(
                "SELECT quantity FROM cart_items WHERE cart_id = ? AND product_sku = ?",
                (target["id"], line["product_sku"]),
            ).fetchone()
            quantity = line["quantity"] + (row["quantity"] if row else 0)
            _check_quantity(quantity)
            conn.execute(
                "INSERT INTO cart_items (cart_id, product_sku, quantity, added_at) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT(cart_id, product_sku) DO UPDATE SET quantity = excluded.quantity",
                (target["id"], line["product_sku"], quantity, now),
            )
        conn.execute(
            "UPDATE carts SET status = 'abandoned', merged_into = ?, updated_at = ? WHERE id = ?",
            (target["id"], now, source["id"]),
        )
        _touch(engine, conn, target["id"])
        return {**_bounded(cart_object(conn, target)), "already_merged": False}


def link_visitor(engine: Engine, body: requests.LinkVisitor) -> dict[str, Any]:
    with engine.write() as conn:
        cart = _active_cart(conn, body.cart_token)
        if cart["visitor_id"] == body.visitor_id:
            return cart_object(conn, cart)  # linked already: nothing changes
        now = engine.now()
        # At most one active cart a visitor: the one linked before is unlinked.
        conn.execute(
            "UPDATE carts SET visitor_id = NULL, updated_at = ? "
            "WHERE visitor_id = ? AND status = 'active' AND id != ?",
            (now, body.visitor_id, cart["id"]),
        )
        conn.execute(
            "UPDATE carts SET visitor_id = ?, updated_at = ? WHERE id = ?",
            (body.visitor_id, now, cart["id"]),
        )
        return cart_object(conn, load_cart(conn, cart["token"]))
