"""Bringing the store up to date with the providers: a provider's webhook, and ``reconcile``
(pending payments asked about, checkouts past their TTL expired, refunds still pending, strays
reported). Above ``checkouts`` (a paid checkout may complete itself), ``provider_payments``
and ``refunds``, which none of them import.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import checkout_records as records
from checkout_cli.engine import checkouts, refunds, settings, strays
from checkout_cli.engine.core import Engine
from checkout_cli.engine.provider_payments import (
    PROVIDERS,
    apply_status,
    cancel_at_provider,
    close_at_provider,
    provider_for,
    unchanged,
)
from checkout_cli.errors import CheckoutError, NotFoundError
from checkout_cli.payments.base import FINAL_UNPAID, OPEN, PAID, PENDING


def _auto_complete(engine: Engine, token: str) -> bool:
    if not settings.read(engine.conn, "auto_complete_paid"):
        return False
    checkouts.complete_checkout(engine, requests.CheckoutRef(checkout_token=token))
    return True


def handle_webhook(
    engine: Engine, provider_name: str, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    """A provider's webhook: authenticate it, re-fetch the payment, apply what it says."""

    if provider_name not in PROVIDERS:
        raise NotFoundError("provider_not_found", f"no webhooks for {provider_name!r}")
    provider = provider_for(engine.conn, provider_name)
    notice = provider.webhook_notice(headers, body)
    payment_id = notice.payment_id
    if payment_id is None:
        if notice.refund_ids or notice.pending_refunds:
            moved = refunds.refresh_notified(engine, provider, notice)
            return {"handled": True, "refunds_updated": moved}
        return {"handled": False, "reason": "not a payment event"}
    row = engine.conn.execute(
        "SELECT * FROM payments WHERE provider = ? AND provider_payment_id = ?",
        (provider_name, payment_id),
    ).fetchone()
    if row is None:
        raise NotFoundError(
            "payment_not_found", f"no checkout has {provider_name} payment {payment_id}", field="id"
        )
    fetched = provider.fetch(payment_id)
    status = apply_status(engine, row["id"], fetched, "webhook")
    # Mollie calls the payment's webhook when one of its refunds moves, too.
    moved = refunds.refresh_of_payment(engine, provider, row["id"])
    co = engine.conn.execute(
        "SELECT token FROM checkouts WHERE id = ?", (row["checkout_id"],)
    ).fetchone()
    completed = status == "completable" and _auto_complete(engine, co["token"])
    with engine.read() as conn:
        result = records.checkout_object(conn, records.load_checkout(conn, co["token"]))
        order = conn.execute(
            "SELECT order_number FROM orders WHERE id = ?", (row["order_id"],)
        ).fetchone()
    answer = {
        "handled": True,
        "checkout_token": co["token"],
        "payment_status": fetched.status,
        "checkout_status": result["status"],
        "auto_completed": completed,
    }
    if order is not None:
        answer["order_number"] = order["order_number"]
    if moved:
        answer["refunds_updated"] = moved
    return answer


def reconcile(engine: Engine, body: requests.Reconcile) -> dict[str, Any]:
    """Ask the providers about every pending payment; expire checkouts past their TTL; ask
    about open payments nobody waits for any more (of closed checkouts, or replaced) and
    about refunds still pending; report every paid payment without an order (a stray)."""
    dry_run = bool(body.dry_run)
    changes: list[dict[str, Any]] = []
    pending = engine.conn.execute(
        "SELECT * FROM checkouts WHERE status = 'payment_pending' ORDER BY id"
    ).fetchall()
    for co in pending:
        payment = records.current_payment(engine.conn, co["id"])
        if (
            payment is None
            or payment["provider"] not in PROVIDERS
            or not payment["provider_payment_id"]
        ):
            continue
        change = unchanged(co["token"], payment["provider"], co["status"])
        try:
            fetched = provider_for(engine.conn, payment["provider"]).fetch(
                payment["provider_payment_id"]
            )
        except CheckoutError as exc:
            changes.append({**change, "action": "error", "provider_status": exc.message})
            continue
        change["provider_status"] = fetched.status
        if fetched.status == PAID:
            auto = settings.read(engine.conn, "auto_complete_paid")
            change.update(
                to_status="completed" if auto else "completable",
                action="complete" if auto else "mark paid",
            )
        elif fetched.status in FINAL_UNPAID:
            change.update(to_status="active", action=f"payment {fetched.status}: release stock")
        if not dry_run and change["action"] != "none":
            status = apply_status(engine, payment["id"], fetched, "reconciled")
            if status == "completable" and _auto_complete(engine, co["token"]):
                status = "completed"
            change["to_status"] = status
        if change["action"] != "none":
            changes.append(change)
    now = engine.now()
    for co in engine.conn.execute(
        "SELECT * FROM checkouts WHERE status IN ('active', 'payment_pending') "
        "AND expires_at <= ? ORDER BY id",
        (now,),
    ).fetchall():
        changes.append(
            {
                "checkout_token": co["token"],
                "provider": None,
                "from_status": co["status"],
                "to_status": "expired",
                "provider_status": None,
                "action": "expire: release stock",
            }
        )
        if not dry_run:
            expire_now(engine, co["token"])
    changes += _refresh_payment_links(engine, dry_run)
    live_strays = _watch_unwanted_payments(engine, dry_run, changes)
    changes += refunds.resume_unfinished(engine, dry_run)
    changes += refunds.refresh_pending(engine, dry_run)
    found = strays.findings(engine.conn)
    known = {f["provider_payment_id"] for f in found}
    if not dry_run:
        from checkout_cli.engine import webhook_delivery

        webhook_delivery.after_commit(engine)  # webhooks still due, retries included
    return {
        "dry_run": dry_run,
        "changes": changes,
        "findings": found + [f for f in live_strays if f["provider_payment_id"] not in known],
    }


def _refresh_payment_links(engine: Engine, dry_run: bool) -> list[dict[str, Any]]:
    """Ask about every open payment link an order still waits for (a webhook may have been
    lost); one paid is counted on its order, once."""
    changes: list[dict[str, Any]] = []
    rows = engine.conn.execute(
        "SELECT p.*, c.token, c.status AS checkout_status, o.order_number FROM payments p "
        "JOIN checkouts c ON c.id = p.checkout_id JOIN orders o ON o.id = p.order_id "
        f"WHERE p.provider IN ({', '.join('?' * len(PROVIDERS))}) "
        "AND p.provider_payment_id IS NOT NULL AND p.status IN (?, ?) ORDER BY p.id",
        (*PROVIDERS, OPEN, PENDING),
    ).fetchall()
    for row in rows:
        if strays.unwanted(engine.conn, row):
            continue  # replaced or no longer due: closed by _watch_unwanted_payments
        change = unchanged(row["token"], row["provider"], row["checkout_status"])
        try:
            fetched = provider_for(engine.conn, row["provider"]).fetch(row["provider_payment_id"])
        except CheckoutError as exc:
            changes.append({**change, "action": "error", "provider_status": exc.message})
            continue
        change["provider_status"] = fetched.status
        if fetched.status == row["status"]:
            continue
        change["action"] = (
            f"payment link paid: recorded on order {row['order_number']}"
            if fetched.status == PAID
            else f"payment link {fetched.status}"
        )
        if not dry_run:
            apply_status(engine, row["id"], fetched, "reconciled")
        changes.append(change)
    return changes


def _watch_unwanted_payments(
    engine: Engine, dry_run: bool, changes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Open/pending provider payments no open checkout waits for: those of cancelled, expired
    or completed checkouts, and those replaced by another payment. Still open: closed at the
    provider. Paid: recorded, and returned as findings (in a dry run, from the live answer)."""
    live: list[dict[str, Any]] = []
    rows = engine.conn.execute(
        "SELECT p.*, c.token, c.status AS checkout_status FROM payments p "
        "JOIN checkouts c ON c.id = p.checkout_id "
        f"WHERE p.provider IN ({', '.join('?' * len(PROVIDERS))}) "
        "AND p.provider_payment_id IS NOT NULL AND p.status IN (?, ?) ORDER BY p.id",
        (*PROVIDERS, OPEN, PENDING),
    ).fetchall()
    for row in rows:
        if not strays.unwanted(engine.conn, row):
            continue
        change = unchanged(row["token"], row["provider"], row["checkout_status"])
        try:
            provider = provider_for(engine.conn, row["provider"])
            fetched = provider.fetch(row["provider_payment_id"])
        except CheckoutError as exc:
            changes.append({**change, "action": "error", "provider_status": exc.message})
            continue
        change["provider_status"] = fetched.status
        if fetched.status == PAID and row["order_id"] is not None:
            change["action"] = "payment link paid: recorded on its order, surplus to refund"
            if not dry_run:
                apply_status(engine, row["id"], fetched, "reconciled")
        elif fetched.status == PAID:
            change["action"] = "paid, but no order waits for it: refund it"
            if dry_run:
                live.append(strays.finding(row, row["token"], row["checkout_status"]))
            else:
                apply_status(engine, row["id"], fetched, "reconciled")
        elif fetched.status == OPEN:
            change["action"] = "close it at the provider"
            if not dry_run:
                try:
                    closed = close_at_provider(engine, row, "payment_closed")
                except CheckoutError as exc:
                    change["action"] = f"error: {exc.message}"
                else:
                    change["provider_status"] = closed.status
                    if closed.status == PAID:  # paid just before it could be closed
                        change["action"] = "paid, but no order waits for it: refund it"
        elif fetched.status != row["status"]:
            change["action"] = f"payment {fetched.status}"
            if not dry_run:
                apply_status(engine, row["id"], fetched, "reconciled")
        if change["action"] != "none":
            changes.append(change)
    return live


def expire_now(engine: Engine, token: str) -> None:
    """Expire a checkout past its TTL (reconcile), closing its provider payment."""
    with engine.write() as conn:
        co = records.load_checkout(conn, token)
        if not records.is_due(engine, co):
            return
        records.expire(engine, conn, co)
        payment = records.current_payment(conn, co["id"])
    _close_provider_payment(engine, payment)


def _close_provider_payment(engine: Engine, payment: sqlite3.Row | None) -> None:
    if (
        payment is not None
        and payment["provider_payment_id"]
        and payment["status"] in ("open", "pending")
    ):
        cancel_at_provider(engine, payment)
