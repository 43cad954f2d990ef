"""checkout-flow through the engine: every endpoint's happy path and each error it raises,
idempotency, states and events, tax, stock, expiry. A refused call leaves the store as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checkout_cli.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PaymentError,
    ValidationError,
)
from tests.conftest import CUSTOMER, dump, ready_checkout
from tests.engine_helpers import (
    CATALOG,
    FLOW,
    add,
    assert_invariants,
    cart_with,
    complete,
    events,
    fixed_clock,
    initiate,
    invoice,
    prescription,
    query,
    refused,
    scalar,
    set_customer,
    setting,
    shift_clock,
    status,
    stock,
)

LATER = timedelta(days=2)  # past the fixture's 1440-minute TTL


def set_payment(backend, token, **body):
    return backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-4711", **body},
    )


def payments(backend, token):
    return query(
        backend.db_path,
        "SELECT p.provider, p.status, p.amount_cents FROM payments p "
        "JOIN checkouts c ON c.id = p.checkout_id WHERE c.token = ? ORDER BY p.id",
        (token,),
    )


@pytest.fixture
def active(backend):
    """An active checkout without customer: LENS-DAILY-30 x2 and CASE-TRAVEL x1."""
    return initiate(backend, cart_with(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)]))


@pytest.fixture
def cancelled(backend):
    token = ready_checkout(backend)
    backend.call(FLOW, "cancel-checkout", {"checkout_token": token})
    return token


@pytest.fixture
def completed(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    complete(backend, token)
    return token


# ---- initiate-checkout -----------------------------------------------------------------------


def test_initiate_snapshots_the_cart(backend, active):
    co = active
    assert co["checkout_token"].startswith("chk_")
    assert co["status"] == "active"
    assert co["reused"] is False and co["warnings"] == []
    assert co["currency"] == "EUR"
    assert co["items"] == [
        {
            "line_id": 1,
            "product_sku": "LENS-DAILY-30",
            "name": "Daily contact lenses, 30 pack",
            "quantity": 2,
            "unit_price_cents": 2495,
            "line_total_cents": 4990,
            "tax_cents": 0,
            "meta": {},
        },
        {
            "line_id": 2,
            "product_sku": "CASE-TRAVEL",
            "name": "Travel lens case",
            "quantity": 1,
            "unit_price_cents": 495,
            "line_total_cents": 495,
            "tax_cents": 0,
            "meta": {},
        },
    ]
    assert co["totals"] == {
        "subtotal_cents": 5485,
        "shipping_cents": 495,  # default_shipping_cents
        "tax_cents": 0,
        "total_cents": 5980,
    }
    for key in ("customer", "shipping_address", "billing_address", "payment", "order"):
        assert co[key] is None
    created = datetime.fromisoformat(co["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(co["expires_at"].replace("Z", "+00:00"))
    assert expires - created == timedelta(minutes=1440)
    assert co["created_at"].endswith("Z")
    assert_invariants(backend.db_path)


def test_snapshot_ignores_later_cart_and_price_changes(backend, active):
    token = active["checkout_token"]
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "LENS-DAILY-30", "name": "Daily contact lenses, 30 pack", "price_cents": 9999},
    )
    add(backend, "GIFT-CARD-25", 1, active["cart_token"])
    co = status(backend, token)
    assert [i["unit_price_cents"] for i in co["items"]] == [2495, 495]
    assert co["totals"]["subtotal_cents"] == 5485


def test_initiate_twice_returns_the_same_checkout(backend, active):
    again = initiate(backend, active["cart_token"])
    assert again["checkout_token"] == active["checkout_token"]
    assert again["reused"] is True
    assert {k: v for k, v in again.items() if k not in ("reused", "warnings")} == {
        k: v for k, v in active.items() if k not in ("reused", "warnings")
    }
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM checkouts") == 1
    assert [e[0] for e in events(backend.db_path, active["checkout_token"])] == ["checkout_created"]


def test_initiate_warns_when_the_reused_checkout_no_longer_matches_the_cart(backend, active):
    cart, token = active["cart_token"], active["checkout_token"]
    add(backend, "GIFT-CARD-25", 1, cart)
    again = initiate(backend, cart)
    assert (again["checkout_token"], again["reused"]) == (token, True)
    assert [i["product_sku"] for i in again["items"]] == ["LENS-DAILY-30", "CASE-TRAVEL"]
    assert [w["code"] for w in again["warnings"]] == ["cart_changed"]
    assert f"checkout cancel-checkout {token}" in again["warnings"][0]["message"]
    backend.call(
        "shopping-cart", "remove-item", {"cart_token": cart, "product_sku": "GIFT-CARD-25"}
    )
    assert initiate(backend, cart)["warnings"] == []  # back as it was snapshotted


def test_a_reused_checkout_with_a_payment_is_not_advised_to_be_cancelled(backend):
    token = ready_checkout(backend)
    set_payment(backend, token, status="paid", force=True)
    cart = status(backend, token)["cart_token"]
    add(backend, "GIFT-CARD-25", 1, cart)
    again = initiate(backend, cart)
    assert (again["checkout_token"], again["status"]) == (token, "completable")
    [warning] = again["warnings"]
    assert warning["code"] == "cart_changed"
    assert "cancel-checkout" not in warning["message"] and "complete it" in warning["message"]


def test_a_reused_checkout_warns_about_a_product_archived_since(backend, active):
    lens = backend.call(CATALOG, "get-product", {"sku": "LENS-DAILY-30"})
    kept = {key: lens[key] for key in ("sku", "name", "price_cents")}
    backend.call(CATALOG, "upsert-product", {**kept, "status": "archived"})
    again = initiate(backend, active["cart_token"])
    assert again["reused"] is True
    assert [(w["code"], w["product_sku"]) for w in again["warnings"]] == [
        ("product_not_active", "LENS-DAILY-30")
    ]


def test_initiate_reuses_a_completable_checkout(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    cart = status(backend, token)["cart_token"]
    again = initiate(backend, cart)
    assert (again["checkout_token"], again["reused"], again["status"]) == (
        token,
        True,
        "completable",
    )


def test_initiate_errors(backend, completed):
    converted = status(backend, completed)["cart_token"]
    empty = cart_with(backend, [("LENS-DAILY-30", 1)])
    backend.call("shopping-cart", "clear-cart", {"cart_token": empty})
    for body, cls, code, field in [
        ({"cart_token": "cart_nope"}, NotFoundError, "cart_not_found", "cart_token"),
        ({"cart_token": converted}, ConflictError, "cart_not_active", "cart_token"),
        ({"cart_token": empty}, ConflictError, "cart_empty", "cart_token"),
        ({"cart_token": "cart nope"}, ValidationError, "invalid_token_format", "cart_token"),
        ({}, ValidationError, "missing_field", "cart_token"),
        ({"cart_token": empty, "force": True}, ValidationError, "unknown_field", "force"),
    ]:
        refused(backend, FLOW, "initiate-checkout", body, cls, code, field)


def test_initiate_refuses_a_product_archived_or_repriced_in_another_currency_since(backend):
    cart = cart_with(backend, [("GIFT-CARD-25", 1), ("LENS-DAILY-30", 2)])
    lens = backend.call(CATALOG, "get-product", {"sku": "LENS-DAILY-30"})

    def change_lens(**fields: str) -> None:
        kept = {key: lens[key] for key in ("sku", "name", "price_cents")}
        backend.call(CATALOG, "upsert-product", {**kept, **fields})

    change_lens(status="archived")
    error = refused(
        backend,
        FLOW,
        "initiate-checkout",
        {"cart_token": cart},
        ConflictError,
        "product_not_active",
        "cart_token",
    )
    assert "LENS-DAILY-30" in error.message
    assert f"checkout cart remove {cart} LENS-DAILY-30" in error.recovery
    change_lens(status="active", currency="USD")
    refused(
        backend,
        FLOW,
        "initiate-checkout",
        {"cart_token": cart},
        ConflictError,
        "currency_mismatch",
        "cart_token",
    )
    change_lens(currency=lens["currency"])
    assert initiate(backend, cart)["status"] == "active"


def test_a_refused_initiate_still_records_the_expiry_it_found(backend, active):
    lens = backend.call(CATALOG, "get-product", {"sku": "LENS-DAILY-30"})
    kept = {key: lens[key] for key in ("sku", "name", "price_cents")}
    backend.call(CATALOG, "upsert-product", {**kept, "status": "archived"})
    shift_clock(backend, LATER)
    refused(
        backend,
        FLOW,
        "initiate-checkout",
        {"cart_token": active["cart_token"]},
        ConflictError,
        "product_not_active",
        "cart_token",
        unchanged=False,  # the expiry is committed
    )
    assert status(backend, active["checkout_token"])["status"] == "expired"
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM checkouts") == 1
    assert_invariants(backend.db_path)


def test_initiate_warns_about_stock_but_not_for_backorder_or_untracked(backend):
    cart = cart_with(
        backend,
        [("SOLUTION-360", 1), ("CASE-TRAVEL", 5), ("GIFT-CARD-25", 50), ("LENS-MONTH-6", 41)],
    )
    co = initiate(backend, cart)
    assert co["status"] == "active"
    assert [(w["code"], w["product_sku"]) for w in co["warnings"]] == [
        ("insufficient_stock", "SOLUTION-360"),
        ("insufficient_stock", "LENS-MONTH-6"),
    ]
    assert all(w["message"] for w in co["warnings"])


def test_initiate_after_expiry_starts_a_new_checkout(backend, active):
    shift_clock(backend, LATER)
    again = initiate(backend, active["cart_token"])
    assert again["reused"] is False
    assert again["checkout_token"] != active["checkout_token"]
    assert status(backend, active["checkout_token"])["status"] == "expired"
    assert events(backend.db_path, active["checkout_token"])[-1] == (
        "checkout_expired",
        "active",
        "expired",
    )
    assert_invariants(backend.db_path)


# ---- set-customer ----------------------------------------------------------------------------


def test_set_customer_sets_details_and_computes_tax_per_line(backend, active):
    token = active["checkout_token"]
    co = backend.call(
        FLOW,
        "set-customer",
        {
            "checkout_token": token,
            "customer": {
                "email": " anna@example.com ",
                "name": "Anna de Vries",
                "phone": "+31 20 555 0142",
            },
            "shipping_address": {**CUSTOMER["shipping_address"], "country": "NL"},
        },
    )
    assert co["customer"] == {
        "email": "anna@example.com",
        "name": "Anna de Vries",
        "phone": "+31 20 555 0142",
        "company": None,
    }
    assert co["shipping_address"] == {
        "line1": "Prinsengracht 263",
        "line2": None,
        "postal_code": "1016 GV",
        "city": "Amsterdam",
        "region": None,
        "country": "NL",
    }
    assert co["billing_address"] == co["shipping_address"]
    # NL 21 %: 4990 -> 1047.9 -> 1048; 495 -> 103.95 -> 104 (half-up, once per line).
    assert [i["tax_cents"] for i in co["items"]] == [1048, 104]
    assert co["totals"] == {
        "subtotal_cents": 5485,
        "shipping_cents": 495,
        "tax_cents": 1152,
        "total_cents": 5485 + 495 + 1152,
    }
    assert co["status"] == "active"
    assert_invariants(backend.db_path)


def test_tax_is_rounded_half_up_per_line(backend):
    for sku in ("PIN-50", "PIN-51"):
        backend.call(CATALOG, "upsert-product", {"sku": sku, "name": sku, "price_cents": 50})
    token = initiate(backend, cart_with(backend, [("PIN-50", 1), ("PIN-51", 1)]))["checkout_token"]
    co = set_customer(backend, token)
    # 21 % of 50 = 10.5 -> 11 on each line; the checkout's tax is the lines' sum (22), not
    # 21 % of the subtotal (21).
    assert [i["tax_cents"] for i in co["items"]] == [11, 11]
    assert co["totals"]["tax_cents"] == 22
    assert co["totals"]["total_cents"] == 100 + 495 + 22
    de = backend.call(
        FLOW,
        "set-customer",
        {
            "checkout_token": token,
            **CUSTOMER,
            "shipping_address": {**CUSTOMER["shipping_address"], "country": "DE"},
        },
    )
    assert [i["tax_cents"] for i in de["items"]] == [10, 10]  # 19 % of 50 = 9.5 -> 10
    assert de["totals"]["tax_cents"] == 20


def test_explicit_tax_and_shipping(backend, active):
    token = active["checkout_token"]
    co = set_customer(backend, token, tax_cents=1000, shipping_cents=0)
    # 1000 split over 4990 : 495 by largest remainder: 909.75 -> 910, 90.24 -> 90.
    assert [i["tax_cents"] for i in co["items"]] == [910, 90]
    assert co["totals"] == {
        "subtotal_cents": 5485,
        "shipping_cents": 0,
        "tax_cents": 1000,
        "total_cents": 6485,
    }
    odd = set_customer(backend, token, tax_cents=1)
    assert [i["tax_cents"] for i in odd["items"]] == [1, 0]
    assert odd["totals"]["shipping_cents"] == 0  # kept from before
    assert_invariants(backend.db_path)


def test_no_tax_without_a_rate_and_a_separate_billing_address(backend, active):
    billing = {"line1": "1 Main St", "postal_code": "10001", "city": "New York", "country": "US"}
    co = set_customer(
        backend,
        active["checkout_token"],
        shipping_address={**billing, "region": "NY"},
        billing_address={**CUSTOMER["shipping_address"]},
    )
    assert co["totals"]["tax_cents"] == 0
    assert [i["tax_cents"] for i in co["items"]] == [0, 0]
    assert co["shipping_address"]["region"] == "NY"
    assert co["billing_address"]["country"] == "NL"


def test_set_customer_on_an_invoiced_checkout_updates_the_invoice_amount(backend):
    token = ready_checkout(backend)
    before = invoice(backend, token)
    co = set_customer(backend, token, shipping_cents=0)
    assert co["status"] == "completable"
    assert co["totals"]["total_cents"] == before["totals"]["total_cents"] - 495
    assert co["payment"]["amount_cents"] == co["totals"]["total_cents"]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"customer": {"email": "anna@", "name": "A"}}, "invalid_email", "customer.email"),
        ({"customer": {"email": "a b@x.nl", "name": "A"}}, "invalid_email", "customer.email"),
        (
            {"shipping_address": {**CUSTOMER["shipping_address"], "country": "XX"}},
            "invalid_country",
            "shipping_address.country",
        ),
        (
            {"billing_address": {**CUSTOMER["shipping_address"], "country": "Holland"}},
            "invalid_country",
            "billing_address.country",
        ),
        ({"customer": {"email": "a@example.com"}}, "missing_field", "customer.name"),
        (
            {"shipping_address": {"line1": "x", "postal_code": "1", "country": "NL"}},
            "missing_field",
            "shipping_address.city",
        ),
        (
            {"customer": {"email": "a@example.com", "name": "A", "age": 3}},
            "unknown_field",
            "customer.age",
        ),
        (
            {"customer": {"email": "a@example.com", "name": "A", "phone": "call me"}},
            "invalid_phone",
            "customer.phone",
        ),
        ({"shipping_cents": -1}, "invalid_amount", "shipping_cents"),
        ({"tax_cents": -5}, "invalid_amount", "tax_cents"),
        ({"tax_cents": "10"}, "invalid_type", "tax_cents"),
        ({"shipping_cents": 4.95}, "invalid_type", "shipping_cents"),
        ({"shipping_cents": 10**13}, "invalid_amount", "shipping_cents"),
        ({"discount_cents": 5}, "unknown_field", "discount_cents"),
    ],
)
def test_set_customer_bad_input(backend, active, change, code, field):
    body = {"checkout_token": active["checkout_token"], **CUSTOMER, **change}
    refused(backend, FLOW, "set-customer", body, ValidationError, code, field)


def test_set_customer_missing_parts(backend, active):
    token = active["checkout_token"]
    refused(
        backend,
        FLOW,
        "set-customer",
        {"checkout_token": token, "shipping_address": CUSTOMER["shipping_address"]},
        ValidationError,
        "missing_field",
        "customer",
    )
    refused(
        backend,
        FLOW,
        "set-customer",
        {"checkout_token": token, "customer": CUSTOMER["customer"]},
        ValidationError,
        "missing_field",
        "shipping_address",
    )


def test_set_customer_state_errors(backend, cancelled, completed):
    for token, cls, code in [
        ("chk_nope", NotFoundError, "checkout_not_found"),
        (cancelled, ConflictError, "checkout_cancelled"),
        (completed, ConflictError, "checkout_not_active"),
    ]:
        refused(
            backend,
            FLOW,
            "set-customer",
            {"checkout_token": token, **CUSTOMER},
            cls,
            code,
            "checkout_token",
        )


def test_totals_locked_once_a_non_invoice_payment_exists(backend):
    token = ready_checkout(backend)
    set_payment(backend, token, status="pending")
    refused(
        backend,
        FLOW,
        "set-customer",
        {"checkout_token": token, **CUSTOMER, "shipping_cents": 0},
        ConflictError,
        "totals_locked",
    )
    # The same totals are fine.
    assert set_customer(backend, token)["status"] == "payment_pending"


# ---- create-payment --------------------------------------------------------------------------


def test_invoice_payment_makes_the_checkout_completable(backend):
    token = ready_checkout(backend)
    co = invoice(backend, token)
    assert co["status"] == "completable"
    assert co["payment"] == {
        "provider": "invoice",
        "provider_payment_id": None,
        "status": "unpaid",
        "redirect_url": None,
        "amount_cents": co["totals"]["total_cents"],
        "reference": None,
    }
    assert events(backend.db_path, token)[-1] == ("payment_created", "active", "completable")
    before = dump(backend.db_path)
    assert invoice(backend, token) == co  # idempotent: nothing new
    assert dump(backend.db_path) == before
    assert payments(backend, token) == [("invoice", "unpaid", co["totals"]["total_cents"])]


def test_invoice_not_allowed(backend):
    token = ready_checkout(backend)
    setting(backend, "allow_invoice_checkout", False)
    refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": "invoice"},
        ForbiddenError,
        "invoice_checkout_not_allowed",
        "provider",
    )


@pytest.mark.parametrize("provider", ["stripe", "mollie"])
def test_provider_not_configured(backend, provider):
    token = ready_checkout(backend)
    error = refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": provider},
        ConflictError,
        "provider_not_configured",
        "provider",
    )
    assert provider in error.message and "vault" in (error.recovery or "")


def test_create_payment_errors(backend, active, cancelled):
    token = active["checkout_token"]
    for body, cls, code, field in [
        ({"checkout_token": token, "provider": "invoice"}, ConflictError, "customer_missing", None),
        (
            {"checkout_token": token, "provider": "paypal"},
            ValidationError,
            "unknown_provider",
            None,
        ),
        (
            {"checkout_token": cancelled, "provider": "invoice"},
            ConflictError,
            "checkout_cancelled",
            "checkout_token",
        ),
        (
            {"checkout_token": "chk_nope", "provider": "invoice"},
            NotFoundError,
            "checkout_not_found",
            "checkout_token",
        ),
        (
            {"checkout_token": token, "provider": "stripe", "redirect_url": "ftp://x"},
            ValidationError,
            "invalid_url",
            "redirect_url",
        ),
        ({"checkout_token": token}, ValidationError, "missing_field", "provider"),
    ]:
        error = refused(backend, FLOW, "create-payment", body, cls, code)
        if field is not None:
            assert error.field == field
    error = refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": "invoice"},
        ConflictError,
        "customer_missing",
        "checkout_token",
    )
    assert "set-customer" in (error.recovery or "")


def test_invoice_after_a_manual_payment(backend):
    paid = ready_checkout(backend)
    set_payment(backend, paid, status="paid")
    refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": paid, "provider": "invoice"},
        PaymentError,
        "payment_already_paid",
    )
    pending = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    set_payment(backend, pending, status="pending")
    refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": pending, "provider": "invoice"},
        ConflictError,
        "payment_in_progress",
    )


# ---- set-payment -----------------------------------------------------------------------------


def test_set_payment_paid_then_complete(backend):
    token = ready_checkout(backend)
    co = set_payment(backend, token, status="paid")
    assert co["status"] == "completable"
    assert co["payment"] == {
        "provider": "bank",
        "provider_payment_id": None,
        "status": "paid",
        "redirect_url": None,
        "amount_cents": co["totals"]["total_cents"],
        "reference": "NL-4711",
    }
    assert events(backend.db_path, token)[-1] == ("payment_linked", "active", "completable")
    done = complete(backend, token)
    assert (done["order"]["status"], done["order"]["payment_status"]) == ("paid", "paid")
    assert_invariants(backend.db_path)


def test_set_payment_pending_then_paid(backend):
    token = ready_checkout(backend)
    co = set_payment(backend, token, status="pending")
    assert co["status"] == "payment_pending"
    assert co["payment"]["status"] == "pending"
    co = set_payment(backend, token, status="paid", reference="NL-4712")
    assert co["status"] == "completable"
    assert co["payment"]["reference"] == "NL-4712"
    assert [e for e in events(backend.db_path, token) if e[0] == "payment_linked"] == [
        ("payment_linked", "active", "payment_pending"),
        ("payment_linked", "payment_pending", "completable"),
    ]


def test_set_payment_amount_must_match_unless_forced(backend):
    token = ready_checkout(backend)
    total = status(backend, token)["totals"]["total_cents"]
    refused(
        backend,
        FLOW,
        "set-payment",
        {
            "checkout_token": token,
            "provider": "bank",
            "reference": "NL-1",
            "status": "paid",
            "amount_cents": total - 1,
        },
        ConflictError,
        "amount_mismatch",
        "amount_cents",
    )
    exact = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    total_exact = status(backend, exact)["totals"]["total_cents"]
    assert set_payment(backend, exact, status="paid", amount_cents=total_exact)["status"] == (
        "completable"
    )
    co = set_payment(backend, token, status="paid", amount_cents=total - 1, force=True)
    assert co["payment"]["amount_cents"] == total - 1
    detail = scalar(
        backend.db_path,
        "SELECT e.detail FROM events e JOIN checkouts c ON c.id = e.checkout_id "
        "WHERE c.token = ? AND e.kind = 'payment_linked'",
        (token,),
    )
    assert '"forced": true' in detail


def test_set_payment_errors(backend, active, cancelled):
    token = active["checkout_token"]
    base = {"checkout_token": token, "provider": "bank", "reference": "R1", "status": "paid"}
    for body, cls, code, field in [
        ({**base, "status": "failed"}, ValidationError, "invalid_payment_status", "status"),
        ({**base, "provider": "Bank!"}, ValidationError, "invalid_provider", "provider"),
        ({**base, "amount_cents": -1}, ValidationError, "invalid_amount", "amount_cents"),
        (
            {k: v for k, v in base.items() if k != "reference"},
            ValidationError,
            "missing_field",
            "reference",
        ),
        (
            {**base, "checkout_token": cancelled},
            ConflictError,
            "checkout_cancelled",
            "checkout_token",
        ),
        (
            {**base, "checkout_token": "chk_nope"},
            NotFoundError,
            "checkout_not_found",
            "checkout_token",
        ),
    ]:
        refused(backend, FLOW, "set-payment", body, cls, code, field)


# ---- get-checkout-status ---------------------------------------------------------------------


def test_get_checkout_status(backend):
    token = ready_checkout(backend)
    co = invoice(backend, token)
    assert status(backend, token) == co
    done = complete(backend, token)
    assert status(backend, token) == {k: v for k, v in done.items() if k != "already_completed"}
    refused(
        backend,
        FLOW,
        "get-checkout-status",
        {"checkout_token": "chk_nope"},
        NotFoundError,
        "checkout_not_found",
        "checkout_token",
    )
    refused(
        backend,
        FLOW,
        "get-checkout-status",
        {"checkout_token": "chk nope"},
        ValidationError,
        "invalid_token_format",
        "checkout_token",
    )
    refused(
        backend,
        FLOW,
        "get-checkout-status",
        {"checkout_token": "x" * 81},
        ValidationError,
        "invalid_token_format",
        "checkout_token",
    )


# ---- complete-checkout -----------------------------------------------------------------------


def test_complete_creates_the_order(backend):
    year = datetime.now(UTC).year
    token = ready_checkout(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    invoice(backend, token)
    done = complete(backend, token)
    assert done["already_completed"] is False
    assert done["status"] == "completed"
    assert done["order"]["order_number"] == f"{year}-000001"
    assert done["order"]["order_id"].startswith("ord_")
    assert (done["order"]["status"], done["order"]["payment_status"]) == ("pending", "unpaid")
    assert stock(backend, "LENS-DAILY-30") == 98
    assert stock(backend, "CASE-TRAVEL") == 1
    cart = backend.call("shopping-cart", "get-cart", {"cart_token": done["cart_token"]})
    assert cart["status"] == "converted"
    assert (
        scalar(
            backend.db_path,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation' AND recipient = ?",
            ("anna@example.com",),
        )
        == 1
    )
    assert events(backend.db_path, token) == [
        ("checkout_created", None, "active"),
        ("customer_set", None, None),
        ("payment_created", "active", "completable"),
        ("checkout_completed", "completable", "completed"),
    ]
    # Who and when, for the timeline: the backend's actor and an ISO 8601 UTC time.
    for actor, at in query(backend.db_path, "SELECT actor, at FROM events"):
        assert actor == "test" and at.endswith("Z")
    assert_invariants(backend.db_path)


def test_complete_twice_returns_the_same_order(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    first = complete(backend, token)
    before = dump(backend.db_path)
    second = complete(backend, token)
    assert dump(backend.db_path) == before
    assert second["already_completed"] is True
    assert second["order"] == first["order"]
    assert {k: v for k, v in second.items() if k != "already_completed"} == {
        k: v for k, v in first.items() if k != "already_completed"
    }
    assert stock(backend, "LENS-DAILY-30") == 98  # decremented once
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM orders") == 1
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM outbox") == 1
    assert [e[0] for e in events(backend.db_path, token)].count("checkout_completed") == 1
    assert_invariants(backend.db_path)


def test_order_numbers_are_sequential(backend):
    year = datetime.now(UTC).year
    numbers = []
    for _ in range(3):
        token = ready_checkout(backend, [("LENS-MONTH-6", 1)])
        invoice(backend, token)
        numbers.append(complete(backend, token)["order"]["order_number"])
    assert numbers == [f"{year}-000001", f"{year}-000002", f"{year}-000003"]


def test_order_numbers_restart_each_year(backend):
    backend.engine.clock = fixed_clock(datetime(2031, 3, 1, 12, 0, tzinfo=UTC))
    token = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    invoice(backend, token)
    assert complete(backend, token)["order"]["order_number"] == "2031-000001"
    backend.engine.clock = fixed_clock(datetime(2032, 1, 1, 0, 0, 1, tzinfo=UTC))
    token = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    invoice(backend, token)
    assert complete(backend, token)["order"]["order_number"] == "2032-000001"


def test_complete_errors(backend, active, cancelled):
    token = active["checkout_token"]
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": "chk_nope"},
        NotFoundError,
        "checkout_not_found",
        "checkout_token",
    )
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": cancelled},
        ConflictError,
        "checkout_cancelled",
        "checkout_token",
    )
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        ConflictError,
        "customer_missing",
        "checkout_token",
    )
    set_customer(backend, token)
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        ConflictError,
        "payment_required",
        "checkout_token",
    )
    set_payment(backend, token, status="pending")
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        PaymentError,
        "payment_not_paid",
    )
    refused(backend, FLOW, "complete-checkout", {}, ValidationError, "missing_field")
    assert_invariants(backend.db_path)


def test_out_of_stock_warns_then_refuses_until_restocked(backend):
    cart = cart_with(backend, [("SOLUTION-360", 2)])
    co = initiate(backend, cart)
    assert [w["product_sku"] for w in co["warnings"]] == ["SOLUTION-360"]
    token = co["checkout_token"]
    set_customer(backend, token)
    invoice(backend, token)
    error = refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        ConflictError,
        "insufficient_stock",
        "items",
    )
    assert "SOLUTION-360" in error.message and "set-stock" in (error.recovery or "")
    backend.call(CATALOG, "set-stock", {"sku": "SOLUTION-360", "stock": 2})
    assert complete(backend, token)["status"] == "completed"
    assert stock(backend, "SOLUTION-360") == 0
    assert_invariants(backend.db_path)


def test_stock_runs_out_exactly(backend):
    first = ready_checkout(backend, [("LENS-MONTH-6", 40)])
    second = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    for token in (first, second):
        invoice(backend, token)
    complete(backend, first)
    assert stock(backend, "LENS-MONTH-6") == 0
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": second},
        ConflictError,
        "insufficient_stock",
        "items",
    )
    assert_invariants(backend.db_path)


def test_backorder_goes_below_zero_and_untracked_is_untouched(backend):
    token = ready_checkout(backend, [("CASE-TRAVEL", 5), ("GIFT-CARD-25", 3)])
    invoice(backend, token)
    complete(backend, token)
    assert stock(backend, "CASE-TRAVEL") == -3
    assert stock(backend, "GIFT-CARD-25") is None
    assert query(
        backend.db_path,
        "SELECT sku, delta, reason FROM stock_movements WHERE reason = 'order' ORDER BY id",
    ) == [("CASE-TRAVEL", -5, "order")]
    assert_invariants(backend.db_path)


def test_required_line_meta_then_copied_to_the_order(backend):
    token = ready_checkout(backend, [("LENS-TORIC-6", 2), ("CASE-TRAVEL", 1)])
    invoice(backend, token)
    error = refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        ConflictError,
        "line_meta_missing",
        "items",
    )
    assert "LENS-TORIC-6" in error.message
    co = backend.call(
        FLOW,
        "set-line-meta",
        {
            "checkout_token": token,
            "product_sku": "LENS-TORIC-6",
            "def_key": "lens_prescription",
            "values": prescription(),
        },
    )
    meta = co["items"][0]["meta"]["lens_prescription"]
    assert meta["right_axis"] == 170
    backend.call(
        FLOW,
        "set-line-meta",
        {
            "checkout_token": token,
            "product_sku": "CASE-TRAVEL",
            "def_key": "engraving",
            "values": {"text": "Anna", "font": "script"},
        },
    )
    done = complete(backend, token)
    order = backend.call("order-management", "get-order", {"order_id": done["order"]["order_id"]})
    assert [i["meta"] for i in order["items"]] == [
        i["meta"] for i in status(backend, token)["items"]
    ]
    assert order["items"][0]["meta"]["lens_prescription"] == meta
    assert [e[0] for e in events(backend.db_path, token)].count("line_meta_set") == 2
    assert_invariants(backend.db_path)


def test_set_line_meta_errors(backend, cancelled):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("GIFT-CARD-25", 1)])
    base = {
        "checkout_token": token,
        "product_sku": "LENS-TORIC-6",
        "def_key": "lens_prescription",
        "values": prescription(),
    }
    for body, cls, code, field in [
        ({**base, "product_sku": "LENS-MONTH-6"}, NotFoundError, "line_not_found", "product_sku"),
        ({**base, "line_id": 2}, NotFoundError, "line_not_found", "line_id"),
        (
            {**base, "product_sku": "GIFT-CARD-25", "def_key": "engraving"},
            ValidationError,
            "meta_def_not_allowed",
            "def_key",
        ),
        (
            {**base, "values": prescription(right_sphere="-30.00")},
            ValidationError,
            "meta_value_out_of_range",
            None,
        ),
        (
            {**base, "values": prescription(right_base_curve="9.9")},
            ValidationError,
            "meta_value_not_allowed",
            None,
        ),
        ({**base, "def_key": "Bad-Key"}, ValidationError, "invalid_def_key", "def_key"),
        (
            {**base, "checkout_token": cancelled, "product_sku": "LENS-DAILY-30"},
            ConflictError,
            "checkout_cancelled",
            "checkout_token",
        ),
        ({**base, "checkout_token": "chk_nope"}, NotFoundError, "checkout_not_found", None),
    ]:
        error = refused(backend, FLOW, "set-line-meta", body, cls, code)
        if field is not None:
            assert error.field == field


# ---- expiry ----------------------------------------------------------------------------------


def test_expired_checkout_is_refused_and_the_expiry_recorded(backend):
    token = ready_checkout(backend)
    shift_clock(backend, LATER)
    refused(
        backend,
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": "invoice"},
        ConflictError,
        "checkout_expired",
        "checkout_token",
        unchanged=False,  # the expiry itself is a fact and is committed
    )
    assert status(backend, token)["status"] == "expired"
    assert events(backend.db_path, token)[-1] == ("checkout_expired", "active", "expired")
    for name, body in [
        ("complete-checkout", {}),
        ("set-customer", CUSTOMER),
        ("cancel-checkout", {}),
        ("set-payment", {"provider": "bank", "reference": "R", "status": "paid"}),
    ]:
        refused(
            backend,
            FLOW,
            name,
            {"checkout_token": token, **body},
            ConflictError,
            "checkout_expired",
            "checkout_token",
        )
    assert_invariants(backend.db_path)


def test_cancel_past_the_ttl_expires_the_checkout_as_any_other_request_would(backend):
    token = ready_checkout(backend)
    shift_clock(backend, LATER)
    refused(
        backend,
        FLOW,
        "cancel-checkout",
        {"checkout_token": token, "reason": "customer called back"},
        ConflictError,
        "checkout_expired",
        "checkout_token",
        unchanged=False,  # the expiry is committed
    )
    assert status(backend, token)["status"] == "expired"
    assert [e[0] for e in events(backend.db_path, token)][-1] == "checkout_expired"
    assert (
        scalar(backend.db_path, "SELECT cancel_reason FROM checkouts WHERE token = ?", (token,))
        is None
    )
    assert_invariants(backend.db_path)


def test_expiry_on_complete_with_a_zero_ttl(backend):
    setting(backend, "checkout_ttl_minutes", 0)
    cart = cart_with(backend, [("LENS-DAILY-30", 1)])
    token = initiate(backend, cart)["checkout_token"]
    refused(
        backend,
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        ConflictError,
        "checkout_expired",
        "checkout_token",
        unchanged=False,
    )
    assert status(backend, token)["status"] == "expired"
    assert stock(backend, "LENS-DAILY-30") == 100


def test_the_longest_ttl_still_works(backend):
    setting(backend, "checkout_ttl_minutes", 10 * 366 * 24 * 60)
    co = initiate(backend, cart_with(backend, [("LENS-DAILY-30", 1)]))
    assert co["expires_at"] > co["created_at"]


def test_a_completable_checkout_does_not_expire(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    shift_clock(backend, LATER)
    assert complete(backend, token)["status"] == "completed"


def test_expires_at_is_utc_whatever_the_clock_zone(backend):
    from datetime import timezone

    moment = datetime(2031, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    backend.engine.clock = fixed_clock(moment)
    co = initiate(backend, cart_with(backend, [("LENS-DAILY-30", 1)]))
    assert co["created_at"] == "2031-03-01T10:00:00.000000Z"
    assert co["expires_at"] == "2031-03-02T10:00:00.000000Z"


# ---- cancel-checkout -------------------------------------------------------------------------


def test_cancel_keeps_the_cart_and_a_new_initiate_gives_a_new_checkout(backend):
    token = ready_checkout(backend)
    co = backend.call(FLOW, "cancel-checkout", {"checkout_token": token, "reason": "changed mind"})
    assert co["status"] == "cancelled"
    cart = backend.call("shopping-cart", "get-cart", {"cart_token": co["cart_token"]})
    assert cart["status"] == "active" and cart["items"][0]["quantity"] == 2
    assert events(backend.db_path, token)[-1] == ("checkout_cancelled", "active", "cancelled")
    assert (
        scalar(backend.db_path, "SELECT cancel_reason FROM checkouts WHERE token = ?", (token,))
        == "changed mind"
    )
    fresh = initiate(backend, co["cart_token"])
    assert fresh["reused"] is False and fresh["checkout_token"] != token
    assert stock(backend, "LENS-DAILY-30") == 100
    assert_invariants(backend.db_path)


def test_cancel_a_completable_checkout(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    co = backend.call(FLOW, "cancel-checkout", {"checkout_token": token})
    assert co["status"] == "cancelled"
    assert events(backend.db_path, token)[-1] == (
        "checkout_cancelled",
        "completable",
        "cancelled",
    )


def test_cancel_errors(backend, cancelled, completed):
    for token, cls, code in [
        (cancelled, ConflictError, "checkout_cancelled"),
        (completed, ConflictError, "checkout_not_active"),
        ("chk_nope", NotFoundError, "checkout_not_found"),
    ]:
        refused(
            backend, FLOW, "cancel-checkout", {"checkout_token": token}, cls, code, "checkout_token"
        )
    refused(
        backend,
        FLOW,
        "cancel-checkout",
        {"checkout_token": cancelled, "reason": "x" * 501},
        ValidationError,
        "invalid_value",
        "reason",
    )


# ---- the registry through the backend --------------------------------------------------------


def test_unknown_endpoint(backend):
    refused(backend, FLOW, "pay-now", {}, NotFoundError, "endpoint_not_found")
    refused(backend, "billing", "initiate-checkout", {}, NotFoundError, "endpoint_not_found")


def test_body_must_be_an_object(backend):
    refused(backend, FLOW, "get-checkout-status", [], ValidationError, "invalid_type", "body")
