"""Support: find stuck checkouts, explain one in plain language, and say the command that fixes it.

Stuck means one of:
- ``payment_pending_too_long``: a provider payment open longer than the threshold;
- ``completable_not_completed``: paid, invoiced or linked, but nobody completed it;
- ``paid_not_completed``: the provider says paid and the checkout is still open;
- ``email_not_delivered``: completed, but the confirmation email has not gone out;
- ``stock_shortfall``: an open checkout wants more than is available;
- ``stray_paid_payment``: a provider payment is paid but no order accounts for it (its
  checkout is cancelled, expired or completed by another payment, or it was replaced);
- ``order_overpaid``: a payment link was paid after its order was cancelled or paid in
  full another way: the surplus is to be refunded;
- and, for a completed checkout, its order's: ``refund_pending_too_long``,
  ``refund_failed``, ``paid_not_shipped`` (``engine/order_support.py``).
"""

from __future__ import annotations

import shlex
import sqlite3
from datetime import timedelta
from typing import Any, TypeGuard

from checkout_cli import requests
from checkout_cli.engine import near_tokens, order_support, strays
from checkout_cli.engine.core import Engine, iso
from checkout_cli.engine.paging import limits, page
from checkout_cli.errors import CheckoutError, InternalError

STUCK_REASONS = (
    "payment_pending_too_long",
    "completable_not_completed",
    "paid_not_completed",
    "email_not_delivered",
    "stock_shortfall",
    "stray_paid_payment",
    *order_support.ORDER_REASONS,
    "order_overpaid",
)
DEFAULT_OLDER_THAN_MINUTES = 30


def _older_than(body: requests.ListCheckouts | requests.InspectCheckout) -> int:
    given = body.older_than_minutes
    return DEFAULT_OLDER_THAN_MINUTES if given is None else given


def _reasons(
    conn: sqlite3.Connection, co: sqlite3.Row, cutoff: str, cut: order_support.Cutoffs
) -> list[str]:
    from checkout_cli.engine.checkout_records import OPEN_STATES, current_payment

    reasons = []
    stale = co["updated_at"] <= cutoff
    payment = current_payment(conn, co["id"])
    if co["status"] == "payment_pending" and stale:
        reasons.append("payment_pending_too_long")
    if co["status"] == "completable" and stale:
        reasons.append("completable_not_completed")
    if payment is not None and payment["status"] == "paid" and co["status"] in OPEN_STATES:
        reasons.append("paid_not_completed")
    if co["status"] == "completed":
        email = conn.execute(
            "SELECT o.status FROM outbox o JOIN orders ord ON ord.id = o.order_id "
            "WHERE ord.checkout_id = ? AND o.kind = 'order_confirmation'",
            (co["id"],),
        ).fetchone()
        if email is None or email["status"] != "sent":
            reasons.append("email_not_delivered")
    if co["status"] in OPEN_STATES and _shortfalls(conn, co["id"]):
        reasons.append("stock_shortfall")
    if strays.stray_rows(conn, co["id"]):
        reasons.append("stray_paid_payment")
    if co["status"] == "completed" and (order := order_support.order_of(conn, co["id"])):
        reasons += order_support.order_reasons(conn, order, cut)
    if strays.overpaid_findings(conn, co["id"]):
        reasons.append("order_overpaid")
    return reasons


def _shortfalls(conn: sqlite3.Connection, checkout_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT l.product_sku, SUM(l.quantity) AS wanted, p.stock, p.allow_backorder, "
        "(SELECT COALESCE(SUM(r.quantity), 0) FROM stock_reservations r "
        " WHERE r.sku = l.product_sku AND r.checkout_id != l.checkout_id) AS held "
        "FROM checkout_lines l JOIN products p ON p.sku = l.product_sku "
        "WHERE l.checkout_id = ? GROUP BY l.product_sku, l.checkout_id, p.sku",
        (checkout_id,),
    ).fetchall()
    return [
        {
            "product_sku": r["product_sku"],
            "wanted": r["wanted"],
            "available": r["stock"] - r["held"],
            "held": r["held"],
        }
        for r in rows
        if r["stock"] is not None
        and not r["allow_backorder"]
        and r["stock"] - r["held"] < r["wanted"]
    ]


def _summary(conn: sqlite3.Connection, co: sqlite3.Row, reasons: list[str]) -> dict[str, Any]:
    from checkout_cli.engine.checkout_records import current_payment
    from checkout_cli.engine.core import loads

    payment = current_payment(conn, co["id"])
    order = conn.execute(
        "SELECT order_number FROM orders WHERE checkout_id = ?", (co["id"],)
    ).fetchone()
    return {
        "checkout_token": co["token"],
        "status": co["status"],
        "customer_email": (loads(co["customer"]) or {}).get("email"),
        "total_cents": co["total_cents"],
        "currency": co["currency"],
        "payment_provider": payment["provider"] if payment else None,
        "payment_status": payment["status"] if payment else None,
        "order_number": order["order_number"] if order else None,
        "updated_at": co["updated_at"],
        "stuck_reasons": reasons,
    }


def list_checkouts(engine: Engine, body: requests.ListCheckouts) -> dict[str, Any]:
    minutes = _older_than(body)
    cutoff = iso(engine.clock() - timedelta(minutes=minutes))
    sql, params = "SELECT * FROM checkouts WHERE test_run IS NULL", list[Any]()  # not smoke runs
    if status := body.status:
        sql += " AND status = ?"
        params.append(status)
    if not body.stuck and body.older_than_minutes is not None:
        sql += " AND updated_at <= ?"
        params.append(cutoff)
    if near := body.near:
        clause, near_params = near_tokens.near_clause(near)
        sql += clause
        params += near_params
    with engine.read() as conn:
        cut = order_support.cutoffs(engine, conn)
        if not body.stuck and not near:
            rows, paging = page(conn, sql, params, "updated_at DESC, id DESC", body, 100)
            found = [_summary(conn, co, _reasons(conn, co, cutoff, cut)) for co in rows]
            return {"checkouts": found, "older_than_minutes": minutes, **paging}
        # Stuck and near are decided per checkout, not in SQL: each candidate is examined to
        # count them all, and only the page's own are summarised.
        limit, offset = limits(body, 100)
        kept = []
        for co in conn.execute(sql + " ORDER BY updated_at DESC, id DESC", params):
            if near and not near_tokens.is_close(co["token"], near):
                continue
            reasons = _reasons(conn, co, cutoff, cut)
            if reasons or not body.stuck:
                kept.append((co, reasons))
        found = [_summary(conn, co, reasons) for co, reasons in kept[offset : offset + limit]]
    paging = {"total": len(kept), "limit": limit, "offset": offset}
    return {"checkouts": found, "older_than_minutes": minutes, **paging}


def _diagnosis(
    engine: Engine,
    conn: sqlite3.Connection,
    co: sqlite3.Row,
    reasons: list[str],
    live: dict[str, Any] | None,
    cut: order_support.Cutoffs,
) -> list[dict[str, Any]]:
    from checkout_cli.engine.checkout_records import current_payment
    from checkout_cli.engine.line_meta import missing_required_meta

    token = co["token"]
    payment = current_payment(conn, co["id"])
    cart = conn.execute("SELECT token FROM carts WHERE id = ?", (co["cart_id"],)).fetchone()[0]
    found: list[dict[str, Any]] = []

    def say(problem: str, fix: str, then: list[str] | None = None) -> None:
        # "then": the commands that follow the fix, only where one command is not enough
        found.append({"problem": problem, "fix": fix} | ({"then": then} if then else {}))

    live_paid = bool(live and live.get("status") == "paid")
    if live_paid and co["status"] == "payment_pending":
        say(
            "The customer has paid, but the payment has not been recorded here yet.",
            f"checkout complete-checkout {token}",
        )
    stray = strays.findings(conn, co["id"])
    for finding in stray:
        say(finding["message"][0].upper() + finding["message"][1:] + ".", finding["fix"])
    if (
        live_paid
        and payment is not None
        and co["status"] in ("cancelled", "expired")
        and payment["provider_payment_id"] not in {f["provider_payment_id"] for f in stray}
    ):  # paid at the provider since the store last looked
        stray.append(strays.finding(payment, token, co["status"]))
        say(
            f"The customer paid {payment['provider']} payment {payment['provider_payment_id']}, "
            f"but this checkout is {co['status']}: the money is kept without an order.",
            strays.fix_command(token, payment["provider_payment_id"]),
        )
    for reason in reasons:
        if reason == "payment_pending_too_long":
            if payment is None:  # payment_pending is only ever entered with a payment
                raise InternalError(
                    "payment_missing", f"checkout {token} is payment_pending but has no payment"
                )
            if payment["provider"] in ("stripe", "mollie"):
                say(
                    f"The {payment['provider']} payment has been open since {co['updated_at']}; "
                    "the customer may have lost the link or given up.",
                    f"checkout create-payment {token} --provider {payment['provider']} --new",
                )
            else:
                # A payment linked by hand (set-payment): no link to renew; record it once it
                # is in.
                say(
                    f"The {payment['provider']} payment {payment['reference']} was linked as "
                    f"pending on {co['updated_at']} and has not been marked paid. Check the bank "
                    "account: only once the transfer has arrived, record it as paid.",
                    f"checkout set-payment {token} --provider {payment['provider']} "
                    f"--reference {shlex.quote(payment['reference'] or '')} --status paid",
                )
        elif reason in ("completable_not_completed", "paid_not_completed") and _refunding(
            conn, payment
        ):
            say(
                "A refund of the payment was started by a forced cancel that did not finish.",
                f"checkout cancel-checkout {token} --force",
            )
        elif reason in ("completable_not_completed", "paid_not_completed"):
            say(
                "The payment is settled (or invoiced) but the order was never created.",
                f"checkout complete-checkout {token}",
            )
        elif reason == "email_not_delivered":
            stuck = conn.execute(
                "SELECT o.claimed_at FROM outbox o JOIN orders ord ON ord.id = o.order_id "
                "WHERE ord.checkout_id = ? AND o.status = 'sending' "
                "AND o.kind = 'order_confirmation'",
                (co["id"],),
            ).fetchone()
            if stuck:
                from checkout_cli.engine.outbox import minutes_until, retry_after

                wait = retry_after(engine, stuck["claimed_at"])
                when = (
                    f" It may be retried in {minutes_until(engine, wait)} minutes (from {wait}); "
                    "until then a process may still be sending it."
                    if wait
                    else ""
                )
                say(
                    "The confirmation email was cut off while being sent; it may or may not "
                    f"have arrived.{when}",
                    "checkout outbox send --retry-stuck",
                )
            else:
                say(
                    "The order exists but its confirmation email has not been delivered.",
                    "checkout outbox send",
                )
        elif reason == "stock_shortfall":
            for short in _shortfalls(conn, co["id"]):
                sku = short["product_sku"]
                # Two safe ways out; never "set the stock to what is wanted", which invents goods.
                say(
                    f"{sku}: {short['wanted']} wanted, only {max(short['available'], 0)} "
                    "available. Either take the line out: cancel this checkout, remove the "
                    f"product from cart {cart} and check the cart out again",
                    f"checkout cancel-checkout {token}",
                    then=[
                        f"checkout cart remove {cart} {sku}",
                        f"checkout initiate-checkout {cart}",
                    ],
                )
                missing = short["wanted"] - max(short["available"], 0)
                say(
                    f"Or, once more {sku} has really arrived, count the shelf and set the stock "
                    f"to that count: this checkout needs {missing} "
                    f"more than is free now ({short['held']} held by other checkouts).",
                    f"checkout products set-stock {sku} COUNTED",
                )
    if co["status"] in ("active", "payment_pending", "completable"):
        if co["customer"] is None:
            say("No customer or address yet.", f"checkout set-customer {token}")
        else:
            try:
                missing_required_meta(conn, co["id"])
            except CheckoutError as exc:
                say(exc.message.capitalize() + ".", exc.recovery or "")
            if payment is None:
                say("No payment yet.", f"checkout create-payment {token} --provider invoice")
    if co["status"] in ("cancelled", "expired") and not stray:
        from checkout_cli.engine import refunds
        from checkout_cli.money import format_money

        refund = payment and refunds.latest(conn, payment["id"], refunds.ACCEPTED)
        if _paid(payment) and refund is None:  # linked by hand, kept by a forced cancel
            say(
                f"The {payment['provider']} payment {payment['reference']} of "
                f"{format_money(payment['amount_cents'], payment['currency'])} was received "
                f"outside any provider and kept when this checkout was {co['status']}.",
                "",
            )
        else:
            refunded = f" Its payment was refunded ({refund['status']})." if refund else ""
            say(
                f"This checkout is {co['status']}.{refunded} The cart can be checked out again.",
                f"checkout initiate-checkout {cart}",
            )
    order = order_support.order_of(conn, co["id"])
    if order is not None:
        found += order_support.order_diagnosis(conn, order, reasons, cut)
    if not found:
        say("Nothing looks wrong.", f"checkout status {token}")
    return found


def _paid(payment: sqlite3.Row | None) -> TypeGuard[sqlite3.Row]:
    return payment is not None and payment["status"] == "paid"


def _refunding(conn: sqlite3.Connection, payment: sqlite3.Row | None) -> bool:
    from checkout_cli.engine import refunds

    return (
        payment is not None and refunds.latest(conn, payment["id"], refunds.UNDER_WAY) is not None
    )


def inspect_checkout(engine: Engine, body: requests.InspectCheckout) -> dict[str, Any]:
    """The checkout, its timeline, the provider's live status and a diagnosis."""
    from checkout_cli.engine import events
    from checkout_cli.engine.checkout_records import checkout_object, current_payment, load_checkout

    conn = engine.conn
    co = load_checkout(conn, body.checkout_token)
    live = None
    payment = current_payment(conn, co["id"])
    if body.live is not False and payment is not None and payment["provider_payment_id"]:
        from checkout_cli.engine.provider_payments import provider_for

        try:
            fetched = provider_for(conn, payment["provider"]).fetch(payment["provider_payment_id"])
            live = {
                "provider": payment["provider"],
                "status": fetched.status,
                "provider_status": fetched.provider_status,
                "error": None,
            }
        except CheckoutError as exc:
            live = {
                "provider": payment["provider"],
                "status": None,
                "provider_status": None,
                "error": exc.message,
            }
    cutoff = iso(engine.clock() - timedelta(minutes=_older_than(body)))
    with engine.read() as tx:
        from checkout_cli.engine.orders import order_object

        co = load_checkout(tx, body.checkout_token)
        cut = order_support.cutoffs(engine, tx)
        reasons = _reasons(tx, co, cutoff, cut)
        order = order_support.order_of(tx, co["id"])
        return {
            "checkout": checkout_object(tx, co),
            "order": order_object(tx, order) if order is not None else None,
            "timeline": events.timeline(tx, co["id"]),
            "provider_live": live,
            "stuck_reasons": reasons,
            "diagnosis": _diagnosis(engine, tx, co, reasons, live, cut),
            "findings": strays.findings(tx, co["id"]),
        }
