"""The order-events endpoints: subscriptions, their deliveries, test events and resends.

A subscription's signing secret is made here, sealed in the vault and answered once (by
``subscribe``); nothing else returns it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import webhook_delivery, webhook_events, webhook_signing
from checkout_cli.engine.core import Engine, dumps, loads, new_token
from checkout_cli.engine.paging import page
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError

DEFAULT_LIMIT = 50


def subscription_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "subscription_id": row["public_id"],
        "url": row["url"],
        "events": loads(row["events"]),
        "status": row["status"],
        "description": row["description"],
        "created_at": row["created_at"],
        "disabled_at": row["disabled_at"],
        "disabled_reason": row["disabled_reason"],
    }


def _load_subscription(conn: sqlite3.Connection, public_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM webhook_subscriptions WHERE public_id = ?", (public_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(
            "subscription_not_found",
            f"no webhook subscription {public_id!r}",
            field="subscription_id",
            recovery="list them with `checkout events subscriptions`",
        )
    return row


def check_url(url: str) -> None:
    """Refuse a URL that no POST could ever reach: one httpx cannot parse, without a host, with
    a control character or a port past 65535."""
    import httpx

    try:
        parsed = httpx.URL(url)
        port = parsed.port
        ok = bool(parsed.host) and (port is None or 0 < port <= 65535)
    except (httpx.InvalidURL, ValueError):
        ok = False
    if not ok or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValidationError(
            "invalid_url",
            f"url: {url!r} is not valid",
            field="url",
            recovery="expected where events are POSTed (http or https)",
        )


def subscribe(engine: Engine, body: requests.Subscribe) -> dict[str, Any]:
    if not body.events:
        raise ValidationError(
            "no_events",
            "name at least one event type",
            field="events",
            recovery="e.g. --event order.paid, or --event '*' for every one",
        )
    check_url(body.url)
    wanted = list(dict.fromkeys(body.events))
    if webhook_events.ALL in wanted:
        wanted = [webhook_events.ALL]
    public_id = new_token("whs")
    secret = webhook_signing.new_secret()
    name = webhook_signing.vault_name(public_id)
    with engine.write(scrub=True) as conn:
        now = engine.now()
        conn.execute(
            "INSERT INTO webhook_subscriptions (public_id, url, events, status, description, "
            "secret_name, created_at) VALUES (?, ?, ?, 'active', ?, ?, ?)",
            (public_id, body.url, dumps(wanted), body.description, name, now),
        )
        webhook_signing.store_secret(conn, name, secret, now)
        row = _load_subscription(conn, public_id)
    return {**subscription_object(row), "secret": secret}


def list_subscriptions(engine: Engine, body: requests.Page) -> dict[str, Any]:
    with engine.read() as conn:
        rows, paging = page(
            conn, "SELECT * FROM webhook_subscriptions", [], "id", body, DEFAULT_LIMIT
        )
    return {"subscriptions": [subscription_object(r) for r in rows], **paging}


def unsubscribe(engine: Engine, body: requests.SubscriptionRef) -> dict[str, Any]:
    with engine.write(scrub=True) as conn:
        row = _load_subscription(conn, body.subscription_id)
        now = engine.now()
        if row["status"] == "active":
            conn.execute(
                "UPDATE webhook_subscriptions SET status = 'disabled', disabled_at = ?, "
                "disabled_reason = ? WHERE id = ?",
                (now, f"unsubscribed by {engine.actor}", row["id"]),
            )
        # What it would still have been sent is given up with it, and so is its secret.
        conn.execute(
            "UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL, "
            "last_error = 'unsubscribed' WHERE subscription_id = ? "
            "AND status IN ('queued', 'failed', 'sending')",
            (row["id"],),
        )
        conn.execute("DELETE FROM vault WHERE name = ?", (row["secret_name"],))
        row = _load_subscription(conn, body.subscription_id)
    return subscription_object(row)


_DELIVERIES = (
    "SELECT d.*, e.public_id AS event_public_id, e.type AS event_type, "
    "s.public_id AS subscription_public_id, s.url, r.public_id AS resend_of_public_id "
    "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
    "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
    "LEFT JOIN webhook_deliveries r ON r.id = d.resend_of"
)


def delivery_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "delivery_id": row["public_id"],
        "event_id": row["event_public_id"],
        "event_type": row["event_type"],
        "subscription_id": row["subscription_public_id"],
        "url": row["url"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "response_status": row["response_status"],
        "response_body": row["response_body"],
        "last_error": row["last_error"],
        "delivered_at": row["delivered_at"],
        "created_at": row["created_at"],
        "resend_of": row["resend_of_public_id"],
    }


def list_deliveries(engine: Engine, body: requests.ListDeliveries) -> dict[str, Any]:
    where: list[str] = []
    params: list[Any] = []
    if body.subscription_id is not None:
        where.append("s.public_id = ?")
        params.append(body.subscription_id)
    if body.status is not None:
        where.append("d.status = ?")
        params.append(body.status)
    if body.event_type is not None:
        where.append("e.type = ?")
        params.append(body.event_type)
    sql = _DELIVERIES + (" WHERE " + " AND ".join(where) if where else "")
    with engine.read() as conn:
        rows, paging = page(conn, sql, params, "d.id DESC", body, DEFAULT_LIMIT)
    return {"deliveries": [delivery_object(r) for r in rows], **paging}


def _event_subject(conn: sqlite3.Connection, body: requests.FireEvent) -> tuple[int, int | None]:
    """The checkout and order a test event tells of: the order asked for, else the latest."""
    from checkout_cli.engine.orders import load_order

    if body.order_id is not None:
        order = load_order(conn, body.order_id)
        return order["checkout_id"], order["id"]
    order = conn.execute("SELECT * FROM orders ORDER BY id DESC LIMIT 1").fetchone()
    if order is not None:
        return order["checkout_id"], order["id"]
    co = conn.execute("SELECT id FROM checkouts ORDER BY id DESC LIMIT 1").fetchone()
    if co is None or body.type.startswith("order."):
        raise NotFoundError(
            "order_not_found",
            "there is no order to make a test event of",
            field="order_id",
            recovery="complete a checkout first, or name an order with --order",
        )
    return co["id"], None


def fire_event(engine: Engine, body: requests.FireEvent) -> dict[str, Any]:
    if body.dry_run:
        with engine.read() as conn:
            checkout_id, order_id = _event_subject(conn, body)
            to = webhook_events.subscribers(conn, body.type)
            payload = {
                "id": None,
                "type": body.type,
                "created_at": engine.now(),
                "data": webhook_events.data_object(conn, body.type, checkout_id, order_id),
                "test": True,
            }
        return {
            "dry_run": True,
            "event_id": None,
            "type": body.type,
            "payload": payload,
            "subscriptions": [s["public_id"] for s in to],
            "deliveries": [],
        }
    with engine.write() as conn:
        checkout_id, order_id = _event_subject(conn, body)
        to = webhook_events.subscribers(conn, body.type)
        event_id = webhook_events.insert_event(
            engine,
            conn,
            body.type,
            event_row_id=None,
            checkout_id=checkout_id,
            order_id=order_id,
            to=to,
            test=True,
        )
        event = conn.execute(
            "SELECT id, payload FROM webhook_events WHERE public_id = ?", (event_id,)
        ).fetchone()
        deliveries = [
            r["public_id"]
            for r in conn.execute(
                "SELECT public_id FROM webhook_deliveries WHERE event_id = ? ORDER BY id",
                (event["id"],),
            )
        ]
    webhook_delivery.after_commit(engine)
    return {
        "dry_run": False,
        "event_id": event_id,
        "type": body.type,
        "payload": loads(event["payload"]),
        "subscriptions": [s["public_id"] for s in to],
        "deliveries": deliveries,
    }


def resend_delivery(engine: Engine, body: requests.DeliveryRef) -> dict[str, Any]:
    with engine.write() as conn:
        row = conn.execute(_DELIVERIES + " WHERE d.public_id = ?", (body.delivery_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                "delivery_not_found",
                f"no webhook delivery {body.delivery_id!r}",
                field="delivery_id",
                recovery="list them with `checkout events deliveries`",
            )
        sub = conn.execute(
            "SELECT status FROM webhook_subscriptions WHERE id = ?", (row["subscription_id"],)
        ).fetchone()
        if sub["status"] != "active":
            raise ConflictError(
                "subscription_disabled",
                f"subscription {row['subscription_public_id']} is disabled",
                field="delivery_id",
                recovery="subscribe again with `checkout events subscribe`",
            )
        now = engine.now()
        public_id = new_token("whd")
        conn.execute(
            "INSERT INTO webhook_deliveries (public_id, event_id, subscription_id, status, "
            "attempts, next_attempt_at, created_at, resend_of) "
            "VALUES (?, ?, ?, 'queued', 0, ?, ?, ?)",
            (public_id, row["event_id"], row["subscription_id"], now, now, row["id"]),
        )
        new = conn.execute(_DELIVERIES + " WHERE d.public_id = ?", (public_id,)).fetchone()
    webhook_delivery.after_commit(engine)
    with engine.read() as conn:
        new = conn.execute(_DELIVERIES + " WHERE d.public_id = ?", (public_id,)).fetchone()
    return delivery_object(new)


def deliver_events(engine: Engine, body: requests.DeliverEvents) -> dict[str, Any]:
    sub_row_id: int | None = None
    if body.subscription_id is not None:
        sub_row_id = _load_subscription(engine.conn, body.subscription_id)["id"]
    outcomes = webhook_delivery.deliver_due(
        engine, limit=body.limit or 100, subscription_id=sub_row_id
    )
    return webhook_delivery.summary(outcomes)
