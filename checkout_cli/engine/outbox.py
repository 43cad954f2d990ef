"""The outbox: confirmation emails queued in the completing transaction, delivered after.

A row is claimed (``queued``/``failed`` -> ``sending``) in a short transaction before the
transport runs and marked ``sent`` or ``failed`` after, so two processes never deliver the
same email and the write lock is never held while talking to a mail server. Claims and marks
are bookkeeping commits without their own fsync (``write(durable=False)``): a killed process
loses none of them; only a power cut could undo the last ones and let an email go twice. On
PostgreSQL a claim or mark that a concurrent write aborted runs again on its own: a lost mark
would leave a delivered email ``sending`` (and ``--retry-stuck`` would send it twice).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import emails, settings, vault
from checkout_cli.engine.core import Engine
from checkout_cli.engine.mail import DeliveryFailed, transport_for, uses_password
from checkout_cli.engine.paging import page
from checkout_cli.engine.store import WriteConflict

log = logging.getLogger(__name__)
BOOKKEEPING_ATTEMPTS = 20  # a claim or mark aborted for a concurrent write runs again


def queue_confirmation(engine: Engine, conn: sqlite3.Connection, row: sqlite3.Row) -> None:
    """The confirmation of the order ``row`` (as the completing transaction holds it)."""
    from checkout_cli.engine.orders import order_object

    order_row_id = row["id"]
    order = order_object(conn, row)
    shop = settings.read(conn, "shop_name")
    conn.execute(
        "INSERT INTO outbox (order_id, kind, recipient, subject, body_text, body_html, status, "
        "created_at) VALUES (?, 'order_confirmation', ?, ?, ?, ?, 'queued', ?) "
        "ON CONFLICT(order_id, kind) DO NOTHING",
        (
            order_row_id,
            order["customer"]["email"],
            emails.subject(shop, order),
            emails.render_text(shop, order),
            emails.render_html(shop, order),
            engine.now(),
        ),
    )


def order_email_kind(conn: sqlite3.Connection, event: str, key: str) -> str | None:
    """The outbox kind ``queue_order_email`` will give this event's email, or None when the
    shop has it switched off: the event names it, so doctor can tell one is missing."""
    return f"{event}:{key}" if settings.read(conn, f"email_{event}") else None


def queue_order_email(
    engine: Engine,
    conn: sqlite3.Connection,
    order_row_id: int,
    event: str,
    key: str,
    message: emails.OrderMessage,
) -> bool:
    """Queue one email of an order's life (``event``: payment_received, refund, cancellation,
    shipped) unless the shop switched it off (setting ``email_EVENT``); True if queued now
    (False: switched off, or queued already).

    Its kind is ``EVENT:KEY`` (the payment, refund or shipment it tells of), so the UNIQUE
    (order_id, kind) makes it one email per event, however often the change is retried.
    """
    if not settings.read(conn, f"email_{event}"):
        return False
    recipient = conn.execute(
        "SELECT json_extract(customer, '$.email') FROM orders WHERE id = ?", (order_row_id,)
    ).fetchone()[0]
    added = conn.execute(
        "INSERT INTO outbox (order_id, kind, recipient, subject, body_text, body_html, status, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT(order_id, kind) DO NOTHING",
        (
            order_row_id,
            f"{event}:{key}",
            recipient,
            message.subject,
            message.text,
            message.html,
            engine.now(),
        ),
    ).rowcount
    return added == 1


def _error_text(exc: Exception) -> str:
    """What went wrong, for ``last_error``. A transport's own failure comes redacted by the
    transport (it alone knows every form in which it sent the password)."""
    error = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
    return error[:500]


def _bookkeeping(engine: Engine, sql: str, params: tuple[Any, ...]) -> int:
    """One claim or mark in a transaction of its own; its rowcount. Aborted for a concurrent
    write (PostgreSQL), it alone runs again: the call around it cannot, once the email may
    be out. Inside a request's open transaction the abort is the request's to handle."""
    for attempt in range(BOOKKEEPING_ATTEMPTS - 1):
        try:
            with engine.write(durable=False) as tx:
                return int(tx.execute(sql, params).rowcount)
        except WriteConflict:
            if engine.store.in_request_transaction:
                raise
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
    with engine.write(durable=False) as tx:  # the last attempt: a conflict now goes up
        return int(tx.execute(sql, params).rowcount)


def _deliver(engine: Engine, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    if not rows:
        return []
    conn = engine.conn
    config = settings.read_all(conn)
    password = vault.secret(conn, "smtp_password") if uses_password(config) else None
    transport = transport_for(config, password, engine.data_dir)
    results = []
    for row in rows:
        claimed = _bookkeeping(
            engine,
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_at = ? "
            "WHERE id = ? AND status IN ('queued', 'failed')",
            (engine.now(), row["id"]),
        )
        if not claimed:
            continue
        # Everything between the claim and the result is inside the try: whatever fails
        # (building the message included) is recorded as ``failed``, never left ``sending``.
        try:
            message = emails.build_message(
                config["shop_email"],
                config["shop_name"],
                row["recipient"],
                row["subject"],
                row["body_text"],
                row["body_html"],
                engine.clock(),
            )
            transport.send(message, row["name"])
        except Exception as exc:  # any failure leaves the email queued for retry
            error = _error_text(exc)
            _bookkeeping(
                engine,
                "UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?",
                (error, row["id"]),
            )
            results.append({"id": row["id"], "status": "failed", "error": error})
            continue
        _bookkeeping(
            engine,
            "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
            (engine.now(), row["id"]),
        )
        results.append({"id": row["id"], "status": "sent", "error": None})
    return results


def _deliver_after_commit(engine: Engine, rows: list[sqlite3.Row]) -> None:
    """Delivery that follows a committed write: it may fail, the write it follows may not.

    A transport failure is recorded on the row by ``_deliver``; anything else (a busy store
    while claiming, say) leaves the row queued for ``checkout outbox send``.
    """
    try:
        _deliver(engine, rows)
    except Exception as exc:
        log.warning(
            "email delivery deferred, the outbox keeps it (`checkout outbox send`): %s",
            _error_text(exc),
        )


# The file name of a message: the order number (with the kind after it for an email of the
# order's life, ``2026-000042-shipped-3``, so it never overwrites the confirmation), or the
# checkout for a payment link.
_ROWS = (
    "SELECT o.*, ord.order_number, COALESCE(ord.order_number || CASE o.kind WHEN "
    "'order_confirmation' THEN '' ELSE '-' || replace(o.kind, ':', '-') END, "
    "c.token || '-payment-link-' || o.id) AS name, c.token AS checkout_token FROM outbox o "
    "LEFT JOIN orders ord ON ord.id = o.order_id LEFT JOIN checkouts c ON c.id = "
    "COALESCE(o.checkout_id, ord.checkout_id)"
)
# A smoke run's email is rendered and queued like any other, and never sent.
_PENDING = _ROWS + " WHERE o.status IN ('queued', 'failed') AND c.test_run IS NULL"


def queue_payment_link(
    engine: Engine,
    conn: sqlite3.Connection,
    checkout_id: int,
    url: str,
    amount_cents: int | None = None,
) -> bool:
    """Queue the payment link to the customer when the shop says so; True if queued.
    ``amount_cents``: what the link asks for, when not the checkout's total (an order's
    balance)."""
    from checkout_cli.engine.core import loads

    if not settings.read(conn, "email_payment_links"):
        return False
    co = conn.execute("SELECT * FROM checkouts WHERE id = ?", (checkout_id,)).fetchone()
    customer = loads(co["customer"]) or {}
    shop = settings.read(conn, "shop_name")
    amount = co["total_cents"] if amount_cents is None else amount_cents
    conn.execute(
        "INSERT INTO outbox (checkout_id, kind, recipient, subject, body_text, body_html, status, "
        "created_at) VALUES (?, 'payment_link', ?, ?, ?, ?, 'queued', ?)",
        (
            checkout_id,
            customer["email"],
            emails.payment_link_subject(shop),
            emails.payment_link_text(shop, customer["name"], url, amount, co["currency"]),
            emails.payment_link_html(shop, customer["name"], url, amount, co["currency"]),
            engine.now(),
        ),
    )
    return True


def deliver_for_checkout(engine: Engine, checkout_id: int) -> None:
    """Deliver a checkout's queued payment link (after its transaction committed)."""
    rows = engine.conn.execute(_PENDING + " AND o.checkout_id = ?", (checkout_id,)).fetchall()
    _deliver_after_commit(engine, rows)


def deliver_for_order(engine: Engine, order_id: str) -> None:
    """Deliver a just-completed order's email; a failure stays queued (see ``send-outbox``)."""
    rows = engine.conn.execute(_PENDING + " AND ord.order_id = ?", (order_id,)).fetchall()
    _deliver_after_commit(engine, rows)
    from checkout_cli.engine import webhook_delivery

    webhook_delivery.after_commit(engine)  # and the order's events to webhook subscribers


STUCK_AFTER_MINUTES = 10


def release_stuck(engine: Engine) -> int:
    """Make emails left ``sending`` by a killed process retryable. They may have gone out
    already (the kill came after the server accepted them), so only an operator asks."""
    from datetime import timedelta

    from checkout_cli.engine.core import iso

    cutoff = iso(engine.clock() - timedelta(minutes=STUCK_AFTER_MINUTES))
    with engine.write() as conn:
        return conn.execute(
            "UPDATE outbox SET status = 'failed', last_error = ? "
            "WHERE status = 'sending' AND (claimed_at IS NULL OR claimed_at <= ?)",
            ("interrupted while sending; it may have been delivered", cutoff),
        ).rowcount


def retry_after(engine: Engine, claimed_at: str | None) -> str | None:
    """When an email left ``sending`` at ``claimed_at`` may be retried (None: already)."""
    from datetime import datetime, timedelta

    from checkout_cli.engine.core import iso

    if claimed_at is None:
        return None
    at = datetime.fromisoformat(claimed_at) + timedelta(minutes=STUCK_AFTER_MINUTES)
    return iso(at) if at > engine.clock() else None


def still_sending(engine: Engine) -> list[dict[str, Any]]:
    """Half-sent emails still inside their grace period, with when each may be retried."""
    rows = engine.conn.execute(
        "SELECT id, recipient, claimed_at FROM outbox WHERE status = 'sending' ORDER BY claimed_at"
    ).fetchall()
    found = []
    for r in rows:
        if at := retry_after(engine, r["claimed_at"]):
            entry = {"id": r["id"], "recipient": r["recipient"], "retry_after": at}
            found.append(entry | {"retry_in_minutes": minutes_until(engine, at)})
    return found


def minutes_until(engine: Engine, at: str) -> int:
    """Whole minutes from now until ``at``, rounded up."""
    from datetime import datetime

    seconds = (datetime.fromisoformat(at) - engine.clock()).total_seconds()
    return max(1, -(-int(seconds) // 60))


def send_outbox(engine: Engine, body: requests.SendOutbox) -> dict[str, Any]:
    released = release_stuck(engine) if body.retry_stuck else 0
    rows = engine.conn.execute(
        _PENDING + " ORDER BY o.id LIMIT ?", (body.limit or 1000,)
    ).fetchall()
    results = _deliver(engine, rows)
    return {
        "sent": sum(r["status"] == "sent" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
        "released": released,
        # still in their grace period: a process may be sending them right now
        "waiting": still_sending(engine),
        "results": results,
    }


def list_outbox(engine: Engine, body: requests.ListOutbox) -> dict[str, Any]:
    sql = (
        "SELECT o.id, ord.order_number, c.token AS checkout_token, o.kind, o.recipient, "
        "o.subject, o.status, o.attempts, o.last_error, o.created_at, o.sent_at FROM outbox o "
        "LEFT JOIN orders ord ON ord.id = o.order_id LEFT JOIN checkouts c ON c.id = "
        "COALESCE(o.checkout_id, ord.checkout_id)"
    )
    sql += " WHERE c.test_run IS NULL"  # not a smoke run's
    params: list[Any] = []
    if status := body.status:
        sql += " AND o.status = ?"
        params.append(status)
    with engine.read() as conn:
        rows, paging = page(conn, sql, params, "o.id DESC", body, default_limit=100)
    return {"emails": [dict(r) for r in rows], **paging}
