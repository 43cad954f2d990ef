"""Support after the order: what holds up an order's life, and the command that fixes it.

A completed checkout's order is stuck when:
- ``refund_pending_too_long``: a refund the provider accepted has not settled after
  ``refund_pending_days`` (``checkout reconcile`` asks the provider where it stands);
- ``refund_unfinished``: a refund was started at the provider and its answer never came (a
  timeout, a killed process); it holds its amount until ``checkout reconcile`` resumes it
  with its own idempotency key;
- ``refund_failed``: the provider refused a refund and no later refund of the order took
  its place (the customer is still owed the money: refund again);
- ``paid_not_shipped``: paid in full, not cancelled, and not all shipped
  ``ship_within_days`` after it was paid.

These are read from the order's rows (``engine/support.py`` adds them to a checkout's stuck
reasons and its diagnosis); the day counts are settings.
"""

from __future__ import annotations

import shlex
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from checkout_cli.engine import refunds, settings
from checkout_cli.engine.core import Engine, iso
from checkout_cli.money import format_money

ORDER_REASONS = (
    "refund_pending_too_long",
    "refund_unfinished",
    "refund_failed",
    "paid_not_shipped",
)


@dataclass(frozen=True)
class Cutoffs:
    """Moments before which a pending refund, or a paid order not shipped, is too old."""

    refund_pending: str
    refund_pending_days: int
    ship_within: str
    ship_within_days: int
    refund_unfinished: str


def cutoffs(engine: Engine, conn: sqlite3.Connection) -> Cutoffs:
    now = engine.clock()
    refund_days = settings.read(conn, "refund_pending_days")
    ship_days = settings.read(conn, "ship_within_days")
    return Cutoffs(
        iso(now - timedelta(days=refund_days)),
        refund_days,
        iso(now - timedelta(days=ship_days)),
        ship_days,
        refunds.unfinished_cutoff(engine),
    )


def order_of(conn: sqlite3.Connection, checkout_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM orders WHERE checkout_id = ?", (checkout_id,)
    ).fetchone()
    return row


def _pending_refunds(conn: sqlite3.Connection, order: sqlite3.Row, cut: Cutoffs) -> list[Any]:
    return conn.execute(
        "SELECT * FROM refunds WHERE order_id = ? AND status = 'pending' AND created_at <= ? "
        "ORDER BY id",
        (order["id"], cut.refund_pending),
    ).fetchall()


def _unfinished_refunds(conn: sqlite3.Connection, order: sqlite3.Row, cut: Cutoffs) -> list[Any]:
    return conn.execute(
        "SELECT * FROM refunds WHERE order_id = ? AND status = 'creating' AND kind = 'provider' "
        "AND created_at <= ? ORDER BY id",
        (order["id"], cut.refund_unfinished),
    ).fetchall()


def _failed_refunds(conn: sqlite3.Connection, order: sqlite3.Row) -> list[Any]:
    """Refused refunds nothing took the place of: no later refund of the order that was
    not refused too."""
    return conn.execute(
        "SELECT * FROM refunds r WHERE r.order_id = ? AND r.status = 'failed' AND NOT EXISTS "
        "(SELECT 1 FROM refunds s WHERE s.order_id = r.order_id AND s.id > r.id "
        "AND s.status != 'failed') ORDER BY r.id",
        (order["id"],),
    ).fetchall()


def paid_since(conn: sqlite3.Connection, order: sqlite3.Row) -> str:
    """When the order was paid: its last payment (which settled it), else when it was made."""
    at = conn.execute(
        "SELECT MAX(created_at) FROM order_payments WHERE order_id = ?", (order["id"],)
    ).fetchone()[0]
    return str(at or order["created_at"])


def _not_shipped(conn: sqlite3.Connection, order: sqlite3.Row, cut: Cutoffs) -> bool:
    # status 'paid' is settled, not cancelled and not all shipped (order_state.derive); an
    # order refunded in full, or whose unshipped units all went back in stock, waits for
    # nothing more.
    from checkout_cli.engine.fulfilments import order_lines

    return (
        order["status"] == "paid"
        and order["payment_status"] != "refunded"
        and paid_since(conn, order) <= cut.ship_within
        and any(line.unshipped for line in order_lines(conn, order["id"]))
    )


def order_reasons(conn: sqlite3.Connection, order: sqlite3.Row, cut: Cutoffs) -> list[str]:
    reasons = []
    if _pending_refunds(conn, order, cut):
        reasons.append("refund_pending_too_long")
    if _unfinished_refunds(conn, order, cut):
        reasons.append("refund_unfinished")
    if _failed_refunds(conn, order):
        reasons.append("refund_failed")
    if _not_shipped(conn, order, cut):
        reasons.append("paid_not_shipped")
    return reasons


def order_diagnosis(
    conn: sqlite3.Connection, order: sqlite3.Row, reasons: list[str], cut: Cutoffs
) -> list[dict[str, Any]]:
    """What is wrong with the order, in words, each with the command that fixes it."""
    number = order["order_number"]
    found: list[dict[str, Any]] = []
    if "refund_pending_too_long" in reasons:
        for r in _pending_refunds(conn, order, cut):
            found.append(
                {
                    "problem": f"Refund ref_{r['id']} of {_money(r)} at {r['provider']} has been "
                    f"pending since {r['created_at']}, longer than {cut.refund_pending_days} "
                    "days (refund_pending_days). Ask the provider where it stands.",
                    "fix": "checkout reconcile",
                }
            )
    if "refund_unfinished" in reasons:
        for r in _unfinished_refunds(conn, order, cut):
            found.append(
                {
                    "problem": f"Refund ref_{r['id']} of {_money(r)} was sent to "
                    f"{r['provider']} on {r['created_at']} and no answer was recorded; it holds "
                    "its amount. Resuming it asks with its own idempotency key, so the "
                    "customer is never refunded twice.",
                    "fix": "checkout reconcile",
                }
            )
    if "refund_failed" in reasons:
        for r in _failed_refunds(conn, order):
            why = f" ({r['reason']})" if r["reason"] else ""
            found.append(
                {
                    "problem": f"Refund ref_{r['id']} of {_money(r)}{why} was refused by "
                    f"{r['provider']}: the customer has not been paid back. Refund it again "
                    "(check the provider's dashboard for why it was refused).",
                    "fix": f"checkout orders refund {number} --amount-cents {r['amount_cents']}"
                    + (f" --reason {shlex.quote(r['reason'])}" if r["reason"] else ""),
                }
            )
    if "paid_not_shipped" in reasons:
        found.append(
            {
                "problem": f"Order {number} was paid on {paid_since(conn, order)} and has not "
                f"shipped in full after {cut.ship_within_days} days (ship_within_days); "
                f"it is {order['fulfilment_status'].replace('_', ' ')}.",
                "fix": f"checkout orders fulfil {number} --carrier CARRIER --tracking NUMBER",
            }
        )
    return found


def _money(refund: sqlite3.Row) -> str:
    return format_money(refund["amount_cents"], refund["currency"])
