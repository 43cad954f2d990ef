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

# The checkout's current payment: its newest own row (not a payment link made for its order)
# that is not an attempt in flight or failed.
_CURRENT = (
    "(SELECT MAX(q.id) FROM payments q WHERE q.checkout_id = c.id "
    "AND q.status NOT IN ('creating', 'create_failed') AND q.order_id IS NULL)"
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
    # Counted among an order's payments (a paid payment link): the order accounts for it.
    "AND NOT EXISTS (SELECT 1 FROM order_payments op WHERE op.payment_id = p.id) "
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
    """Whether no open checkout waits for this payment and no order was completed by it.

    A payment link is wanted while it is its order's newest link, for the balance the order
    still has (not cancelled); one replaced, or for a balance since paid otherwise, is not.
    """
    if payment["order_id"] is not None:
        return not _link_wanted(conn, payment)
    co = conn.execute(
        "SELECT id, status FROM checkouts WHERE id = ?", (payment["checkout_id"],)
    ).fetchone()
    current = conn.execute(
        "SELECT MAX(id) FROM payments WHERE checkout_id = ? "
        "AND status NOT IN ('creating', 'create_failed') AND order_id IS NULL",
        (co["id"],),
    ).fetchone()[0]
    if co["status"] in OPEN_STATES:
        return payment["id"] != current
    order = conn.execute(
        "SELECT payment_id FROM orders WHERE checkout_id = ?", (co["id"],)
    ).fetchone()
    return order is None or (order["payment_id"] or current) != payment["id"]


def _link_wanted(conn: sqlite3.Connection, payment: sqlite3.Row) -> bool:
    from checkout_cli.engine.order_state import balance_due

    if conn.execute(
        "SELECT 1 FROM order_payments WHERE payment_id = ?", (payment["id"],)
    ).fetchone():
        return True
    order = conn.execute("SELECT * FROM orders WHERE id = ?", (payment["order_id"],)).fetchone()
    newest = conn.execute(
        "SELECT MAX(id) FROM payments WHERE order_id = ? "
        "AND status NOT IN ('creating', 'create_failed')",
        (order["id"],),
    ).fetchone()[0]
    return newest == payment["id"] and balance_due(order) == payment["amount_cents"]


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
    ] + overpaid_findings(conn, checkout_id)


# ---- money kept beyond what an order is owed ----------------------------------------------
# A payment link paid after its order was cancelled, or while its balance was already paid
# another way (a bank transfer crossing the link): recorded on the order, and the surplus is
# to be refunded. Orders with a payment link only: an overpayment recorded on purpose
# (``record-payment --force``) is the operator's own decision.

OVERPAID = "order_overpaid"
_SURPLUS = (
    "SELECT o.*, c.token, c.status AS checkout_status, "
    "o.amount_paid_cents - COALESCE((SELECT SUM(r.amount_cents) FROM refunds r "
    "WHERE r.order_id = o.id AND r.status IN ('creating', 'pending', 'succeeded')), 0) "
    "- CASE WHEN o.cancelled_at IS NULL THEN o.total_cents ELSE 0 END AS surplus, "
    "(SELECT MAX(p.id) FROM order_payments op JOIN payments p ON p.id = op.payment_id "
    "WHERE op.order_id = o.id AND p.order_id = o.id) AS link_id "
    "FROM orders o JOIN checkouts c ON c.id = o.checkout_id"
)


def overpaid_findings(
    conn: sqlite3.Connection, checkout_id: int | None = None
) -> list[dict[str, Any]]:
    from checkout_cli.money import format_money

    sql, params = _SURPLUS, []
    if checkout_id is not None:
        sql += " WHERE c.id = ?"
        params.append(checkout_id)
    # The computed columns are filtered outside: only SQLite reads an alias inside WHERE.
    sql = f"SELECT * FROM ({sql}) AS o WHERE link_id IS NOT NULL AND surplus > 0"
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    try:
        rows = cursor.execute(sql + " ORDER BY o.id", params).fetchall()
        found = []
        for row in rows:
            link = cursor.execute(
                "SELECT * FROM payments WHERE id = ?", (row["link_id"],)
            ).fetchone()
            why = (
                "is cancelled"
                if row["cancelled_at"] is not None
                else f"is owed {format_money(row['total_cents'], row['currency'])}"
            )
            surplus = format_money(row["surplus"], row["currency"])
            found.append(
                {
                    "code": OVERPAID,
                    "checkout_token": row["token"],
                    "checkout_status": row["checkout_status"],
                    "provider": link["provider"],
                    "provider_payment_id": link["provider_payment_id"],
                    "amount_cents": row["surplus"],
                    "currency": row["currency"],
                    "message": f"order {row['order_number']} {why} but holds "
                    f"{format_money(row['amount_paid_cents'], row['currency'])} (its "
                    f"{link['provider']} payment link {link['provider_payment_id']} was paid "
                    f"too): {surplus} is to be refunded",
                    "fix": f"checkout orders refund {row['order_number']} "
                    f"--amount-cents {row['surplus']}",
                }
            )
        return found
    finally:
        cursor.close()
