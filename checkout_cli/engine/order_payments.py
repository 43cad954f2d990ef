"""Money received for an order: one row per payment, each counted once.

``add_payment`` is the one way a payment joins an order — the checkout's own payment at
completion is inserted by ``orders.create_order``; after that a bank transfer
(``record-payment``, ``batch payments``) or a paid payment link comes through here. It runs
inside the caller's write transaction: the row, the order's new amounts and statuses (with
their events), and the customer's email, all or nothing. A ``reference`` (a bank transaction
id) or a ``payment_id`` (a provider payment) is UNIQUE, so the same money is never counted
twice, whoever records it and however often.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from checkout_cli.engine import events, order_state, outbox, settings
from checkout_cli.engine.core import Engine


@dataclass(frozen=True)
class Received:
    method: str  # bank_transfer, cash, … or the provider of a paid payment link
    amount_cents: int
    currency: str
    reference: str | None = None
    payment_id: int | None = None  # the provider payment (payments.id) it was
    paid_on: str | None = None
    forced: bool = False
    note: str | None = None


def find(conn: sqlite3.Connection, received: Received) -> sqlite3.Row | None:
    """The row this money was already recorded as, if it was."""
    if received.reference is not None:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM order_payments WHERE reference = ?", (received.reference,)
        ).fetchone()
        if row is not None:
            return row
    if received.payment_id is not None:
        return conn.execute(
            "SELECT * FROM order_payments WHERE payment_id = ?", (received.payment_id,)
        ).fetchone()
    return None


def add_payment(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row, received: Received
) -> sqlite3.Row:
    """Record ``received`` on ``order`` (the caller has checked it may be); returns the row."""
    cur = conn.execute(
        "INSERT INTO order_payments (order_id, payment_id, method, amount_cents, currency, "
        "reference, paid_on, forced, note, created_at, actor) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order["id"],
            received.payment_id,
            received.method,
            received.amount_cents,
            received.currency,
            received.reference,
            received.paid_on,
            int(received.forced),
            received.note,
            engine.now(),
            engine.actor,
        ),
    )
    events.record(
        engine,
        conn,
        order["checkout_id"],
        "order_payment_recorded",
        detail={
            "order_number": order["order_number"],
            "method": received.method,
            "amount_cents": received.amount_cents,
            "reference": received.reference,
            "forced": received.forced,
            **_email(conn, "payment_received", str(cur.lastrowid)),
        },
        order_id=order["id"],
    )
    after = order_state.refresh(engine, conn, order["id"])
    _queue_email(engine, conn, after, received, cur.lastrowid or 0)
    row: sqlite3.Row = conn.execute(
        "SELECT * FROM order_payments WHERE id = ?", (cur.lastrowid,)
    ).fetchone()
    return row


def _email(conn: sqlite3.Connection, event: str, key: str) -> dict[str, str]:
    kind = outbox.order_email_kind(conn, event, key)
    return {"email": kind} if kind else {}


def _queue_email(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row, received: Received, row_id: int
) -> None:
    from checkout_cli.engine import emails
    from checkout_cli.engine.orders import order_object
    from checkout_cli.money import format_money

    shown = order_object(conn, order)
    amount = format_money(received.amount_cents, received.currency)
    balance = shown["balance_due_cents"]
    said = [f"We received your payment of {amount} for order {order['order_number']}."]
    said.append(
        "Your order is now paid in full. Thank you!"
        if balance == 0
        else f"{format_money(balance, order['currency'])} is still to be paid."
    )
    message = emails.order_message(
        settings.read(conn, "shop_name"), shown, "payment received", said
    )
    outbox.queue_order_email(engine, conn, order["id"], "payment_received", str(row_id), message)
