"""The line meta tests again, through `checkout serve` and RemoteBackend: same refusals (code,
field, recovery), same normalized values, same meta on the order."""

from __future__ import annotations

import pytest

from tests.conftest import ready_checkout
from tests.serve_helpers import served_fixture  # noqa: F401
from tests.test_line_meta_engine import (
    ACCEPTED,
    ENGRAVING,
    LENS,
    REFUSALS,
    engraving,
    lens,
    line,
    refused,
    resolve,
    set_meta,
)


@pytest.fixture(scope="module")
def remote(served):
    backend = served.remote()
    yield backend
    backend.close()


@pytest.fixture
def meta_checkout(remote):
    token = ready_checkout(remote, [("LENS-TORIC-6", 1), ("CASE-TRAVEL", 1)])
    set_meta(remote, token, "LENS-TORIC-6", lens(right_add="1.00"))
    set_meta(remote, token, "CASE-TRAVEL", engraving(font="sans"), ENGRAVING)
    return token


def _status(remote, token):
    return remote.call("checkout-flow", "get-checkout-status", {"checkout_token": token})


@pytest.mark.parametrize(("sku", "def_key", "values", "field", "code", "recovery"), REFUSALS)
def test_invalid_values_are_refused_over_http(
    remote, meta_checkout, sku, def_key, values, field, code, recovery
):
    before = _status(remote, meta_checkout)
    error = refused(lambda: set_meta(remote, meta_checkout, sku, values, def_key))
    assert (error.code, error.field) == (code, field), error.to_error_object()
    assert error.http_status == 422 and error.exit_code == 4
    assert recovery in error.recovery
    assert _status(remote, meta_checkout) == before


@pytest.mark.parametrize(("values", "stored"), ACCEPTED)
def test_values_at_their_bounds_are_accepted_over_http(remote, values, stored):
    token = ready_checkout(remote, [("LENS-TORIC-6", 1)])
    co = set_meta(remote, token, "LENS-TORIC-6", values)
    assert line(co, "LENS-TORIC-6")["meta"] == {LENS: resolve(stored)}


def test_meta_reaches_the_order_unchanged_over_http(remote, meta_checkout):
    checkout_meta = {i["line_id"]: i["meta"] for i in _status(remote, meta_checkout)["items"]}
    remote.call(
        "checkout-flow", "create-payment", {"checkout_token": meta_checkout, "provider": "invoice"}
    )
    order = remote.call("checkout-flow", "complete-checkout", {"checkout_token": meta_checkout})[
        "order"
    ]
    read_back = remote.call(
        "order-management", "get-line-meta", {"order_id": order["order_number"]}
    )
    assert {entry["line_id"]: entry["meta"] for entry in read_back["lines"]} == checkout_meta


def test_completion_needs_required_meta_over_http(remote):
    token = ready_checkout(remote, [("LENS-TORIC-6", 1)])
    remote.call("checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"})
    error = refused(
        lambda: remote.call("checkout-flow", "complete-checkout", {"checkout_token": token}),
        error_type=Exception,
    )
    assert error.code == "line_meta_missing" and error.exit_code == 4
    set_meta(remote, token, "LENS-TORIC-6", lens())
    done = remote.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    assert done["status"] == "completed"
