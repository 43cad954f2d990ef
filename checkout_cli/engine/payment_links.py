"""order-management/create-payment-link: a Stripe/Mollie payment for an order's balance.

The invoice customer who wants to pay by card after all gets a Checkout Session (Stripe) or a
payment (Mollie) for what the order still owes. It is a provider payment of the order's
checkout that names the order (``payments.order_id``), made in two phases like
``create-payment``: transaction 1 records the attempt with its idempotency key → the provider
call with that key, no lock held → transaction 2 records the result. An attempt left
``creating`` is resumed with its own key and stored request, so the provider hands back the
same payment. An open link for the same provider and amount is answered again (after asking
the provider whether it was paid meanwhile); one for a balance the order no longer has (a bank
transfer arrived) is closed at the provider before a new one is made. Paid, the link becomes
one of the order's payments (``paid_links``), whichever way the store hears of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import events, order_state, outbox, settings
from checkout_cli.engine.core import Engine, loads
from checkout_cli.engine.orders import load_order
from checkout_cli.engine.provider_payments import (
    apply_status,
    close_at_provider,
    is_open_provider_payment,
    loaded_request,
    provider_for,
    record_attempt_failed,
    settle_stale_attempt,
    stored_request,
)
from checkout_cli.errors import CheckoutError, ConflictError, PaymentError, ValidationError
from checkout_cli.money import format_money
from checkout_cli.payments.base import (
    OPEN,
    PAID,
    PENDING,
    PaymentLine,
    PaymentRequest,
    Provider,
    ProviderPayment,
)

_ROUNDS = 4  # a link paid or replaced while we looked: look again, a few times at most


def create_payment_link(engine: Engine, body: requests.CreatePaymentLink) -> dict[str, Any]:
    name = body.provider
    replaced: str | None = None
    for _ in range(_ROUNDS):
        with engine.read() as conn:
            order = load_order(conn, body.order_id)
            provider = _admissible(conn, order, name)
            link = _newest_link(conn, order["id"])
            stale = _stale_attempt(conn, order, name)
            if not (
                is_open_provider_payment(link)
                and link["provider"] == name
                and link["amount_cents"] == order_state.balance_due(order)
            ):
                # What the new link would be refused for (a currency or an amount the provider
                # cannot take, no redirect page) is refused before an open link is closed for it.
                with _as_a_link(order, name):
                    provider.check(_payment_request(conn, order, "", body))
        if stale is not None:  # made for another provider or amount: find it and close it
            settle_stale_attempt(engine, stale)
            continue
        if is_open_provider_payment(link):
            fetched = provider_for(engine.conn, link["provider"]).fetch(link["provider_payment_id"])
            if fetched.status != link["status"]:  # paid, or closed, since the store last looked
                apply_status(engine, link["id"], fetched, "checked")
                continue
            if link["provider"] == name and link["amount_cents"] == order_state.balance_due(order):
                return _answer(engine, link["id"], reused=True, replaced=None)
            closed = close_at_provider(engine, link, "payment_replaced")
            if closed.status in (OPEN, PENDING):
                raise _still_payable(order, link)
            if closed.status != PAID:
                replaced = link["provider_payment_id"]
            continue
        break
    else:
        raise ConflictError(
            "payment_in_progress",
            f"the payment links of order {body.order_id} kept changing while a new one was made",
            field="order_id",
            recovery="try again",
        )

    plan: dict[str, Any] = {}
    with engine.write() as conn:
        order = load_order(conn, body.order_id)
        provider = _admissible(conn, order, name)
        link = _newest_link(conn, order["id"])
        if is_open_provider_payment(link):
            if link["provider"] == name and link["amount_cents"] == order_state.balance_due(order):
                plan["answer"] = link["id"]  # made by a call running alongside: the same link
            else:
                raise _still_payable(order, link)
        else:
            attempt = _resumable_attempt(conn, order, name)
            if attempt is None:
                attempt = _record_attempt(engine, conn, order, name, provider, body)
            request = loaded_request(attempt["request"])
            plan.update(provider=provider, attempt_id=attempt["id"], request=request)
    if "answer" in plan:
        return _answer(engine, plan["answer"], reused=True, replaced=replaced)
    try:
        created = plan["provider"].create(plan["request"])
    except PaymentError as exc:
        record_attempt_failed(engine, plan["attempt_id"], exc)
        raise
    _attempt_succeeded(engine, plan["attempt_id"], created)
    return _answer(engine, plan["attempt_id"], reused=False, replaced=replaced)


# ---- what is refused -----------------------------------------------------------------------


def _admissible(conn: sqlite3.Connection, order: sqlite3.Row, name: str) -> Provider:
    if order["cancelled_at"] is not None:
        raise ConflictError(
            "order_cancelled",
            f"order {order['order_number']} is cancelled: nothing is to be paid",
            field="order_id",
            recovery=f"see it with `checkout orders show {order['order_number']}`",
        )
    if order_state.balance_due(order) <= 0:
        raise ValidationError(
            "nothing_due",
            f"order {order['order_number']} is paid in full: there is no balance to pay",
            field="order_id",
            recovery=f"see its payments with `checkout orders show {order['order_number']}`",
        )
    with _as_a_link(order, name):  # not configured: refused before anything is written
        return provider_for(conn, name)


@contextmanager
def _as_a_link(order: sqlite3.Row, name: str) -> Iterator[None]:
    """A provider's refusal says what to do for a payment link: its own recovery names
    create-payment's ``--provider invoice``, which a link has not."""
    try:
        yield
    except CheckoutError as exc:
        if exc.recovery is None or "--provider invoice" not in exc.recovery:
            raise  # its own recovery (set the redirect page, …) fits a link as it is
        number = order["order_number"]
        other = "mollie" if name == "stripe" else "stripe"
        instead = (
            f"ask the other provider (`checkout orders pay-link {number} --provider {other}`), "
            f"or record a bank transfer (`checkout orders record-payment {number} "
            "--amount-cents N --method bank_transfer --reference R`)"
        )
        key_first = exc.recovery.split(", or use --provider invoice")[0]
        exc.recovery = (
            f"{key_first}, or {instead}" if exc.code == "provider_not_configured" else instead
        )
        raise


def _still_payable(order: sqlite3.Row, link: sqlite3.Row) -> ConflictError:
    return ConflictError(
        "payment_in_progress",
        f"the {link['provider']} payment link {link['provider_payment_id']} of order "
        f"{order['order_number']} is still {link['status']} and {link['provider']} would not "
        "close it, so the customer could still pay it",
        field="order_id",
        recovery=f"send the customer the same link ({link['redirect_url'] or 'see the order'}), "
        "or try again once it has expired",
    )


# ---- the order's links and attempts --------------------------------------------------------


def _newest_link(conn: sqlite3.Connection, order_row_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM payments WHERE order_id = ? AND status NOT IN ('creating', "
        "'create_failed') ORDER BY id DESC LIMIT 1",
        (order_row_id,),
    ).fetchone()
    return row


def _attempts(conn: sqlite3.Connection, order: sqlite3.Row) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM payments WHERE order_id = ? AND status = 'creating' "
        "AND request IS NOT NULL ORDER BY id",
        (order["id"],),
    ).fetchall()


def _fits(attempt: sqlite3.Row, order: sqlite3.Row, name: str) -> bool:
    return (
        attempt["provider"] == name
        and attempt["amount_cents"] == order_state.balance_due(order)
        and attempt["currency"] == order["currency"]
    )


def _stale_attempt(conn: sqlite3.Connection, order: sqlite3.Row, name: str) -> sqlite3.Row | None:
    """An attempt left ``creating`` for another provider or another balance."""
    return next((a for a in _attempts(conn, order) if not _fits(a, order, name)), None)


def _resumable_attempt(
    conn: sqlite3.Connection, order: sqlite3.Row, name: str
) -> sqlite3.Row | None:
    return next((a for a in _attempts(conn, order) if _fits(a, order, name)), None)


def _record_attempt(
    engine: Engine,
    conn: sqlite3.Connection,
    order: sqlite3.Row,
    name: str,
    provider: Provider,
    body: requests.CreatePaymentLink,
) -> sqlite3.Row:
    number = (
        conn.execute("SELECT COUNT(*) FROM payments WHERE order_id = ?", (order["id"],)).fetchone()[
            0
        ]
        + 1
    )
    key = f"{order['order_id']}-link-{number}"
    request = _payment_request(conn, order, key, body)
    with _as_a_link(order, body.provider):  # an amount it cannot take: refused, nothing written
        provider.check(request)
    now = engine.now()
    conn.execute(
        "INSERT INTO payments (checkout_id, order_id, provider, status, amount_cents, currency, "
        "idempotency_key, request, created_at, updated_at) "
        "VALUES (?, ?, ?, 'creating', ?, ?, ?, ?, ?, ?)",
        (
            order["checkout_id"],
            order["id"],
            name,
            request.amount_cents,
            order["currency"],
            key,
            stored_request(request),
            now,
            now,
        ),
    )
    events.record(
        engine,
        conn,
        order["checkout_id"],
        "payment_link_requested",
        detail={
            "order_number": order["order_number"],
            "provider": name,
            "amount_cents": request.amount_cents,
            "idempotency_key": key,
        },
        order_id=order["id"],
    )
    row: sqlite3.Row = conn.execute(
        "SELECT * FROM payments WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return row


def _payment_request(
    conn: sqlite3.Connection, order: sqlite3.Row, key: str, body: requests.CreatePaymentLink
) -> PaymentRequest:
    redirect = body.redirect_url or settings.read(conn, "payment_redirect_url")
    if not redirect:
        raise ValidationError(
            "missing_field",
            "redirect_url: the provider needs a page to send the customer to",
            field="redirect_url",
            recovery="pass --redirect-url, or `checkout settings set payment_redirect_url URL`",
        )
    co = conn.execute(
        "SELECT token FROM checkouts WHERE id = ?", (order["checkout_id"],)
    ).fetchone()
    balance = order_state.balance_due(order)
    label = f"Order {order['order_number']}"
    return PaymentRequest(
        idempotency_key=key,
        checkout_token=co["token"],
        amount_cents=balance,
        currency=order["currency"],
        description=f"{settings.read(conn, 'shop_name')} order {order['order_number']}",
        customer_email=(loads(order["customer"]) or {}).get("email"),
        lines=[PaymentLine(label, 1, balance)],
        redirect_url=redirect,
        cancel_url=redirect,
        webhook_url=body.webhook_url or settings.read(conn, "payment_webhook_url"),
        order_number=order["order_number"],
    )


def _attempt_succeeded(engine: Engine, attempt_id: int, created: ProviderPayment) -> None:
    emailed = False
    with engine.write() as conn:
        row = conn.execute("SELECT * FROM payments WHERE id = ?", (attempt_id,)).fetchone()
        if row["status"] != "creating":
            return  # a call running alongside with the same key recorded it already
        conn.execute(
            "UPDATE payments SET provider_payment_id = ?, status = ?, redirect_url = ?, "
            "updated_at = ? WHERE id = ?",
            (
                created.provider_payment_id,
                OPEN if created.status == PAID else created.status,  # paid: counted below
                created.redirect_url,
                engine.now(),
                attempt_id,
            ),
        )
        order = conn.execute("SELECT * FROM orders WHERE id = ?", (row["order_id"],)).fetchone()
        events.record(
            engine,
            conn,
            row["checkout_id"],
            "payment_link_created",
            detail={
                "order_number": order["order_number"],
                "provider": row["provider"],
                "provider_payment_id": created.provider_payment_id,
                "amount_cents": row["amount_cents"],
            },
            order_id=order["id"],
        )
        emailed = (
            created.status == OPEN
            and created.redirect_url is not None
            and outbox.queue_payment_link(
                engine, conn, row["checkout_id"], created.redirect_url, row["amount_cents"]
            )
        )
    if created.status == PAID:
        apply_status(engine, attempt_id, created, "checked")
    if emailed:
        outbox.deliver_for_checkout(engine, row["checkout_id"])


def _answer(
    engine: Engine, payment_id: int, *, reused: bool, replaced: str | None
) -> dict[str, Any]:
    with engine.read() as conn:
        link = conn.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
        order = conn.execute("SELECT * FROM orders WHERE id = ?", (link["order_id"],)).fetchone()
        return {
            "order_id": order["order_id"],
            "order_number": order["order_number"],
            "provider": link["provider"],
            "provider_payment_id": link["provider_payment_id"],
            "status": link["status"],
            "redirect_url": link["redirect_url"],
            "amount_cents": link["amount_cents"],
            "currency": link["currency"],
            "amount_due": format_money(link["amount_cents"], link["currency"]),
            "balance_due_cents": order_state.balance_due(order),
            "reused": reused,
            "replaced_provider_payment_id": replaced,
        }
