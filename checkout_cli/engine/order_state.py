"""An order's amounts and statuses, derived from its payments, refunds and shipments.

The columns on ``orders`` (what lists filter on) are recomputed by ``refresh`` inside every
transaction that adds one of those rows, and each status that moves is an event on the
order's timeline (from → to). ``derive`` is the one rule; doctor re-derives and compares.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from checkout_cli.engine import events
from checkout_cli.engine.core import Engine

# What a refund counts as, for the order's amounts: accepted ones are money on its way back.
SUCCEEDED = "succeeded"
# A refund that holds part of what is refundable: no second refund may take it too.
HOLDING = ("creating", "pending", "succeeded")


@dataclass(frozen=True)
class Amounts:
    total: int
    paid: int
    refunded: int
    ordered: int  # units ordered, over all lines
    shipped: int
    cancelled: bool


@dataclass(frozen=True)
class Derived:
    status: str
    payment_status: str
    fulfilment_status: str
    balance_due_cents: int


def derive(a: Amounts) -> Derived:
    if a.refunded > 0:
        payment_status = "refunded" if a.refunded >= a.paid else "partially_refunded"
    elif a.paid == 0 and a.total > 0:
        payment_status = "unpaid"
    elif a.paid < a.total:
        payment_status = "partially_paid"
    else:
        payment_status = "paid"
    if a.shipped == 0:
        fulfilment_status = "unfulfilled"
    elif a.shipped < a.ordered:
        fulfilment_status = "partially_fulfilled"
    else:
        fulfilment_status = "fulfilled"
    settled = a.paid >= a.total
    if a.cancelled:
        status = "cancelled"
    elif settled and fulfilment_status == "fulfilled":
        status = "completed"
    elif settled:
        status = "paid"
    else:
        status = "pending"
    balance = 0 if a.cancelled else max(a.total - a.paid, 0)
    return Derived(status, payment_status, fulfilment_status, balance)


def balance_due(order: sqlite3.Row) -> int:
    """What the customer still owes, by the order's stored columns (0 once cancelled)."""
    if order["cancelled_at"] is not None:
        return 0
    return max(order["total_cents"] - order["amount_paid_cents"], 0)


def amounts(conn: sqlite3.Connection, order: sqlite3.Row) -> Amounts:
    """What the order's rows add up to (not its stored columns), in one statement."""
    sums = conn.execute(
        "SELECT (SELECT COALESCE(SUM(amount_cents), 0) FROM order_payments WHERE order_id = :o),"
        " (SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE order_id = :o"
        " AND status = :succeeded),"
        " (SELECT COALESCE(SUM(quantity), 0) FROM order_lines WHERE order_id = :o),"
        " (SELECT COALESCE(SUM(quantity), 0) FROM fulfilment_lines WHERE order_id = :o)",
        {"o": order["id"], "succeeded": SUCCEEDED},
    ).fetchone()
    paid, refunded, ordered, shipped = sums[0], sums[1], sums[2], sums[3]
    return Amounts(
        total=order["total_cents"],
        paid=paid,
        refunded=refunded,
        ordered=ordered,
        shipped=shipped,
        cancelled=order["cancelled_at"] is not None,
    )


def refundable(conn: sqlite3.Connection, order: sqlite3.Row) -> int:
    """Paid and not yet refunded, nor held by a refund under way (never below zero)."""
    held = conn.execute(
        "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE order_id = ? "
        f"AND status IN ({', '.join('?' * len(HOLDING))})",
        (order["id"], *HOLDING),
    ).fetchone()[0]
    return max(amounts(conn, order).paid - held, 0)


def refresh(engine: Engine, conn: sqlite3.Connection, order_row_id: int) -> sqlite3.Row:
    """Recompute the order's amounts and statuses from its rows; every status that moves is
    an event on its timeline. Runs inside the caller's write transaction."""
    order = conn.execute("SELECT * FROM orders WHERE id = ?", (order_row_id,)).fetchone()
    now = amounts(conn, order)
    derived = derive(now)
    moves = [
        (column, order[column], getattr(derived, column))
        for column in ("status", "payment_status", "fulfilment_status")
        if order[column] != getattr(derived, column)
    ]
    moved = bool(moves)
    moved = moved or (order["amount_paid_cents"], order["amount_refunded_cents"]) != (
        now.paid,
        now.refunded,
    )
    conn.execute(
        "UPDATE orders SET amount_paid_cents = ?, amount_refunded_cents = ?, status = ?, "
        "payment_status = ?, fulfilment_status = ?, updated_at = ? WHERE id = ?",
        (
            now.paid,
            now.refunded,
            derived.status,
            derived.payment_status,
            derived.fulfilment_status,
            engine.now() if moved else order["updated_at"],
            order_row_id,
        ),
    )
    # Recorded after the update: an event's subscribers see the order as it now is.
    for column, before, after in moves:
        events.record(
            engine,
            conn,
            order["checkout_id"],
            f"order_{column}_changed",
            from_status=before,
            to_status=after,
            detail={"order_number": order["order_number"]},
            order_id=order_row_id,
        )
    row: sqlite3.Row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_row_id,)).fetchone()
    return row
