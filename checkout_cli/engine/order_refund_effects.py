"""What an order's refund does to the order once its result is known.

``landed`` runs inside the transaction that records a refund's result (``refunds``, whoever
calls it: the refund itself, a retry, a webhook, reconcile) or a credit: the order's amounts
and statuses are recomputed; an accepted refund gives back the stock its request asked to
restock (once: ``refunds.restocked``) and queues the customer's "refund" email (once: the
outbox kind ``refund:<id>`` is UNIQUE per order). A failed one only releases what it held.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli.engine import emails, events, order_state, order_stock, outbox, settings
from checkout_cli.engine.core import Engine, loads

ACCEPTED = ("pending", "succeeded")


def asked(row: sqlite3.Row) -> dict[str, Any]:
    """What the order refund of ``row`` was asked to do (empty for a checkout's refund)."""
    value = loads(row["request"]) if row["request"] else None
    return value if isinstance(value, dict) else {}


def landed(engine: Engine, conn: sqlite3.Connection, refund_id: int) -> None:
    row = conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
    if row is None or row["order_id"] is None:
        return
    order = order_state.refresh(engine, conn, row["order_id"])
    if row["status"] not in ACCEPTED:
        return
    request = asked(row)
    if request.get("restock"):
        restock_group(engine, conn, order, request.get("group"))
    _queue_email(engine, conn, order, row)


def restock_group(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row, group: str | None
) -> list[dict[str, int | str]]:
    """Give back the lines of the refund request ``group`` (held by its first row), once."""
    if group is None:
        return []
    holder = conn.execute(
        "SELECT * FROM refunds r WHERE r.order_id = ? AND json_extract(r.request, '$.group') = ? "
        "AND EXISTS (SELECT 1 FROM refund_lines l WHERE l.refund_id = r.id) ORDER BY r.id LIMIT 1",
        (order["id"], group),
    ).fetchone()
    if holder is None or holder["restocked"]:
        return []
    lines = conn.execute(
        "SELECT l.product_sku, r.quantity FROM refund_lines r JOIN order_lines l "
        "ON l.order_id = r.order_id AND l.line_no = r.line_no WHERE r.refund_id = ? ORDER BY r.id",
        (holder["id"],),
    ).fetchall()
    done = order_stock.put_back(engine, conn, order, [(x[0], x[1]) for x in lines])
    conn.execute("UPDATE refunds SET restocked = 1 WHERE id = ?", (holder["id"],))
    if done:
        events.record(
            engine,
            conn,
            order["checkout_id"],
            "order_restocked",
            detail={
                "order_number": order["order_number"],
                "lines": done,
                "refund": f"ref_{holder['id']}",
            },
            order_id=order["id"],
        )
    return done


def _queue_email(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row, refund: sqlite3.Row
) -> None:
    from checkout_cli.engine.orders import order_object
    from checkout_cli.money import format_money

    amount = format_money(refund["amount_cents"], refund["currency"])
    number = order["order_number"]
    if refund["kind"] == "credit":
        said = [f"We have refunded {amount} of your payment for order {number}."]
    elif refund["status"] == "succeeded":
        said = [f"We have refunded {amount} for order {number} to your original payment method."]
    else:
        said = [
            f"We are refunding {amount} for order {number} to your original payment method; "
            "it can take a few days to reach you."
        ]
    if refund["reason"]:
        said.append(f"Reason: {refund['reason']}")
    message = emails.order_message(
        settings.read(conn, "shop_name"), order_object(conn, order), "refund", said
    )
    if outbox.queue_order_email(engine, conn, order["id"], "refund", str(refund["id"]), message):
        events.record(
            engine,
            conn,
            order["checkout_id"],
            "order_refund_emailed",
            detail={
                "order_number": order["order_number"],
                "refund": f"ref_{refund['id']}",
                "email": f"refund:{refund['id']}",
            },
            order_id=order["id"],
        )
