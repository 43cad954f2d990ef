"""create-payment-link: a Stripe/Mollie payment for an invoice order's balance, through the
real SDKs against the fake providers, paid by webhooks POSTed to a real `checkout serve`."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from checkout_cli.backends.local import LocalBackend
from checkout_cli.engine import order_payments, order_state
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import WATCH, load_fixtures, ready_checkout
from tests.engine_helpers import refused
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe
from tests.serve_helpers import invariant_violations, serving

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


@pytest.fixture
def shop(tmp_path):
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


# -- Stripe ---------------------------------------------------------------------------------


def test_stripe_link_is_reused_then_paid_by_webhook_once(shop):
    local, url, stripe_fake, _ = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    link = pay_link(local, number, "stripe")
    assert (link["provider"], link["status"], link["amount_cents"]) == ("stripe", "open", total)
    assert link["reused"] is False and link["redirect_url"]
    session = stripe_fake.sessions[link["provider_payment_id"]]
    assert session["amount_total"] == total
    assert session["metadata"] == {
        "checkout_token": order["checkout_token"],
        "order_number": number,
    }

    again = pay_link(local, number, "stripe")
    assert again["reused"] is True
    assert again["provider_payment_id"] == link["provider_payment_id"]
    assert stripe_fake.create_count == 1
    # the checkout's own payment is still the invoice; the link is the order's
    status = local.call(FLOW, "get-checkout-status", {"checkout_token": order["checkout_token"]})
    assert status["payment"]["provider"] == "invoice"

    stripe_fake.mark_paid(link["provider_payment_id"])
    payload = stripe_fake.event_payload(link["provider_payment_id"])
    assert stripe_webhook(url, stripe_fake, payload) == 200
    assert stripe_webhook(url, stripe_fake, payload) == 200  # delivered twice
    assert reconcile(local)["findings"] == []  # and reconcile runs too

    paid = local.call(ORDERS, "get-order", {"order_id": number})
    assert (paid["status"], paid["payment_status"]) == ("paid", "paid")
    assert (paid["amount_paid_cents"], paid["balance_due_cents"]) == (total, 0)
    assert [
        (p["method"], p["amount_cents"], p["provider_payment_id"]) for p in paid["payments"]
    ] == [("stripe", total, link["provider_payment_id"])]
    emails = rows(
        local,
        "SELECT kind FROM outbox o JOIN orders ord ON ord.id = o.order_id "
        "WHERE ord.order_number = ? AND kind LIKE 'payment_received%'",
        (number,),
    )
    assert len(emails) == 1
    assert invariant_violations(local.db_path) == []
    # nothing is due any more
    refused(
        local,
        ORDERS,
        "create-payment-link",
        {"order_id": number, "provider": "stripe"},
        ValidationError,
        "nothing_due",
        "order_id",
    )


def test_stripe_link_for_a_changed_balance_replaces_the_open_one(shop):
    local, _, stripe_fake, _ = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    first = pay_link(local, number, "stripe")
    bank_transfer(local, number, 1000, "BANK-TX-1")  # part of it came by bank meanwhile

    second = pay_link(local, number, "stripe")
    assert second["reused"] is False
    assert second["replaced_provider_payment_id"] == first["provider_payment_id"]
    assert second["amount_cents"] == total - 1000 == second["balance_due_cents"]
    assert stripe_fake.sessions[first["provider_payment_id"]]["status"] == "expired"
    assert stripe_fake.sessions[second["provider_payment_id"]]["amount_total"] == total - 1000
    assert pay_link(local, number, "stripe")["provider_payment_id"] == second["provider_payment_id"]
    assert stripe_fake.create_count == 2
    assert invariant_violations(local.db_path) == []


def test_an_attempt_without_an_answer_is_resumed_with_its_key(shop):
    local, _, stripe_fake, _ = shop
    number = invoice_order(local)["order_number"]
    stripe_fake.fail_next(500, times=2)  # the SDK's own retry fails too
    with pytest.raises(Exception) as caught:
        pay_link(local, number, "stripe")
    assert getattr(caught.value, "code", None) == "provider_error"
    (attempt,) = rows(local, "SELECT * FROM payments WHERE order_id IS NOT NULL")
    assert attempt["status"] == "creating"

    link = pay_link(local, number, "stripe")
    assert link["status"] == "open"
    (row,) = rows(local, "SELECT * FROM payments WHERE order_id IS NOT NULL")
    assert row["idempotency_key"] == attempt["idempotency_key"]
    assert stripe_fake.create_count == 1
    keys = [
        r.header("Idempotency-Key")
        for r in stripe_fake.requests
        if r.method == "POST" and r.path.startswith("/v1/checkout/sessions")
    ]
    assert set(keys) == {attempt["idempotency_key"]}


def test_paid_after_the_order_was_cancelled_is_recorded_and_to_refund(shop):
    local, url, stripe_fake, _ = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    link = pay_link(local, number, "stripe")
    cancel_order(local, number)
    refused(
        local,
        ORDERS,
        "create-payment-link",
        {"order_id": number, "provider": "stripe"},
        ConflictError,
        "order_cancelled",
        "order_id",
    )

    stripe_fake.mark_paid(link["provider_payment_id"])  # the customer paid all the same
    payload = stripe_fake.event_payload(link["provider_payment_id"])
    assert stripe_webhook(url, stripe_fake, payload) == 200
    shown = local.call(ORDERS, "get-order", {"order_id": number})
    assert shown["status"] == "cancelled" and shown["amount_paid_cents"] == total
    assert [p["provider_payment_id"] for p in shown["payments"]] == [link["provider_payment_id"]]

    (finding,) = reconcile(local)["findings"]
    assert finding["code"] == "order_overpaid"
    assert finding["amount_cents"] == total
    assert finding["fix"] == f"checkout orders refund {number} --amount-cents {total}"
    stuck = local.call(ADMIN, "list-checkouts", {"stuck": True})["checkouts"]
    assert [c["stuck_reasons"] for c in stuck if c["order_number"] == number] == [
        ["order_overpaid"]
    ]
    inspected = local.call(ADMIN, "inspect-checkout", {"checkout_token": order["checkout_token"]})
    assert [f["code"] for f in inspected["findings"]] == ["order_overpaid"]
    violations = invariant_violations(local.db_path)
    assert [v["invariant"] for v in violations] == [7]
    assert "order_overpaid" not in str(violations) and "to be refunded" in str(violations)


def test_paid_while_a_bank_transfer_covered_the_balance(shop):
    local, _, stripe_fake, _ = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    link = pay_link(local, number, "stripe")
    stripe_fake.mark_paid(link["provider_payment_id"])
    bank_transfer(local, number, total, "BANK-TX-ALL")  # both arrived
    changes = reconcile(local)  # the webhook was lost: reconcile finds it paid
    assert any("payment link paid" in c["action"] for c in changes["changes"])
    shown = local.call(ORDERS, "get-order", {"order_id": number})
    assert shown["amount_paid_cents"] == 2 * total
    assert [f["code"] for f in changes["findings"]] == ["order_overpaid"]
    assert changes["findings"][0]["amount_cents"] == total
    assert len(shown["payments"]) == 2
    reconcile(local)
    assert len(local.call(ORDERS, "get-order", {"order_id": number})["payments"]) == 2


def test_refused_links(shop):
    local, _, _, _ = shop
    refused(
        local,
        ORDERS,
        "create-payment-link",
        {"order_id": "2099-999999", "provider": "stripe"},
        NotFoundError,
        "order_not_found",
        "order_id",
    )
    number = invoice_order(local)["order_number"]
    local.call(ADMIN, "delete-vault", {"name": "mollie_api_key"})
    refused(
        local,
        ORDERS,
        "create-payment-link",
        {"order_id": number, "provider": "mollie"},
        ConflictError,
        "provider_not_configured",
        "provider",
    )
    assert rows(local, "SELECT * FROM payments WHERE order_id IS NOT NULL") == []


# -- Mollie ---------------------------------------------------------------------------------


def test_mollie_link_paid_by_webhook_once(shop):
    local, _, _, mollie = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    link = pay_link(local, number, "mollie")
    payment = mollie.payments[link["provider_payment_id"]]
    assert payment["amount"] == {"currency": "EUR", "value": f"{total / 100:.2f}"}
    assert payment["metadata"]["order_number"] == number
    assert pay_link(local, number, "mollie")["reused"] is True
    assert mollie.create_count == 1

    mollie.mark_paid(link["provider_payment_id"])
    assert mollie.fire_webhook(link["provider_payment_id"]) == 200
    assert mollie.fire_webhook(link["provider_payment_id"]) == 200
    reconcile(local)
    shown = local.call(ORDERS, "get-order", {"order_id": number})
    assert (shown["payment_status"], shown["amount_paid_cents"]) == ("paid", total)
    assert [p["method"] for p in shown["payments"]] == ["mollie"]
    assert invariant_violations(local.db_path) == []


def test_mollie_link_replaced_after_a_part_payment_and_switching_provider(shop):
    local, _, stripe_fake, mollie = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    first = pay_link(local, number, "mollie")
    bank_transfer(local, number, 500, "BANK-TX-5")
    second = pay_link(local, number, "mollie")
    assert second["replaced_provider_payment_id"] == first["provider_payment_id"]
    assert mollie.payments[first["provider_payment_id"]]["status"] == "canceled"
    assert second["amount_cents"] == total - 500
    third = pay_link(local, number, "stripe")  # the customer prefers a card after all
    assert third["replaced_provider_payment_id"] == second["provider_payment_id"]
    assert stripe_fake.sessions[third["provider_payment_id"]]["amount_total"] == total - 500
    # a replaced link is not wanted: reconcile leaves what is closed closed, finds no stray
    assert reconcile(local)["findings"] == []
    assert invariant_violations(local.db_path) == []
