"""Refunds at the provider, in two phases like payments, and ``checkout-admin/refund-payment``.

A refund is: transaction 1 records the attempt (status ``creating``, idempotency key
``{checkout}-refund-{payment}-{n}``) → the provider call with that key, no lock held →
transaction 2 records the result (``pending``: accepted, not yet settled; ``succeeded``;
``failed``). An attempt left ``creating`` by a timeout or a crash is resumed with its own key,
so the provider hands back the same refund instead of making a second one. Every step is an
event on the checkout's timeline.

An order's refunds (``order_refunds``) are the same attempts, of any amount up to what the
payment has left, naming their order: when the result of one lands, whoever records it (the
refund itself, a retry, a webhook, reconcile), the order's amounts and statuses are
recomputed and its customer told, once (``order_refund_effects``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import events, order_refund_effects, strays
from checkout_cli.engine.checkout_records import load_checkout
from checkout_cli.engine.core import Engine
from checkout_cli.engine.provider_payments import PROVIDERS, apply_status, provider_for, unchanged
from checkout_cli.errors import CheckoutError, ConflictError, NotFoundError, PaymentError
from checkout_cli.payments.base import (
    PAID,
    REFUND_FAILED,
    REFUND_PENDING,
    Provider,
    ProviderRefund,
    RefundRequest,
    WebhookNotice,
)

ACCEPTED = ("pending", "succeeded")
# What blocks completing a checkout: a refund accepted, or one whose outcome is not known yet.
UNDER_WAY = ("creating", *ACCEPTED)

Guard = Callable[[sqlite3.Connection, sqlite3.Row], None]


def latest(
    conn: sqlite3.Connection, payment_id: int, statuses: tuple[str, ...]
) -> sqlite3.Row | None:
    """The newest refund of a payment in one of ``statuses``."""
    marks = ", ".join("?" * len(statuses))
    return conn.execute(
        f"SELECT * FROM refunds WHERE payment_id = ? AND status IN ({marks}) "
        "ORDER BY id DESC LIMIT 1",
        (payment_id, *statuses),
    ).fetchone()


def refund_in_full(
    engine: Engine, payment_id: int, reason: str, guard: Guard | None = None
) -> sqlite3.Row:
    """Refund a paid Stripe/Mollie payment's whole amount; returns the refund row.

    Idempotent: a refund already accepted is returned as it is, one left ``creating`` is
    resumed with its key. ``guard`` runs inside the first transaction (it may refuse). A
    refusal by the provider is recorded (``failed``) and raised as ``refund_failed``; no
    answer leaves the attempt to be resumed and raises the provider's error.
    """
    with engine.write() as conn:
        payment = conn.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
        co = conn.execute(
            "SELECT * FROM checkouts WHERE id = ?", (payment["checkout_id"],)
        ).fetchone()
        done = latest(conn, payment_id, ACCEPTED)
        if done is not None:
            return done
        if guard is not None:
            guard(conn, payment)
        provider_for(conn, payment["provider"])  # configured, before anything is recorded
        attempt = latest(conn, payment_id, ("creating",))
        if attempt is None:
            attempt = _record_attempt(engine, conn, co, payment, reason)
    return run_attempt(engine, attempt["id"])


def run_attempt(engine: Engine, refund_id: int) -> sqlite3.Row:
    """Phases 2 and 3 of a refund recorded ``creating``: the provider call with its key (no
    lock held), then its result. A refusal is recorded ``failed`` and raised as
    ``refund_failed``; no answer leaves it ``creating`` (resumed by the same call again) and
    raises the provider's error."""
    attempt = engine.conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
    payment = engine.conn.execute(
        "SELECT * FROM payments WHERE id = ?", (attempt["payment_id"],)
    ).fetchone()
    co = engine.conn.execute(
        "SELECT * FROM checkouts WHERE id = ?", (attempt["checkout_id"],)
    ).fetchone()
    provider = provider_for(engine.conn, payment["provider"])
    request = RefundRequest(
        idempotency_key=attempt["idempotency_key"],
        provider_payment_id=payment["provider_payment_id"],
        checkout_token=co["token"],
        amount_cents=attempt["amount_cents"],
        currency=attempt["currency"],
        description=attempt["reason"] or f"checkout {co['token']}",
    )
    try:
        result = provider.refund(request)
    except PaymentError as exc:  # refused: nothing was refunded
        _record_failure(engine, attempt["id"], exc.code, exc.message)
        raise _failed(co, payment, exc.message) from None
    except CheckoutError as exc:  # no answer: the refund may or may not exist; resume later
        with engine.write() as conn:
            events.record(
                engine,
                conn,
                co["id"],
                "refund_unanswered",
                detail={"idempotency_key": attempt["idempotency_key"], "message": exc.message},
                order_id=attempt["order_id"],
            )
        raise
    row = _record_result(engine, attempt["id"], result)
    if row["status"] == REFUND_FAILED:
        raise _failed(co, payment, f"{payment['provider']} reports the refund failed")
    return row


def _record_attempt(
    engine: Engine,
    conn: sqlite3.Connection,
    co: sqlite3.Row,
    payment: sqlite3.Row,
    reason: str | None,
    amount_cents: int | None = None,
    order_id: int | None = None,
    request: str | None = None,
) -> sqlite3.Row:
    """Transaction 1: the attempt, with its idempotency key, before the provider is called.
    ``amount_cents`` defaults to the whole payment; ``order_id`` to the order the payment
    completed; ``request`` is what an order refund asked (JSON), to match a retry."""
    number = (
        conn.execute(
            "SELECT COUNT(*) FROM refunds WHERE payment_id = ?", (payment["id"],)
        ).fetchone()[0]
        + 1
    )
    key = f"{co['token']}-refund-{payment['id']}-{number}"
    if order_id is None:
        order = conn.execute(
            "SELECT id FROM orders WHERE payment_id = ?", (payment["id"],)
        ).fetchone()
        order_id = order["id"] if order else None
    amount = payment["amount_cents"] if amount_cents is None else amount_cents
    now = engine.now()
    conn.execute(
        "INSERT INTO refunds (payment_id, checkout_id, order_id, provider, status, amount_cents, "
        "currency, reason, idempotency_key, created_at, updated_at, request) "
        "VALUES (?, ?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?, ?)",
        (
            payment["id"],
            co["id"],
            order_id,
            payment["provider"],
            amount,
            payment["currency"],
            reason,
            key,
            now,
            now,
            request,
        ),
    )
    events.record(
        engine,
        conn,
        co["id"],
        "refund_requested",
        detail={
            "provider": payment["provider"],
            "provider_payment_id": payment["provider_payment_id"],
            "amount_cents": amount,
            "idempotency_key": key,
            "reason": reason,
        },
        order_id=order_id,
    )
    return conn.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (key,)).fetchone()


def _record_failure(engine: Engine, refund_id: int, code: str, message: str) -> None:
    with engine.write() as conn:
        row = conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
        conn.execute(
            "UPDATE refunds SET status = 'failed', updated_at = ? WHERE id = ?",
            (engine.now(), refund_id),
        )
        events.record(
            engine,
            conn,
            row["checkout_id"],
            "refund_failed",
            detail={"provider": row["provider"], "code": code, "message": message},
            order_id=row["order_id"],
        )
        order_refund_effects.landed(engine, conn, row["id"])


def _record_result(engine: Engine, refund_id: int, result: ProviderRefund) -> sqlite3.Row:
    with engine.write() as conn:
        row = conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
        if row["status"] != result.status or row["provider_refund_id"] is None:
            conn.execute(
                "UPDATE refunds SET provider_refund_id = ?, status = ?, updated_at = ? "
                "WHERE id = ?",
                (result.provider_refund_id, result.status, engine.now(), refund_id),
            )
            events.record(
                engine,
                conn,
                row["checkout_id"],
                f"refund_{result.status}",
                detail={
                    "provider": row["provider"],
                    "provider_refund_id": result.provider_refund_id,
                    "provider_status": result.provider_status,
                    "amount_cents": row["amount_cents"],
                },
                order_id=row["order_id"],
            )
            order_refund_effects.landed(engine, conn, refund_id)
        return conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()


def _failed(co: sqlite3.Row, payment: sqlite3.Row, why: str) -> PaymentError:
    return PaymentError(
        "refund_failed",
        f"the refund of {payment['provider']} payment {payment['provider_payment_id']} "
        f"failed: {why}",
        field="checkout_token",
        recovery=f"see why with `checkout inspect {co['token']}`; refund it in the "
        f"{payment['provider']} dashboard if it cannot be done here",
    )


def refund_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "provider_refund_id": row["provider_refund_id"],
        "status": row["status"],
        "amount_cents": row["amount_cents"],
        "currency": row["currency"],
        "reason": row["reason"],
        "created_at": row["created_at"],
    }


def refresh_pending(
    engine: Engine, dry_run: bool, payment_id: int | None = None
) -> list[dict[str, Any]]:
    """Ask the providers about refunds they accepted but have not settled yet (reconcile;
    a payment's webhook, for that payment's refunds: Mollie's tells of its refunds too)."""
    changes = []
    only = "" if payment_id is None else " AND r.payment_id = ?"
    for row in engine.conn.execute(
        "SELECT r.*, p.provider_payment_id, c.token, c.status AS checkout_status FROM refunds r "
        "JOIN payments p ON p.id = r.payment_id JOIN checkouts c ON c.id = r.checkout_id "
        f"WHERE r.status = ? AND r.provider_refund_id IS NOT NULL{only} ORDER BY r.id",
        (REFUND_PENDING,) if payment_id is None else (REFUND_PENDING, payment_id),
    ).fetchall():
        change = unchanged(row["token"], row["provider"], row["checkout_status"])
        try:
            fetched = provider_for(engine.conn, row["provider"]).fetch_refund(
                row["provider_payment_id"], row["provider_refund_id"]
            )
        except CheckoutError as exc:
            changes.append({**change, "action": "error", "provider_status": exc.message})
            continue
        if fetched.status == row["status"]:
            continue
        changes.append(
            {**change, "provider_status": fetched.status, "action": f"refund {fetched.status}"}
        )
        if not dry_run:
            _record_result(engine, row["id"], fetched)
    return changes


# A refund attempt still ``creating`` after this long lost its answer (a timeout, a killed
# process): no call is waiting for it any more, so reconcile may resume it.
UNFINISHED_AFTER_MINUTES = 5


def unfinished_cutoff(engine: Engine) -> str:
    from datetime import timedelta

    from checkout_cli.engine.core import iso

    return iso(engine.clock() - timedelta(minutes=UNFINISHED_AFTER_MINUTES))


def resume_unfinished(engine: Engine, dry_run: bool) -> list[dict[str, Any]]:
    """Resume provider refunds left ``creating`` (reconcile): the same call with the same
    idempotency key, so the provider answers with the refund it made, or makes it once.
    Until then such a refund holds its amount, and nobody may refund it twice."""
    changes = []
    for row in engine.conn.execute(
        "SELECT r.id, r.provider, c.token, c.status AS checkout_status FROM refunds r "
        "JOIN checkouts c ON c.id = r.checkout_id WHERE r.status = 'creating' "
        "AND r.kind = 'provider' AND r.payment_id IS NOT NULL AND r.created_at <= ? "
        "ORDER BY r.id",
        (unfinished_cutoff(engine),),
    ).fetchall():
        change = unchanged(row["token"], row["provider"], row["checkout_status"])
        if dry_run:
            changes.append({**change, "action": "resume unfinished refund"})
            continue
        try:
            done = run_attempt(engine, row["id"])
        except CheckoutError as exc:
            changes.append({**change, "action": "error", "provider_status": exc.message})
            continue
        changes.append(
            {**change, "provider_status": done["status"], "action": f"refund {done['status']}"}
        )
    return changes


# ---- refund states from the providers' webhooks -------------------------------------------
# A webhook is never trusted: each refund it names is fetched again, and only one still
# ``pending`` here moves (through ``_record_result``, which changes a status once, so a
# webhook delivered twice, or crossing reconcile, changes nothing the second time).


def refresh_notified(engine: Engine, provider: Provider, notice: WebhookNotice) -> int:
    """A refund webhook (Stripe): ask about the refunds it names, or, naming none, about
    every pending refund of this provider; returns how many moved."""
    sql = (
        "SELECT r.*, p.provider_payment_id FROM refunds r JOIN payments p ON p.id = r.payment_id "
        "WHERE r.provider = ? AND r.status = ? AND r.provider_refund_id IS NOT NULL"
    )
    params: list[Any] = [provider.name, REFUND_PENDING]
    if notice.refund_ids:
        sql += f" AND r.provider_refund_id IN ({', '.join('?' * len(notice.refund_ids))})"
        params += list(notice.refund_ids)
    moved = 0
    for row in engine.conn.execute(sql + " ORDER BY r.id", params).fetchall():
        fetched = provider.fetch_refund(row["provider_payment_id"], row["provider_refund_id"])
        moved += _settled(engine, row, fetched)
    return moved


def refresh_of_payment(engine: Engine, provider: Provider, payment_id: int) -> int:
    """A payment's webhook (Mollie's is called for its refunds too): its pending refunds, as
    the provider lists them now; returns how many moved. No pending refund: nothing asked."""
    rows = engine.conn.execute(
        "SELECT r.*, p.provider_payment_id FROM refunds r JOIN payments p ON p.id = r.payment_id "
        "WHERE r.payment_id = ? AND r.status = ? AND r.provider_refund_id IS NOT NULL "
        "ORDER BY r.id",
        (payment_id, REFUND_PENDING),
    ).fetchall()
    if not rows or provider.name != "mollie":
        return 0
    listed = {
        r.provider_refund_id: r for r in provider.payment_refunds(rows[0]["provider_payment_id"])
    }
    return sum(
        _settled(engine, row, listed[row["provider_refund_id"]])
        for row in rows
        if row["provider_refund_id"] in listed
    )


def _settled(engine: Engine, row: sqlite3.Row, fetched: ProviderRefund) -> int:
    if fetched.status == row["status"]:
        return 0
    before = row["status"]
    after = _record_result(engine, row["id"], fetched)
    return int(after["status"] != before)


# ---- checkout-admin/refund-payment ---------------------------------------------------------


def refund_payment(engine: Engine, body: requests.RefundPayment) -> dict[str, Any]:
    """Refund a stray payment in full (paid, but no order will account for it)."""

    token, ppid = body.checkout_token, body.provider_payment_id
    co = load_checkout(engine.conn, token)
    payment = engine.conn.execute(
        f"SELECT * FROM payments WHERE checkout_id = ? AND provider_payment_id = ? "
        f"AND provider IN ({', '.join('?' * len(PROVIDERS))})",
        (co["id"], ppid, *PROVIDERS),
    ).fetchone()
    if payment is None:
        raise NotFoundError(
            "payment_not_found",
            f"checkout {token} has no Stripe or Mollie payment {ppid!r}",
            field="provider_payment_id",
            recovery=f"see its payments with `checkout inspect {token}`",
        )
    if payment["status"] != PAID and latest(engine.conn, payment["id"], ACCEPTED) is None:
        # The store may not know yet: ask the provider first (no lock held) and record it.
        fetched = provider_for(engine.conn, payment["provider"]).fetch(ppid)
        apply_status(engine, payment["id"], fetched, "checked")
    payment = engine.conn.execute(
        "SELECT * FROM payments WHERE id = ?", (payment["id"],)
    ).fetchone()
    done = latest(engine.conn, payment["id"], ACCEPTED)
    if done is None and payment["status"] != PAID:
        raise PaymentError(
            "payment_not_paid",
            f"{payment['provider']} payment {ppid} is {payment['status']}: there is nothing to "
            "refund",
            field="provider_payment_id",
        )

    def only_strays(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
        if strays.is_stray(conn, row["id"]):
            return
        order = conn.execute(
            "SELECT order_number FROM orders WHERE checkout_id = ?", (row["checkout_id"],)
        ).fetchone()
        if order is not None:
            raise ConflictError(
                "payment_not_stray",
                f"{row['provider']} payment {ppid} paid order {order['order_number']}; it is "
                "refunded through the order, not as a stray",
                field="provider_payment_id",
                recovery=f"see the order with `checkout orders show {order['order_number']}`",
            )
        raise ConflictError(
            "payment_not_stray",
            f"{row['provider']} payment {ppid} is the payment of open checkout {token}, "
            "which can still be completed",
            field="provider_payment_id",
            recovery=f"complete it: `checkout complete-checkout {token}`, or cancel it with a "
            f"refund: `checkout cancel-checkout {token} --force`",
        )

    refund = done or refund_in_full(
        engine,
        payment["id"],
        body.reason or f"paid without an order (checkout {token})",
        only_strays,
    )
    return {
        "checkout_token": token,
        "provider": payment["provider"],
        "provider_payment_id": ppid,
        "already_refunded": done is not None,
        "refund": refund_object(refund),
    }
