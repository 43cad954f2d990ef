"""Checkout records: loading a checkout and its current payment, the checkout object the API
answers with, and the state changes every module that moves a checkout shares (transition,
expiry, the open-state checks). The handlers in ``checkouts``, ``provider_payments``,
``refunds`` and ``line_meta`` build on these; this module imports none of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from checkout_cli.endpoints import OPEN_CHECKOUT_STATES
from checkout_cli.engine import events, reservations
from checkout_cli.engine.core import Engine, loads, parse_iso
from checkout_cli.engine.orders import line_objects, order_summary
from checkout_cli.errors import ConflictError, NotFoundError

OPEN_STATES = OPEN_CHECKOUT_STATES
EXPIRING_STATES = ("active", "payment_pending")


def load_checkout(conn: sqlite3.Connection, token: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM checkouts WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise NotFoundError(
            "checkout_not_found",
            f"no checkout with token {token!r}",
            field="checkout_token",
            recovery="find it with `checkout orders list` or start one with "
            "`checkout initiate-checkout CART`",
        )
    return row


def current_payment(conn: sqlite3.Connection, checkout_id: int) -> sqlite3.Row | None:
    """The checkout's own newest payment (a payment link made for its order is not one)."""
    return conn.execute(
        "SELECT * FROM payments WHERE checkout_id = ? AND status NOT IN ('creating', "
        "'create_failed') AND order_id IS NULL ORDER BY id DESC LIMIT 1",
        (checkout_id,),
    ).fetchone()


PAYMENT_FIELDS = (
    "provider",
    "provider_payment_id",
    "status",
    "redirect_url",
    "amount_cents",
    "reference",
)


def totals_object(row: sqlite3.Row) -> dict[str, int]:
    return {k: row[k] for k in ("subtotal_cents", "shipping_cents", "tax_cents", "total_cents")}


# The cart's token, the order and the current payment (as ``current_payment`` picks it) in one
# statement: the checkout object is answered after every write, and each statement is a round
# trip on PostgreSQL.
_AROUND_CHECKOUT = f"""SELECT ca.token AS cart_token,
    o.order_id, o.order_number, o.status AS order_status, o.payment_status,
    {", ".join(f"p.{c} AS pay_{c}" for c in PAYMENT_FIELDS)}
FROM carts ca
LEFT JOIN orders o ON o.checkout_id = :checkout
LEFT JOIN payments p ON p.id = (
    SELECT id FROM payments WHERE checkout_id = :checkout
    AND status NOT IN ('creating', 'create_failed') AND order_id IS NULL
    ORDER BY id DESC LIMIT 1)
WHERE ca.id = :cart"""


def checkout_object(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
    lines = conn.execute(
        "SELECT * FROM checkout_lines WHERE checkout_id = ? ORDER BY line_no", (co["id"],)
    ).fetchall()
    around = conn.execute(
        _AROUND_CHECKOUT, {"checkout": co["id"], "cart": co["cart_id"]}
    ).fetchone()
    order = None
    if around["order_id"] is not None:
        order = order_summary(
            {
                "order_id": around["order_id"],
                "order_number": around["order_number"],
                "status": around["order_status"],
                "payment_status": around["payment_status"],
            }
        )
    payment = None
    if around["pay_status"] is not None:
        payment = {c: around[f"pay_{c}"] for c in PAYMENT_FIELDS}
    return {
        "checkout_token": co["token"],
        "status": co["status"],
        "cart_token": around["cart_token"],
        "currency": co["currency"],
        "items": line_objects(lines),
        "customer": loads(co["customer"]),
        "shipping_address": loads(co["shipping_address"]),
        "billing_address": loads(co["billing_address"]),
        "totals": totals_object(co),
        "payment": payment,
        "order": order,
        "created_at": co["created_at"],
        "updated_at": co["updated_at"],
        "expires_at": co["expires_at"],
        "external_reference": co["external_reference"],
    }


def transition(
    engine: Engine,
    conn: sqlite3.Connection,
    co: sqlite3.Row,
    to_status: str,
    kind: str,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "UPDATE checkouts SET status = ?, updated_at = ? WHERE id = ?",
        (to_status, engine.now(), co["id"]),
    )
    events.record(
        engine, conn, co["id"], kind, from_status=co["status"], to_status=to_status, detail=detail
    )
    if to_status not in reservations.HOLDING_STATES:
        reservations.release(conn, co["id"])


def is_due(engine: Engine, co: sqlite3.Row) -> bool:
    return co["status"] in EXPIRING_STATES and parse_iso(co["expires_at"]) <= engine.clock()


def expire(engine: Engine, conn: sqlite3.Connection, co: sqlite3.Row) -> None:
    transition(engine, conn, co, "expired", "checkout_expired", {"expires_at": co["expires_at"]})


def with_checkout(
    engine: Engine, token: str, work: Callable[[sqlite3.Connection, sqlite3.Row], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``work`` in one write transaction, after expiring the checkout if it is due.

    An expiry is committed (it is a fact, not part of the refused request) and then reported.
    """
    with engine.write() as conn:
        co = load_checkout(conn, token)
        if not is_due(engine, co):
            return work(conn, co)
        expire(engine, conn, co)
    raise expired_error(co)


def expired_error(co: sqlite3.Row) -> ConflictError:
    return ConflictError(
        "checkout_expired",
        f"checkout {co['token']} expired at {co['expires_at']}",
        field="checkout_token",
        recovery="start a new checkout: `checkout initiate-checkout CART`",
    )


def refuse_unless_open(co: sqlite3.Row) -> None:
    status = co["status"]
    if status in OPEN_STATES:
        return
    if status == "cancelled":
        raise ConflictError(
            "checkout_cancelled",
            f"checkout {co['token']} is cancelled",
            field="checkout_token",
            recovery="start a new checkout from the cart: `checkout initiate-checkout CART`",
        )
    if status == "expired":
        raise ConflictError(
            "checkout_expired",
            f"checkout {co['token']} has expired",
            field="checkout_token",
            recovery="start a new checkout: `checkout initiate-checkout CART`",
        )
    raise ConflictError(
        "checkout_not_active", f"checkout {co['token']} is {status}", field="checkout_token"
    )


def require_customer(co: sqlite3.Row) -> None:
    if co["customer"] is None:
        raise ConflictError(
            "customer_missing",
            f"checkout {co['token']} has no customer yet",
            field="checkout_token",
            recovery=f"set one with `checkout set-customer {co['token']}`",
        )


def insert_payment(
    engine: Engine,
    conn: sqlite3.Connection,
    co: sqlite3.Row,
    *,
    provider: str,
    status: str,
    amount_cents: int,
    reference: str | None = None,
    idempotency_key: str | None = None,
    request: str | None = None,
) -> None:
    now = engine.now()
    conn.execute(
        "INSERT INTO payments (checkout_id, provider, status, amount_cents, currency, reference, "
        "idempotency_key, request, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            co["id"],
            provider,
            status,
            amount_cents,
            co["currency"],
            reference,
            idempotency_key,
            request,
            now,
            now,
        ),
    )


def made_payment_before(engine: Engine, conn: sqlite3.Connection, co: sqlite3.Row) -> bool:
    """Whether an earlier attempt of this same request (its worker died before answering)
    made the checkout's payment: the retry answers with it instead of making another."""
    return events.by_this_request(engine, conn, co["id"], "payment_created") is not None
