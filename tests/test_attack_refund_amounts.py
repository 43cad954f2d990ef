"""Refunds whose amount a provider cannot take, and other hostile after-order requests."""

from __future__ import annotations

from checkout_cli.errors import ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import ADMIN, CATALOG, FLOW, ORDERS, assert_invariants, complete, refused


def kwd_stripe_order(backend, stripe_fake) -> dict:
    backend.call(ADMIN, "set-setting", {"key": "currency", "value": "KWD"})
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "KW-1", "name": "Lens", "price_cents": 1000, "currency": "KWD", "stock": 9},
    )
    backend.call(ADMIN, "set-setting", {"key": "default_shipping_cents", "value": 0})
    backend.call(ADMIN, "set-setting", {"key": "tax_rates", "value": {}})
    token = ready_checkout(backend, [("KW-1", 2)])
    co = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "stripe"})
    stripe_fake.mark_paid(co["payment"]["provider_payment_id"])
    return complete(backend, token)["order"]


def test_a_refund_off_stripes_steps_is_refused_before_anything_is_written(backend, stripe_fake):
    order = kwd_stripe_order(backend, stripe_fake)
    # No refund left `creating`, holding the money, retried by reconcile for ever.
    refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"], "amount_cents": 1005},
        ValidationError,
        "amount_not_supported",
    )
    done = backend.call(
        ORDERS, "refund-order", {"order_id": order["order_number"], "amount_cents": 1010}
    )
    assert done["amount_cents"] == 1010
    assert done["order"]["amount_refunded_cents"] == 1010
    assert_invariants(backend.db_path)
