"""The fake providers (tests/fakes) work with the REAL stripe and mollie-api-python SDKs.

Every test runs under ``loopback_only()``: resolving any host but 127.0.0.1 fails, so an SDK
that was not pointed at a fake cannot reach a real provider.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import stripe
from mollie.api import client as mollie_client
from mollie.api import error as mollie_error

from tests.fakes import FakeMollie, FakeStripe, WebhookReceiver, loopback_only

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
SECRET = "whsec_test_secret"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(stripe, "enable_telemetry", False)
    with loopback_only():
        yield


# -- Stripe -----------------------------------------------------------------------------------


@pytest.fixture
def fake_stripe():
    with FakeStripe(api_key="sk_test_fakekey000000000001234") as fake:
        yield fake
    assert fake.errors == []


def stripe_client(fake: FakeStripe, **kwargs: Any):
    kwargs.setdefault("max_network_retries", 0)
    return stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url}, **kwargs)


def session_params(*lines: tuple[str, int, int], **extra: Any) -> dict[str, Any]:
    """lines: (currency, unit_amount, quantity)."""
    return {
        "mode": "payment",
        "success_url": "https://shop.test/paid",
        "cancel_url": "https://shop.test/cancelled",
        "line_items": [
            {
                "price_data": {
                    "currency": currency,
                    "unit_amount": unit,
                    "product_data": {"name": f"item {i}"},
                },
                "quantity": quantity,
            }
            for i, (currency, unit, quantity) in enumerate(lines or [("eur", 1234, 1)])
        ],
        "metadata": {"checkout_token": "chk_test"},
        "payment_intent_data": {"metadata": {"checkout_token": "chk_test"}},
        **extra,
    }


def test_stripe_create_is_idempotent_and_shaped_like_stripe(fake_stripe):
    client = stripe_client(fake_stripe)
    params = session_params(("eur", 1234, 2), ("eur", 495, 1), customer_email="anna@example.com")
    first = client.v1.checkout.sessions.create(params, options={"idempotency_key": "chk-1-a1"})
    again = client.v1.checkout.sessions.create(params, options={"idempotency_key": "chk-1-a1"})

    assert again.id == first.id and first.id.startswith("cs_test_")
    assert fake_stripe.create_count == 1
    assert len(fake_stripe.requests_to("POST", "/v1/checkout/sessions")) == 2
    assert first.object == "checkout.session"
    assert (first.status, first.payment_status, first.mode) == ("open", "unpaid", "payment")
    assert first.amount_total == 1234 * 2 + 495 and first.currency == "eur"
    assert first.url == f"https://checkout.stripe.test/c/pay/{first.id}"
    assert first.metadata.to_dict() == {"checkout_token": "chk_test"}
    assert fake_stripe.payment_intent_metadata[first.id] == {"checkout_token": "chk_test"}
    assert [line["amount_total"] for line in fake_stripe.line_items[first.id]] == [2468, 495]


def test_stripe_requests_are_recorded_as_sent(fake_stripe):
    client = stripe_client(fake_stripe)
    session = client.v1.checkout.sessions.create(
        session_params(), options={"idempotency_key": "key-1"}
    )
    client.v1.checkout.sessions.retrieve(session.id)
    create, get = fake_stripe.requests
    assert create.header("Authorization") == f"Bearer {fake_stripe.api_key}"
    assert create.header("Idempotency-Key") == "key-1"
    assert create.header("Content-Type") == "application/x-www-form-urlencoded"
    assert create.header("Stripe-Version")
    assert create.header("User-Agent").startswith("Stripe/v1 PythonBindings/")
    assert "line_items[0][price_data][unit_amount]=1234" in create.text
    assert ("payment_intent_data[metadata][checkout_token]", "chk_test") in create.form()
    assert (get.method, get.path, get.body) == ("GET", f"/v1/checkout/sessions/{session.id}", b"")
    assert [create.status, get.status] == [200, 200]


def test_stripe_same_key_other_body_is_an_idempotency_error(fake_stripe):
    client = stripe_client(fake_stripe)
    client.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError, match="same parameters"):
        client.v1.checkout.sessions.create(
            session_params(("eur", 999, 1)), options={"idempotency_key": "k"}
        )
    assert fake_stripe.create_count == 1


@pytest.mark.parametrize(
    ("change", "message", "param"),
    [
        ({"foo": "bar"}, "Received unknown parameter: foo", "foo"),
        ({"locale": "nl"}, "does not model", "locale"),
        ({"success_url": None}, "Missing required param: success_url.", "success_url"),
        ({"mode": "subscription"}, "only mode=payment", "mode"),
        ({"line_items": None}, "Missing required param: line_items.", "line_items"),
        ({"currency": "usd"}, "same currency", "line_items"),
        ({"expires_at": 1}, "expires_at", "expires_at"),
        ({"customer_email": "not-an-email"}, "Invalid email address", "customer_email"),
    ],
)
def test_stripe_create_is_strict(fake_stripe, change, message, param):
    params = {**session_params(), **change}
    with pytest.raises(stripe.InvalidRequestError, match=message) as caught:
        stripe_client(fake_stripe).v1.checkout.sessions.create(params)
    assert caught.value.param == param and caught.value.http_status == 400
    assert fake_stripe.create_count == 0


def test_stripe_nested_unknown_parameter_is_named(fake_stripe):
    params = session_params()
    params["line_items"][0]["price_data"]["tax_behavior"] = "inclusive"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client(fake_stripe).v1.checkout.sessions.create(params)
    assert caught.value.param == "line_items[0][price_data][tax_behavior]"
    assert str(caught.value.user_message).startswith("Received unknown parameter:")


@pytest.mark.parametrize(
    ("currency", "unit_amount", "refusal"),
    [
        ("eur", 1234, None),
        ("jpy", 1234, None),
        ("mga", 5000, None),  # zero-decimal at Stripe (two decimals in ISO 4217)
        ("kwd", 1230, None),
        ("kwd", 1234, "must end in 0"),  # three-decimal: the last digit must be 0
        ("bhd", 5125, "must end in 0"),
        ("isk", 500000, None),  # 5,000 ISK: two decimals, evenly divisible by 100
        ("isk", 500050, "evenly divisible by 100"),
        ("isk", 5000, None),  # 50 ISK: what a zero-decimal reading of 5,000 would charge
        ("ugx", 500000, None),  # UGX is the same special case
        ("ugx", 5001, "evenly divisible by 100"),
        ("huf", 123456, None),  # HUF and TWD charge two-decimal amounts (payouts differ)
        ("twd", 123456, None),
        ("iqd", 1000, "Invalid currency: iqd"),  # not a currency Stripe charges in
    ],
)
def test_stripe_amounts_follow_stripes_currency_rules(fake_stripe, currency, unit_amount, refusal):
    client = stripe_client(fake_stripe)
    params = session_params((currency, unit_amount, 1))
    if refusal:
        with pytest.raises(stripe.InvalidRequestError, match=refusal):
            client.v1.checkout.sessions.create(params)
        assert fake_stripe.create_count == 0
        return
    session = client.v1.checkout.sessions.create(params)
    assert (session.amount_total, session.currency) == (unit_amount, currency)


def test_stripe_special_case_rules_apply_to_each_line_and_the_minimum(fake_stripe):
    client = stripe_client(fake_stripe)
    lines = session_params(("isk", 100050, 1), ("isk", 99950, 1))  # the total, 200000, is whole
    with pytest.raises(stripe.InvalidRequestError, match="divisible by 100") as caught:
        client.v1.checkout.sessions.create(lines)
    assert caught.value.param == "line_items[0][price_data][unit_amount]"
    with pytest.raises(stripe.InvalidRequestError, match="at least 17500"):
        client.v1.checkout.sessions.create(session_params(("huf", 17499, 1)))  # HUF 174.99
    assert client.v1.checkout.sessions.create(session_params(("huf", 17500, 1))).amount_total


def test_stripe_retrieve_expire_and_mark_paid(fake_stripe):
    client = stripe_client(fake_stripe)
    sessions = client.v1.checkout.sessions
    to_expire = sessions.create(session_params())
    to_pay = sessions.create(session_params())

    expired = sessions.expire(to_expire.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError, match="open"):
        sessions.expire(to_expire.id)

    fake_stripe.mark_paid(to_pay.id)
    paid = sessions.retrieve(to_pay.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.payment_intent.startswith("pi_")
    with pytest.raises(stripe.InvalidRequestError, match=r"No such checkout\.session") as caught:
        sessions.retrieve("cs_test_nope")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    with pytest.raises(ValueError):
        fake_stripe.mark_paid(to_expire.id)


def test_stripe_402_is_a_card_error_and_500_an_api_error(fake_stripe):
    client = stripe_client(fake_stripe)
    fake_stripe.fail_next(402)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "a"})
    assert declined.value.user_message == "Your card was declined."
    assert declined.value.code == "card_declined"

    fake_stripe.fail_next(500)
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "a"})
    assert fake_stripe.create_count == 0  # injected failures happen before anything is created

    session = client.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "a"})
    assert session.status == "open" and fake_stripe.create_count == 1


def test_stripe_sdk_retries_a_500_with_the_same_key_only_when_told(fake_stripe):
    fake_stripe.fail_next(500)
    default = stripe.StripeClient(fake_stripe.api_key, base_addresses={"api": fake_stripe.url})
    with pytest.raises(stripe.APIError):  # StripeClient's own default is 0 retries
        default.v1.checkout.sessions.create(session_params())
    assert len(fake_stripe.requests) == 1

    fake_stripe.fail_next(500)
    session = stripe_client(fake_stripe, max_network_retries=1).v1.checkout.sessions.create(
        session_params()
    )
    attempts = fake_stripe.requests[1:]
    assert [r.status for r in attempts] == [500, 200]
    assert attempts[0].header("Idempotency-Key") == attempts[1].header("Idempotency-Key")
    assert fake_stripe.create_count == 1 and session.status == "open"


def test_stripe_slow_answer_times_out_and_the_retry_replays(fake_stripe):
    slow_client = stripe_client(
        fake_stripe, http_client=stripe.new_default_http_client(timeout=0.5)
    )
    fake_stripe.delay_next(5)
    with pytest.raises(stripe.APIConnectionError):
        slow_client.v1.checkout.sessions.create(session_params(), options={"idempotency_key": "t"})
    assert fake_stripe.create_count == 1  # the provider acted; only the answer was lost

    again = slow_client.v1.checkout.sessions.create(
        session_params(), options={"idempotency_key": "t"}
    )
    assert fake_stripe.create_count == 1
    assert again.id == next(iter(fake_stripe.sessions))


def test_stripe_wrong_key_is_401_without_echoing_the_key(fake_stripe):
    wrong = "sk_test_wrongwrongwrong5678"
    client = stripe.StripeClient(wrong, base_addresses={"api": fake_stripe.url})
    with pytest.raises(stripe.AuthenticationError) as caught:
        client.v1.checkout.sessions.create(session_params())
    assert caught.value.http_status == 401
    assert wrong not in str(caught.value) and wrong not in caught.value.http_body
    assert caught.value.json_body["error"]["type"] == "invalid_request_error"


def test_stripe_webhook_signature_matches_the_sdk(fake_stripe):
    session = stripe_client(fake_stripe).v1.checkout.sessions.create(session_params())
    fake_stripe.mark_paid(session.id)
    payload = fake_stripe.event_payload(session.id)
    now = int(time.time())
    assert fake_stripe.sign(payload, SECRET, now) == (
        stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=now)
    )

    event = stripe.Webhook.construct_event(payload, fake_stripe.sign(payload, SECRET), SECRET)
    assert event.type == "checkout.session.completed"
    assert event.data.object.id == session.id and event.data.object.payment_status == "paid"

    forged = [
        (payload, fake_stripe.sign(payload, "whsec_wrong")),
        (payload, fake_stripe.sign(payload, SECRET, timestamp=now - 3600)),
        (payload.replace('"paid"', '"unpaid"'), fake_stripe.sign(payload, SECRET)),
    ]
    for body, header in forged:
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, header, SECRET)


def test_stripe_telemetry_off_writes_nothing(fake_stripe, tmp_path):
    stripe_client(fake_stripe).v1.checkout.sessions.create(session_params())
    assert "telemetry_id" not in fake_stripe.requests[0].header("X-Stripe-Client-User-Agent")
    assert not (tmp_path / "config" / "stripe").exists()  # conftest points XDG_CONFIG_HOME here


def test_stripe_telemetry_on_would_write_an_id_file(fake_stripe, tmp_path, monkeypatch):
    """Why the project sets stripe.enable_telemetry = False (a module global; the client has
    no per-instance switch)."""
    import stripe._telemetry_id as telemetry_id

    monkeypatch.setattr(stripe, "enable_telemetry", True)
    monkeypatch.setattr(telemetry_id, "_loaded", False)
    monkeypatch.setattr(telemetry_id, "_cached_id", None)
    stripe_client(fake_stripe).v1.checkout.sessions.create(session_params())
    assert (tmp_path / "config" / "stripe" / "telemetry_id").exists()


def test_an_sdk_not_pointed_at_a_fake_cannot_reach_stripe():
    client = stripe.StripeClient("sk_test_x", max_network_retries=0)
    with pytest.raises(stripe.APIConnectionError):
        client.v1.checkout.sessions.retrieve("cs_test_x")


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared/reference not available")
def test_stripe_objects_have_the_reference_shape(fake_stripe):
    session = stripe_client(fake_stripe).v1.checkout.sessions.create(session_params())
    reference = json.loads((REFERENCE / "stripe" / "checkout_session.json").read_text())
    assert set(fake_stripe.sessions[session.id]) == set(reference)
    event = json.loads(fake_stripe.event_payload(session.id))
    assert set(event) == set(json.loads((REFERENCE / "stripe" / "event.json").read_text()))


# -- Mollie -----------------------------------------------------------------------------------


@pytest.fixture
def fake_mollie():
    with FakeMollie(api_key="test_fakekey00000000000000000000") as fake:
        yield fake
    assert fake.errors == []


def mollie_for(fake: FakeMollie, api_key: str | None = None):
    client = mollie_client.Client(api_endpoint=fake.url)
    client.set_api_key(api_key or fake.api_key)
    return client


def payment_data(currency: str = "EUR", value: Any = "12.34", **extra: Any) -> dict[str, Any]:
    return {
        "amount": {"currency": currency, "value": value},
        "description": "Order chk_test",
        "redirectUrl": "https://shop.test/return",
        "webhookUrl": "http://127.0.0.1:9/mollie",
        "metadata": {"checkout_token": "chk_test"},
        **extra,
    }


def test_mollie_create_is_idempotent_and_shaped_like_mollie(fake_mollie, caplog):
    client = mollie_for(fake_mollie)
    first = client.payments.create(payment_data(), idempotency_key="chk-1-a1")
    with caplog.at_level(logging.WARNING):
        again = client.payments.create(payment_data(), idempotency_key="chk-1-a1")

    assert again.id == first.id and first.id.startswith("tr_")
    assert fake_mollie.create_count == 1
    assert "Idempotent-Replayed" in caplog.text  # the SDK warns on the ROOT logger
    assert first.is_open() and not first.is_paid()
    assert first.amount == {"currency": "EUR", "value": "12.34"}
    assert first.metadata == {"checkout_token": "chk_test"}
    assert first.checkout_url.startswith("https://www.mollie.test/checkout/")
    assert (first.mode, first.resource, first.sequence_type) == ("test", "payment", "oneoff")

    create = fake_mollie.requests[0]
    assert (create.method, create.path) == ("POST", "/v2/payments")
    assert create.header("Authorization") == f"Bearer {fake_mollie.api_key}"
    assert create.header("Idempotency-Key") == "chk-1-a1"
    assert create.json()["amount"] == {"currency": "EUR", "value": "12.34"}


def test_mollie_same_key_other_body_is_refused(fake_mollie):
    client = mollie_for(fake_mollie)
    client.payments.create(payment_data(), idempotency_key="k")
    with pytest.raises(mollie_error.UnprocessableEntityError, match="Idempotency-Key"):
        client.payments.create(payment_data(value="99.00"), idempotency_key="k")
    assert fake_mollie.create_count == 1


@pytest.mark.parametrize(
    ("currency", "value", "accepted"),
    [
        ("EUR", "12.34", True),
        ("JPY", "1234", True),
        ("ISK", "5000", True),  # Mollie: ISK has no decimals
        ("HUF", "1234.56", True),
        ("TWD", "1234.56", True),
        ("EUR", "12.3", False),
        ("EUR", "12.345", False),
        ("EUR", "1,234.00", False),
        ("EUR", 12.34, False),
        ("JPY", "1234.00", False),
        ("ISK", "5000.00", False),
    ],
)
def test_mollie_amount_strings_have_the_currencys_decimals(fake_mollie, currency, value, accepted):
    client = mollie_for(fake_mollie)
    if accepted:
        payment = client.payments.create(payment_data(currency, value))
        assert payment.amount == {"currency": currency, "value": value}
        return
    with pytest.raises(mollie_error.UnprocessableEntityError) as caught:
        client.payments.create(payment_data(currency, value))
    assert caught.value.status == 422 and caught.value.field == "amount.value"
    assert fake_mollie.create_count == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"shippingAddress": {}}, "shippingAddress"),
        ({"redirectUrl": None}, "redirectUrl"),
        ({"description": ""}, "description"),
        ({"locale": "xx_XX"}, "locale"),
        ({"method": "bitcoin"}, "method"),
        ({"amount": {"currency": "XXX", "value": "1.00"}}, "amount.currency"),
        ({"amount": {"currency": "KWD", "value": "1.230"}}, "amount.currency"),  # not at Mollie
    ],
)
def test_mollie_create_is_strict(fake_mollie, change, field):
    with pytest.raises(mollie_error.UnprocessableEntityError) as caught:
        mollie_for(fake_mollie).payments.create({**payment_data(), **change})
    assert caught.value.field == field


def test_mollie_get_mark_paid_and_statuses(fake_mollie):
    client = mollie_for(fake_mollie)
    paid = client.payments.create(payment_data())
    failed = client.payments.create(payment_data())
    expired = client.payments.create(payment_data())

    fake_mollie.mark_paid(paid.id)
    fake_mollie.set_status(failed.id, "failed")
    fake_mollie.set_status(expired.id, "expired")

    now_paid = client.payments.get(paid.id)
    assert now_paid.is_paid() and now_paid.status == "paid" and now_paid.paid_at
    assert now_paid.checkout_url is None
    assert client.payments.from_url(now_paid["_links"]["self"]["href"]).id == paid.id
    assert client.payments.get(failed.id).is_failed()
    assert not client.payments.get(failed.id).is_paid()
    assert client.payments.get(expired.id).is_expired()
    with pytest.raises(mollie_error.NotFoundError):
        client.payments.get("tr_doesnotexist")


def test_mollie_cancel_only_when_cancelable(fake_mollie):
    client = mollie_for(fake_mollie)
    payment = client.payments.create(payment_data())
    canceled = client.payments.delete(payment.id)
    assert canceled.is_canceled() and canceled.canceled_at
    with pytest.raises(mollie_error.UnprocessableEntityError, match="cannot be canceled"):
        client.payments.delete(payment.id)

    stuck = client.payments.create(payment_data())
    fake_mollie.set_cancelable(stuck.id, False)
    with pytest.raises(mollie_error.UnprocessableEntityError):
        client.payments.delete(stuck.id)
    assert client.payments.get(stuck.id).is_open()


def test_mollie_injected_failures(fake_mollie):
    client = mollie_for(fake_mollie)
    fake_mollie.fail_next(500)
    with pytest.raises(mollie_error.ResponseError) as caught:
        client.payments.create(payment_data(), idempotency_key="x")
    assert caught.value.status == 500
    fake_mollie.fail_next(422)
    with pytest.raises(mollie_error.UnprocessableEntityError) as rejected:
        client.payments.create(payment_data(), idempotency_key="x")
    assert rejected.value.field == "amount"
    assert fake_mollie.create_count == 0
    assert client.payments.create(payment_data(), idempotency_key="x").is_open()


def test_mollie_slow_answer_times_out_and_the_retry_replays(fake_mollie):
    client = mollie_for(fake_mollie)
    client.set_timeout(0.5)
    fake_mollie.delay_next(5)
    with pytest.raises(mollie_error.RequestError, match="Unable to communicate with Mollie"):
        client.payments.create(payment_data(), idempotency_key="t")
    again = client.payments.create(payment_data(), idempotency_key="t")
    assert fake_mollie.create_count == 1 and again.id in fake_mollie.payments


def test_mollie_api_key_checks(fake_mollie):
    with pytest.raises(mollie_error.UnauthorizedError):
        mollie_for(fake_mollie, "test_wrongwrongwrongwrongwrongwr").payments.create(payment_data())
    with pytest.raises(mollie_error.RequestSetupError):  # the SDK checks the format itself
        mollie_for(fake_mollie, "sk_test_notmollie")
    with pytest.raises(mollie_error.NotFoundError, match="/v2"):
        client = mollie_client.Client(api_endpoint=fake_mollie.url + "/v2")
        client.set_api_key(fake_mollie.api_key)
        client.payments.get("tr_x")
    assert [r.status for r in fake_mollie.requests] == [401, 404]


def test_mollie_fire_webhook_posts_the_id_form_encoded(fake_mollie):
    client = mollie_for(fake_mollie)
    with WebhookReceiver() as receiver:
        url = receiver.url
        payment = client.payments.create(payment_data(webhookUrl=url))
        fake_mollie.mark_paid(payment.id)
        assert fake_mollie.fire_webhook(payment.id) == 200
        (hook,) = receiver.wait_for(1)
    assert (hook.method, hook.path) == ("POST", "/webhook")
    assert hook.form() == [("id", payment.id)]
    assert hook.header("Content-Type") == "application/x-www-form-urlencoded"
    assert fake_mollie.webhooks_sent == [(payment.id, url, 200)]

    with WebhookReceiver(status=503) as failing:
        other = client.payments.create(payment_data(webhookUrl=failing.url))
        assert fake_mollie.fire_webhook(other.id) == 503


@pytest.mark.parametrize(
    "url", ["https://shop.example/webhook", "http://localhost:8000/hook", "http://10.0.0.1/h"]
)
def test_mollie_fire_webhook_refuses_other_hosts(fake_mollie, url):
    payment = mollie_for(fake_mollie).payments.create(payment_data(webhookUrl=url))
    with pytest.raises(ValueError, match="only posts to"):
        fake_mollie.fire_webhook(payment.id)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared/reference not available")
def test_mollie_objects_have_the_reference_shape(fake_mollie):
    payment = mollie_for(fake_mollie).payments.create(payment_data())
    reference = json.loads((REFERENCE / "mollie" / "payment_single.json").read_text())
    extra = set(payment) - set(reference) - {"locale", "paidAt", "canceledAt", "expiredAt"}
    assert not extra
    for key in ("resource", "id", "mode", "createdAt", "amount", "status", "isCancelable"):
        assert type(payment[key]) is type(reference[key])
    assert {"self", "checkout", "documentation"} <= set(payment["_links"])
    fake_mollie.fail_next(422)
    with pytest.raises(mollie_error.UnprocessableEntityError):
        mollie_for(fake_mollie).payments.create(payment_data())
    with pytest.raises(mollie_error.UnauthorizedError):
        mollie_for(fake_mollie, "test_wrongwrongwrong").payments.get(payment.id)
    names = ["payment_rejected", "error_unauthorized"]
    for request, name in zip(fake_mollie.requests[-2:], names, strict=True):
        error = json.loads((REFERENCE / "mollie" / f"{name}.json").read_text())
        assert set(json.loads(request.response)) == set(error)


# -- plumbing ---------------------------------------------------------------------------------


def test_fakes_listen_on_loopback_only_while_running():
    import requests

    with FakeStripe() as fake_s, FakeMollie() as fake_m:
        for fake in (fake_s, fake_m):
            assert fake.url.startswith("http://127.0.0.1:") and fake.port > 0
            assert fake._server.server_address[0] == "127.0.0.1"
        url = fake_s.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v1/checkout/sessions/x", timeout=2)
    with pytest.raises(ValueError):
        FakeStripe(api_key="sk_live_x")
    with pytest.raises(ValueError):
        FakeMollie(api_key="live_x")


# -- refunds ----------------------------------------------------------------------------------


def test_stripe_refund_of_a_paid_session_is_shaped_like_stripe_and_idempotent(fake_stripe):
    client = stripe_client(fake_stripe)
    session = client.v1.checkout.sessions.create(session_params(("eur", 1000, 2)))
    with pytest.raises(stripe.InvalidRequestError, match="payment_intent"):
        client.v1.refunds.create(params={"payment_intent": "pi_unpaid0000"})
    intent = fake_stripe.mark_paid(session.id)["payment_intent"]
    options = {"idempotency_key": "chk_test-refund-1-1"}
    refund = client.v1.refunds.create(params={"payment_intent": intent}, options=options)
    again = client.v1.refunds.create(params={"payment_intent": intent}, options=options)
    assert again.id == refund.id and len(fake_stripe.refunds) == 1
    assert (refund.amount, refund.status, refund.currency) == (2000, "succeeded", "eur")
    assert set(refund.to_dict()) >= {"id", "object", "amount", "charge", "payment_intent", "status"}
    assert client.v1.refunds.retrieve(refund.id).id == refund.id
    # The session stays paid at Stripe: a refund is its own object.
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    with pytest.raises(stripe.InvalidRequestError) as done:
        client.v1.refunds.create(params={"payment_intent": intent})
    assert done.value.code == "charge_already_refunded"


def test_stripe_refund_of_more_than_is_left_is_refused(fake_stripe):
    client = stripe_client(fake_stripe)
    session = client.v1.checkout.sessions.create(session_params(("eur", 1000, 1)))
    intent = fake_stripe.mark_paid(session.id)["payment_intent"]
    client.v1.refunds.create(params={"payment_intent": intent, "amount": 600})
    with pytest.raises(stripe.InvalidRequestError, match="greater than unrefunded") as info:
        client.v1.refunds.create(params={"payment_intent": intent, "amount": 500})
    assert info.value.param == "amount"
    assert fake_stripe.refunded_amount(intent) == 600


def test_mollie_refund_only_of_a_paid_payment_pending_then_settled(fake_mollie):
    client = mollie_for(fake_mollie)
    payment = client.payments.create(payment_data(value="30.00"))
    with pytest.raises(mollie_error.UnprocessableEntityError):
        payment.refunds.create({"amount": {"currency": "EUR", "value": "30.00"}})
    fake_mollie.mark_paid(payment.id)
    payment = client.payments.get(payment.id)
    refund = payment.refunds.create(
        {"amount": {"currency": "EUR", "value": "30.00"}, "description": "cancelled"},
        idempotency_key="chk_test-refund-1-1",
    )
    again = payment.refunds.create(
        {"amount": {"currency": "EUR", "value": "30.00"}, "description": "cancelled"},
        idempotency_key="chk_test-refund-1-1",
    )
    assert again.id == refund.id and len(fake_mollie.refunds) == 1
    assert refund.status == "pending" and refund.payment_id == payment.id
    paid = client.payments.get(payment.id)
    assert paid.status == "paid"
    assert paid.amount_refunded == {"value": "30.00", "currency": "EUR"}
    assert paid.amount_remaining == {"value": "0.00", "currency": "EUR"}
    fake_mollie.settle_refund(refund.id, "refunded")
    assert paid.refunds.get(refund.id).is_refunded()


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared/reference not available")
def test_a_mollie_refund_has_only_the_fields_of_mollies_published_example(fake_mollie):
    client = mollie_for(fake_mollie)
    payment = client.payments.create(payment_data(value="30.00"))
    fake_mollie.mark_paid(payment.id)
    refund = client.payments.get(payment.id).refunds.create(
        {"amount": {"currency": "EUR", "value": "30.00"}}
    )
    reference = json.loads((REFERENCE / "mollie" / "refund_single.json").read_text())
    assert set(refund) <= set(reference)


def test_mollie_over_refund_is_allowed_up_to_25_eur_except_by_card(fake_mollie):
    client = mollie_for(fake_mollie)
    ideal = client.payments.create(payment_data(value="10.00"))
    fake_mollie.mark_paid(ideal.id)
    ideal = client.payments.get(ideal.id)
    ideal.refunds.create({"amount": {"currency": "EUR", "value": "35.00"}})
    with pytest.raises(mollie_error.UnprocessableEntityError, match="maximum"):
        ideal.refunds.create({"amount": {"currency": "EUR", "value": "0.01"}})
    card = client.payments.create(payment_data(value="10.00", method="creditcard"))
    fake_mollie.mark_paid(card.id)
    card = client.payments.get(card.id)
    with pytest.raises(mollie_error.UnprocessableEntityError, match="maximum"):
        card.refunds.create({"amount": {"currency": "EUR", "value": "10.01"}})
