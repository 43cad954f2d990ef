"""Order events out: which webhook event types a timeline event makes, and queueing them.

``events.record`` calls ``queue`` for every timeline event, inside the change's own write
transaction: if an active subscription wants one of the types it makes, one
``webhook_events`` row (its payload fixed at that moment) and one ``webhook_deliveries`` row
per such subscription are inserted with the change (an outbox). Delivery runs after the
commit (``webhook_delivery``), so every event reaches its subscribers at least once.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from checkout_cli.engine import events
from checkout_cli.engine.core import Engine, dumps, loads, new_token
from checkout_cli.requests import WEBHOOK_EVENT_TYPES

EVENT_TYPES = WEBHOOK_EVENT_TYPES
ALL = "*"

# An order column's new value → the event type it makes.
_ORDER_MOVES: dict[tuple[str, str], str] = {
    ("order_payment_status_changed", "paid"): "order.paid",
    ("order_payment_status_changed", "partially_paid"): "order.partially_paid",
    ("order_payment_status_changed", "partially_refunded"): "order.partially_refunded",
    ("order_payment_status_changed", "refunded"): "order.refunded",
    ("order_status_changed", "cancelled"): "order.cancelled",
    ("order_status_changed", "completed"): "order.completed",
    ("order_fulfilment_status_changed", "fulfilled"): "order.fulfilled",
    ("order_fulfilment_status_changed", "partially_fulfilled"): "order.partially_fulfilled",
}


def types_for(
    conn: sqlite3.Connection, checkout_id: int, kind: str, to_status: str | None
) -> list[str]:
    """The webhook event types one timeline event makes (often none)."""
    if kind == "checkout_completed":
        types = ["checkout.completed", "order.created"]
        paid = conn.execute(
            "SELECT payment_status FROM orders WHERE checkout_id = ?", (checkout_id,)
        ).fetchone()
        if paid is not None and paid["payment_status"] == "paid":
            types.append("order.paid")
        return types
    if kind == "checkout_cancelled":
        return ["checkout.cancelled"]
    found = _ORDER_MOVES.get((kind, to_status or ""))
    if found is None:
        return []
    status = conn.execute("SELECT status FROM checkouts WHERE id = ?", (checkout_id,)).fetchone()
    # An order's statuses settle while its checkout completes: checkout_completed tells those.
    if status is None or status["status"] != "completed":
        return []
    return [found]


def wants(events_json: str, event_type: str) -> bool:
    wanted = loads(events_json) or []
    return ALL in wanted or event_type in wanted


def active_subscriptions(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM webhook_subscriptions WHERE status = 'active' ORDER BY id"
    ).fetchall()


def subscribers(conn: sqlite3.Connection, event_type: str) -> list[sqlite3.Row]:
    return [r for r in active_subscriptions(conn) if wants(r["events"], event_type)]


def may_make_events(kind: str, to_status: str | None) -> bool:
    """Whether a timeline event of this kind can make any webhook event (no lookups)."""
    return kind in ("checkout_completed", "checkout_cancelled") or (
        (kind, to_status or "") in _ORDER_MOVES
    )


def data_object(
    conn: sqlite3.Connection, event_type: str, checkout_id: int | None, order_id: int | None
) -> dict[str, Any]:
    from checkout_cli.engine.checkout_records import checkout_object
    from checkout_cli.engine.orders import order_object

    if event_type.startswith("order.") and order_id is not None:
        order = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        return {"object": order_object(conn, order)}
    co = conn.execute("SELECT * FROM checkouts WHERE id = ?", (checkout_id,)).fetchone()
    return {"object": checkout_object(conn, co) if co is not None else None}


def insert_event(
    engine: Engine,
    conn: sqlite3.Connection,
    event_type: str,
    *,
    event_row_id: int | None,
    checkout_id: int | None,
    order_id: int | None,
    to: list[sqlite3.Row],
    test: bool = False,
) -> str:
    """One webhook event and a queued delivery for each subscription in ``to``; a test event
    (``checkout events trigger``) says so in its body, ``"test": true``, so that a receiver
    never takes it for the order's real state."""
    now = engine.now()
    public_id = new_token("evt")
    payload: dict[str, Any] = {
        "id": public_id,
        "type": event_type,
        "created_at": now,
        "data": data_object(conn, event_type, checkout_id, order_id),
    }
    if test:
        payload["test"] = True
    cur = conn.execute(
        "INSERT INTO webhook_events (public_id, type, event_row_id, order_id, checkout_id, "
        "payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (public_id, event_type, event_row_id, order_id, checkout_id, dumps(payload), now),
    )
    for sub in to:
        conn.execute(
            "INSERT INTO webhook_deliveries (public_id, event_id, subscription_id, status, "
            "attempts, next_attempt_at, created_at) VALUES (?, ?, ?, 'queued', 0, ?, ?)",
            (new_token("whd"), cur.lastrowid, sub["id"], now, now),
        )
    return public_id


def queue(
    engine: Engine,
    conn: sqlite3.Connection,
    event_row_id: int,
    checkout_id: int,
    kind: str,
    to_status: str | None,
    order_id: int | None,
) -> None:
    """Queue the webhook events one timeline event makes (in the caller's transaction).
    Without a subscription nothing more is looked up: this runs on every timeline event."""
    if not may_make_events(kind, to_status):
        return
    active = active_subscriptions(conn)
    if not active:
        return
    types = types_for(conn, checkout_id, kind, to_status)
    if not types:
        return
    if order_id is None and kind == "checkout_completed":
        row = conn.execute("SELECT id FROM orders WHERE checkout_id = ?", (checkout_id,)).fetchone()
        order_id = row["id"] if row is not None else None
    for event_type in types:
        to = [r for r in active if wants(r["events"], event_type)]
        if to:
            insert_event(
                engine,
                conn,
                event_type,
                event_row_id=event_row_id,
                checkout_id=checkout_id,
                order_id=order_id,
                to=to,
            )


def payload_text(row: sqlite3.Row) -> str:
    """The exact body sent (and signed) for a webhook event."""
    text: str = row["payload"]
    json.loads(text)  # stored by insert_event; never anything but JSON
    return text


def register() -> None:
    """Offer every recorded timeline event to ``queue`` (once per process)."""
    if queue not in events.AFTER_RECORD:
        events.AFTER_RECORD.append(queue)
