"""order-management/cancel-order: an order called off before anything shipped.

An open payment link of the order is closed at its provider first (no lock held); paid
meanwhile, it is recorded on the order and the cancel refused — the order is paid now. An
order holding money (anything paid and not refunded) is cancelled only with ``refund``: what
is refundable goes back first (``order_refunds``, two phases, resumable), then it is
cancelled. The cancel itself is one transaction: ``cancelled_at``/``cancel_reason``, the
stock of every line given back (unless ``no_restock``), the order's statuses recomputed and
the customer's "cancellation" email queued. A shipped order is refused (refund it instead); a
cancelled one answers ``already_cancelled``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import (
    emails,
    events,
    order_payments,
    order_refunds,
    order_state,
    order_stock,
    outbox,
    provider_payments,
    settings,
)
from checkout_cli.engine.core import Engine
from checkout_cli.engine.orders import load_order, order_object
from checkout_cli.errors import ConflictError, PaymentError
from checkout_cli.money import format_money
from checkout_cli.payments.base import OPEN, PAID, PENDING


def cancel_order(engine: Engine, body: requests.CancelOrder) -> dict[str, Any]:
    with engine.read() as conn:
        order = load_order(conn, body.order_id)
    if order["cancelled_at"] is not None:
        return _answer(engine, order["id"], True, [], [])
    _refuse_shipped(order)
    if not body.refund:  # refused before an open payment link is closed for nothing
        with engine.read() as conn:
            kept = order_state.refundable(conn, order)
        if kept > 0:
            raise _still_paid(order, kept)
    _close_payment_links(engine, order)
    ids: list[int] = []
    if body.refund:
        ask = {
            "amount_cents": None,
            "lines": None,
            "restock": False,
            "reason": body.reason or f"order {order['order_number']} cancelled",
            "cancel": True,
        }
        ids, resumed = order_refunds.start(engine, order["id"], ask)
        order_refunds.finish(engine, order, ids, resumed)
    with engine.write() as conn:
        order = conn.execute("SELECT * FROM orders WHERE id = ?", (order["id"],)).fetchone()
        if order["cancelled_at"] is not None:  # another operator's cancel came first
            return _answer(engine, order["id"], True, [], ids, conn)
        _refuse_shipped(order)
        kept = order_state.refundable(conn, order)
        if kept > 0:
            raise _still_paid(order, kept)
        restocked = [] if body.no_restock else _restock(engine, conn, order)
        conn.execute(
            "UPDATE orders SET cancelled_at = ?, cancel_reason = ? WHERE id = ?",
            (engine.now(), body.reason, order["id"]),
        )
        events.record(
            engine,
            conn,
            order["checkout_id"],
            "order_cancelled",
            detail={
                "order_number": order["order_number"],
                "reason": body.reason,
                "restocked": restocked,
                "refunds": [f"ref_{i}" for i in ids],
                **_email(conn, order),
            },
            order_id=order["id"],
        )
        after = order_state.refresh(engine, conn, order["id"])
        _queue_email(engine, conn, after, body.reason)
    outbox.deliver_for_order(engine, order["order_id"])
    return _answer(engine, order["id"], False, restocked, ids)


def _refuse_shipped(order: sqlite3.Row) -> None:
    if order["fulfilment_status"] == "unfulfilled":
        return
    number = order["order_number"]
    raise ConflictError(
        "order_shipped",
        f"order {number} is {order['fulfilment_status'].replace('_', ' ')}: what has shipped "
        "cannot be cancelled",
        field="order_id",
        recovery=f"refund it instead: `checkout orders refund {number} --line SKU=QTY` "
        "(add --restock for what comes back)",
    )


def _still_paid(order: sqlite3.Row, kept: int) -> PaymentError:
    number = order["order_number"]
    return PaymentError(
        "payment_already_paid",
        f"order {number} is paid ({format_money(kept, order['currency'])} not refunded): "
        "cancelling it would keep the customer's money",
        field="order_id",
        recovery=f"cancel it with a full refund: `checkout orders cancel {number} --refund`",
    )


def _close_payment_links(engine: Engine, order: sqlite3.Row) -> None:
    """Close each open Stripe/Mollie payment made for the order, so it can no longer be paid.

    Paid meanwhile: recorded as the order's payment, and the cancel refused. Still payable
    (the provider would not close it): refused, nothing changed."""
    links = engine.conn.execute(
        "SELECT * FROM payments WHERE order_id = ? ORDER BY id", (order["id"],)
    ).fetchall()
    for link in links:
        if not provider_payments.is_open_provider_payment(link):
            continue
        closed = provider_payments.close_at_provider(engine, link, "payment_closed")
        if closed.status == PAID:
            _record_paid_link(engine, order, link)
            amount = format_money(link["amount_cents"], link["currency"])
            raise PaymentError(
                "payment_already_paid",
                f"order {order['order_number']} was paid meanwhile: {link['provider']} payment "
                f"{link['provider_payment_id']} ({amount}) is recorded on it",
                field="order_id",
                recovery=f"cancel it with a refund: `checkout orders cancel "
                f"{order['order_number']} --refund`",
            )
        if closed.status in (OPEN, PENDING):
            raise ConflictError(
                "payment_in_progress",
                f"{link['provider']} would not close payment {link['provider_payment_id']} of "
                f"order {order['order_number']}, which the customer could still pay",
                field="order_id",
                recovery="try again once it has expired",
            )


def _record_paid_link(engine: Engine, order: sqlite3.Row, link: sqlite3.Row) -> None:
    received = order_payments.Received(
        method=link["provider"],
        amount_cents=link["amount_cents"],
        currency=link["currency"],
        payment_id=link["id"],
    )
    with engine.write() as conn:
        if order_payments.find(conn, received) is None:
            current = conn.execute("SELECT * FROM orders WHERE id = ?", (order["id"],)).fetchone()
            order_payments.add_payment(engine, conn, current, received)
    outbox.deliver_for_order(engine, order["order_id"])


def _restock(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row
) -> list[dict[str, int | str]]:
    """Every line's units not shipped go back (never more than the order took)."""
    lines = conn.execute(
        "SELECT l.product_sku, l.quantity - COALESCE((SELECT SUM(f.quantity) FROM "
        "fulfilment_lines f WHERE f.order_id = l.order_id AND f.line_no = l.line_no), 0) "
        "FROM order_lines l WHERE l.order_id = ? ORDER BY l.line_no",
        (order["id"],),
    ).fetchall()
    return order_stock.put_back(engine, conn, order, [(r[0], r[1]) for r in lines if r[1] > 0])


def _email(conn: sqlite3.Connection, order: sqlite3.Row) -> dict[str, str]:
    kind = outbox.order_email_kind(conn, "cancellation", order["order_id"])
    return {"email": kind} if kind else {}


def _queue_email(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row, reason: str | None
) -> None:
    shown = order_object(conn, order)
    said = [f"Your order {order['order_number']} has been cancelled."]
    if shown["amount_refunded_cents"] or any(r["status"] == "pending" for r in shown["refunds"]):
        said.append("What you paid is refunded to you; you will hear from us about it.")
    if reason:
        said.append(f"Reason: {reason}")
    message = emails.order_message(settings.read(conn, "shop_name"), shown, "cancelled", said)
    outbox.queue_order_email(engine, conn, order["id"], "cancellation", order["order_id"], message)


def _answer(
    engine: Engine,
    order_row_id: int,
    already: bool,
    restocked: list[dict[str, int | str]],
    ids: list[int],
    conn: sqlite3.Connection | None = None,
) -> dict[str, Any]:
    def build(c: sqlite3.Connection) -> dict[str, Any]:
        row = c.execute("SELECT * FROM orders WHERE id = ?", (order_row_id,)).fetchone()
        shown = order_object(c, row)
        wanted = {f"ref_{i}" for i in ids}
        return {
            "order": shown,
            "already_cancelled": already,
            "restocked": restocked,
            "refunds": [r for r in shown["refunds"] if r["refund_id"] in wanted],
        }

    if conn is not None:
        return build(conn)
    with engine.read() as c:
        return build(c)
