"""Remembered responses for HTTP requests that carry an ``Idempotency-Key``.

A remote client may retry a write after a network error without knowing whether the first
attempt ran. A retry with the same key and body gets the first answer back instead of running
again; one that arrives while the first is still running is told to wait
(``request_in_progress``).

The key is claimed inside the request's own first write transaction, not one of its own: a
duplicate that starts meanwhile queues on the writer lock and then finds the claim. A request
that writes nothing claims nothing, and running it again would change nothing either.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from checkout_cli.engine.core import Engine
from checkout_cli.errors import ConflictError

IN_PROGRESS, DONE = "in_progress", "done"

Answer = tuple[int, dict[str, Any]]  # (HTTP status, response body)


def request_hash(service: str, name: str, body: dict[str, Any]) -> str:
    """What makes two requests "the same" for a key: the endpoint and the body."""
    return hashlib.sha256(json.dumps([service, name, body], sort_keys=True).encode()).hexdigest()


def as_json(body: dict[str, Any]) -> str:
    """Compact JSON, as the server sends it (Starlette's JSONResponse does the same)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Replay(Exception):  # not an error: the answer is already there
    """The same request finished while this one was starting: answer as it did."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("answered before")
        self.answer = answer


class KeyConflict(ConflictError):
    """The key refuses this request (in progress, or used for another): no answer to keep."""


class IdempotentCall:
    """One write request under a key (already scoped to its caller)."""

    def __init__(self, engine: Engine, key: str, request_hash: str) -> None:
        self.engine, self.key, self.request_hash = engine, key, request_hash

    def remembered(self) -> Answer | None:
        """The first answer to this request, or None if it has not run."""
        row = self.engine.conn.execute(
            "SELECT * FROM idempotent_requests WHERE key = ?", (self.key,)
        ).fetchone()
        return None if row is None else self._answer(row)

    @contextmanager
    def claimed_by_first_write(self) -> Iterator[None]:
        """Run the request inside this: its first write transaction claims the key."""
        self.engine.store.run_first_in_next_write(self._claim)
        try:
            yield
        finally:
            self.engine.store.run_first_in_next_write(None)

    @property
    def claimed(self) -> bool:
        """Whether the request's first write, and with it the claim, committed."""
        return self.engine.store.first_write_committed

    def remember(self, http_status: int, body: dict[str, Any]) -> str:
        """Keep the answer for a retry; returns it as JSON text, to be sent as it is."""
        claimed, response = self.claimed, as_json(body)
        with self.engine.write(durable=False) as conn:  # made durable by the next durable commit
            if claimed:
                conn.execute(
                    "UPDATE idempotent_requests SET status = ?, http_status = ?, response = ? "
                    "WHERE key = ?",
                    (DONE, http_status, response, self.key),
                )
            else:  # it wrote nothing; a duplicate that did write keeps its own answer
                conn.execute(
                    "INSERT OR IGNORE INTO idempotent_requests "
                    "(key, request_hash, status, http_status, response, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (self.key, self.request_hash, DONE, http_status, response, self.engine.now()),
                )
        return response

    def forget(self) -> None:
        """Release the claim of a request that failed in a way worth retrying (a bug, a
        provider that was unavailable)."""
        if not self.claimed:
            return
        with self.engine.write(durable=False) as conn:
            conn.execute(
                "DELETE FROM idempotent_requests WHERE key = ? AND status = ?",
                (self.key, IN_PROGRESS),
            )

    def _claim(self, conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT * FROM idempotent_requests WHERE key = ?", (self.key,)
        ).fetchone()
        if row is not None:
            raise Replay(self._answer(row))
        conn.execute(
            "INSERT INTO idempotent_requests (key, request_hash, status, created_at) "
            "VALUES (?, ?, ?, ?)",
            (self.key, self.request_hash, IN_PROGRESS, self.engine.now()),
        )

    def _answer(self, row: sqlite3.Row) -> Answer:
        if row["request_hash"] != self.request_hash:
            raise KeyConflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
                recovery="use a new key for a new request",
            )
        if row["status"] == IN_PROGRESS:
            raise KeyConflict(
                "request_in_progress",
                "the first request with this key is running",
                recovery="retry in a moment",
            )
        return row["http_status"], json.loads(row["response"])
