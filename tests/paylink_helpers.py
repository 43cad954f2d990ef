"""Shared by the payment-link, refund-webhook and contract tests: a store wired to the fake
Stripe and Mollie (real SDKs), served by a real `checkout serve` for the webhooks, and the
steps they share (an invoice order, a bank transfer, a cancelled order)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from checkout_cli.backends.local import LocalBackend
from checkout_cli.engine import order_payments, order_state
from tests.conftest import WATCH, load_fixtures, ready_checkout
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe
from tests.serve_helpers import serving

FLOW, ORDERS, ADMIN = "checkout-flow", "order-management", "checkout-admin"
STRIPE_KEY = WATCH.secret("sk_test_51PayLink0Server0Key0abcdefghijklmnopqr")
WEBHOOK_SECRET = WATCH.secret("whsec_paylink0webhook0secret0abcdef")
MOLLIE_KEY = WATCH.secret("test_paylink0webhook0mollie0key0abcdefghijkl")


def configure(local: Any, stripe_fake: FakeStripe | None, mollie: FakeMollie | None) -> None:
    """Point a store at the fakes (only those given), as an operator would."""
    if stripe_fake is not None:
        local.call(ADMIN, "set-vault", {"name": "stripe_secret_key", "value": STRIPE_KEY})
        local.call(ADMIN, "set-vault", {"name": "stripe_webhook_secret", "value": WEBHOOK_SECRET})
        local.call(ADMIN, "set-setting", {"key": "stripe_api_base", "value": stripe_fake.url})
    if mollie is not None:
        local.call(ADMIN, "set-vault", {"name": "mollie_api_key", "value": MOLLIE_KEY})
        local.call(ADMIN, "set-setting", {"key": "mollie_api_endpoint", "value": mollie.url})
    for key, value in {
        "payment_redirect_url": "https://shop.example/thanks",
        "provider_timeout_seconds": 2,
        "allow_invoice_checkout": True,
    }.items():
        local.call(ADMIN, "set-setting", {"key": key, "value": value})


@pytest.fixture(name="shop")
def shop_fixture(tmp_path):
    """A store wired to both fakes, served by a real `checkout serve` for the webhooks."""
    db = tmp_path / "shop.db"
    with FakeStripe(api_key=STRIPE_KEY) as stripe_fake, FakeMollie(api_key=MOLLIE_KEY) as mollie:
        local = LocalBackend(db, actor="test")
        load_fixtures(local)
        configure(local, stripe_fake, mollie)
        token = WATCH.secret(local.call(ADMIN, "create-token", {"name": "t"})["token"])
        try:
            with serving(db, token, project="local", workers=1) as server:
                local.call(
                    ADMIN,
                    "set-setting",
                    {"key": "payment_webhook_url", "value": f"{server.url}/webhooks/mollie"},
                )
                yield local, server.url, stripe_fake, mollie
        finally:
            local.close()
            WATCH.export_store(db)


def invoice_order(local: Any, items: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    """An invoice order, completed and unpaid; returns the order."""
    token = ready_checkout(local, items)
    local.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    number = local.call(FLOW, "complete-checkout", {"checkout_token": token})["order"][
        "order_number"
    ]
    order = local.call(ORDERS, "get-order", {"order_id": number})
    assert (order["status"], order["payment_status"]) == ("pending", "unpaid")
    return order


def pay_link(local: Any, number: str, provider: str) -> dict[str, Any]:
    return local.call(ORDERS, "create-payment-link", {"order_id": number, "provider": provider})


def rows(local: Any, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with local.engine.read() as conn:
        return conn.execute(sql, params).fetchall()


def bank_transfer(local: Any, number: str, cents: int, reference: str) -> None:
    engine = local.engine
    with engine.write() as conn:
        order = conn.execute("SELECT * FROM orders WHERE order_number = ?", (number,)).fetchone()
        received = order_payments.Received("bank_transfer", cents, "EUR", reference=reference)
        order_payments.add_payment(engine, conn, order, received)


def cancel_order(local: Any, number: str) -> None:
    """The order cancelled (as cancel-order records it), its link left open at the provider."""
    engine = local.engine
    with engine.write() as conn:
        order = conn.execute("SELECT * FROM orders WHERE order_number = ?", (number,)).fetchone()
        conn.execute(
            "UPDATE orders SET cancelled_at = ?, cancel_reason = 'test' WHERE id = ?",
            (engine.now(), order["id"]),
        )
        order_state.refresh(engine, conn, order["id"])


def stripe_webhook(url: str, fake: FakeStripe, payload: str) -> int:
    return fake.deliver(f"{url}/webhooks/stripe", payload, WEBHOOK_SECRET)


def reconcile(local: Any) -> dict[str, Any]:
    return local.call(ADMIN, "reconcile", {})
