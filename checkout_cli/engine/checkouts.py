"""checkout-flow: from a cart snapshot to a completed order, one transaction per call.

States: active -> payment_pending -> completable -> completed; any open state -> cancelled;
active/payment_pending past ``expires_at`` -> expired. Every transition is an event.

``provider_payments`` and ``refunds`` (which import only the records, never this module) are
imported inside the functions that use them, for start-up time: a status read loads neither
(about 20 ms; tests/benchmarks/bench_startup.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import events, pricing, settings
from checkout_cli.engine.carts import (
    cart_lines,
    load_cart,
    require_sellable,
    unsellable_warnings,
)
from checkout_cli.engine.checkout_records import (
    OPEN_STATES,
    checkout_object,
    current_payment,
    expire,
    expired_error,
    insert_payment,
    is_due,
    load_checkout,
    made_payment_before,
    refuse_unless_open,
    require_customer,
    transition,
    with_checkout,
)
from checkout_cli.engine.core import Engine, dumps, iso, loads, new_token
from checkout_cli.engine.line_meta import missing_required_meta
from checkout_cli.engine.orders import (
    create_order,
    refuse_ordered_reference,
)
from checkout_cli.errors import ConflictError, ForbiddenError, PaymentError


def get_checkout_status(engine: Engine, body: requests.CheckoutRef) -> dict[str, Any]:
    with engine.read() as conn:
        return checkout_object(conn, load_checkout(conn, body.checkout_token))


def initiate_checkout(engine: Engine, body: requests.InitiateCheckout) -> dict[str, Any]:
    with engine.write() as conn:
        cart = load_cart(conn, body.cart_token)
        if cart["status"] != "active":
            raise ConflictError(
                "cart_not_active",
                f"cart {cart['token']} is {cart['status']}",
                field="cart_token",
                recovery="start a new cart with `checkout cart add SKU`",
            )
        reference = body.external_reference
        refuse_ordered_reference(conn, reference)
        existing = conn.execute(
            "SELECT * FROM checkouts WHERE cart_id = ? AND status IN (?, ?, ?)",
            (cart["id"], *OPEN_STATES),
        ).fetchone()
        if existing is not None and not is_due(engine, existing):
            existing = _carry_reference(conn, existing, reference)
            lines = cart_lines(conn, cart["id"])
            warnings = _cart_changed_since(conn, cart, lines, existing)
            warnings += unsellable_warnings(cart, lines)
            return {**checkout_object(conn, existing), "reused": True, "warnings": warnings}
        if existing is not None:
            expire(engine, conn, existing)
        lines = cart_lines(conn, cart["id"])
        try:
            if not lines:
                raise ConflictError(
                    "cart_empty",
                    f"cart {cart['token']} has no items",
                    field="cart_token",
                    recovery="add items with `checkout cart add`",
                )
            require_sellable(cart, lines)
        except ConflictError as refusal:
            if existing is None:
                raise
            # The expiry is a fact, not part of the refused request: commit it, then refuse.
            refused = refusal
        else:
            co = _snapshot(engine, conn, cart, lines, reference)
            return {
                **checkout_object(conn, co),
                "reused": False,
                "warnings": _stock_warnings(lines),
            }
    raise refused


def _carry_reference(
    conn: sqlite3.Connection, co: sqlite3.Row, reference: str | None
) -> sqlite3.Row:
    """The reused checkout takes the reference asked for; one with another is refused."""
    if reference is None or co["external_reference"] == reference:
        return co
    if co["external_reference"] is not None:
        raise ConflictError(
            "reference_mismatch",
            f"checkout {co['token']} of this cart is for reference "
            f"{co['external_reference']!r}, not {reference!r}",
            field="external_reference",
        )
    conn.execute("UPDATE checkouts SET external_reference = ? WHERE id = ?", (reference, co["id"]))
    return conn.execute("SELECT * FROM checkouts WHERE id = ?", (co["id"],)).fetchone()


def _snapshot(
    engine: Engine,
    conn: sqlite3.Connection,
    cart: sqlite3.Row,
    lines: list[sqlite3.Row],
    reference: str | None = None,
) -> sqlite3.Row:
    line_totals = [line["price_cents"] * line["quantity"] for line in lines]
    totals = pricing.compute(line_totals, settings.read(conn, "default_shipping_cents"))
    now = engine.clock()  # one reading: created_at + TTL is exactly expires_at, in UTC
    ttl = timedelta(minutes=settings.read(conn, "checkout_ttl_minutes"))
    cur = conn.execute(
        "INSERT INTO checkouts (token, cart_id, status, currency, subtotal_cents, shipping_cents, "
        "tax_cents, total_cents, created_at, updated_at, expires_at, external_reference, "
        "test_run) VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new_token("chk"),
            cart["id"],
            cart["currency"],
            totals.subtotal_cents,
            totals.shipping_cents,
            totals.tax_cents,
            totals.total_cents,
            iso(now),
            iso(now),
            iso(now + ttl),
            reference,
            cart["test_run"],  # a smoke run's checkout is one of its rows (engine/smoke_runs.py)
        ),
    )
    checkout_id = cur.lastrowid
    assert checkout_id is not None  # the row the INSERT above just made
    conn.executemany(
        "INSERT INTO checkout_lines (checkout_id, line_no, product_sku, name, quantity, "
        "unit_price_cents, line_total_cents, tax_cents) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        [
            (
                checkout_id,
                n,
                line["product_sku"],
                line["name"],
                line["quantity"],
                line["price_cents"],
                total,
            )
            for n, (line, total) in enumerate(zip(lines, line_totals, strict=True), 1)
        ],
    )
    events.record(
        engine,
        conn,
        checkout_id,
        "checkout_created",
        to_status="active",
        detail={"cart_token": cart["token"], "lines": len(lines)},
    )
    return conn.execute("SELECT * FROM checkouts WHERE id = ?", (checkout_id,)).fetchone()


def _cart_changed_since(
    conn: sqlite3.Connection, cart: sqlite3.Row, lines: list[sqlite3.Row], co: sqlite3.Row
) -> list[dict[str, Any]]:
    """A warning when a reused checkout's snapshot no longer matches its cart's items."""
    now = sorted((line["product_sku"], line["quantity"]) for line in lines)
    then = sorted(
        (line["product_sku"], line["quantity"])
        for line in conn.execute(
            "SELECT product_sku, quantity FROM checkout_lines WHERE checkout_id = ?", (co["id"],)
        )
    )
    if now == then:
        return []
    changed = f"cart {cart['token']} changed after checkout {co['token']} was made, which keeps"
    if co["status"] == "active":  # no payment yet: starting over loses nothing
        advice = (
            f"the items it had; to check out the cart as it is now: "
            f"`checkout cancel-checkout {co['token']}`, then initiate again"
        )
    else:  # a payment exists, maybe paid: cancelling could leave a paid checkout with no order
        advice = "the items it had and has a payment: complete it, and put the rest in a new cart"
    return [{"code": "cart_changed", "message": f"{changed} {advice}"}]


def _stock_warnings(lines: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [
        {
            "code": "insufficient_stock",
            "product_sku": line["product_sku"],
            "message": (
                f"{line['product_sku']}: {line['stock']} in stock, {line['quantity']} wanted"
            ),
        }
        for line in lines
        if line["stock"] is not None
        and not line["allow_backorder"]
        and line["stock"] < line["quantity"]
    ]


def set_customer(engine: Engine, body: requests.SetCustomer) -> dict[str, Any]:
    def work(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        refuse_unless_open(co)
        lines = conn.execute(
            "SELECT id, line_total_cents FROM checkout_lines "
            "WHERE checkout_id = ? ORDER BY line_no",
            (co["id"],),
        ).fetchall()
        shipping_address = body.shipping_address
        rate = settings.read(conn, "tax_rates").get(shipping_address.country)
        totals = pricing.compute(
            [line["line_total_cents"] for line in lines],
            co["shipping_cents"] if body.shipping_cents is None else body.shipping_cents,
            tax_rate_percent=rate,
            explicit_tax_cents=body.tax_cents,
        )
        payment = current_payment(conn, co["id"])
        if totals.total_cents != co["total_cents"] and payment is not None:
            if payment["provider"] != "invoice":
                raise ConflictError(
                    "totals_locked",
                    f"the new total differs from the {payment['provider']} payment's amount",
                    recovery="cancel this checkout and start a new one, or keep the totals",
                )
            conn.execute(
                "UPDATE payments SET amount_cents = ?, updated_at = ? WHERE id = ?",
                (totals.total_cents, engine.now(), payment["id"]),
            )
        conn.executemany(
            "UPDATE checkout_lines SET tax_cents = ? WHERE id = ?",
            [(tax, line["id"]) for tax, line in zip(totals.line_tax, lines, strict=True)],
        )
        conn.execute(
            "UPDATE checkouts SET customer = ?, shipping_address = ?, billing_address = ?, "
            "subtotal_cents = ?, shipping_cents = ?, tax_cents = ?, total_cents = ?, "
            "updated_at = ? WHERE id = ?",
            (
                dumps(_customer(body.customer)),
                dumps(_address(shipping_address)),
                dumps(_address(body.billing_address or shipping_address)),
                totals.subtotal_cents,
                totals.shipping_cents,
                totals.tax_cents,
                totals.total_cents,
                engine.now(),
                co["id"],
            ),
        )
        events.record(
            engine,
            conn,
            co["id"],
            "customer_set",
            detail={"country": shipping_address.country, **totals.as_dict()},
        )
        return checkout_object(conn, load_checkout(conn, co["token"]))

    return with_checkout(engine, body.checkout_token, work)


def _customer(c: requests.Customer) -> dict[str, Any]:
    return c.model_dump()  # every field, absent ones as null: the stored shape


def _address(a: requests.Address) -> dict[str, Any]:
    return a.model_dump()


def _refuse_invoice_unless_allowed(conn: sqlite3.Connection) -> None:
    if not settings.read(conn, "allow_invoice_checkout"):
        raise ForbiddenError(
            "invoice_checkout_not_allowed",
            "invoice checkout is not allowed in this shop",
            field="provider",
            recovery="an administrator can allow it: "
            "`checkout settings set allow_invoice_checkout true`",
        )


def _replacing(
    engine: Engine,
    token: str,
    admissible: Callable[[sqlite3.Connection, sqlite3.Row], bool],
    work: Callable[[sqlite3.Connection, sqlite3.Row], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``work`` on a checkout whose open Stripe/Mollie payment it replaces.

    ``admissible`` checks the request first (without writing) and says whether it would
    replace the payment; only then is that payment expired at the provider, with no lock
    held (paid: refused, the paid status recorded), and ``work`` runs, checking it all again.
    """
    from checkout_cli.engine import provider_payments

    # Most checkouts have no open provider payment (an invoice, a payment linked by hand):
    # one statement says so, and ``work`` checks everything in its own transaction.
    if provider_payments.any_open_payment(engine.conn, token):
        with engine.read() as conn:
            co = load_checkout(conn, token)
            replaces = not is_due(engine, co) and admissible(conn, co)
        if replaces:
            provider_payments.close_for_replacement(engine, token)
    return with_checkout(engine, token, work)


def create_payment(engine: Engine, body: requests.CreatePayment) -> dict[str, Any]:
    if body.provider != "invoice":
        from checkout_cli.engine import provider_payments

        return provider_payments.create(engine, body)

    from checkout_cli.engine.provider_payments import (
        in_progress,
        is_open_provider_payment,
        refuse_if_paid,
    )

    def checked(conn: sqlite3.Connection, co: sqlite3.Row) -> tuple[bool, sqlite3.Row | None]:
        """(whether an open provider payment stands in the way, the current payment), or
        refused: not open, no customer, invoices not allowed, paid already."""
        refuse_unless_open(co)
        require_customer(co)
        _refuse_invoice_unless_allowed(conn)
        payment = current_payment(conn, co["id"])
        if _invoiced(payment, body):
            return False, payment
        refuse_if_paid(co, payment)
        return is_open_provider_payment(payment), payment

    def admissible(conn: sqlite3.Connection, co: sqlite3.Row) -> bool:
        return not made_payment_before(engine, conn, co) and checked(conn, co)[0]

    def work(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        if made_payment_before(engine, conn, co):
            return checkout_object(conn, co)
        open_in_the_way, payment = checked(conn, co)
        if open_in_the_way:  # made again since it was closed
            assert payment is not None
            raise in_progress(co, payment)
        if _invoiced(payment, body):
            return checkout_object(conn, co)  # already invoiced: idempotent
        if payment is not None and payment["status"] == "pending":
            raise ConflictError(  # linked by hand: only the operator knows if it will be paid
                "payment_in_progress",
                f"the {payment['provider']} payment {payment['reference']} of {co['token']} is "
                "still pending",
                recovery="mark it paid with `checkout set-payment`, or cancel the checkout and "
                "start a new one",
            )
        insert_payment(
            engine, conn, co, provider="invoice", status="unpaid", amount_cents=co["total_cents"]
        )
        transition(engine, conn, co, "completable", "payment_created", {"provider": "invoice"})
        return checkout_object(conn, load_checkout(conn, co["token"]))

    return _replacing(engine, body.checkout_token, admissible, work)


def _open_payment(conn: sqlite3.Connection, co: sqlite3.Row) -> sqlite3.Row:
    """The open provider payment ``admissible`` just found, in this same transaction."""
    payment = current_payment(conn, co["id"])
    assert payment is not None  # admissible() said it is an open provider payment
    return payment


def _invoiced(payment: sqlite3.Row | None, body: requests.CreatePayment) -> bool:
    return payment is not None and payment["provider"] == "invoice" and not body.new


def set_payment(engine: Engine, body: requests.SetPayment) -> dict[str, Any]:
    from checkout_cli.engine.provider_payments import (
        in_progress,
        is_open_provider_payment,
        refuse_if_paid,
    )

    def admissible(conn: sqlite3.Connection, co: sqlite3.Row) -> bool:
        refuse_unless_open(co)
        if body.provider == "invoice":  # an invoice, however it is linked
            _refuse_invoice_unless_allowed(conn)
        amount = co["total_cents"] if body.amount_cents is None else body.amount_cents
        if amount != co["total_cents"] and not body.force:
            raise ConflictError(
                "amount_mismatch",
                f"amount {amount} does not match the checkout total {co['total_cents']}",
                field="amount_cents",
                recovery="link the exact total, or pass --force to accept a different amount",
            )
        payment = current_payment(conn, co["id"])
        refuse_if_paid(co, payment)  # a second payment for one checkout is never linked
        return is_open_provider_payment(payment)

    def work(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        if admissible(conn, co):
            raise in_progress(co, _open_payment(conn, co))
        amount = co["total_cents"] if body.amount_cents is None else body.amount_cents
        insert_payment(
            engine,
            conn,
            co,
            provider=body.provider,
            status=body.status,
            amount_cents=amount,
            reference=body.reference,
        )
        to_status = "completable" if body.status == "paid" else "payment_pending"
        detail = {
            "provider": body.provider,
            "reference": body.reference,
            "status": body.status,
            "amount_cents": amount,
            "forced": amount != co["total_cents"],
        }
        transition(engine, conn, co, to_status, "payment_linked", detail)
        return checkout_object(conn, load_checkout(conn, co["token"]))

    return _replacing(engine, body.checkout_token, admissible, work)


def complete_checkout(engine: Engine, body: requests.CheckoutRef) -> dict[str, Any]:
    from checkout_cli.engine import outbox  # email rendering and transports: only when used

    token = body.checkout_token
    pending = load_checkout(engine.conn, token)
    if pending["status"] == "payment_pending":
        from checkout_cli.engine import provider_payments

        provider_payments.refresh(engine, pending, "checked")  # asks the provider, no lock held

    def work(conn: sqlite3.Connection, co: sqlite3.Row) -> dict[str, Any]:
        if co["status"] == "completed":
            # Completed by an earlier attempt of this same request (its worker died before
            # answering): answer as that attempt would have, and deliver what it left queued.
            mine = events.by_this_request(engine, conn, co["id"], "checkout_completed")
            return {**checkout_object(conn, co), "already_completed": mine is None}
        refuse_unless_open(co)
        require_customer(co)
        missing_required_meta(conn, co["id"])
        payment = current_payment(conn, co["id"])
        if payment is None:
            raise ConflictError(
                "payment_required",
                f"checkout {co['token']} has no payment",
                field="checkout_token",
                recovery=f"create one: `checkout create-payment {co['token']} --provider invoice`",
            )
        if co["status"] != "completable":
            raise PaymentError(
                "payment_not_paid",
                f"the {payment['provider']} payment is {payment['status']}, not paid",
                recovery="wait for the payment, or link a paid one with `checkout set-payment`",
            )
        _refuse_unless_money_kept(conn, co, payment)
        order = create_order(engine, conn, co, payment)
        transition(
            engine,
            conn,
            co,
            "completed",
            "checkout_completed",
            {"order_number": order["order_number"]},
        )
        conn.execute(
            "UPDATE carts SET status = 'converted', updated_at = ? WHERE id = ?",
            (engine.now(), co["cart_id"]),
        )
        outbox.queue_confirmation(engine, conn, order)  # as made: nothing since moved it
        return {
            **checkout_object(conn, load_checkout(conn, co["token"])),
            "already_completed": False,
        }

    result = with_checkout(engine, token, work)
    if not result["already_completed"]:
        outbox.deliver_for_order(engine, result["order"]["order_id"])
    return result


def _refuse_unless_money_kept(
    conn: sqlite3.Connection, co: sqlite3.Row, payment: sqlite3.Row
) -> None:
    """An order is made only for money the shop keeps, of the amount the order says."""
    from checkout_cli.engine import refunds

    if refunds.latest(conn, payment["id"], refunds.UNDER_WAY) is not None:
        raise ConflictError(
            "payment_refunded",
            f"the payment of checkout {co['token']} is being refunded, as its cancellation asked",
            field="checkout_token",
            recovery=f"finish cancelling it: `checkout cancel-checkout {co['token']} --force`",
        )
    if payment["provider_payment_id"] and payment["amount_cents"] != co["total_cents"]:
        raise ConflictError(
            "amount_mismatch",
            f"the {payment['provider']} payment is {payment['amount_cents']}, made for an "
            f"earlier total; the checkout's total is {co['total_cents']}",
            field="checkout_token",
            recovery=f"refund it and start again: `checkout cancel-checkout {co['token']} --force`",
        )


def cancel_checkout(engine: Engine, body: requests.CancelCheckout) -> dict[str, Any]:
    """Cancel an open checkout; never one whose money the shop would keep without an order.

    First the provider is asked about the current Stripe/Mollie payment, with no lock held,
    and the payment is closed there so it can no longer be paid. A paid checkout (at a
    provider, or linked by hand) is refused with ``payment_already_paid``. With ``force`` a
    provider payment is refunded in full first (two phases, each on the timeline) and the
    checkout is cancelled only once the provider accepted the refund: a refused or
    unanswered refund leaves the checkout open, never cancelled with the money kept. A
    payment linked by hand is money received outside any provider: forced, the checkout is
    cancelled and the payment is named on the timeline and in the answer as not returned.
    """
    from checkout_cli.engine import provider_payments, refunds

    token = body.checkout_token
    force = bool(body.force)
    co = load_checkout(engine.conn, token)
    redone = _cancelled_by_this_request(engine, co)
    if redone is not None:
        return redone
    payment = current_payment(engine.conn, co["id"])
    if co["status"] in OPEN_STATES and provider_payments.is_open_provider_payment(payment):
        provider_payments.close_at_provider(engine, payment, "payment_closed")

    def paid_payment(conn: sqlite3.Connection, co: sqlite3.Row) -> sqlite3.Row | None:
        payment = current_payment(conn, co["id"])
        if payment is None or payment["status"] != "paid":
            return None
        if not force:
            raise provider_payments.already_paid(co, payment)
        return payment

    with engine.read() as conn:
        co = load_checkout(conn, token)
        paid = None
        if not is_due(engine, co):
            refuse_unless_open(co)
            paid = paid_payment(conn, co)
    refund = None
    if paid is not None and paid["provider_payment_id"]:

        def still_the_same(conn: sqlite3.Connection, payment: sqlite3.Row) -> None:
            co = load_checkout(conn, token)
            refuse_unless_open(co)
            current = current_payment(conn, co["id"])
            if current is None or current["id"] != payment["id"]:
                raise ConflictError(
                    "checkout_changed",
                    f"checkout {token} changed while it was being cancelled",
                    recovery="try again",
                )

        refund = refunds.refund_in_full(
            engine, paid["id"], body.reason or f"checkout {token} cancelled", still_the_same
        )

    warnings: list[dict[str, Any]] = []
    with engine.write() as conn:
        co = load_checkout(conn, token)
        # Past its TTL a checkout is expired, whoever asks first: the expiry is what happened.
        due = is_due(engine, co)
        if due:
            expire(engine, conn, co)
        else:
            refuse_unless_open(co)
            kept = paid_payment(conn, co) if refund is None else None
            reason = body.reason
            detail: dict[str, Any] = {"reason": reason}
            if refund is not None:
                detail.update(forced=True, refund=refunds.refund_object(refund))
            elif kept is not None:
                detail.update(
                    forced=True,
                    not_returned={
                        "provider": kept["provider"],
                        "reference": kept["reference"],
                        "amount_cents": kept["amount_cents"],
                    },
                )
                warnings.append(_not_returned_warning(co, kept))
            conn.execute("UPDATE checkouts SET cancel_reason = ? WHERE id = ?", (reason, co["id"]))
            transition(engine, conn, co, "cancelled", "checkout_cancelled", detail)
        payment = current_payment(conn, co["id"])
    if provider_payments.is_open_provider_payment(payment):
        warnings.append(_still_open_warning(payment))
    if due:
        raise expired_error(co)
    from checkout_cli.engine import webhook_delivery

    webhook_delivery.after_commit(engine)  # checkout.cancelled to webhook subscribers
    result = get_checkout_status(engine, requests.CheckoutRef(checkout_token=token))
    if refund is not None:
        result["refund"] = refunds.refund_object(refund)
    if warnings:
        result["warnings"] = warnings
    return result


def _cancelled_by_this_request(engine: Engine, co: sqlite3.Row) -> dict[str, Any] | None:
    """The answer of an earlier attempt of this same request (its worker died before
    answering) that cancelled or expired the checkout, if one did."""
    earlier = events.by_this_request(
        engine, engine.conn, co["id"], "checkout_cancelled", "checkout_expired"
    )
    if earlier is None or earlier["to_status"] != co["status"]:
        return None
    if co["status"] == "expired":
        raise expired_error(co)
    result = get_checkout_status(engine, requests.CheckoutRef(checkout_token=co["token"]))
    refund = (loads(earlier["detail"]) or {}).get("refund")
    if refund is not None:
        result["refund"] = refund
    return result


def _not_returned_warning(co: sqlite3.Row, payment: sqlite3.Row) -> dict[str, Any]:
    from checkout_cli.money import format_money

    return {
        "code": "payment_not_returned",
        "message": f"the {payment['provider']} payment {payment['reference']} of "
        f"{format_money(payment['amount_cents'], payment['currency'])} was received outside "
        f"any provider and is not returned by cancelling {co['token']}: return it to the "
        "customer yourself",
    }


def _still_open_warning(payment: sqlite3.Row) -> dict[str, Any]:
    return {
        "code": "payment_still_open",
        "message": f"{payment['provider']} would not close payment "
        f"{payment['provider_payment_id']}, which the customer could still pay; if they do, "
        "`checkout reconcile` reports it with the command that refunds it",
    }
