"""Provider payments (Stripe, Mollie): create, sync, webhooks, reconcile.

No provider call ever runs inside a database transaction. Creating a payment is:
transaction 1 records the attempt with its idempotency key (and reserves stock) → the
provider call with that key → transaction 2 records the result. A crash or a network
error between them leaves the attempt ``creating``; the next ``create-payment`` reuses its
key and stored parameters, so the provider hands back the same payment instead of making a
second one. If the checkout's total changed meanwhile, that attempt is replayed exactly, and
what it made is expired before a new payment is made under a new key.

A checkout has at most one payable provider payment: one being replaced (``--new``,
``set-payment``, an invoice) is expired at the provider first, and a paid one refuses the
replacement. Reconcile asks about every open payment no checkout waits for any more.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from typing import Any, TypeGuard

from checkout_cli import requests
from checkout_cli.engine import checkout_records as records
from checkout_cli.engine import events, network, reservations, settings, vault
from checkout_cli.engine.core import Engine, loads
from checkout_cli.errors import CheckoutError, ConflictError, PaymentError
from checkout_cli.payments import open_provider
from checkout_cli.payments.base import (
    FINAL_UNPAID,
    OPEN,
    PAID,
    PENDING,
    PROVIDER_KEYS,
    PaymentLine,
    PaymentRequest,
    Provider,
    ProviderConfig,
    ProviderPayment,
    not_configured,
)

PROVIDERS = tuple(PROVIDER_KEYS)
_API_BASE_SETTING = {"stripe": "stripe_api_base", "mollie": "mollie_api_endpoint"}


def provider_for(conn: sqlite3.Connection, name: str) -> Provider:
    network.check(f"the payment provider {name}")
    api_key = vault.secret(conn, PROVIDER_KEYS[name])
    if api_key is None:
        raise not_configured(name, "its API key is not in the vault")
    config = ProviderConfig(
        api_key=api_key,
        api_base=settings.read(conn, _API_BASE_SETTING[name]),
        timeout_seconds=settings.read(conn, "provider_timeout_seconds"),
        webhook_secret=vault.secret(conn, "stripe_webhook_secret") if name == "stripe" else None,
    )
    return open_provider(name, config)


def _payment_request(
    conn: sqlite3.Connection, co: sqlite3.Row, key: str, body: requests.CreatePayment
) -> PaymentRequest:
    redirect = body.redirect_url or settings.read(conn, "payment_redirect_url")
    if not redirect:
        from checkout_cli.errors import ValidationError

        raise ValidationError(
            "missing_field",
            "redirect_url: the provider needs a page to send the customer to",
            field="redirect_url",
            recovery="pass --redirect-url, or `checkout settings set payment_redirect_url URL`",
        )
    lines = [
        PaymentLine(r["name"], r["quantity"], r["unit_price_cents"])
        for r in conn.execute(
            "SELECT * FROM checkout_lines WHERE checkout_id = ? ORDER BY line_no", (co["id"],)
        )
    ]
    lines += [
        PaymentLine(name, 1, co[column])
        for name, column in (("Shipping", "shipping_cents"), ("Tax", "tax_cents"))
        if co[column]
    ]
    customer = loads(co["customer"]) or {}
    return PaymentRequest(
        idempotency_key=key,
        checkout_token=co["token"],
        amount_cents=co["total_cents"],
        currency=co["currency"],
        description=f"{settings.read(conn, 'shop_name')} checkout {co['token']}",
        customer_email=customer.get("email"),
        lines=lines,
        redirect_url=redirect,
        cancel_url=redirect,
        webhook_url=body.webhook_url or settings.read(conn, "payment_webhook_url"),
    )


def create(engine: Engine, body: requests.CreatePayment) -> dict[str, Any]:
    """create-payment for ``stripe``/``mollie``.

    Before anything new is made: an attempt left ``creating`` that can no longer be reused
    (another provider, or a total changed since) is replayed and expired at its provider, and
    an open payment being replaced is expired there (paid: refused). Never under the lock.
    """

    name = body.provider
    token = body.checkout_token

    def admissible(conn: sqlite3.Connection, co: sqlite3.Row) -> Provider:
        records.refuse_unless_open(co)
        records.require_customer(co)
        provider = provider_for(conn, name)  # refuses before anything is written
        refuse_if_paid(co, records.current_payment(conn, co["id"]))
        return provider

    while True:
        with engine.read() as conn:
            co = records.load_checkout(conn, token)
            # Past its TTL, with_checkout below expires it and says so; made by an earlier
            # attempt of this same request, record_attempt below answers with that payment.
            if records.is_due(engine, co) or records.made_payment_before(engine, conn, co):
                break
            admissible(conn, co)
            stale = _stale_attempt(conn, co, name)
            current = records.current_payment(conn, co["id"])
        if stale is None:
            if _needs_replacing(current, name, co, body):
                close_for_replacement(engine, token)
            break
        settle_stale_attempt(engine, stale)

    plan: dict[str, Any] = {}

    def record_attempt(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        if records.made_payment_before(engine, conn, co):
            plan.update(redone_for=co["id"])
            return records.checkout_object(conn, co)
        provider = admissible(conn, co)
        current = records.current_payment(conn, co["id"])
        if is_open_provider_payment(current):
            if not _needs_replacing(current, name, co, body):
                return records.checkout_object(conn, co)  # the open payment: idempotent
            raise in_progress(co, current)  # another call made it since it was closed
        attempt = conn.execute(
            "SELECT * FROM payments WHERE checkout_id = ? AND provider = ? AND status = 'creating'"
            " ORDER BY id DESC LIMIT 1",
            (co["id"], name),
        ).fetchone()
        if attempt is None:
            number = (
                conn.execute(
                    "SELECT COUNT(*) FROM payments WHERE checkout_id = ?", (co["id"],)
                ).fetchone()[0]
                + 1
            )
            key = f"{co['token']}-payment-{number}"
            request = _payment_request(conn, co, key, body)
            provider.check(request)  # an amount it cannot take exactly: refused, nothing written
            reservations.reserve(engine, conn, co["id"])
            records.insert_payment(
                engine,
                conn,
                co,
                provider=name,
                status="creating",
                amount_cents=co["total_cents"],
                idempotency_key=key,
                request=stored_request(request),
            )
            attempt = conn.execute(
                "SELECT * FROM payments WHERE idempotency_key = ?", (key,)
            ).fetchone()
        else:  # a retry: the same key with exactly the parameters it was first sent with
            request = loaded_request(attempt["request"]) or _payment_request(
                conn, co, attempt["idempotency_key"], body
            )
        plan.update(provider=provider, attempt_id=attempt["id"], request=request)
        return {}

    existing = records.with_checkout(engine, token, record_attempt)
    if "redone_for" in plan:  # the earlier attempt may have died before sending the link
        from checkout_cli.engine import outbox

        outbox.deliver_for_checkout(engine, plan["redone_for"])
        return existing
    if not plan:
        return existing
    provider: Provider = plan["provider"]
    try:
        created = provider.create(plan["request"])
    except PaymentError as exc:
        record_attempt_failed(engine, plan["attempt_id"], exc)
        raise
    return _attempt_succeeded(engine, plan["attempt_id"], created)


def is_open_provider_payment(payment: sqlite3.Row | None) -> TypeGuard[sqlite3.Row]:
    """A Stripe/Mollie payment the customer may still pay."""
    return (
        payment is not None
        and payment["provider"] in PROVIDERS
        and bool(payment["provider_payment_id"])
        and payment["status"] in (OPEN, PENDING)
    )


def any_open_payment(conn: sqlite3.Connection, token: str) -> bool:
    """Whether checkout ``token`` has any payment ``is_open_provider_payment`` calls open: one
    statement, so a checkout without one need not be read closely before it is written."""
    marks = ", ".join("?" for _ in PROVIDERS)
    found = conn.execute(
        "SELECT 1 FROM payments p JOIN checkouts c ON c.id = p.checkout_id "
        f"WHERE c.token = ? AND p.provider IN ({marks}) AND p.provider_payment_id <> '' "
        "AND p.status IN (?, ?) LIMIT 1",
        (token, *PROVIDERS, OPEN, PENDING),
    ).fetchone()
    return found is not None


def _needs_replacing(
    current: sqlite3.Row | None, name: str, co: sqlite3.Row, body: requests.CreatePayment
) -> bool:
    """An open payment is reused unless asked for anew, of another provider, or of an amount
    the checkout no longer has."""
    return is_open_provider_payment(current) and (
        bool(body.new)
        or current["provider"] != name
        or current["amount_cents"] != co["total_cents"]
    )


def refuse_if_paid(co: sqlite3.Row, payment: sqlite3.Row | None) -> None:
    if payment is not None and payment["status"] == PAID:
        raise already_paid(co, payment)


def already_paid(co: sqlite3.Row, payment: sqlite3.Row) -> PaymentError:
    from checkout_cli.money import format_money

    paid = format_money(payment["amount_cents"], payment["currency"])
    which = payment["provider_payment_id"] or payment["reference"] or ""
    if payment["amount_cents"] == co["total_cents"]:
        recovery = f"complete it: `checkout complete-checkout {co['token']}`"
    else:  # paid for a total the checkout no longer has
        recovery = (
            f"it was paid for an earlier total ({format_money(co['total_cents'], co['currency'])}"
            f" now): refund it and start again: `checkout cancel-checkout {co['token']} --force`"
        )
    return PaymentError(
        "payment_already_paid",
        f"checkout {co['token']} is already paid ({payment['provider']} {which}, {paid})".replace(
            "  ", " "
        ),
        field="checkout_token",
        recovery=recovery,
    )


def in_progress(co: sqlite3.Row, payment: sqlite3.Row) -> ConflictError:
    link = f" (its link: {payment['redirect_url']})" if payment["redirect_url"] else ""
    return ConflictError(
        "payment_in_progress",
        f"the {payment['provider']} payment {payment['provider_payment_id']} of {co['token']} is "
        f"still {payment['status']} and {payment['provider']} would not cancel it, so the "
        "customer could still pay it",
        field="checkout_token",
        recovery=f"send the customer the same link{link}, or try again once it has expired",
    )


def close_for_replacement(engine: Engine, token: str) -> None:
    """Expire a checkout's open Stripe/Mollie payment before another payment replaces it.

    Asks the provider with no lock held. Paid (or paid meanwhile, so the expire failed):
    ``payment_already_paid``, with the paid status recorded. Still payable (the provider
    would not cancel it): ``payment_in_progress``. Either way nothing is replaced.
    """

    co = records.load_checkout(engine.conn, token)
    payment = records.current_payment(engine.conn, co["id"])
    if payment is None or not is_open_provider_payment(payment):
        return
    closed = close_at_provider(engine, payment, "payment_replaced")
    co = records.load_checkout(engine.conn, token)
    payment = _payment_row(engine.conn, payment["id"])
    if closed.status == PAID:
        raise already_paid(co, payment)
    if closed.status in (OPEN, PENDING):
        raise in_progress(co, payment)


def close_at_provider(engine: Engine, payment: sqlite3.Row, kind: str) -> ProviderPayment:
    """Cancel/expire a payment at its provider and record what it is now (no lock held).

    A refused cancel (already paid, or the provider does not allow it) is not an error: the
    payment is fetched again and its real status recorded. Paid moves a pending checkout to
    ``completable``; any other status is recorded on the payment alone.
    """
    provider = provider_for(engine.conn, payment["provider"])
    ppid = payment["provider_payment_id"]
    try:
        closed = provider.cancel(ppid)
    except PaymentError:
        closed = None
    if closed is None:
        closed = provider.fetch(ppid)
    if closed.status == PAID:
        apply_status(engine, payment["id"], closed, "checked")
    else:
        with engine.write() as conn:
            _set_payment_status(engine, conn, payment["id"], closed.status, kind)
    return closed


# ---- an attempt left `creating` -------------------------------------------------------------


def _stale_attempt(conn: sqlite3.Connection, co: sqlite3.Row, name: str) -> sqlite3.Row | None:
    """A timed-out attempt this create-payment cannot reuse: of another provider, or made for
    a total or currency the checkout no longer has."""
    for attempt in conn.execute(
        "SELECT * FROM payments WHERE checkout_id = ? AND status = 'creating' ORDER BY id",
        (co["id"],),
    ):
        if attempt["provider"] not in PROVIDERS or attempt["request"] is None:
            continue  # nothing to replay: reused as it is (made before attempts kept requests)
        if (
            attempt["provider"] != name
            or attempt["amount_cents"] != co["total_cents"]
            or attempt["currency"] != co["currency"]
        ):
            return attempt
    return None


def settle_stale_attempt(engine: Engine, attempt: sqlite3.Row) -> None:
    """Find what a timed-out attempt made at the provider and expire it, before anything new.

    The create is replayed with the attempt's own key and parameters, so the provider hands
    back the payment it made (or makes it now, to be expired at once) instead of a second one.
    """

    request = loaded_request(attempt["request"])
    assert request is not None
    provider = provider_for(engine.conn, attempt["provider"])
    try:
        made = provider.create(request)
    except PaymentError as exc:  # refused outright: the first call made nothing either
        record_attempt_failed(engine, attempt["id"], exc)
        return
    with engine.write() as conn:
        conn.execute(
            "UPDATE payments SET provider_payment_id = ?, status = ?, updated_at = ? "
            "WHERE id = ? AND status = 'creating'",
            (made.provider_payment_id, made.status, engine.now(), attempt["id"]),
        )
        events.record(
            engine,
            conn,
            attempt["checkout_id"],
            "payment_attempt_found",
            detail={
                "provider": attempt["provider"],
                "provider_payment_id": made.provider_payment_id,
                "amount_cents": attempt["amount_cents"],
                "status": made.status,
            },
        )
    found = _payment_row(engine.conn, attempt["id"])
    if attempt["order_id"] is not None:  # a payment link: paid, it counts on its order
        if made.status == PAID:
            apply_status(engine, attempt["id"], made, "checked")
        else:
            close_at_provider(engine, found, "payment_replaced")
        return
    closed = made if made.status == PAID else close_at_provider(engine, found, "payment_replaced")
    if closed.status != PAID:
        return
    with engine.write() as conn:
        co = conn.execute(
            "SELECT * FROM checkouts WHERE id = ?", (attempt["checkout_id"],)
        ).fetchone()
        if co["status"] == "active":  # paid for the earlier total: kept, never dropped
            reservations.reserve(engine, conn, co["id"])
            records.transition(
                engine, conn, co, "completable", "payment_paid", {"provider": found["provider"]}
            )
            co = conn.execute("SELECT * FROM checkouts WHERE id = ?", (co["id"],)).fetchone()
        paid = _payment_row(conn, attempt["id"])
    raise already_paid(co, paid)


def settle_attempts(engine: Engine, checkout_id: int) -> None:
    """Close at the provider whatever the checkout's attempts left ``creating`` made (their
    process was killed waiting for the answer); a paid one raises ``already_paid``."""
    attempts = engine.conn.execute(
        "SELECT * FROM payments WHERE checkout_id = ? AND status = 'creating' "
        "AND request IS NOT NULL ORDER BY id",
        (checkout_id,),
    ).fetchall()
    for attempt in attempts:
        if attempt["provider"] in PROVIDERS:
            settle_stale_attempt(engine, attempt)


def _payment_row(conn: sqlite3.Connection, payment_id: int) -> sqlite3.Row:
    return conn.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()


def stored_request(request: PaymentRequest) -> str:
    return json.dumps(asdict(request), sort_keys=True)


def loaded_request(text: str | None) -> PaymentRequest | None:
    if text is None:
        return None
    data = json.loads(text)
    return PaymentRequest(**{**data, "lines": [PaymentLine(**line) for line in data["lines"]]})


def record_attempt_failed(engine: Engine, attempt_id: int, exc: CheckoutError) -> None:
    with engine.write() as conn:
        row = conn.execute("SELECT * FROM payments WHERE id = ?", (attempt_id,)).fetchone()
        conn.execute(
            "UPDATE payments SET status = 'create_failed', updated_at = ? WHERE id = ?",
            (engine.now(), attempt_id),
        )
        co = conn.execute("SELECT * FROM checkouts WHERE id = ?", (row["checkout_id"],)).fetchone()
        if co["status"] == "active":
            reservations.release(conn, co["id"])
        events.record(
            engine,
            conn,
            co["id"],
            "payment_failed",
            detail={"provider": row["provider"], "code": exc.code, "message": exc.message},
        )


def _attempt_succeeded(engine: Engine, attempt_id: int, created: ProviderPayment) -> dict[str, Any]:
    from checkout_cli.engine import outbox

    emailed = False
    with engine.write() as conn:
        row = conn.execute("SELECT * FROM payments WHERE id = ?", (attempt_id,)).fetchone()
        co = conn.execute("SELECT * FROM checkouts WHERE id = ?", (row["checkout_id"],)).fetchone()
        if row["status"] == "creating":  # else a concurrent call recorded it already
            conn.execute(
                "UPDATE payments SET provider_payment_id = ?, status = ?, redirect_url = ?, "
                "updated_at = ? WHERE id = ?",
                (
                    created.provider_payment_id,
                    created.status,
                    created.redirect_url,
                    engine.now(),
                    attempt_id,
                ),
            )
            to_status = "completable" if created.status == PAID else "payment_pending"
            detail = {
                "provider": row["provider"],
                "provider_payment_id": created.provider_payment_id,
            }
            if co["status"] in records.OPEN_STATES and co["status"] != to_status:
                records.transition(engine, conn, co, to_status, "payment_created", detail)
            else:  # a payment replacing another: the checkout stays as it is
                events.record(engine, conn, co["id"], "payment_created", detail=detail)
            emailed = (
                created.status == OPEN
                and created.redirect_url is not None
                and outbox.queue_payment_link(engine, conn, co["id"], created.redirect_url)
            )
        result = records.checkout_object(conn, records.load_checkout(conn, co["token"]))
    if emailed:
        outbox.deliver_for_checkout(engine, co["id"])
    return result


def _set_payment_status(
    engine: Engine, conn: sqlite3.Connection, payment_id: int, status: str, kind: str
) -> None:
    row = conn.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
    if row["status"] != status:
        conn.execute(
            "UPDATE payments SET status = ?, updated_at = ? WHERE id = ?",
            (status, engine.now(), payment_id),
        )
        events.record(
            engine,
            conn,
            row["checkout_id"],
            kind,
            detail={"provider": row["provider"], "from": row["status"], "to": status},
        )


def apply_status(engine: Engine, payment_id: int, fetched: ProviderPayment, source: str) -> str:
    """Record what the provider says about a payment; returns the checkout's status after.

    Paid moves a pending checkout to ``completable``; failed, canceled or expired moves it
    back to ``active`` (the customer may pay again) and frees its reserved stock. A paid
    payment link is counted on its order in the same transaction (``paid_links``), once.
    """

    counted: list[str] = []
    status = _apply_status(engine, payment_id, fetched, source, counted)
    if counted:  # after the commit: the order's "payment received" email
        from checkout_cli.engine import outbox

        outbox.deliver_for_order(engine, counted[0])
    return status


def _apply_status(
    engine: Engine, payment_id: int, fetched: ProviderPayment, source: str, counted: list[str]
) -> str:
    from checkout_cli.engine import paid_links

    with engine.write() as conn:
        row = conn.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
        co = conn.execute("SELECT * FROM checkouts WHERE id = ?", (row["checkout_id"],)).fetchone()
        events.record(
            engine,
            conn,
            co["id"],
            f"payment_{source}",
            detail={
                "provider": row["provider"],
                "provider_payment_id": row["provider_payment_id"],
                "provider_status": fetched.provider_status,
                "status": fetched.status,
            },
            order_id=row["order_id"],
        )
        if row["status"] != fetched.status:
            conn.execute(
                "UPDATE payments SET status = ?, updated_at = ? WHERE id = ?",
                (fetched.status, engine.now(), payment_id),
            )
        if paid_links.record_paid(engine, conn, row, fetched):
            order = conn.execute(
                "SELECT order_id FROM orders WHERE id = ?", (row["order_id"],)
            ).fetchone()
            counted.append(order["order_id"])
        if row["order_id"] is not None or row["status"] == fetched.status:
            return co["status"]  # unchanged, or a payment link: the checkout stays as it is
        current = records.current_payment(conn, co["id"])
        if current is None or current["id"] != payment_id or co["status"] != "payment_pending":
            return co["status"]  # a replaced payment, or a checkout already past this point
        if fetched.status == PAID:
            records.transition(
                engine, conn, co, "completable", "payment_paid", {"provider": row["provider"]}
            )
            return "completable"
        if fetched.status in FINAL_UNPAID:
            records.transition(
                engine,
                conn,
                co,
                "active",
                "payment_unsuccessful",
                {"provider": row["provider"], "status": fetched.status},
            )
            return "active"
        return co["status"]


def refresh(engine: Engine, co: sqlite3.Row, source: str) -> ProviderPayment | None:
    """Ask the provider about a checkout's open provider payment and record the answer."""

    payment = records.current_payment(engine.conn, co["id"])
    if (
        payment is None
        or payment["provider"] not in PROVIDERS
        or not payment["provider_payment_id"]
        or payment["status"] not in (OPEN, PENDING)
    ):
        return None
    fetched = provider_for(engine.conn, payment["provider"]).fetch(payment["provider_payment_id"])
    apply_status(engine, payment["id"], fetched, source)
    return fetched


def cancel_at_provider(engine: Engine, payment: sqlite3.Row) -> None:
    """Best effort: a cancelled or expired checkout's open payment is closed at the provider
    too, so the customer cannot pay it. Reconcile catches anything this misses (and reports a
    payment paid all the same as a stray, to refund)."""
    try:
        close_at_provider(engine, payment, "payment_closed")
    except CheckoutError:
        return


def unchanged(checkout_token: str, provider: str, checkout_status: str) -> dict[str, Any]:
    """A reconcile report's row before the provider is asked: nothing changes yet."""
    return {
        "checkout_token": checkout_token,
        "provider": provider,
        "from_status": checkout_status,
        "to_status": checkout_status,
        "provider_status": None,
        "action": "none",
    }
