"""The whole flow once, through the engine and through the CLI."""

from __future__ import annotations

import pytest

from tests.conftest import ready_checkout


def test_invoice_flow_through_engine(backend):
    token = ready_checkout(backend)
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    done = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    assert done["status"] == "completed"
    assert done["order"]["status"] == "pending"
    assert done["order"]["payment_status"] == "unpaid"
    product = backend.call("product-catalog", "get-product", {"sku": "LENS-DAILY-30"})
    assert product["stock"] == 98


@pytest.mark.sqlite_only  # the demo makes a fresh SQLite file by design
def test_demo_runs(cli):
    result = cli("--json", "demo")
    assert result.exit_code == 0, result.stderr
    assert len(result.json()["order_numbers"]) == 2
