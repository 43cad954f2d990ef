"""Stray payments: money a provider holds for a checkout that no order will ever account for.

A Stripe/Mollie payment is *wanted* while it is the current payment of an open checkout, or
the payment its checkout's order was completed by. A paid one that is neither — its checkout
cancelled or expired, or completed by another payment, or it was replaced — is a stray
(``stray_paid_payment``) until a refund of it is accepted by the provider. Every face that
reports one (reconcile, inspect, the stuck list, doctor's invariant 7) uses this definition
and the same fix: ``checkout refund-payment CHECKOUT PROVIDER_PAYMENT_ID``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

PROVIDERS = ("stripe", "mollie")
OPEN_STATES = ("active", "payment_pending", "completable")
# A refund the provider has accepted: pending ones are on their way back to the customer.
ACCEPTED_REFUNDS = ("pending", "succeeded")
CODE = "stray_paid_payment"

# The checkout's current payment: its newest row that is not an attempt in flight or failed.
_CURRENT = (
    "(SELECT MAX(q.id) FROM payments q WHERE q.checkout_id = c.id "
    "AND q.status NOT IN ('creating', 'create_failed'))"
)
# The payment an order was completed by (orders made before payment_id: the current one).
_ORDER_PAYMENT = (
    f"(SELECT COALESCE(o.payment_id, {_CURRENT}) FROM orders o WHERE o.checkout_id = c.id)"
)
_STRAYS = (
    "SELECT p.*, c.token, c.status AS checkout_status, "
    "(SELECT status FROM refunds r WHERE r.payment_id = p.id ORDER BY r.id DESC LIMIT 1) "
    "AS refund_status FROM payments p JOIN checkouts c ON c.id = p.checkout_id "
    f"WHERE p.provider IN ({', '.join('?' * len(PROVIDERS))}) "
    "AND p.provider_payment_id IS NOT NULL AND p.status = 'paid' "
    f"AND NOT (c.status IN ({', '.join('?' * len(OPEN_STATES))}) AND p.id = {_CURRENT}) "
    f"AND p.id IS NOT {_ORDER_PAYMENT} "
    "AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id "
    f"AND r.status IN ({', '.join('?' * len(ACCEPTED_REFUNDS))}))"
)


def stray_rows(conn: sqlite3.Connection, checkout_id: int | None = None) -> list[sqlite3.Row]:
    sql = _STRAYS
    params: list[str | int] = [*PROVIDERS, *OPEN_STATES, *ACCEPTED_REFUNDS]
    if checkout_id is not None:
        sql += " AND c.id = ?"
        params.append(checkout_id)
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row  # whatever the connection's own row factory is
    try:
        return cursor.execute(sql + " ORDER BY p.id", params).fetchall()
    finally:
        cursor.close()


def is_stray(conn: sqlite3.Connection, payment_id: int) -> bool:
    row = conn.execute("SELECT checkout_id FROM payments WHERE id = ?", (payment_id,)).fetchone()
    return row is not None and any(r["id"] == payment_id for r in stray_rows(conn, row[0]))


def unwanted(conn: sqlite3.Connection, payment: sqlite3.Row) -> bool:
    """Whether no open checkout waits for this payment and no order was completed by it."""
    co = conn.execute(
        "SELECT id, status FROM checkouts WHERE id = ?", (payment["checkout_id"],)
    ).fetchone()
    current = conn.execute(
        "SELECT MAX(id) FROM payments WHERE checkout_id = ? "
        "AND status NOT IN ('creating', 'create_failed')",
        (co["id"],),
    ).fetchone()[0]
    if co["status"] in OPEN_STATES:
        return payment["id"] != current
    order = conn.execute(
        "SELECT payment_id FROM orders WHERE checkout_id = ?", (co["id"],)
    ).fetchone()
    return order is None or (order["payment_id"] or current) != payment["id"]


def fix_command(token: str, provider_payment_id: str) -> str:
    return f"checkout refund-payment {token} {provider_payment_id}"


def finding(
    payment: sqlite3.Row, token: str, checkout_status: str, refund_status: str | None = None
) -> dict[str, Any]:
    from checkout_cli.money import format_money

    why = {
        "cancelled": f"checkout {token} is cancelled",
        "expired": f"checkout {token} expired",
        "completed": f"checkout {token} was completed by another payment",
    }.get(checkout_status, f"it was replaced by another payment of checkout {token}")
    message = (
        f"{payment['provider']} payment {payment['provider_payment_id']} of "
        f"{format_money(payment['amount_cents'], payment['currency'])} is paid, but {why}: "
        "the customer's money is kept without an order"
    )
    if refund_status == "creating":
        message += " (a refund was started and its outcome is unknown; the fix resumes it)"
    elif refund_status == "failed":
        message += " (a refund of it failed)"
    return {
        "code": CODE,
        "checkout_token": token,
        "checkout_status": checkout_status,
        "provider": payment["provider"],
        "provider_payment_id": payment["provider_payment_id"],
        "amount_cents": payment["amount_cents"],
        "currency": payment["currency"],
        "message": message,
        "fix": fix_command(token, payment["provider_payment_id"]),
    }


def findings(conn: sqlite3.Connection, checkout_id: int | None = None) -> list[dict[str, Any]]:
    return [
        finding(row, row["token"], row["checkout_status"], row["refund_status"])
        for row in stray_rows(conn, checkout_id)
    ]
