"""Amounts cross to Stripe and Mollie by each provider's published currency rules, both ways.

Our store keeps ISO 4217 minor units (5,000 ISK is 5000, 5,000.00 MGA is 500000). Stripe's
units differ for ISK, UGX and MGA and restrict three-decimal currencies; Mollie wants a string
with its own decimals. Payments go through the real SDKs to the fakes, which encode the
providers' published rules independently of our code; what is read back from the provider
must equal our total exactly. An amount a provider cannot take exactly is refused before
anything is written or sent.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkout_cli.engine.provider_payments import provider_for
from checkout_cli.errors import ConflictError, PaymentError, ValidationError
from checkout_cli.money import exponent
from checkout_cli.payments import mollie_currencies, stripe_currencies
from checkout_cli.payments.base import PaymentLine, PaymentRequest, ProviderConfig
from checkout_cli.payments.mollie import from_mollie_value, to_mollie_value
from checkout_cli.payments.stripe import StripeProvider, from_stripe_amount, to_stripe_amount
from tests.conftest import dump, ready_checkout
from tests.fakes.fake_stripe import FakeStripe


def _checkout_in(backend, currency: str, price_cents: int, tax_percent: str | None = None) -> str:
    """A checkout for one item at ``price_cents`` (our minor units), no shipping, no tax."""
    for key, value in {
        "currency": currency,
        "default_shipping_cents": 0,
        "tax_rates": {"NL": tax_percent} if tax_percent else {},
    }.items():
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    sku = f"ITEM-{currency}-{price_cents}"
    backend.call(
        "product-catalog",
        "upsert-product",
        {"sku": sku, "name": "Item", "price_cents": price_cents, "currency": currency},
    )
    return ready_checkout(backend, [(sku, 1)])


def _pay(backend, token: str, provider: str) -> dict:
    return backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": provider}
    )


# -- Stripe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "price_cents", "stripe_amount"),
    [
        ("ISK", 5000, 500000),  # 5,000 ISK: two decimals at Stripe, zero in ISO
        ("UGX", 5000, 500000),  # the same special case
        ("JPY", 5000, 5000),
        ("KRW", 5000, 5000),
        ("MGA", 500000, 5000),  # 5,000.00 MGA: zero-decimal at Stripe, two in ISO
        ("BHD", 5120, 5120),  # 5.120 BHD: three decimals, the last one 0
        ("KWD", 5120, 5120),
        ("HUF", 123456, 123456),  # 1,234.56 Ft: HUF charges take two decimals
        ("TWD", 123456, 123456),
        ("EUR", 1234, 1234),
    ],
)
def test_stripe_gets_its_own_units_and_reads_back_ours(
    stripe_fake, backend, currency, price_cents, stripe_amount
):
    token = _checkout_in(backend, currency, price_cents)
    co = _pay(backend, token, "stripe")
    assert co["totals"]["total_cents"] == price_cents
    pid = co["payment"]["provider_payment_id"]
    session = stripe_fake.sessions[pid]
    assert (session["amount_total"], session["currency"]) == (stripe_amount, currency.lower())
    assert [line["price"]["unit_amount"] for line in stripe_fake.line_items[pid]] == [stripe_amount]
    fetched = provider_for(backend.engine.conn, "stripe").fetch(pid)
    assert (fetched.amount_cents, fetched.currency) == (price_cents, currency)


def test_a_paid_isk_payment_completes_for_the_whole_amount(stripe_fake, backend):
    token = _checkout_in(backend, "ISK", 5000)
    pid = _pay(backend, token, "stripe")["payment"]["provider_payment_id"]
    stripe_fake.mark_paid(pid)
    done = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    assert done["order"]["payment_status"] == "paid"
    assert stripe_fake.sessions[pid]["amount_total"] == 500000  # 5,000 ISK, not 50
    assert provider_for(backend.engine.conn, "stripe").fetch(pid).amount_cents == 5000


@pytest.mark.parametrize(
    ("currency", "price_cents", "tax_percent", "code", "message"),
    [
        # 5,000.50 MGA: Stripe has no decimals for MGA
        ("MGA", 500050, None, "amount_not_supported", "Stripe takes MGA only in steps of"),
        # 5.125 KWD: three decimals must end in 0
        ("KWD", 5125, None, "amount_not_supported", "'Item' is KWD 5.125"),
        ("BHD", 5125, None, "amount_not_supported", "steps of BHD 0.010"),
        # the item converts, its tax line (0.512 KWD) does not
        ("KWD", 5120, "10", "amount_not_supported", "'Tax' is KWD 0.512"),
        # ISO's, but not a currency Stripe charges in
        ("IQD", 5000, None, "currency_not_supported", "Stripe does not take payments in IQD"),
    ],
)
def test_stripe_refuses_what_it_cannot_take_exactly_before_anything_happens(
    stripe_fake, backend, db_path, currency, price_cents, tax_percent, code, message
):
    token = _checkout_in(backend, currency, price_cents, tax_percent)
    before = dump(db_path)
    with pytest.raises(ValidationError) as refused:
        _pay(backend, token, "stripe")
    assert (refused.value.code, refused.value.field) == (code, "provider")
    assert message in refused.value.message and refused.value.recovery
    assert dump(db_path) == before  # no attempt, no reservation, no event
    assert stripe_fake.create_count == 0 and stripe_fake.requests == []


def test_a_refused_amount_is_a_one_line_error_with_exit_4(stripe_fake, backend, cli):
    token = _checkout_in(backend, "KWD", 5125)
    result = cli("create-payment", token, "--provider", "stripe")
    assert result.exit_code == 4
    assert result.stderr.strip().count("\n") <= 1 and "Traceback" not in result.stderr
    assert "Stripe takes KWD only in steps of KWD 0.010" in result.stderr
    as_json = cli("--json", "create-payment", token, "--provider", "stripe")
    assert json.loads(as_json.stderr)["error_object"]["code"] == "amount_not_supported"
    assert stripe_fake.create_count == 0


# -- Mollie -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "price_cents", "value"),
    [
        ("EUR", 1234, "12.34"),
        ("JPY", 5000, "5000"),
        ("ISK", 5000, "5000"),  # Mollie: ISK has no decimals
        ("HUF", 123456, "1234.56"),
        ("TWD", 123456, "1234.56"),
    ],
)
def test_mollie_gets_its_decimals_and_reads_back_ours(
    mollie_fake, backend, currency, price_cents, value
):
    token = _checkout_in(backend, currency, price_cents)
    pid = _pay(backend, token, "mollie")["payment"]["provider_payment_id"]
    assert mollie_fake.payments[pid]["amount"] == {"currency": currency, "value": value}
    fetched = provider_for(backend.engine.conn, "mollie").fetch(pid)
    assert (fetched.amount_cents, fetched.currency) == (price_cents, currency)


@pytest.mark.parametrize("currency", ["KWD", "BHD", "MGA", "UGX", "KRW"])
def test_mollie_refuses_currencies_it_does_not_take(mollie_fake, backend, db_path, currency):
    token = _checkout_in(backend, currency, 5120)
    before = dump(db_path)
    with pytest.raises(ValidationError) as refused:
        _pay(backend, token, "mollie")
    assert refused.value.code == "currency_not_supported"
    assert f"Mollie does not take payments in {currency}" in refused.value.message
    assert dump(db_path) == before
    assert mollie_fake.create_count == 0 and mollie_fake.requests == []


# -- every currency in our tables ---------------------------------------------------------------

EDGES = [0, 1, 5, 9, 10, 11, 99, 100, 101, 125, 1000, 1001, 12345, 10**8 + 7]


def _stripe_round_trip(currency: str, amount: int) -> None:
    try:
        sent = to_stripe_amount(amount, currency)
    except ValidationError as exc:
        assert exc.code == "amount_not_supported"
        assert amount % 10 ** exponent(currency) != 0  # whole major units always go through
        return
    assert sent % stripe_currencies.multiple_of(currency) == 0
    assert from_stripe_amount(sent, currency) == amount


@settings(max_examples=400)
@given(
    currency=st.sampled_from(sorted(stripe_currencies.SUPPORTED)),
    amount=st.integers(min_value=0, max_value=10**12),
)
def test_stripe_round_trip_is_the_identity_where_allowed(currency, amount):
    _stripe_round_trip(currency, amount)


def test_stripe_round_trip_for_every_currency_at_the_edges():
    for currency in stripe_currencies.SUPPORTED:
        for amount in [*EDGES, 1000 * 10 ** exponent(currency)]:
            _stripe_round_trip(currency, amount)


def test_every_stripe_currency_in_whole_units_is_taken_by_the_fake():
    """Our table against the fake's, each written from Stripe's page on its own."""
    import stripe

    stripe.enable_telemetry = False
    with FakeStripe() as fake:
        client = stripe.StripeClient(
            fake.api_key, base_addresses={"api": fake.url}, max_network_retries=0
        )
        for currency in sorted(stripe_currencies.SUPPORTED):
            amount = 1000 * 10 ** exponent(currency)  # 1,000 major units, over every minimum
            line = {
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": to_stripe_amount(amount, currency),
                    "product_data": {"name": "Item"},
                },
                "quantity": 1,
            }
            session = client.v1.checkout.sessions.create(
                {"mode": "payment", "success_url": "https://shop.example/ok", "line_items": [line]}
            )
            assert from_stripe_amount(session.amount_total, session.currency) == amount, currency
        assert fake.create_count == len(stripe_currencies.SUPPORTED)


def _mollie_round_trip(currency: str, amount: int) -> None:
    value = to_mollie_value(amount, currency)
    assert len(value.partition(".")[2]) == mollie_currencies.DECIMALS[currency]
    assert from_mollie_value(value, currency) == amount


@settings(max_examples=200)
@given(
    currency=st.sampled_from(sorted(mollie_currencies.DECIMALS)),
    amount=st.integers(min_value=0, max_value=10**12),
)
def test_mollie_round_trip_is_the_identity(currency, amount):
    _mollie_round_trip(currency, amount)


def test_mollie_round_trip_for_every_currency_at_the_edges():
    for currency in mollie_currencies.DECIMALS:
        for amount in EDGES:
            _mollie_round_trip(currency, amount)


def test_an_amount_read_back_that_is_no_whole_minor_unit_is_an_error_never_rounded():
    assert from_stripe_amount(500000, "isk") == 5000
    with pytest.raises(PaymentError) as stripe_odd:
        from_stripe_amount(500050, "isk")  # 5,000.50 ISK: Stripe holds what ISO cannot
    assert stripe_odd.value.code == "provider_amount_invalid"
    with pytest.raises(PaymentError):
        from_mollie_value("12.345", "EUR")


def test_payment_lines_that_miss_the_total_are_refused():
    provider = StripeProvider(ProviderConfig("sk_test_x", "http://127.0.0.1:9", 1.0))
    request = PaymentRequest(
        idempotency_key="k",
        checkout_token="chk_x",
        amount_cents=1000,
        currency="EUR",
        description="d",
        customer_email=None,
        lines=[PaymentLine("Item", 2, 499)],
    )
    with pytest.raises(ConflictError) as refused:
        provider.check(request)
    assert refused.value.code == "amount_mismatch"
