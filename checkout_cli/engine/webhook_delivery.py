"""Sending queued webhook deliveries: claim one in a short transaction, POST it with no lock
held, record what the receiver answered.

A delivery is ``queued`` → ``sending`` (claimed, its ``claimed_at`` set) → ``delivered`` on a
2xx, ``failed`` (retried after an exponential backoff) on any other answer, a timeout or a
refused connection, ``dead`` after ``webhook_max_attempts`` or when the receiver answers 410
(its subscription is then disabled). A delivery left ``sending`` by a process killed mid-send
is claimed again once its lease (3× the timeout) runs out: a receiver may see it twice, with
the same ``Checkout-Delivery-Id`` both times, and drops the duplicate.

Delivery runs after the change's commit: ``after_commit`` sends inline (a short timeout) in
the CLI's own process, and only wakes ``checkout serve``'s delivery thread when served.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from checkout_cli.config import StoreTarget
from checkout_cli.engine import network, settings, webhook_signing
from checkout_cli.engine.core import Engine, iso
from checkout_cli.errors import UnavailableError

BODY_KEPT = 1000
MAX_BACKOFF_SECONDS = 3600
LEASE_TIMEOUTS = 3  # a claim older than this many timeouts was left by a killed process
INLINE_TIMEOUT_SECONDS = 3  # the CLI waits at most this long per delivery after a change
USER_AGENT = "checkout-cli-webhooks/1"

# Set by `checkout serve`: wakes its delivery thread instead of sending in the request.
_wake: Callable[[], None] | None = None


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    url: str
    status: str
    response_status: int | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "subscription_id": self.subscription_id,
            "status": self.status,
            "response_status": self.response_status,
            "error": self.error,
        }


def timeout_seconds(conn: sqlite3.Connection) -> int:
    return max(int(settings.read(conn, "webhook_timeout_seconds")), 1)


def lease(conn: sqlite3.Connection) -> timedelta:
    return timedelta(seconds=LEASE_TIMEOUTS * timeout_seconds(conn))


def backoff(conn: sqlite3.Connection, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: base, 2×base, 4×base … ≤ 1 h."""
    base = int(settings.read(conn, "webhook_retry_base_seconds"))
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


_DUE = (
    "SELECT d.*, e.public_id AS event_public_id, e.type AS event_type, e.payload, "
    "s.public_id AS subscription_public_id, s.url, s.secret_name "
    "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
    "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
    "WHERE s.status = 'active' AND ((d.status IN ('queued', 'failed') AND d.next_attempt_at <= ?) "
    "OR (d.status = 'sending' AND d.claimed_at <= ?))"
)


def claim(
    engine: Engine, subscription_id: int | None = None, skip: tuple[int, ...] = ()
) -> sqlite3.Row | None:
    """Take one due delivery (a short transaction, no network), none of ``skip``."""
    with engine.write(durable=False) as conn:
        now = engine.clock()
        stale = iso(now - lease(conn))
        sql = _DUE
        params: list[Any] = [iso(now), stale]
        if subscription_id is not None:
            sql += " AND d.subscription_id = ?"
            params.append(subscription_id)
        if skip:
            sql += f" AND d.id NOT IN ({', '.join('?' * len(skip))})"
            params.extend(skip)
        row: sqlite3.Row | None = conn.execute(
            sql + " ORDER BY d.next_attempt_at, d.id LIMIT 1", params
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE webhook_deliveries SET status = 'sending', claimed_at = ?, "
            "attempts = attempts + 1 WHERE id = ?",
            (iso(now), row["id"]),
        )
        return row


def _post(url: str, body: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    import httpx

    network.check(url)
    response = httpx.post(url, content=body.encode(), headers=headers, timeout=timeout)
    return response.status_code, response.text[:BODY_KEPT]


def send(engine: Engine, row: sqlite3.Row, timeout: float | None = None) -> Outcome:
    """POST a claimed delivery (no lock held) and record the answer."""
    import httpx

    secret = webhook_signing.load_secret(engine.conn, row["secret_name"])
    body = row["payload"]
    status_code: int | None = None
    text: str | None = None
    error: str | None = None
    if secret is None:
        error = "the subscription's signing secret is missing from the vault"
    else:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            webhook_signing.SIGNATURE_HEADER: webhook_signing.sign(secret, body),
            webhook_signing.EVENT_ID_HEADER: row["event_public_id"],
            webhook_signing.DELIVERY_ID_HEADER: row["public_id"],
        }
        wait = timeout if timeout is not None else timeout_seconds(engine.conn)
        try:
            status_code, text = _post(row["url"], body, headers, wait)
        except httpx.TimeoutException:
            error = f"timed out after {wait:g} s"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # ValueError: a URL httpx cannot even parse (a port past 65535, a bad IPv6 host);
            # a failed attempt like any other, never the end of the run for the others.
            error = f"{type(exc).__name__}: {exc}"[:BODY_KEPT]
    return record(engine, row, status_code, text, error)


def record(
    engine: Engine,
    row: sqlite3.Row,
    status_code: int | None,
    text: str | None,
    error: str | None,
) -> Outcome:
    with engine.write() as conn:
        now = engine.clock()
        if status_code is not None and 200 <= status_code < 300:
            status, next_at = "delivered", None
        elif status_code == 410:
            status, next_at = "dead", None
            error = "the receiver answered 410 Gone: unsubscribed"
            conn.execute(
                "UPDATE webhook_subscriptions SET status = 'disabled', disabled_at = ?, "
                "disabled_reason = ? WHERE id = ? AND status = 'active'",
                (iso(now), f"{row['url']} answered 410 Gone", row["subscription_id"]),
            )
        else:
            if error is None:
                error = f"the receiver answered {status_code}"
            attempts = conn.execute(
                "SELECT attempts FROM webhook_deliveries WHERE id = ?", (row["id"],)
            ).fetchone()["attempts"]
            if attempts >= int(settings.read(conn, "webhook_max_attempts")):
                status, next_at = "dead", None
            else:
                status, next_at = "failed", iso(now + backoff(conn, attempts))
        conn.execute(
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, claimed_at = NULL, "
            "response_status = ?, response_body = ?, last_error = ?, delivered_at = ? "
            "WHERE id = ?",
            (
                status,
                next_at,
                status_code,
                text,
                None if status == "delivered" else error,
                iso(now) if status == "delivered" else None,
                row["id"],
            ),
        )
    return Outcome(
        row["public_id"],
        row["event_public_id"],
        row["event_type"],
        row["subscription_public_id"],
        row["url"],
        status,
        status_code,
        None if status == "delivered" else error,
    )


def deliver_due(
    engine: Engine,
    *,
    limit: int = 100,
    timeout: float | None = None,
    subscription_id: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Send what is due now (at most ``limit`` attempts, one per delivery: a failure waits
    for its backoff and the next run); each is claimed before it is sent."""
    outcomes: list[Outcome] = []
    tried: list[int] = []
    while len(outcomes) < limit:
        row = claim(engine, subscription_id, tuple(tried))
        if row is None:
            break
        tried.append(row["id"])
        outcome = send(engine, row, timeout)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def anything_queued(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM webhook_deliveries WHERE status IN ('queued', 'failed', 'sending') "
            "LIMIT 1"
        ).fetchone()
        is not None
    )


def after_commit(engine: Engine) -> None:
    """After a change committed: wake the server's delivery thread, or (the CLI) send now
    with a short timeout. A failure stays queued for a retry; it never fails the change."""
    if _wake is not None:
        _wake()
        return
    if not network.allowed():
        return  # `checkout events deliver` or the next change sends it
    try:
        if not anything_queued(engine.conn):
            return
        deliver_due(
            engine, limit=20, timeout=min(INLINE_TIMEOUT_SECONDS, timeout_seconds(engine.conn))
        )
    except Exception:
        import logging

        logging.getLogger("checkout.webhooks").exception("webhook delivery after commit failed")


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = {s: 0 for s in ("delivered", "failed", "dead")}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return {
        "attempted": len(outcomes),
        **counts,
        "deliveries": [o.as_dict() for o in outcomes],
    }


class DeliveryThread:
    """`checkout serve`'s sender: wakes every second (or when a change signals it) and sends
    what is due, on its own connection, never inside a request."""

    def __init__(self, db_path: StoreTarget, interval: float = 1.0) -> None:
        self.db_path = db_path
        self.interval = interval
        self._event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-delivery", daemon=True)

    def wake(self) -> None:
        self._event.set()

    def start(self) -> None:
        global _wake
        _wake = self.wake
        self._thread.start()

    def stop(self) -> None:
        global _wake
        if _wake == self.wake:
            _wake = None
        self._stop.set()
        self._event.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import logging

        log = logging.getLogger("checkout.webhooks")
        engine: Engine | None = None  # opened in the loop: a database down now may be back
        waiting = False  # the database is unreachable: said once per outage, not every second
        try:
            while not self._stop.is_set():
                self._event.wait(self.interval)
                self._event.clear()
                if self._stop.is_set():
                    break
                try:
                    engine = engine or Engine(self.db_path, actor="webhooks")
                    deliver_due(engine)
                    waiting = False
                except UnavailableError as exc:
                    if not waiting:
                        log.warning("webhook delivery waits for the database: %s", exc.message)
                    waiting = True
                except Exception:
                    log.exception("webhook delivery failed")
        finally:
            if engine is not None:
                engine.close()
