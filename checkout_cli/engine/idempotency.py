"""Remembered responses for HTTP requests that carry an ``Idempotency-Key``.

A remote client may retry a write after a network error without knowing whether the first
attempt ran. The first request with a key claims it; a retry with the same key and body gets
the first answer back instead of running again. A retry that arrives while the first is
still running is told to wait (``request_in_progress``).
"""

from __future__ import annotations

import json
from typing import Any

from checkout_cli.engine.core import Engine
from checkout_cli.errors import ConflictError

IN_PROGRESS, DONE = "in_progress", "done"


def claim(engine: Engine, key: str, request_hash: str) -> tuple[int, dict[str, Any]] | None:
    """Claim ``key`` (None: go ahead), or return the remembered ``(http_status, body)``."""
    with engine.write(durable=False) as conn:  # made durable by the call's own commit
        row = conn.execute("SELECT * FROM idempotent_requests WHERE key = ?", (key,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO idempotent_requests (key, request_hash, status, created_at) "
                "VALUES (?, ?, ?, ?)",
                (key, request_hash, IN_PROGRESS, engine.now()),
            )
            return None
    if row["request_hash"] != request_hash:
        raise ConflictError(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
            recovery="use a new key for a new request",
        )
    if row["status"] == IN_PROGRESS:
        raise ConflictError(
            "request_in_progress",
            "the first request with this key is running",
            recovery="retry in a moment",
        )
    return row["http_status"], json.loads(row["response"])


def remember(engine: Engine, key: str, http_status: int, body: dict[str, Any]) -> None:
    with engine.write(durable=False) as conn:  # made durable by the call's own commit
        conn.execute(
            "UPDATE idempotent_requests SET status = ?, http_status = ?, response = ? "
            "WHERE key = ?",
            (DONE, http_status, json.dumps(body), key),
        )


def forget(engine: Engine, key: str) -> None:
    """Release a claim whose request failed in a way worth retrying (unavailable, a bug)."""
    with engine.write(durable=False) as conn:  # made durable by the call's own commit
        conn.execute(
            "DELETE FROM idempotent_requests WHERE key = ? AND status = ?", (key, IN_PROGRESS)
        )
