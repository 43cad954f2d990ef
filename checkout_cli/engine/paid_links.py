"""A paid payment link becomes one of its order's payments, exactly once.

A payment link (``create-payment-link``) is a Stripe/Mollie payment of the order's checkout
that names the order (``payments.order_id``). Whichever way the store learns it is paid — a
webhook, reconcile, a repeated ``create-payment-link``, closing it for a new one — the paid
status and the order payment are recorded in the same write transaction, and the order's
UNIQUE ``order_payments.payment_id`` makes a second delivery a no-op. Money received is a
fact: it is recorded even on a cancelled order or one already paid in full, and the surplus
is then a finding to refund (``strays.overpaid_findings``).
"""

from __future__ import annotations

import sqlite3

from checkout_cli.engine import order_payments
from checkout_cli.engine.core import Engine
from checkout_cli.payments.base import PAID, ProviderPayment


def record_paid(
    engine: Engine, conn: sqlite3.Connection, payment: sqlite3.Row, fetched: ProviderPayment
) -> bool:
    """Inside the caller's write transaction: count a paid link on its order (True if it was
    counted now; False if it is no link, not paid, or counted already)."""
    if payment["order_id"] is None or fetched.status != PAID:
        return False
    received = order_payments.Received(
        method=payment["provider"],
        amount_cents=payment["amount_cents"]
        if fetched.amount_cents is None
        else (fetched.amount_cents),
        currency=fetched.currency or payment["currency"],
        payment_id=payment["id"],
        note=f"payment link {payment['provider_payment_id']}",
    )
    if order_payments.find(conn, received) is not None:
        return False
    order = conn.execute("SELECT * FROM orders WHERE id = ?", (payment["order_id"],)).fetchone()
    order_payments.add_payment(engine, conn, order, received)
    return True
