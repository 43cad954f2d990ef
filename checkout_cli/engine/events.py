"""The checkout timeline: every state change and notable action is one event row."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from checkout_cli.engine.core import Engine, dumps, loads

# Called for every event recorded, inside its transaction: (engine, conn, event row id,
# checkout id, kind, to_status, order id). engine/webhook_events.py adds its ``queue`` when
# the engine package is imported (engine/__init__.py), so no change misses it.
AFTER_RECORD: list[
    Callable[[Engine, sqlite3.Connection, int, int, str, str | None, int | None], None]
] = []


def record(
    engine: Engine,
    conn: sqlite3.Connection,
    checkout_id: int,
    kind: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    detail: dict[str, Any] | None = None,
    order_id: int | None = None,
) -> None:
    cur = conn.execute(
        "INSERT INTO events (checkout_id, at, actor, kind, from_status, to_status, detail, "
        "request_key, order_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            checkout_id,
            engine.now(),
            engine.actor,
            kind,
            from_status,
            to_status,
            dumps(detail),
            engine.request_key,
            order_id,
        ),
    )
    for hook in AFTER_RECORD:  # order events out (engine/webhook_events.py), in this transaction
        hook(engine, conn, cur.lastrowid or 0, checkout_id, kind, to_status, order_id)


def by_this_request(
    engine: Engine, conn: sqlite3.Connection, checkout_id: int, *kinds: str
) -> sqlite3.Row | None:
    """The latest of these events an earlier attempt of the request being served recorded:
    a retry whose first attempt's worker died answers as that attempt would have."""
    if engine.request_key is None:
        return None
    marks = ", ".join("?" * len(kinds))
    return conn.execute(
        f"SELECT * FROM events WHERE checkout_id = ? AND request_key = ? AND kind IN ({marks}) "
        "ORDER BY id DESC LIMIT 1",
        (checkout_id, engine.request_key, *kinds),
    ).fetchone()


def timeline(conn: sqlite3.Connection, checkout_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT at, actor, kind, from_status, to_status, detail FROM events "
        "WHERE checkout_id = ? ORDER BY id",
        (checkout_id,),
    )
    return [{**dict(row), "detail": loads(row["detail"])} for row in rows]


def order_timeline(conn: sqlite3.Connection, order: sqlite3.Row) -> list[dict[str, Any]]:
    """The order's life: its checkout's events from the completion that made it on."""
    rows = conn.execute(
        "SELECT at, actor, kind, from_status, to_status, detail FROM events "
        "WHERE checkout_id = ? AND id >= COALESCE((SELECT MIN(id) FROM events WHERE "
        "checkout_id = ? AND kind = 'checkout_completed'), 0) ORDER BY id",
        (order["checkout_id"], order["checkout_id"]),
    )
    return [{**dict(row), "detail": loads(row["detail"])} for row in rows]
