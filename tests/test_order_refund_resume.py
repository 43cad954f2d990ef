"""A refund whose answer never came (a timeout after the provider made it) holds its amount,
shows as stuck, and is resumed by reconcile with its own idempotency key: exactly one refund
at the provider, and the order says what was refunded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from checkout_cli.errors import CheckoutError
from tests.engine_helpers import ADMIN, ORDERS, assert_invariants, scalar, shift_clock
from tests.test_order_refunds import provider, provider_order, refunded_at  # noqa: F401


def test_reconcile_resumes_an_unanswered_refund_once(provider, backend):  # noqa: F811
    name, fake = provider
    order = provider_order(backend, name, fake)
    number = order["order_number"]
    # Made at the provider, answered after the 2 s timeout (the Stripe SDK retries once, with
    # the same key: late again).
    fake.delay_next_refund(4, times=2 if name == "stripe" else 1)
    with pytest.raises(CheckoutError):
        backend.call(ORDERS, "refund-order", {"order_id": number, "amount_cents": 500})
    assert scalar(backend.db_path, "SELECT status FROM refunds") == "creating"
    assert refunded_at(name, fake) == [500]
    # It holds its 500: the rest is all another refund may take.
    paid = order["amount_paid_cents"]
    with pytest.raises(CheckoutError) as caught:
        backend.call(ORDERS, "refund-order", {"order_id": number, "amount_cents": paid})
    assert caught.value.code == "refund_exceeds_paid"

    # Just after, the attempt may still be waiting for its answer: nobody resumes it yet.
    early = backend.call(ADMIN, "reconcile", {})
    assert not [c for c in early["changes"] if "refund" in c["action"]]
    shift_clock(backend, timedelta(minutes=10))
    stuck = backend.call(ADMIN, "list-checkouts", {"stuck": True})["checkouts"]
    [row] = [c for c in stuck if c["checkout_token"] == order["checkout_token"]]
    assert "refund_unfinished" in row["stuck_reasons"]
    inspected = backend.call(ADMIN, "inspect-checkout", {"checkout_token": order["checkout_token"]})
    assert any(d["fix"] == "checkout reconcile" for d in inspected["diagnosis"])

    dry = backend.call(ADMIN, "reconcile", {"dry_run": True})
    assert [c["action"] for c in dry["changes"]] == ["resume unfinished refund"]
    assert scalar(backend.db_path, "SELECT status FROM refunds") == "creating"
    done = backend.call(ADMIN, "reconcile", {})
    assert done["changes"][0]["action"].startswith("refund ")
    assert refunded_at(name, fake) == [500]  # the same refund, not a second one
    again = backend.call(ADMIN, "reconcile", {})
    assert not [c for c in again["changes"] if c["action"].startswith("refund")]
    shown = backend.call(ORDERS, "get-order", {"order_id": number})
    assert [r["amount_cents"] for r in shown["refunds"]] == [500]
    assert shown["refunds"][0]["status"] in ("pending", "succeeded")
    assert_invariants(backend.db_path)
