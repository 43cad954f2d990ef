"""Remembered answers for HTTP write requests that carry an ``Idempotency-Key``.

A remote client retries a write after a network error without knowing whether the first
attempt ran. A retry with the same key and body gets the first answer back instead of running
again; one that arrives while the first is still running is told to wait
(``request_in_progress``, with a ``Retry-After``).

The key is claimed inside the request's own first write transaction, not one of its own: a
duplicate that starts meanwhile queues on the writer lock and then finds the claim. How the
answer is kept depends on the endpoint:

- **Atomic** (every endpoint that never waits on the network): the request's first write
  transaction stays open until its answer is written, so the claim, the work and the answer
  commit together or not at all. A worker killed mid-request leaves nothing, and a retry runs
  the request; one killed after the commit left the answer, and a retry gets it.
- **Claimed** (``calls_out`` endpoints, which must not hold the writer lock while they wait on
  a provider or a mail server): the claim commits with the first write, the answer in a last
  transaction. The claim names its owner (host, process id and start time, and the attempt)
  and holds a lease, renewed by each later write of the request. A duplicate that finds the
  claim of a process that is gone (on this host) or whose lease has passed takes it over and
  runs the request again; these endpoints are made to be run again (two-phase provider calls
  under their own keys; an effect that an earlier attempt of the same request left, found by
  its events' ``request_key``, is answered as that attempt would have answered).

Answers are kept 24 hours (Stripe's window): a lookup ignores older ones, and each claim
deletes a few of them. A request that writes nothing claims nothing until its answer is kept;
running it again would change nothing either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from checkout_cli.engine import settings
from checkout_cli.engine.core import Engine, iso, parse_iso
from checkout_cli.engine.store import RequestWrites
from checkout_cli.errors import ConflictError

IN_PROGRESS, DONE = "in_progress", "done"
KEEP_ANSWERS = timedelta(hours=24)
EXPIRED_PER_CLAIM = 16  # answers past KEEP_ANSWERS deleted by each claim
# The lease covers the slowest step between two writes of a request: a provider call and the
# SDK's one retry (payments/stripe.py, payments/mollie.py), or a delivery to a mail server
# (its 30 s timeout, within the margin).
PROVIDER_ATTEMPTS = 2
LEASE_MARGIN_SECONDS = 60
RETRY_AFTER_SECONDS = 1

Answer = tuple[int, dict[str, Any]]  # (HTTP status, response body)
log = logging.getLogger(__name__)


def request_hash(service: str, name: str, body: dict[str, Any]) -> str:
    """What makes two requests "the same" for a key: the endpoint and the body."""
    return hashlib.sha256(json.dumps([service, name, body], sort_keys=True).encode()).hexdigest()


def as_json(body: dict[str, Any]) -> str:
    """Compact JSON, as the server sends it (Starlette's JSONResponse does the same)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def without_secrets(result: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The result to remember for an endpoint whose answer holds secrets: the request
    succeeded, but a replay does not show them again."""
    if not fields:
        return result
    names = ", ".join(fields)
    warning = {
        "code": "secret_not_replayed",
        "message": f"the request succeeded; its {names} is shown only in the first answer",
    }
    return {
        **result,
        **dict.fromkeys(fields),
        "warnings": [*result.get("warnings", []), warning],
    }


class Replay(Exception):  # not an error: the answer is already there
    """The same request finished while this one was starting: answer as it did."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("answered before")
        self.answer = answer


class KeyConflict(ConflictError):
    """The key refuses this request (in progress, or used for another): no answer to keep."""

    retry_after: int | None = None


_process: tuple[int, str] | None = None


def process_owner() -> str:
    """This process as a claim's owner: host, pid and start time (a recycled pid differs)."""
    global _process
    pid = os.getpid()
    if _process is None or _process[0] != pid:
        import psutil

        started = psutil.Process(pid).create_time()
        _process = (pid, f"{socket.gethostname()}/{pid}/{started:.2f}")
    return _process[1]


def owner_gone(owner: str) -> bool:
    """Whether the process that owns a claim is known to be gone: on this host, its pid is
    not running or is another process now. Another host's processes cannot be seen."""
    import psutil

    host, pid, started = owner.split("/")[:3]
    if host != socket.gethostname():
        return False
    try:
        process = psutil.Process(int(pid))
        return process.status() == psutil.STATUS_ZOMBIE or f"{process.create_time():.2f}" != started
    except psutil.NoSuchProcess:  # a zombie too: killed, not yet reaped
        return True
    except psutil.Error:  # not ours to look at: cannot tell, the lease decides
        return False


class IdempotentCall:
    """One write request under a key (already scoped to its caller)."""

    def __init__(self, engine: Engine, key: str, request_hash: str, *, atomic: bool) -> None:
        self.engine, self.key, self.request_hash = engine, key, request_hash
        self.atomic = atomic
        self.owner = f"{process_owner()}/{secrets.token_hex(4)}"  # this attempt
        self._writes: RequestWrites | None = None

    def remembered(self) -> Answer | None:
        """The first answer to this request, or None if it is to run (it has not, or its
        claim is stale). Raises KeyConflict while a live claim holds the key."""
        row = self.engine.conn.execute(
            "SELECT * FROM idempotent_requests WHERE key = ?", (self.key,)
        ).fetchone()
        return None if row is None else self._answer(row, self.engine.clock())

    @contextmanager
    def running(self) -> Iterator[None]:
        """Run the request, and remember its answer, inside this: its first write claims the
        key; atomic, all its writes commit together when the block ends."""
        with self.engine.store.request(self._on_write, atomic=self.atomic) as writes:
            self._writes = writes
            yield

    def remember(
        self, http_status: int, body: dict[str, Any], kept: dict[str, Any] | None = None
    ) -> str:
        """Keep the answer (``kept``, if what is sent must not be kept) for a retry; returns
        ``body`` as JSON text, to be sent as it is. Inside ``running()``."""
        sent = as_json(body)
        with self.engine.write(durable=False) as conn:  # made durable by the next durable commit
            conn.execute(
                "UPDATE idempotent_requests SET status = ?, http_status = ?, response = ?, "
                "lease_until = NULL WHERE key = ? AND owner = ?",
                (DONE, http_status, sent if kept is None else as_json(kept), self.key, self.owner),
            )  # no row: another attempt took the claim over, and its answer is the one kept
        return sent

    def forget(self) -> None:
        """After ``running()``: release the claim of a request that failed in a way worth
        retrying (a bug, a provider that was unavailable). Atomic: nothing was kept."""
        if self.atomic or self._writes is None or not self._writes.committed:
            return
        with self.engine.write(durable=False) as conn:
            conn.execute(
                "DELETE FROM idempotent_requests WHERE key = ? AND owner = ? AND status = ?",
                (self.key, self.owner, IN_PROGRESS),
            )

    def _on_write(self, conn: sqlite3.Connection) -> None:
        now = self.engine.clock()
        lease_until = iso(now + self._lease(conn))
        row = conn.execute(
            "SELECT * FROM idempotent_requests WHERE key = ?", (self.key,)
        ).fetchone()
        if row is not None and row["owner"] == self.owner:  # claimed: each write renews it
            conn.execute(
                "UPDATE idempotent_requests SET lease_until = ? WHERE key = ?",
                (lease_until, self.key),
            )
            return
        if self._writes is not None and self._writes.committed:
            # Our claim was taken over meanwhile (lease passed): both attempts run to the
            # end; the endpoints that keep a claim across transactions are safe to run twice.
            return
        self._delete_expired(conn, now)
        if row is not None:
            answer = self._answer(row, now)
            if answer is not None:
                raise Replay(answer)
            if row["status"] == IN_PROGRESS and row["created_at"] >= self._cutoff(now):
                log.warning(
                    "idempotency claim of %s taken over: its process is gone or its lease "
                    "passed; the request runs again",
                    row["owner"] or "an earlier version",
                )
        conn.execute(
            "INSERT INTO idempotent_requests "
            "(key, request_hash, status, owner, lease_until, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "request_hash = excluded.request_hash, status = excluded.status, "
            "owner = excluded.owner, lease_until = excluded.lease_until, "
            "created_at = excluded.created_at, http_status = NULL, response = NULL",
            (self.key, self.request_hash, IN_PROGRESS, self.owner, lease_until, iso(now)),
        )

    def _lease(self, conn: sqlite3.Connection) -> timedelta:
        provider = settings.read(conn, "provider_timeout_seconds")
        return timedelta(seconds=PROVIDER_ATTEMPTS * provider + LEASE_MARGIN_SECONDS)

    @staticmethod
    def _cutoff(now: datetime) -> str:
        return iso(now - KEEP_ANSWERS)

    def _delete_expired(self, conn: sqlite3.Connection, now: datetime) -> None:
        conn.execute(
            "DELETE FROM idempotent_requests WHERE key IN (SELECT key FROM "
            "idempotent_requests WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            (self._cutoff(now), EXPIRED_PER_CLAIM),
        )

    def _answer(self, row: sqlite3.Row, now: datetime) -> Answer | None:
        if row["created_at"] < self._cutoff(now):
            return None  # kept past its window: the key starts afresh
        if row["request_hash"] != self.request_hash:
            raise KeyConflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
                recovery="use a new key for a new request",
            )
        if row["status"] == DONE:
            return row["http_status"], json.loads(row["response"])
        if self._stale(row, now):
            return None
        conflict = KeyConflict(
            "request_in_progress",
            "the first request with this key is still running",
            recovery=f"retry with the same key in {RETRY_AFTER_SECONDS} s",
        )
        conflict.retry_after = RETRY_AFTER_SECONDS
        raise conflict

    @staticmethod
    def _stale(row: sqlite3.Row, now: datetime) -> bool:
        """A claim nobody is running any more: its lease passed or its process is gone.
        (A claim from before leases existed has neither.)"""
        if row["owner"] is None or row["lease_until"] is None:
            return True
        return parse_iso(row["lease_until"]) <= now or owner_gone(row["owner"])
