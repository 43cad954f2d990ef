"""Provider webhooks POSTed to a running `checkout serve` complete paid checkouts."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from checkout_cli.backends.local import LocalBackend
from checkout_cli.backends.remote import RemoteBackend
from tests.conftest import WATCH, load_fixtures, ready_checkout
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe
from tests.serve_helpers import serving

STRIPE_KEY = WATCH.secret("sk_test_51Webhook0Server0Key0abcdefghijklmnopqr")
WEBHOOK_SECRET = WATCH.secret("whsec_server0webhook0secret0abcdef")
MOLLIE_KEY = WATCH.secret("test_server0webhook0mollie0key0abcdefghijkl")


@pytest.fixture
def shop(tmp_path):
    """A store wired to both fakes, served by a real `checkout serve` subprocess."""
    db = tmp_path / "shop.db"
    with FakeStripe(api_key=STRIPE_KEY) as stripe_fake, FakeMollie(api_key=MOLLIE_KEY) as mollie:
        local = LocalBackend(db, actor="test")
        load_fixtures(local)
        for name, value in (
            ("stripe_secret_key", STRIPE_KEY),
            ("stripe_webhook_secret", WEBHOOK_SECRET),
            ("mollie_api_key", MOLLIE_KEY),
        ):
            local.call("checkout-admin", "set-vault", {"name": name, "value": value})
        for key, value in {
            "stripe_api_base": stripe_fake.url,
            "mollie_api_endpoint": mollie.url,
            "payment_redirect_url": "https://shop.example/thanks",
            "auto_complete_paid": True,
        }.items():
            local.call("checkout-admin", "set-setting", {"key": key, "value": value})
        token = WATCH.secret(local.call("checkout-admin", "create-token", {"name": "t"})["token"])
        try:
            with serving(db, token, project="local", workers=1) as server:
                local.call(
                    "checkout-admin",
                    "set-setting",
                    {"key": "payment_webhook_url", "value": f"{server.url}/webhooks/mollie"},
                )
                yield local, server.url, stripe_fake, mollie
        finally:
            local.close()
            WATCH.export_store(db)


def test_signed_stripe_webhook_completes_the_checkout(shop):
    local, url, stripe_fake, _ = shop
    token = ready_checkout(local)
    co = local.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "stripe"}
    )
    session = co["payment"]["provider_payment_id"]
    stripe_fake.mark_paid(session)
    payload = stripe_fake.event_payload(session)
    forged = httpx.post(
        f"{url}/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": stripe_fake.sign(payload, "whsec_wrong")},
    )
    assert forged.status_code == 401
    assert forged.json()["error_object"]["code"] == "webhook_signature_invalid"
    assert (
        local.call("checkout-flow", "get-checkout-status", {"checkout_token": token})["status"]
        == "payment_pending"
    )
    signed = httpx.post(
        f"{url}/webhooks/stripe",
        content=payload,
        headers={
            "Stripe-Signature": stripe_fake.sign(payload, WEBHOOK_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["result"]["checkout_status"] == "completed"
    status = local.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    assert status["order"]["payment_status"] == "paid"


def test_mollie_webhook_from_the_provider_completes_the_checkout(shop):
    local, _, _, mollie = shop
    token = ready_checkout(local)
    co = local.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "mollie"}
    )
    payment = co["payment"]["provider_payment_id"]
    assert mollie.payments[payment]["webhookUrl"].endswith("/webhooks/mollie")
    mollie.mark_paid(payment)
    assert mollie.fire_webhook(payment) == 200
    status = local.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    assert status["status"] == "completed"
    assert status["order"]["payment_status"] == "paid"


def test_a_request_waiting_on_the_provider_holds_up_no_other_request(tmp_path):
    """One worker: while a create-payment waits on Stripe (on the worker's call-out pool), a
    client already connected to that same worker is served, and so is a new one."""
    db = tmp_path / "shop.db"
    with FakeStripe(api_key=STRIPE_KEY) as stripe_fake:
        local = LocalBackend(db, actor="test")
        load_fixtures(local)
        local.call(
            "checkout-admin", "set-vault", {"name": "stripe_secret_key", "value": STRIPE_KEY}
        )
        for key, value in {
            "stripe_api_base": stripe_fake.url,
            "payment_redirect_url": "https://shop.example/thanks",
        }.items():
            local.call("checkout-admin", "set-setting", {"key": key, "value": value})
        token = WATCH.secret(local.call("checkout-admin", "create-token", {"name": "t"})["token"])
        slow = ready_checkout(local)
        try:
            with serving(db, token, project="local", workers=1) as server:
                other = RemoteBackend(server.url, "local", token)
                other.call("product-catalog", "get-product", {"sku": "GIFT-CARD-25"})  # connected
                stripe_fake.delay_next(6)
                paid: dict[str, Any] = {}

                def pay() -> None:
                    remote = RemoteBackend(server.url, "local", token)
                    paid["result"] = remote.call(
                        "checkout-flow",
                        "create-payment",
                        {"checkout_token": slow, "provider": "stripe"},
                    )
                    remote.close()

                payer = threading.Thread(target=pay)
                payer.start()
                while not stripe_fake.requests_to("POST", "/v1/checkout/sessions"):
                    assert payer.is_alive(), "create-payment ended before reaching Stripe"
                    time.sleep(0.02)
                cart = other.call(
                    "shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1}
                )
                status = other.call(
                    "checkout-flow", "get-checkout-status", {"checkout_token": slow}
                )
                other.close()
                assert httpx.get(f"{server.url}/healthz").status_code == 200
                assert payer.is_alive()  # all of the above ran while Stripe was still answering
                payer.join(timeout=60)
        finally:
            local.close()
            WATCH.export_store(db)
    assert cart["items"][0]["quantity"] == 1
    assert status["checkout_token"] == slow
    assert paid["result"]["payment"]["provider"] == "stripe"
    assert paid["result"]["payment"]["status"] not in ("creating", "create_failed")


def test_the_engine_refuses_the_network_where_the_server_forbids_it(tmp_path):
    """The guard behind `calls_out`: a store-only endpoint that reached a provider or a mail
    server would hold up its worker's event loop, so the engine fails it loudly instead."""
    from checkout_cli.engine import network
    from checkout_cli.engine.mail import transport_for
    from checkout_cli.engine.provider_payments import provider_for
    from checkout_cli.errors import InternalError

    local = LocalBackend(tmp_path / "shop.db", actor="test")
    load_fixtures(local)
    smtp = {
        "email_transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": 2525,
        "smtp_starttls": False,
        "smtp_ssl": False,
        "smtp_user": "",
    }
    with network.forbidden():
        for reach in (
            lambda: provider_for(local.engine.conn, "stripe"),
            lambda: transport_for(smtp, None, tmp_path),
        ):
            with pytest.raises(InternalError) as caught:
                reach()
            assert caught.value.code == "network_not_allowed_here"
        file = {**smtp, "email_transport": "file", "email_outbox_dir": str(tmp_path)}
        assert transport_for(file, None, tmp_path)  # files only: no network
    assert transport_for(smtp, None, tmp_path)  # outside the block: allowed
    local.close()


def test_every_endpoint_that_reaches_a_provider_or_mail_server_is_marked():
    from checkout_cli.endpoints import ENDPOINTS

    marked = {name for (_, name), endpoint in ENDPOINTS.items() if endpoint.calls_out}
    assert marked == {
        "create-payment",  # the provider; the payment link email
        "create-payment-link",  # the provider (an order's balance); the link email
        "set-payment",  # expires the provider payment it replaces
        "refund-payment",  # the provider's refund
        "refund-order",  # the provider's refund; the refund email
        "cancel-order",  # closes a payment link; refunds with refund; the cancellation email
        "complete-checkout",  # asks the provider; the confirmation email
        "cancel-checkout",  # closes the provider's payment
        "send-outbox",
        "inspect-checkout",  # live provider status
        "reconcile",
        "start-smoke",  # closes a killed run's provider payment
        "finish-smoke",  # closes its own run's provider payment
        "record-payment",  # the payment received email
        "fulfil-order",  # the shipped email
        "deliver-events",  # the webhook receivers
    }


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_1", "object": "event", "type": "checkout.session.completed", "data": {}},
        {"id": "evt_2", "object": "event", "type": "checkout.session.completed"},
        {"id": "evt_3", "object": "event", "data": {"object": {"id": "cs_x"}}},
        {"id": "evt_4", "type": "checkout.session.completed", "data": {"object": {"id": 7}}},
    ],
    ids=["no data.object", "no data", "no type", "id not a session id"],
)
def test_a_signed_stripe_event_of_an_unknown_shape_is_refused_not_a_500(shop, event):
    """Signed by the right secret, yet not what Stripe sends for a session: a 4xx (or "not a
    payment event"), never a 500 and never a change."""
    _, url, stripe_fake, _ = shop
    payload = json.dumps(event)
    response = httpx.post(
        f"{url}/webhooks/stripe",
        content=payload,
        headers={
            "Stripe-Signature": stripe_fake.sign(payload, WEBHOOK_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json()["result"]["handled"] is False
    else:
        assert response.json()["error_object"]["code"] == "invalid_webhook"
