"""The checkout timeline: every state change and notable action is one event row."""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli.engine.core import Engine, dumps, loads


def record(
    engine: Engine,
    conn: sqlite3.Connection,
    checkout_id: int,
    kind: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO events (checkout_id, at, actor, kind, from_status, to_status, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (checkout_id, engine.now(), engine.actor, kind, from_status, to_status, dumps(detail)),
    )


def timeline(conn: sqlite3.Connection, checkout_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT at, actor, kind, from_status, to_status, detail FROM events "
        "WHERE checkout_id = ? ORDER BY id",
        (checkout_id,),
    )
    return [{**dict(row), "detail": loads(row["detail"])} for row in rows]
