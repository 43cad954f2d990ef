"""record-payment: money received for an order outside a payment provider (a bank transfer).

One write transaction: the reference is looked up first (the same money again answers the
payment it was recorded as), then the order is checked (not cancelled, its currency, the
balance due), then ``order_payments.add_payment`` records it with its event, the order's new
amounts and statuses and the customer's email. The UNIQUE reference is the backstop should
two stores' connections ever race past the look-up; the email is delivered after the commit.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import replace
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import order_payments, order_state
from checkout_cli.engine.core import Engine
from checkout_cli.engine.order_payments import Received
from checkout_cli.engine.orders import REAL_ORDER, load_order, order_object, payment_objects
from checkout_cli.errors import ConflictError, ValidationError
from checkout_cli.money import format_money


def record_payment(engine: Engine, body: requests.RecordPayment) -> dict[str, Any]:
    from checkout_cli.engine import outbox  # email rendering and transports: only when used

    paid_on = _paid_on(engine, body.paid_on)
    try:
        with engine.write() as conn:
            result = _record(engine, conn, body, paid_on)
    except sqlite3.IntegrityError:
        # Another connection recorded this reference between our look-up and our insert
        # (the look-up runs under the write lock, so only the UNIQUE index can see this).
        with engine.write() as conn:
            result = _record(engine, conn, body, paid_on)
    if not result["already_recorded"]:
        outbox.deliver_for_order(engine, result["order"]["order_id"])
    return result


def _paid_on(engine: Engine, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            "invalid_date", f"paid_on {text!r} is not a date", field="paid_on"
        ) from None
    # The latest day it is anywhere (UTC+14): a bank's "today" east of here is no future day.
    if day > (engine.clock() + dt.timedelta(hours=14)).date():
        raise ValidationError(
            "invalid_date",
            f"paid_on {text} is in the future",
            field="paid_on",
            recovery="give the day the money arrived (YYYY-MM-DD), today or before",
        )
    return day.isoformat()


def _record(
    engine: Engine, conn: sqlite3.Connection, body: requests.RecordPayment, paid_on: str | None
) -> dict[str, Any]:
    order = load_order(conn, body.order_id)
    currency = body.currency or order["currency"]
    received = Received(
        method=body.method,
        amount_cents=body.amount_cents,
        currency=currency,
        reference=body.reference,
        paid_on=paid_on,
        note=body.note,
    )
    existing = order_payments.find(conn, received)
    if existing is not None:
        return _already(conn, order, existing, received)
    _refuse(conn, order, received, bool(body.force))
    balance = order_state.balance_due(order)
    forced = received.amount_cents > balance
    row = order_payments.add_payment(engine, conn, order, replace(received, forced=forced))
    after = conn.execute("SELECT * FROM orders WHERE id = ?", (order["id"],)).fetchone()
    return {
        "payment": _payment(conn, row),
        "order": order_object(conn, after),
        "already_recorded": False,
    }


def _already(
    conn: sqlite3.Connection, order: sqlite3.Row, existing: sqlite3.Row, received: Received
) -> dict[str, Any]:
    """The same reference again: the same money (answer it) or a different one (a conflict)."""
    if existing["order_id"] != order["id"]:
        other = conn.execute(
            "SELECT order_number FROM orders WHERE id = ?", (existing["order_id"],)
        ).fetchone()["order_number"]
        raise ConflictError(
            "reference_conflict",
            f"reference {received.reference!r} is already recorded for order {other}",
            field="reference",
            recovery=f"see it with `checkout orders show {other}`; a different payment needs "
            "its own reference",
        )
    if (existing["amount_cents"], existing["currency"]) != (
        received.amount_cents,
        received.currency,
    ):
        recorded = format_money(existing["amount_cents"], existing["currency"])
        raise ConflictError(
            "reference_conflict",
            f"reference {received.reference!r} is already recorded for order "
            f"{order['order_number']} with {recorded}, not "
            f"{format_money(received.amount_cents, received.currency)}",
            field="reference",
            recovery="a different payment needs its own reference",
        )
    return {
        "payment": _payment(conn, existing),
        "order": order_object(conn, order),
        "already_recorded": True,
    }


def _refuse(conn: sqlite3.Connection, order: sqlite3.Row, received: Received, force: bool) -> None:
    number = order["order_number"]
    smoke = conn.execute(
        f"SELECT 1 FROM orders WHERE id = ? AND NOT ({REAL_ORDER})", (order["id"],)
    ).fetchone()
    if smoke is not None:
        raise ConflictError(
            "order_is_test_run", f"order {number} belongs to a smoke run", field="order_id"
        )
    if order["cancelled_at"] is not None:
        raise ConflictError(
            "order_cancelled",
            f"order {number} is cancelled; no payment can be recorded for it",
            field="order_id",
            recovery="refund the money to the customer, or record it on the order that "
            "replaced this one",
        )
    if received.currency != order["currency"]:
        raise ConflictError(
            "currency_mismatch",
            f"order {number} is in {order['currency']}, not {received.currency}",
            field="currency",
            recovery=f"record the amount the bank credited in {order['currency']}",
        )
    balance = order_state.balance_due(order)
    if received.amount_cents > balance and not force:
        owed = format_money(balance, order["currency"])
        raise ConflictError(
            "payment_exceeds_balance",
            f"{format_money(received.amount_cents, received.currency)} is more than order "
            f"{number}'s balance due of {owed}",
            field="amount_cents",
            recovery="record at most the balance, or pass --force to record the overpayment "
            "(then refund the difference)",
        )


def _payment(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    wanted = f"opay_{row['id']}"
    return next(p for p in payment_objects(conn, row["order_id"]) if p["payment_id"] == wanted)
