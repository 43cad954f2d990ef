"""Contract suite for refund-order and cancel-order: the same scenario on LocalBackend and on
RemoteBackend against a real `checkout serve` gives the same normalized transcript (every
result; every error's class, type, code, field, HTTP status, exit code, message, recovery).

Money paid outside a provider (a bank transfer linked by hand) and an unpaid invoice order,
so the served store needs no provider: credits, refusals, cancel with and without refund.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.errors import ConflictError, NotFoundError, PaymentError, ValidationError
from tests.serve_helpers import (
    Served,
    invariant_violations,
    normalize,
    served_fixture,  # noqa: F401
)
from tests.test_remote_contract import FLOW, ORDERS, Flow, open_backend
from tests.test_remote_contract_paylink import fakes, linked_server  # noqa: F401
from tests.test_remote_contract_paylink import open_backend as paylink_backend

# Row ids of a store's own sequences differ between a fresh store and the shared served one.
_ROW_ID = re.compile(r"\b(ref|opay|ful)_\d+\b")
# ... and so do the outbox kinds an event names (``refund:7``: the email of refund row 7).
_EMAIL_KIND = re.compile(r"\b(refund|payment_received|shipped):\d+\b")


def _ids(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _ids(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_ids(v, key) for v in value]
    if key == "refund" and isinstance(value, int):
        return "<refund>"
    if isinstance(value, str):
        value = _EMAIL_KIND.sub(lambda m: f"{m.group(1)}:<id>", value)
        return _ROW_ID.sub(lambda m: f"{m.group(1)}_<id>", value)
    return value


class RefundFlow(Flow):
    def ok(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = self.backend.call(service, name, body)
        self.transcript.append((name, _ids(normalize(result))))
        return result

    def fails(self, *args: Any, **kwargs: Any) -> Any:
        exc = super().fails(*args, **kwargs)
        name, signature = self.transcript[-1]
        self.transcript[-1] = (name, _ids(signature))
        return exc

    def bank_paid_order(self) -> dict[str, Any]:
        token = self.ready(("LENS-DAILY-30", 2), ("LENS-MONTH-6", 1))
        self.ok(
            FLOW,
            "set-payment",
            {"checkout_token": token, "provider": "bank", "reference": "NL-1", "status": "paid"},
        )
        number = self.ok(FLOW, "complete-checkout", {"checkout_token": token})["order"][
            "order_number"
        ]
        return self.ok(ORDERS, "get-order", {"order_id": number})


def refunds_and_cancels(f: RefundFlow) -> None:
    order = f.bank_paid_order()
    number, total = order["order_number"], order["totals"]["total_cents"]
    conflict = {"http_status": 409, "exit_code": 4}
    invalid = {"http_status": 422, "exit_code": 4}
    f.fails(
        ORDERS,
        "refund-order",
        {"order_id": number, "amount_cents": total + 1},
        ConflictError,
        "refund_exceeds_paid",
        "amount_cents",
        **conflict,
    )
    f.fails(
        ORDERS,
        "refund-order",
        {
            "order_id": number,
            "amount_cents": 5,
            "lines": [{"product_sku": "LENS-MONTH-6", "quantity": 1}],
        },
        ValidationError,
        "amount_or_lines",
        "lines",
        **invalid,
    )
    f.fails(
        ORDERS,
        "refund-order",
        {"order_id": number, "lines": [{"product_sku": "LENS-MONTH-6", "quantity": 2}]},
        ConflictError,
        "refund_exceeds_ordered",
        "lines",
        **conflict,
    )
    f.fails(
        ORDERS,
        "refund-order",
        {"order_id": "2099-999999"},
        NotFoundError,
        "order_not_found",
        "order_id",
        http_status=404,
        exit_code=3,
    )
    lines = f.ok(
        ORDERS,
        "refund-order",
        {
            "order_id": number,
            "lines": [{"product_sku": "LENS-MONTH-6", "quantity": 1}],
            "restock": True,
            "reason": "damaged in transit",
        },
    )
    [credit] = lines["refunds"]
    assert (credit["kind"], credit["status"], credit["restocked"]) == ("credit", "succeeded", True)
    assert lines["order"]["payment_status"] == "partially_refunded"
    f.fails(
        ORDERS,
        "cancel-order",
        {"order_id": number},
        PaymentError,
        "payment_already_paid",
        "order_id",
        http_status=402,
        exit_code=5,
    )
    cancelled = f.ok(ORDERS, "cancel-order", {"order_id": number, "refund": True})
    assert cancelled["order"]["status"] == "cancelled"
    assert cancelled["order"]["amount_refunded_cents"] == total
    assert cancelled["restocked"] == [{"product_sku": "LENS-DAILY-30", "quantity": 2}]
    again = f.ok(ORDERS, "cancel-order", {"order_id": number})
    assert again["already_cancelled"] is True
    f.fails(
        ORDERS,
        "refund-order",
        {"order_id": number},
        ConflictError,
        "refund_exceeds_paid",
        "order_id",
        **conflict,
    )

    token = f.ready(("LENS-DAILY-30", 1))
    f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    unpaid = f.ok(FLOW, "complete-checkout", {"checkout_token": token})["order"]["order_number"]
    f.fails(
        ORDERS,
        "refund-order",
        {"order_id": unpaid},
        ConflictError,
        "refund_exceeds_paid",
        "order_id",
        **conflict,
    )
    done = f.ok(ORDERS, "cancel-order", {"order_id": unpaid, "no_restock": True, "reason": "dup"})
    assert (done["order"]["status"], done["restocked"]) == ("cancelled", [])

    # An invoice order part-paid by bank transfer: its money comes back as a credit.
    token = f.ready(("LENS-DAILY-30", 1))
    f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    part_paid = f.ok(FLOW, "complete-checkout", {"checkout_token": token})["order"]["order_number"]
    f.ok(
        ORDERS,
        "record-payment",
        {
            "order_id": part_paid,
            "amount_cents": 500,
            "method": "bank_transfer",
            "reference": f"TX-{part_paid}",
        },
    )
    f.fails(
        ORDERS,
        "cancel-order",
        {"order_id": part_paid},
        PaymentError,
        "payment_already_paid",
        "order_id",
        http_status=402,
        exit_code=5,
    )
    credited = f.ok(ORDERS, "cancel-order", {"order_id": part_paid, "refund": True})
    assert [(r["kind"], r["provider"], r["amount_cents"]) for r in credited["refunds"]] == [
        ("credit", "bank_transfer", 500)
    ]
    assert credited["order"]["payment_status"] == "refunded"
    assert invariant_violations(f.db) == []


TRANSCRIPTS: dict[str, list[tuple[str, Any]]] = {}


def run(kind: str, served: Served, tmp_path: Path) -> list[tuple[str, Any]]:
    with open_backend(kind, served, tmp_path) as (backend, db):
        flow = RefundFlow(backend, db)
        refunds_and_cancels(flow)
    TRANSCRIPTS[kind] = flow.transcript
    return flow.transcript


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_refunds_and_cancels_same_on_both_backends(kind: str, served, tmp_path):
    run(kind, served, tmp_path)
    other = "remote" if kind == "local" else "local"
    if other not in TRANSCRIPTS:  # run alone (-k): compare with a fresh run on the other
        run(other, served, tmp_path)
    assert TRANSCRIPTS["remote"] == TRANSCRIPTS["local"]


# ---- provider refunds: the real Stripe and Mollie SDKs against the fakes, on both backends ----

# Provider-made ids (re_…, cs_…, tr_…, pi_…) and checkout pages differ between the two runs
# at the same fakes.
_PROVIDER_KEYS = {
    "provider_refund_id",
    "provider_payment_id",
    "idempotency_key",
    "reference",
    "redirect_url",
}


def _provider_ids(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _provider_ids(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_provider_ids(v, key) for v in value]
    if key in _PROVIDER_KEYS and isinstance(value, str):
        return f"<{key}>"
    return value


class ProviderRefundFlow(RefundFlow):
    def ok(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = super().ok(service, name, body)
        step, shown = self.transcript[-1]
        self.transcript[-1] = (step, _provider_ids(shown))
        return result

    def provider_paid_order(self, provider: str, fake: Any) -> dict[str, Any]:
        token = self.ready(("LENS-DAILY-30", 2), ("LENS-MONTH-6", 1))
        co = self.backend.call(
            FLOW, "create-payment", {"checkout_token": token, "provider": provider}
        )
        fake.mark_paid(co["payment"]["provider_payment_id"])
        number = self.ok(FLOW, "complete-checkout", {"checkout_token": token})["order"][
            "order_number"
        ]
        return self.ok(ORDERS, "get-order", {"order_id": number})


def provider_refunds(f: ProviderRefundFlow, stripe_fake: Any, mollie: Any) -> None:
    for provider, fake in (("stripe", stripe_fake), ("mollie", mollie)):
        made_before = len(fake.refunds)
        order = f.provider_paid_order(provider, fake)
        number, total = order["order_number"], order["totals"]["total_cents"]
        part = f.ok(
            ORDERS,
            "refund-order",
            {"order_id": number, "amount_cents": 1000, "reason": "late delivery"},
        )
        [made] = part["refunds"]
        assert (made["kind"], made["provider"], made["amount_cents"]) == (
            "provider",
            provider,
            1000,
        )
        f.fails(
            ORDERS,
            "refund-order",
            {"order_id": number, "amount_cents": total},
            ConflictError,
            "refund_exceeds_paid",
            "amount_cents",
            http_status=409,
            exit_code=4,
        )
        cancelled = f.ok(ORDERS, "cancel-order", {"order_id": number, "refund": True})
        assert cancelled["order"]["status"] == "cancelled"
        # At the provider: the part, then the rest, never more than was paid.
        amounts = sorted(
            r["amount"] if provider == "stripe" else round(float(r["amount"]["value"]) * 100)
            for r in list(fake.refunds.values())[made_before:]
        )
        assert amounts == sorted([1000, total - 1000])
    assert invariant_violations(f.db) == []


PROVIDER_TRANSCRIPTS: dict[str, list[tuple[str, Any]]] = {}


def run_provider(kind: str, served: Served, providers: Any, tmp_path: Path) -> None:
    with paylink_backend(kind, served, providers, tmp_path) as (backend, db):
        flow = ProviderRefundFlow(backend, db)
        provider_refunds(flow, *providers)
    PROVIDER_TRANSCRIPTS[kind] = flow.transcript


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_provider_refunds_same_on_both_backends(
    kind: str,
    linked_server: Served,  # noqa: F811 (the fixture imported above)
    fakes: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    if kind not in PROVIDER_TRANSCRIPTS:  # once per backend and process: the store keeps it
        run_provider(kind, linked_server, fakes, tmp_path)
    other = "remote" if kind == "local" else "local"
    if other not in PROVIDER_TRANSCRIPTS:  # run alone (-k): compare with a fresh run
        run_provider(other, linked_server, fakes, tmp_path)
    assert PROVIDER_TRANSCRIPTS["remote"] == PROVIDER_TRANSCRIPTS["local"]
