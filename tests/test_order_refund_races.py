"""Refunds raced and killed: separate `checkout` processes on one store, the real Stripe and
Mollie SDKs against the fake providers. Never more refunded than paid, never a refund made
twice at the provider; the store's invariants hold after every story."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ready_checkout
from tests.engine_helpers import FLOW, ORDERS, assert_invariants, complete, query, scalar


@pytest.fixture(params=["stripe", "mollie"])
def provider(request, backend):
    return request.param, request.getfixturevalue(f"{request.param}_fake")


def paid_order(backend, name: str, fake) -> dict:
    token = ready_checkout(backend, [("LENS-DAILY-30", 4)])
    co = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": name})
    fake.mark_paid(co["payment"]["provider_payment_id"])
    number = complete(backend, token)["order"]["order_number"]
    return backend.call(ORDERS, "get-order", {"order_id": number})


def command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "checkout_cli", "--db", str(db), "--json", *args, "--yes"]


def start(db: Path, tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "NO_COLOR": "1"}
    env.pop("CI", None)
    return subprocess.Popen(
        command(db, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def outcome(process: subprocess.Popen) -> tuple[int, dict]:
    out, err = process.communicate(timeout=60)
    text = out if process.returncode == 0 else err
    return process.returncode, json.loads(text)


def at_provider(name: str, fake) -> list[int]:
    if name == "stripe":
        return [r["amount"] for r in fake.refunds.values()]
    return [round(float(r["amount"]["value"]) * 100) for r in fake.refunds.values()]


def refunding(db: Path) -> int:
    return scalar(
        db,
        "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds "
        "WHERE status IN ('creating', 'pending', 'succeeded')",
    )


def test_four_operators_refunding_at_once_never_refund_more_than_paid(provider, backend, tmp_path):
    name, fake = provider
    order = paid_order(backend, name, fake)
    total = order["totals"]["total_cents"]
    part = total * 2 // 5  # two fit, a third does not
    processes = [
        start(
            backend.db_path,
            tmp_path,
            "orders",
            "refund",
            order["order_number"],
            "--amount-cents",
            str(part),
            "--reason",
            f"operator {i}",
        )
        for i in range(4)
    ]
    results = [outcome(p) for p in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 0, 4, 4], results
    for code, body in results:
        if code == 4:
            assert body["error_object"]["code"] == "refund_exceeds_paid"
    assert refunding(backend.db_path) == 2 * part <= total
    assert sorted(at_provider(name, fake)) == [part, part]
    assert_invariants(backend.db_path)


def test_a_refund_and_a_cancel_at_once_return_exactly_what_was_paid(provider, backend, tmp_path):
    name, fake = provider
    order = paid_order(backend, name, fake)
    total, number = order["totals"]["total_cents"], order["order_number"]
    refund = start(
        backend.db_path, tmp_path, "orders", "refund", number, "--amount-cents", str(total // 2)
    )
    cancel = start(backend.db_path, tmp_path, "orders", "cancel", number, "--refund")
    (refund_code, refund_body), (cancel_code, cancel_body) = outcome(refund), outcome(cancel)
    assert cancel_code == 0, cancel_body
    assert cancel_body["order"]["status"] == "cancelled"
    if refund_code != 0:  # the cancel's full refund came first and took it all
        assert refund_body["error_object"]["code"] == "refund_exceeds_paid"
    assert refunding(backend.db_path) == total
    assert sum(at_provider(name, fake)) == total
    assert_invariants(backend.db_path)


def test_sigkill_between_the_provider_call_and_the_result_then_retry_refunds_once(
    provider, backend, tmp_path
):
    name, fake = provider
    order = paid_order(backend, name, fake)
    number, total = order["order_number"], order["totals"]["total_cents"]
    args = ("orders", "refund", number, "--line", "LENS-DAILY-30=1", "--restock")
    stock_before = scalar(backend.db_path, "SELECT stock FROM products WHERE sku = 'LENS-DAILY-30'")
    # The provider makes the refund, then holds its answer: the process is killed while it
    # waits, after the provider acted and before the store recorded the result.
    fake.delay_next_refund(120)
    victim = start(backend.db_path, tmp_path, *args)
    deadline = time.monotonic() + 30
    while not fake.refunds and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.refunds, "the refund never reached the provider"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert query(backend.db_path, "SELECT status FROM refunds") == [("creating",)]
    assert_invariants(backend.db_path)  # an attempt held, nothing counted as refunded yet

    code, body = outcome(start(backend.db_path, tmp_path, *args))
    assert code == 0, body
    assert body["resumed"] is True
    [made] = body["refunds"]
    assert made["status"] in ("pending", "succeeded") and made["restocked"] is True
    assert len(fake.refunds) == 1  # the same refund handed back, not a second one
    lens = order["items"][0]
    gross = lens["line_total_cents"] + lens["tax_cents"]
    assert at_provider(name, fake) == [(2 * gross + 4) // 8]  # a quarter, rounded half up
    assert made["amount_cents"] < total
    [refund_id] = list(fake.refunds)
    assert made["provider_refund_id"] == refund_id
    keys = {
        r.header("Idempotency-Key")
        for r in fake.requests
        if r.method == "POST" and r.path.endswith("refunds")
    }
    assert keys == {scalar(backend.db_path, "SELECT idempotency_key FROM refunds")}
    stock_after = scalar(backend.db_path, "SELECT stock FROM products WHERE sku = 'LENS-DAILY-30'")
    assert stock_after == stock_before + 1
    # The customer is told once, however the result landed.
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM outbox WHERE kind LIKE 'refund:%'") == 1
    assert_invariants(backend.db_path)
