"""Stripe and Mollie through their real SDKs, talking to fake providers on 127.0.0.1."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest

from checkout_cli.engine.payment_sync import handle_webhook
from checkout_cli.errors import AuthError, NotFoundError, PaymentError, UnavailableError
from tests.conftest import WEBHOOK_SECRET, ready_checkout
from tests.store_rows import dump, query


@pytest.fixture(params=["stripe", "mollie"])
def provider(request, backend):
    fake = request.getfixturevalue(f"{request.param}_fake")
    return request.param, fake


def _mark_paid(name, fake, payment_id):
    fake.mark_paid(payment_id)


def _stock(backend, sku="LENS-DAILY-30"):
    return backend.call("product-catalog", "get-product", {"sku": sku})["stock"]


def test_happy_path_through_the_cli(provider, backend, cli):
    name, fake = provider
    token = ready_checkout(backend)
    created = cli("--json", "create-payment", token, "--provider", name)
    assert created.exit_code == 0, created.stderr
    payment = created.json()["payment"]
    assert payment["redirect_url"].startswith("https://")
    assert created.json()["status"] == "payment_pending"
    refused = cli("complete-checkout", token)
    assert refused.exit_code == 5
    assert "not paid" in refused.stderr
    _mark_paid(name, fake, payment["provider_payment_id"])
    done = cli("--json", "complete-checkout", token)
    assert done.exit_code == 0, done.stderr
    order = done.json()["order"]
    assert (order["status"], order["payment_status"]) == ("paid", "paid")
    assert _stock(backend) == 98
    outbox = backend.call("checkout-admin", "list-outbox", {})["emails"]
    assert [e["order_number"] for e in outbox] == [order["order_number"]]


def test_create_sends_exact_total_token_and_email(provider, backend):
    name, fake = provider
    token = ready_checkout(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    co = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": name}
    )
    pid = co["payment"]["provider_payment_id"]
    total = co["totals"]["total_cents"]
    if name == "stripe":
        session = fake.sessions[pid]
        assert session["amount_total"] == total
        assert session["metadata"]["checkout_token"] == token
        assert session["customer_email"] == "anna@example.com"
    else:
        payment = fake.payments[pid]
        assert payment["amount"] == {"currency": "EUR", "value": f"{total / 100:.2f}"}
        assert payment["metadata"]["checkout_token"] == token


def test_repeat_returns_the_open_payment_and_new_replaces_it(provider, backend):
    name, fake = provider
    token = ready_checkout(backend)
    first = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": name}
    )
    again = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": name}
    )
    assert again["payment"] == first["payment"]
    assert fake.create_count == 1
    fresh = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": name, "new": True}
    )
    assert fresh["payment"]["provider_payment_id"] != first["payment"]["provider_payment_id"]
    assert fake.create_count == 2
    old = first["payment"]["provider_payment_id"]
    old_status = fake.sessions[old]["status"] if name == "stripe" else fake.payments[old]["status"]
    assert old_status in ("expired", "canceled")


@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_provider_failure_writes_nothing_half_and_retry_makes_one_payment(
    provider, backend, cli, failure
):
    name, fake = provider
    token = ready_checkout(backend)
    attempts = 2 if name == "stripe" else 1  # the Stripe SDK retries once, with our key
    if failure == "500":
        fake.fail_next(status=500, times=attempts)
    else:
        fake.delay_next(4, times=attempts)  # longer than provider_timeout_seconds
    result = cli("create-payment", token, "--provider", name)
    assert result.exit_code == 6, result.stderr
    status = backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    assert status["status"] == "active" and status["payment"] is None
    if failure == "timeout":
        time.sleep(4.5)  # let the slow answers finish at the fake
    retry = cli("--json", "create-payment", token, "--provider", name)
    assert retry.exit_code == 0, retry.stderr
    assert fake.create_count == 1
    assert retry.json()["status"] == "payment_pending"


def test_decline_is_exit_5_with_the_providers_reason(provider, backend, cli):
    name, fake = provider
    token = ready_checkout(backend)
    fake.fail_next(status=402 if name == "stripe" else 422, times=1)
    result = cli("create-payment", token, "--provider", name)
    assert result.exit_code == 5
    assert ("declined" in result.stderr.lower()) or ("refused" in result.stderr.lower())
    status = backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    assert status["status"] == "active"
    assert backend.engine.conn.execute("SELECT COUNT(*) FROM stock_reservations").fetchone()[0] == 0


def test_missing_key_names_the_key_and_the_command(backend, cli):
    token = ready_checkout(backend)
    result = cli("--json", "create-payment", token, "--provider", "mollie")
    assert result.exit_code == 4
    error = json.loads(result.stderr)["error_object"]
    assert error["code"] == "provider_not_configured"
    assert "checkout vault set mollie_api_key" in error["recovery"]


def test_set_payment_amount_must_match_unless_forced(backend, cli):
    token = ready_checkout(backend)
    refused = cli(
        "set-payment",
        token,
        "--provider",
        "bank",
        "--reference",
        "R1",
        "--status",
        "paid",
        "--amount-cents",
        "1",
    )
    assert refused.exit_code == 4 and "does not match" in refused.stderr
    forced = cli(
        "--json",
        "set-payment",
        token,
        "--provider",
        "bank",
        "--reference",
        "R1",
        "--status",
        "paid",
        "--amount-cents",
        "1",
        "--force",
    )
    assert forced.exit_code == 0
    kinds = [
        r[0]
        for r in backend.engine.conn.execute(
            "SELECT detail FROM events WHERE kind = 'payment_linked'"
        )
    ]
    assert json.loads(kinds[-1])["forced"] is True


# ---- webhooks ----------------------------------------------------------------------------


def _pending(backend, name):
    token = ready_checkout(backend)
    co = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": name}
    )
    return token, co["payment"]["provider_payment_id"]


def _db_dump(backend):
    return dump(backend.db_path)


def test_stripe_webhook_valid_forged_stale_replayed(stripe_fake, backend):
    _token, sid = _pending(backend, "stripe")
    stripe_fake.mark_paid(sid)
    payload = stripe_fake.event_payload(sid)
    before = _db_dump(backend)
    with pytest.raises(AuthError) as forged:
        handle_webhook(
            backend.engine,
            "stripe",
            {"Stripe-Signature": stripe_fake.sign(payload, "whsec_wrong")},
            payload.encode(),
        )
    assert forged.value.code == "webhook_signature_invalid"
    with pytest.raises(AuthError) as stale:
        handle_webhook(
            backend.engine,
            "stripe",
            {
                "Stripe-Signature": stripe_fake.sign(
                    payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600
                )
            },
            payload.encode(),
        )
    assert stale.value.code == "webhook_timestamp_stale"
    assert _db_dump(backend) == before
    headers = {"Stripe-Signature": stripe_fake.sign(payload, WEBHOOK_SECRET)}
    result = handle_webhook(backend.engine, "stripe", headers, payload.encode())
    assert result["handled"] and result["checkout_status"] == "completable"
    replay = handle_webhook(backend.engine, "stripe", headers, payload.encode())
    assert replay["checkout_status"] == "completable"
    kinds = [r[0] for r in backend.engine.conn.execute("SELECT kind FROM events")]
    assert kinds.count("payment_webhook") == 2
    assert kinds.count("payment_paid") == 1


def test_mollie_webhook_is_refetched_never_trusted(mollie_fake, backend):
    _token, pid = _pending(backend, "mollie")
    # Unpaid at Mollie: a webhook changes nothing but the timeline.
    result = handle_webhook(backend.engine, "mollie", {}, f"id={pid}".encode())
    assert result["checkout_status"] == "payment_pending"
    mollie_fake.mark_paid(pid)
    result = handle_webhook(backend.engine, "mollie", {}, f"id={pid}".encode())
    assert result["checkout_status"] == "completable"


def test_webhook_for_an_unknown_payment_changes_nothing(mollie_fake, backend):
    _pending(backend, "mollie")
    before = _db_dump(backend)
    with pytest.raises(NotFoundError):
        handle_webhook(backend.engine, "mollie", {}, b"id=tr_unknown123")
    assert _db_dump(backend) == before


def test_early_webhook_completes_then_operator_gets_the_same_order(provider, backend):
    name, fake = provider
    backend.call("checkout-admin", "set-setting", {"key": "auto_complete_paid", "value": True})
    token, pid = _pending(backend, name)
    fake.mark_paid(pid)
    if name == "stripe":
        payload = fake.event_payload(pid)
        result = handle_webhook(
            backend.engine,
            "stripe",
            {"Stripe-Signature": fake.sign(payload, WEBHOOK_SECRET)},
            payload.encode(),
        )
    else:
        result = handle_webhook(backend.engine, "mollie", {}, f"id={pid}".encode())
    assert result["auto_completed"] and result["checkout_status"] == "completed"
    done = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    assert done["already_completed"] is True
    orders = backend.engine.conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert orders == 1


# ---- reconcile and reservations ----------------------------------------------------------


def test_reservation_holds_stock_against_other_checkouts(stripe_fake, backend):
    backend.call("product-catalog", "set-stock", {"sku": "LENS-DAILY-30", "stock": 3})
    _token, _ = _pending(backend, "stripe")  # reserves 2
    other = ready_checkout(backend, [("LENS-DAILY-30", 2)])
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": other, "provider": "invoice"}
    )
    with pytest.raises(Exception) as refused:
        backend.call("checkout-flow", "complete-checkout", {"checkout_token": other})
    assert refused.value.code == "insufficient_stock"
    assert _stock(backend) == 3


def test_reconcile_completes_paid_leaves_unpaid_expires_stale(stripe_fake, backend, cli):
    backend.call("checkout-admin", "set-setting", {"key": "auto_complete_paid", "value": True})
    paid, paid_id = _pending(backend, "stripe")
    unpaid, _ = _pending(backend, "stripe")
    stale = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    stripe_fake.mark_paid(paid_id)
    dry = cli("--json", "reconcile", "--dry-run")
    assert dry.exit_code == 0
    assert {c["checkout_token"] for c in dry.json()["changes"]} == {paid}
    assert (
        backend.call("checkout-flow", "get-checkout-status", {"checkout_token": paid})["status"]
        == "payment_pending"
    )
    backend.engine.clock = lambda: (
        __import__("datetime").datetime.now(__import__("datetime").UTC) + timedelta(days=2)
    )
    result = backend.call("checkout-admin", "reconcile", {})
    actions = {c["checkout_token"]: c for c in result["changes"]}
    assert actions[paid]["to_status"] == "completed"
    assert actions[stale]["to_status"] == "expired"
    assert actions[unpaid]["to_status"] == "expired"  # past its TTL too: stock released
    assert query(backend.db_path, "SELECT COUNT(*) FROM stock_reservations") == [(0,)]
    assert _stock(backend) == 98


def test_failed_payment_releases_stock_and_reopens_checkout(mollie_fake, backend):
    _token, pid = _pending(backend, "mollie")
    assert backend.engine.conn.execute("SELECT COUNT(*) FROM stock_reservations").fetchone()[0] == 1
    mollie_fake.set_status(pid, "failed")
    result = backend.call("checkout-admin", "reconcile", {})
    assert result["changes"][0]["to_status"] == "active"
    assert backend.engine.conn.execute("SELECT COUNT(*) FROM stock_reservations").fetchone()[0] == 0


def test_cancel_closes_the_payment_at_the_provider(provider, backend):
    name, fake = provider
    token, pid = _pending(backend, name)
    backend.call("checkout-flow", "cancel-checkout", {"checkout_token": token})
    status = fake.sessions[pid]["status"] if name == "stripe" else fake.payments[pid]["status"]
    assert status in ("expired", "canceled")


def test_payment_errors_map_to_exit_codes():
    assert PaymentError.exit_code == 5 and UnavailableError.exit_code == 6


def test_payment_link_is_emailed_when_configured(provider, backend, tmp_path):
    name, _ = provider
    backend.call("checkout-admin", "set-setting", {"key": "email_payment_links", "value": True})
    token = ready_checkout(backend)
    co = backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": name}
    )
    emails = backend.call("checkout-admin", "list-outbox", {})["emails"]
    assert [(e["kind"], e["checkout_token"], e["status"]) for e in emails] == [
        ("payment_link", token, "sent")
    ]
    sent = list((backend.outbox_dir).glob(f"{token}-payment-link-*.eml"))
    assert len(sent) == 1
    message = BytesParser(policy=policy.default).parsebytes(sent[0].read_bytes())
    assert co["payment"]["redirect_url"] in message.get_body(("plain",)).get_content()


def test_payment_link_is_not_emailed_by_default(stripe_fake, backend):
    token = ready_checkout(backend)
    backend.call("checkout-flow", "create-payment", {"checkout_token": token, "provider": "stripe"})
    assert backend.call("checkout-admin", "list-outbox", {})["emails"] == []
