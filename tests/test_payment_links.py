"""create-payment-link: a Stripe/Mollie payment for an invoice order's balance, through the
real SDKs against the fake providers, paid by webhooks POSTed to a real `checkout serve`."""

from __future__ import annotations

from typing import Any

import pytest

from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.engine_helpers import refused
from tests.paylink_helpers import (
    ADMIN,
    FLOW,
    ORDERS,
    bank_transfer,
    cancel_order,
    invoice_order,
    pay_link,
    reconcile,
    rows,
    shop_fixture,  # noqa: F401
    stripe_webhook,
)
from tests.serve_helpers import invariant_violations

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
    exc = refused(
        local,
        ORDERS,
        "create-payment-link",
        {"order_id": number, "provider": "mollie"},
        ConflictError,
        "provider_not_configured",
        "provider",
    )
    # What to do, for a link: the key, or the other provider; a link has no invoice provider.
    assert "checkout vault set mollie_api_key" in exc.recovery
    assert f"checkout orders pay-link {number} --provider stripe" in exc.recovery
    assert "--provider invoice" not in exc.recovery
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


# -- the command ----------------------------------------------------------------------------


def test_pay_link_command(backend, stripe_fake, cli):
    backend.call(ADMIN, "set-setting", {"key": "allow_invoice_checkout", "value": True})
    order = invoice_order(backend)
    number = order["order_number"]
    made = cli("orders", "pay-link", number, "--provider", "stripe")
    assert made.exit_code == 0, made.stderr
    assert f"Order {number}: stripe payment link for" in made.stdout
    assert "a new link" in made.stdout
    session = next(iter(stripe_fake.sessions.values()))
    assert session["url"] in made.stdout.replace("\n", "")
    again = cli("--json", "orders", "pay-link", number, "--provider", "stripe")
    assert again.exit_code == 0 and again.json()["reused"] is True
    assert again.json()["provider_payment_id"] == session["id"]

    unknown = cli("orders", "pay-link", number, "--provider", "paypal")
    assert unknown.exit_code == 2 and "paypal" in unknown.stderr
    stripe_fake.mark_paid(session["id"])
    done = cli("orders", "pay-link", number, "--provider", "stripe")
    assert done.exit_code == 4
    assert done.stderr.count("\n") <= 3 and "is paid in full" in done.stderr
    assert "Traceback" not in done.stderr
    # asking again found it paid: the order has the payment
    shown = backend.call(ORDERS, "get-order", {"order_id": number})
    assert shown["payment_status"] == "paid"
    missing = cli("orders", "pay-link", "--provider", "stripe")
    assert missing.exit_code == 2


def test_the_link_email_asks_for_the_balance(shop):
    local, _, _, _ = shop
    local.call(ADMIN, "set-setting", {"key": "email_payment_links", "value": True})
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    bank_transfer(local, number, 1000, "BANK-TX-EMAIL")
    link = pay_link(local, number, "stripe")
    (email,) = rows(local, "SELECT * FROM outbox WHERE kind = 'payment_link'")
    assert email["recipient"] == "anna@example.com"
    assert link["amount_due"] in email["body_text"]
    assert link["amount_cents"] == total - 1000
    assert link["redirect_url"] in email["body_text"]
    pay_link(local, number, "stripe")  # answered again: no second email
    assert len(rows(local, "SELECT * FROM outbox WHERE kind = 'payment_link'")) == 1


def test_webhook_reconcile_and_a_repeat_at_once_count_the_payment_once(shop):
    """Three processes learn of the same paid link at the same moment."""
    import threading

    from checkout_cli.backends.local import LocalBackend

    local, url, stripe_fake, _ = shop
    order = invoice_order(local)
    number, total = order["order_number"], order["totals"]["total_cents"]
    link = pay_link(local, number, "stripe")
    stripe_fake.mark_paid(link["provider_payment_id"])
    payload = stripe_fake.event_payload(link["provider_payment_id"])
    errors: list[BaseException] = []

    def each(work: Any) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)

    def by_reconcile() -> None:
        other = LocalBackend(local.db_path, actor="cron")
        try:
            reconcile(other)
        finally:
            other.close()

    def by_repeat() -> None:
        other = LocalBackend(local.db_path, actor="desk")
        try:
            pay_link(other, number, "stripe")
        except ValidationError as exc:  # found it paid: nothing due any more
            assert exc.code == "nothing_due"
        finally:
            other.close()

    works = [
        lambda: stripe_webhook(url, stripe_fake, payload),
        lambda: stripe_webhook(url, stripe_fake, payload),
        by_reconcile,
        by_repeat,
    ]
    threads = [threading.Thread(target=each, args=(w,)) for w in works]
    start = threading.Barrier(len(threads))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    shown = local.call(ORDERS, "get-order", {"order_id": number})
    assert shown["amount_paid_cents"] == total and len(shown["payments"]) == 1
    assert invariant_violations(local.db_path) == []
