"""A paid payment is never left without an order, and never doubled.

Stripe and Mollie through their real SDKs against the fake providers on 127.0.0.1, on a real
store; the store's invariants (doctor) are checked after each story.
"""

from __future__ import annotations

import json
import time

import pytest

from checkout_cli.errors import ConflictError, ForbiddenError, PaymentError, UnavailableError
from tests.conftest import ready_checkout
from tests.engine_helpers import (
    ADMIN,
    FLOW,
    assert_invariants,
    complete,
    events,
    query,
    refused,
    scalar,
    set_customer,
    setting,
    status,
)


@pytest.fixture(params=["stripe", "mollie"])
def provider(request, backend):
    return request.param, request.getfixturevalue(f"{request.param}_fake")


def pending(backend, name: str) -> tuple[str, str, int]:
    """A checkout with an open provider payment: (token, provider payment id, total)."""
    token = ready_checkout(backend)
    co = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": name})
    return token, co["payment"]["provider_payment_id"], co["totals"]["total_cents"]


def at_provider(name: str, fake, pid: str) -> str:
    return fake.sessions[pid]["status"] if name == "stripe" else fake.payments[pid]["status"]


def refunds_at(name: str, fake) -> list[dict]:
    return list(fake.refunds.values())


def refund_requests(name: str, fake) -> list:
    path = "/v1/refunds" if name == "stripe" else None
    return [
        r
        for r in fake.requests
        if r.method == "POST"
        and (r.path == path if path else r.path.endswith("/refunds"))
        and r.status
        and r.status < 300
    ]


def cancel(backend, token: str, **extra) -> dict:
    return backend.call(FLOW, "cancel-checkout", {"checkout_token": token, **extra})


def kinds(backend, token: str) -> list[str]:
    return [kind for kind, _, _ in events(backend.db_path, token)]


def findings(backend) -> list[dict]:
    return backend.call(ADMIN, "reconcile", {})["findings"]


# ---- cancel of a paid checkout -------------------------------------------------------------


def test_cancel_asks_the_provider_and_refuses_a_paid_checkout(provider, backend, cli):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    fake.mark_paid(pid)  # the store has not heard yet
    result = cli("--json", "cancel-checkout", token, "--yes")
    assert result.exit_code == 5, result.stderr
    error = json.loads(result.stderr)["error_object"]
    assert error["code"] == "payment_already_paid"
    assert f"checkout complete-checkout {token}" in error["recovery"]
    after = status(backend, token)
    assert (after["status"], after["payment"]["status"]) == ("completable", "paid")
    assert refunds_at(name, fake) == []
    inspected = backend.call(ADMIN, "inspect-checkout", {"checkout_token": token})
    fixes = [d["fix"] for d in inspected["diagnosis"]]
    assert f"checkout complete-checkout {token}" in fixes
    assert not any(f.startswith("checkout initiate-checkout") for f in fixes)
    assert_invariants(backend.db_path)


def test_forced_cancel_refunds_the_full_amount_first(provider, backend, cli):
    name, fake = provider
    token, pid, total = pending(backend, name)
    fake.mark_paid(pid)
    result = cli("--json", "cancel-checkout", token, "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    body = result.json()
    assert body["status"] == "cancelled"
    assert body["refund"]["amount_cents"] == total
    [refund] = refunds_at(name, fake)
    if name == "stripe":
        assert refund["amount"] == total and refund["status"] == "succeeded"
        assert refund["payment_intent"] == fake.sessions[pid]["payment_intent"]
    else:
        assert refund["amount"] == {"currency": "EUR", "value": f"{total / 100:.2f}"}
        assert refund["paymentId"] == pid
    [call] = refund_requests(name, fake)
    assert call.header("Idempotency-Key") == scalar(
        backend.db_path, "SELECT idempotency_key FROM refunds"
    )
    timeline = kinds(backend, token)
    assert timeline.index("refund_requested") < timeline.index("checkout_cancelled")
    assert {"refund_succeeded", "refund_pending"} & set(timeline)
    assert findings(backend) == []
    assert_invariants(backend.db_path)


def refund_elsewhere(name: str, fake, pid: str) -> None:
    """Someone refunds the payment in full at the provider itself (its dashboard)."""
    import stripe
    from mollie.api.client import Client

    if name == "stripe":
        client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
        client.v1.refunds.create(params={"payment_intent": fake.sessions[pid]["payment_intent"]})
    else:
        client = Client(api_endpoint=fake.url)
        client.set_api_key(fake.api_key)
        payment = client.payments.get(pid)
        payment.refunds.create({"amount": payment.amount})


def test_a_refused_refund_leaves_the_checkout_open_and_says_so(provider, backend):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    fake.mark_paid(pid)
    backend.call(ADMIN, "reconcile", {})  # records the payment as paid
    refund_elsewhere(name, fake, pid)  # so the provider refuses ours
    error = refused(
        backend,
        FLOW,
        "cancel-checkout",
        {"checkout_token": token, "force": True},
        PaymentError,
        "refund_failed",
        unchanged=False,
    )
    assert "inspect" in error.recovery
    assert status(backend, token)["status"] == "completable"  # never cancelled, money kept
    assert scalar(backend.db_path, "SELECT status FROM refunds") == "failed"
    assert "refund_failed" in kinds(backend, token)
    assert len(refunds_at(name, fake)) == 1  # only the one made elsewhere
    assert_invariants(backend.db_path)


def test_an_unanswered_refund_is_resumed_with_its_key_never_doubled(provider, backend):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    fake.mark_paid(pid)
    backend.call(ADMIN, "reconcile", {})
    # Done at the provider, answered too late (the Stripe SDK retries once, with our key).
    fake.delay_next_refund(4, times=2 if name == "stripe" else 1)
    with pytest.raises(UnavailableError):
        cancel(backend, token, force=True)
    assert status(backend, token)["status"] == "completable"
    assert "refund_unanswered" in kinds(backend, token)
    # The refund may have gone through: completing now would make an order for money returned.
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        ConflictError,
        "payment_refunded",
    )
    time.sleep(4.5)
    done = cancel(backend, token, force=True)
    assert done["status"] == "cancelled"
    assert len(refunds_at(name, fake)) == 1
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM refunds") == 1
    assert_invariants(backend.db_path)


def test_a_payment_linked_by_hand_is_not_cancelled_away(backend, cli):
    token = ready_checkout(backend)
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-4711", "status": "paid"},
    )
    refused(
        backend,
        FLOW,
        "cancel-checkout",
        {"checkout_token": token},
        PaymentError,
        "payment_already_paid",
    )
    forced = cli("--json", "cancel-checkout", token, "--yes", "--force")
    assert forced.exit_code == 0, forced.stderr
    [warning] = forced.json()["warnings"]
    assert warning["code"] == "payment_not_returned" and "NL-4711" in warning["message"]
    detail = json.loads(
        scalar(backend.db_path, "SELECT detail FROM events WHERE kind = 'checkout_cancelled'")
    )
    assert detail["forced"] is True and detail["not_returned"]["reference"] == "NL-4711"
    diagnosis = backend.call(ADMIN, "inspect-checkout", {"checkout_token": token})["diagnosis"]
    assert "outside any provider" in diagnosis[0]["problem"]
    assert not any(d["fix"].startswith("checkout initiate-checkout") for d in diagnosis)


def test_cancel_help_says_what_force_does_to_the_money(cli):
    shown = cli("cancel-checkout", "--help")
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    assert "--force" in text and "refunded in full" in text and "not returned" in text


# ---- a payment replaced by another ---------------------------------------------------------


def test_new_payment_is_refused_when_the_old_one_was_paid(provider, backend):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    fake.mark_paid(pid)
    refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": name, "new": True},
        PaymentError,
        "payment_already_paid",
        unchanged=False,
    )
    assert fake.create_count == 1  # no second payment to pay
    after = status(backend, token)
    assert (after["status"], after["payment"]["provider_payment_id"]) == ("completable", pid)
    assert after["payment"]["status"] == "paid"
    assert_invariants(backend.db_path)


@pytest.mark.parametrize("replacement", ["set-payment", "invoice"])
def test_a_manual_or_invoice_payment_expires_the_open_one_first(provider, backend, replacement):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    if replacement == "set-payment":
        body = {"provider": "bank", "reference": "NL-1", "status": "paid"}
        backend.call(FLOW, "set-payment", {"checkout_token": token, **body})
    else:
        backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    assert at_provider(name, fake, pid) in ("expired", "canceled")  # no longer payable
    complete(backend, token)
    assert_invariants(backend.db_path)


@pytest.mark.parametrize("replacement", ["set-payment", "invoice"])
def test_a_manual_or_invoice_payment_is_refused_when_the_open_one_was_paid(
    provider, backend, replacement
):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    fake.mark_paid(pid)
    if replacement == "set-payment":
        body = {"provider": "bank", "reference": "NL-1", "status": "paid"}
        endpoint = "set-payment"
    else:
        body, endpoint = {"provider": "invoice"}, "create-payment"
    refused(
        backend,
        FLOW,
        endpoint,
        {"checkout_token": token, **body},
        PaymentError,
        "payment_already_paid",
        unchanged=False,
    )
    assert status(backend, token)["payment"]["provider_payment_id"] == pid
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM payments") == 1
    complete(backend, token)
    assert_invariants(backend.db_path)


def test_a_payment_mollie_will_not_cancel_is_not_replaced(mollie_fake, backend):
    token, pid, _ = pending(backend, "mollie")
    mollie_fake.set_cancelable(pid, False)
    error = refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": "mollie", "new": True},
        ConflictError,
        "payment_in_progress",
        unchanged=False,
    )
    assert "same link" in error.recovery
    assert mollie_fake.create_count == 1
    assert status(backend, token)["payment"]["status"] == "open"


# ---- strays ---------------------------------------------------------------------------------


def paid_after_cancel(backend, fake) -> tuple[str, str]:
    """A checkout cancelled while Mollie would not close its payment, paid afterwards."""
    token, pid, _ = pending(backend, "mollie")
    fake.set_cancelable(pid, False)
    result = cancel(backend, token)
    assert result["status"] == "cancelled"
    assert result["warnings"][0]["code"] == "payment_still_open"
    fake.mark_paid(pid)
    return token, pid


def test_a_payment_paid_after_its_checkout_was_cancelled_is_found_and_refunded(
    mollie_fake, backend, cli
):
    token, pid = paid_after_cancel(backend, mollie_fake)
    fix = f"checkout refund-payment {token} {pid}"

    [finding] = findings(backend)  # reconcile asks Mollie about it, and records it
    assert finding["code"] == "stray_paid_payment"
    assert (finding["checkout_token"], finding["provider_payment_id"]) == (token, pid)
    assert finding["amount_cents"] == status(backend, token)["totals"]["total_cents"]
    assert finding["fix"] == fix

    inspected = backend.call(ADMIN, "inspect-checkout", {"checkout_token": token})
    assert fix in [d["fix"] for d in inspected["diagnosis"]]
    assert not any(
        d["fix"].startswith("checkout initiate-checkout") for d in inspected["diagnosis"]
    )
    assert "stray_paid_payment" in inspected["stuck_reasons"]
    stuck = backend.call(ADMIN, "list-checkouts", {"stuck": True})["checkouts"]
    assert [(c["checkout_token"], c["stuck_reasons"]) for c in stuck] == [
        (token, ["stray_paid_payment"])
    ]
    doctor = cli("--json", "doctor")
    assert doctor.exit_code == 4
    [violation] = doctor.json()["violations"]
    assert violation["invariant"] == 7 and fix in violation["message"]

    done = cli("--json", "refund-payment", token, pid, "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.json()["refund"]["status"] == "pending"  # Mollie settles refunds later
    assert len(mollie_fake.refunds) == 1
    again = cli("--json", "refund-payment", token, pid, "--yes")
    assert again.json()["already_refunded"] is True and len(mollie_fake.refunds) == 1
    assert findings(backend) == []
    assert_invariants(backend.db_path)

    [refund_id] = mollie_fake.refunds
    mollie_fake.settle_refund(refund_id, "refunded")
    settled = backend.call(ADMIN, "reconcile", {})
    assert [c["action"] for c in settled["changes"]] == ["refund succeeded"]
    assert scalar(backend.db_path, "SELECT status FROM refunds") == "succeeded"


def test_reconcile_dry_run_reports_a_stray_without_recording_it(mollie_fake, backend):
    token, pid = paid_after_cancel(backend, mollie_fake)
    dry = backend.call(ADMIN, "reconcile", {"dry_run": True})
    assert [(f["checkout_token"], f["provider_payment_id"]) for f in dry["findings"]] == [
        (token, pid)
    ]
    assert scalar(backend.db_path, "SELECT status FROM payments") == "open"


def test_refund_payment_refuses_a_payment_that_is_not_a_stray(provider, backend):
    name, fake = provider
    token, pid, _ = pending(backend, name)
    body = {"checkout_token": token, "provider_payment_id": pid}
    refused(
        backend, ADMIN, "refund-payment", body, PaymentError, "payment_not_paid", unchanged=False
    )
    fake.mark_paid(pid)
    error = refused(
        backend, ADMIN, "refund-payment", body, ConflictError, "payment_not_stray", unchanged=False
    )
    assert f"checkout complete-checkout {token}" in error.recovery
    order = complete(backend, token)["order"]
    error = refused(backend, ADMIN, "refund-payment", body, ConflictError, "payment_not_stray")
    assert order["order_number"] in error.message
    assert refunds_at(name, fake) == []
    refused(
        backend,
        ADMIN,
        "refund-payment",
        {"checkout_token": token, "provider_payment_id": "tr_unknown"},
        __import__("checkout_cli.errors", fromlist=["NotFoundError"]).NotFoundError,
        "payment_not_found",
    )


# ---- an attempt that timed out, then saw the total change ----------------------------------


def test_a_timed_out_attempt_is_found_and_expired_when_the_total_changed(provider, backend):
    name, fake = provider
    token = ready_checkout(backend)
    fake.delay_next(4, times=2 if name == "stripe" else 1)  # made at the provider, answer lost
    with pytest.raises(UnavailableError):
        backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": name})
    assert fake.create_count == 1
    set_customer(backend, token, shipping_cents=995)  # the total changes
    time.sleep(4.5)
    co = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": name})
    total = co["totals"]["total_cents"]
    assert co["payment"]["amount_cents"] == total
    assert fake.create_count == 2  # the lost one was found, not made again
    ids = [
        r[0] for r in query(backend.db_path, "SELECT provider_payment_id FROM payments ORDER BY id")
    ]
    first, second = ids
    assert second == co["payment"]["provider_payment_id"]
    assert at_provider(name, fake, first) in ("expired", "canceled")  # no longer payable
    assert at_provider(name, fake, second) == "open"
    amount = (
        fake.sessions[second]["amount_total"]
        if name == "stripe"
        else round(float(fake.payments[second]["amount"]["value"]) * 100)
    )
    assert amount == total
    assert "payment_attempt_found" in kinds(backend, token)
    assert_invariants(backend.db_path)


# ---- invoices without permission, and an order's payment status ----------------------------


def test_set_payment_as_an_invoice_obeys_allow_invoice_checkout(backend, cli):
    token = ready_checkout(backend)
    setting(backend, "allow_invoice_checkout", False)
    for link_status in ("paid", "pending"):
        refused(
            backend,
            FLOW,
            "set-payment",
            {
                "checkout_token": token,
                "provider": "invoice",
                "reference": "INV-1",
                "status": link_status,
            },
            ForbiddenError,
            "invoice_checkout_not_allowed",
        )
    result = cli(
        "set-payment", token, "--provider", "invoice", "--reference", "INV-1", "--status", "paid"
    )
    assert result.exit_code == 7


def test_an_invoice_linked_as_paid_makes_a_paid_order(backend):
    token = ready_checkout(backend)
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "invoice", "reference": "INV-7", "status": "paid"},
    )
    order = complete(backend, token)["order"]
    assert (order["status"], order["payment_status"]) == ("paid", "paid")
    assert_invariants(backend.db_path)
