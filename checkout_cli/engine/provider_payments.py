"""Provider payments (Stripe, Mollie): create, sync, webhooks, reconcile.

No provider call ever runs inside a database transaction. Creating a payment is:
transaction 1 records the attempt with its idempotency key (and reserves stock) → the
provider call with that key → transaction 2 records the result. A crash or a network
error between them leaves the attempt ``creating``; the next ``create-payment`` reuses its
key, so the provider hands back the same payment instead of making a second one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli.engine import events, network, reservations, settings, vault
from checkout_cli.engine.core import Engine, loads
from checkout_cli.errors import CheckoutError, ConflictError, NotFoundError, PaymentError
from checkout_cli.payments import PROVIDER_KEYS, not_configured, open_provider
from checkout_cli.payments.base import (
    FINAL_UNPAID,
    OPEN,
    PAID,
    PENDING,
    PaymentLine,
    PaymentRequest,
    Provider,
    ProviderConfig,
    ProviderPayment,
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
    conn: sqlite3.Connection, co: sqlite3.Row, key: str, body: dict[str, Any]
) -> PaymentRequest:
    redirect = body.get("redirect_url") or settings.read(conn, "payment_redirect_url")
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
        webhook_url=body.get("webhook_url") or settings.read(conn, "payment_webhook_url"),
    )


def create(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """create-payment for ``stripe``/``mollie``."""
    from checkout_cli.engine import checkouts

    name = body["provider"]
    plan: dict[str, Any] = {}

    def record_attempt(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        if checkouts.made_payment_before(engine, conn, co):
            plan.update(redone_for=co["id"])
            return checkouts.checkout_object(conn, co)
        checkouts.refuse_unless_open(co)
        checkouts.require_customer(co)
        provider = provider_for(conn, name)  # refuses before anything is written
        current = checkouts.current_payment(conn, co["id"])
        if current is not None and current["status"] == PAID:
            raise ConflictError(
                "payment_already_paid",
                f"checkout {co['token']} is already paid",
                recovery=f"complete it: `checkout complete-checkout {co['token']}`",
            )
        if (
            current is not None
            and current["provider"] == name
            and current["status"] in (OPEN, PENDING)
            and not body.get("new")
        ):
            return checkouts.checkout_object(conn, co)  # the open payment: idempotent
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
            reservations.reserve(engine, conn, co["id"])
            checkouts.insert_payment(
                engine,
                conn,
                co,
                provider=name,
                status="creating",
                amount_cents=co["total_cents"],
                idempotency_key=key,
            )
            attempt = conn.execute(
                "SELECT * FROM payments WHERE idempotency_key = ?", (key,)
            ).fetchone()
        replaced = (
            current
            if current is not None
            and current["provider"] in PROVIDERS
            and current["status"] in (OPEN, PENDING)
            and current["provider_payment_id"]
            else None
        )
        plan.update(
            provider=provider,
            attempt_id=attempt["id"],
            request=_payment_request(conn, co, attempt["idempotency_key"], body),
            replaced=replaced
            and (replaced["id"], replaced["provider_payment_id"], replaced["provider"]),
        )
        return {}

    existing = checkouts.with_checkout(engine, body["checkout_token"], record_attempt)
    if "redone_for" in plan:  # the earlier attempt may have died before sending the link
        from checkout_cli.engine import outbox

        outbox.deliver_for_checkout(engine, plan["redone_for"])
        return existing
    if not plan:
        return existing
    provider: Provider = plan["provider"]
    if plan["replaced"]:
        old_id, old_provider_id, old_name = plan["replaced"]
        old_provider = provider if old_name == name else _provider(engine, old_name)
        cancelled = old_provider.cancel(old_provider_id)
        with engine.write() as conn:
            _set_payment_status(
                engine,
                conn,
                old_id,
                cancelled.status if cancelled else "canceled",
                "payment_replaced",
            )
    try:
        created = provider.create(plan["request"])
    except PaymentError as exc:
        _attempt_failed(engine, plan["attempt_id"], exc)
        raise
    return _attempt_succeeded(engine, plan["attempt_id"], created)


def _provider(engine: Engine, name: str) -> Provider:
    return provider_for(engine.conn, name)


def _attempt_failed(engine: Engine, attempt_id: int, exc: CheckoutError) -> None:
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
    from checkout_cli.engine import checkouts, outbox

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
            if co["status"] in checkouts.OPEN_STATES and co["status"] != to_status:
                checkouts.transition(engine, conn, co, to_status, "payment_created", detail)
            else:  # a payment replacing another: the checkout stays as it is
                events.record(engine, conn, co["id"], "payment_created", detail=detail)
            emailed = (
                created.status == OPEN
                and created.redirect_url is not None
                and outbox.queue_payment_link(engine, conn, co["id"], created.redirect_url)
            )
        result = checkouts.checkout_object(conn, checkouts.load_checkout(conn, co["token"]))
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
    back to ``active`` (the customer may pay again) and frees its reserved stock.
    """
    from checkout_cli.engine import checkouts

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
        )
        if row["status"] == fetched.status:
            return co["status"]
        conn.execute(
            "UPDATE payments SET status = ?, updated_at = ? WHERE id = ?",
            (fetched.status, engine.now(), payment_id),
        )
        current = checkouts.current_payment(conn, co["id"])
        if current is None or current["id"] != payment_id or co["status"] != "payment_pending":
            return co["status"]  # a replaced payment, or a checkout already past this point
        if fetched.status == PAID:
            checkouts.transition(
                engine, conn, co, "completable", "payment_paid", {"provider": row["provider"]}
            )
            return "completable"
        if fetched.status in FINAL_UNPAID:
            checkouts.transition(
                engine,
                conn,
                co,
                "active",
                "payment_unsuccessful",
                {"provider": row["provider"], "status": fetched.status},
            )
            return "active"
        return co["status"]


def _auto_complete(engine: Engine, token: str) -> bool:
    from checkout_cli.engine import checkouts

    if not settings.read(engine.conn, "auto_complete_paid"):
        return False
    checkouts.complete_checkout(engine, {"checkout_token": token})
    return True


def refresh(engine: Engine, co: sqlite3.Row, source: str) -> ProviderPayment | None:
    """Ask the provider about a checkout's open provider payment and record the answer."""
    from checkout_cli.engine import checkouts

    payment = checkouts.current_payment(engine.conn, co["id"])
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
    too, so the customer cannot pay it. Reconcile catches anything this misses."""
    try:
        closed = provider_for(engine.conn, payment["provider"]).cancel(
            payment["provider_payment_id"]
        )
    except CheckoutError:
        return
    if closed is not None:
        with engine.write() as conn:
            _set_payment_status(engine, conn, payment["id"], closed.status, "payment_closed")


def handle_webhook(
    engine: Engine, provider_name: str, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    """A provider's webhook: authenticate it, re-fetch the payment, apply what it says."""
    from checkout_cli.engine import checkouts

    if provider_name not in PROVIDERS:
        raise NotFoundError("provider_not_found", f"no webhooks for {provider_name!r}")
    provider = provider_for(engine.conn, provider_name)
    payment_id = provider.webhook_payment_id(headers, body)
    if payment_id is None:
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
    co = engine.conn.execute(
        "SELECT token FROM checkouts WHERE id = ?", (row["checkout_id"],)
    ).fetchone()
    completed = status == "completable" and _auto_complete(engine, co["token"])
    result = checkouts.get_checkout_status(engine, {"checkout_token": co["token"]})
    return {
        "handled": True,
        "checkout_token": co["token"],
        "payment_status": fetched.status,
        "checkout_status": result["status"],
        "auto_completed": completed,
    }


def reconcile(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """Ask the providers about every pending payment; expire checkouts past their TTL."""
    from checkout_cli.engine import checkouts

    dry_run = bool(body.get("dry_run"))
    changes: list[dict[str, Any]] = []
    pending = engine.conn.execute(
        "SELECT * FROM checkouts WHERE status = 'payment_pending' ORDER BY id"
    ).fetchall()
    for co in pending:
        payment = checkouts.current_payment(engine.conn, co["id"])
        if (
            payment is None
            or payment["provider"] not in PROVIDERS
            or not payment["provider_payment_id"]
        ):
            continue
        change = {
            "checkout_token": co["token"],
            "provider": payment["provider"],
            "from_status": co["status"],
            "to_status": co["status"],
            "provider_status": None,
            "action": "none",
        }
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
            checkouts.expire_now(engine, co["token"])
    return {"dry_run": dry_run, "changes": changes}
