"""Contract: fulfil-order and the order list's filters give the same answers on LocalBackend
and on RemoteBackend against a real `checkout serve` (ids, tokens and times aside)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import CUSTOMER
from tests.serve_helpers import normalize, served_fixture  # noqa: F401
from tests.test_remote_contract import ADMIN, FLOW, ORDERS, Flow, error_signature, open_backend

# Row ids of shipments, payments and refunds differ between a fresh store and the shared one.
_ROW_IDS = re.compile(r"\b(ful|opay|ref|shipped:)_?(\d+)\b")
_ROW_KEYS = {"fulfilment_id", "payment_id", "refund_id"}


class OrderFlow(Flow):
    """A Flow whose customer is this run's own (so filters see only its orders on a shared
    store) and whose transcript has row ids and that customer's email normalized."""

    def __init__(self, backend: Any, db: Any) -> None:
        super().__init__(backend, db)
        self.email = f"fulfil-{secrets.token_hex(6)}@example.com"

    def _clean(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(v, key) for v in value]
        if isinstance(value, str):
            if key in _ROW_KEYS:
                return f"<{key}>"
            return _ROW_IDS.sub(r"\1<id>", value.replace(self.email, "<email>"))
        return value

    def ok(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = self.backend.call(service, name, body)
        self.transcript.append((name, self._clean(normalize(result))))
        return result

    def fails(self, *args: Any, **kwargs: Any) -> Any:
        exc = super().fails(*args, **kwargs)
        name, _ = self.transcript.pop()
        self.transcript.append((name, self._clean(error_signature(exc))))
        return exc

    def order(self, *items: tuple[str, int], paid: bool) -> dict[str, Any]:
        cart = self.cart(*items)
        token = self.ok(FLOW, "initiate-checkout", {"cart_token": cart})["checkout_token"]
        customer = {**CUSTOMER, "customer": {**CUSTOMER["customer"], "email": self.email}}
        self.ok(FLOW, "set-customer", {"checkout_token": token, **customer})
        if paid:
            body = {"checkout_token": token, "provider": "bank", "reference": "B", "status": "paid"}
            self.ok(FLOW, "set-payment", body)
        else:
            self.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
        order: dict[str, Any] = self.ok(FLOW, "complete-checkout", {"checkout_token": token})[
            "order"
        ]
        return order


V = {"http_status": 422, "exit_code": 4}
C = {"http_status": 409, "exit_code": 4}


def fulfil_order(f: OrderFlow) -> None:
    order = f.order(("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1), paid=True)
    number = order["order_number"]
    first_body = {
        "order_id": number,
        "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 1}],
        "carrier": "PostNL",
        "tracking_number": "3SCONTRACT1",
        "tracking_url": "https://postnl.example/track/3S",
    }
    first = f.ok(ORDERS, "fulfil-order", first_body)
    assert first["already_fulfilled"] is False
    assert first["order"]["fulfilment_status"] == "partially_fulfilled"
    again = f.ok(ORDERS, "fulfil-order", first_body)
    assert again["already_fulfilled"] is True and again["fulfilment"] == first["fulfilment"]

    def refused(body: dict[str, Any], cls: Any, code: str, field: str | None, **how: int) -> None:
        f.fails(ORDERS, "fulfil-order", {"order_id": number, **body}, cls, code, field, **how)

    refused(
        {"lines": [{"product_sku": "LENS-DAILY-30", "quantity": 2}]},
        ConflictError,
        "quantity_exceeds_unshipped",
        "lines",
        **C,
    )
    refused(
        {"lines": [{"product_sku": "GIFT-CARD-25", "quantity": 1}]},
        ValidationError,
        "sku_not_on_order",
        "lines",
        **V,
    )
    refused(
        {"lines": [{"product_sku": "CASE-TRAVEL", "quantity": 0}]},
        ValidationError,
        "invalid_quantity",
        "lines[0].quantity",
        **V,
    )
    refused({"tracking_number": "X1"}, ValidationError, "carrier_required", "carrier", **V)
    refused(
        {"carrier": "DHL", "tracking_number": "X1", "tracking_url": "ftp://x.example"},
        ValidationError,
        "invalid_url",
        "tracking_url",
        **V,
    )
    f.fails(
        ORDERS,
        "fulfil-order",
        {"order_id": "2026-999999"},
        NotFoundError,
        "order_not_found",
        "order_id",
        http_status=404,
        exit_code=3,
    )
    rest = f.ok(ORDERS, "fulfil-order", {"order_id": number})
    assert rest["fulfilment"]["lines"] == [
        {"line_id": 1, "quantity": 1},
        {"line_id": 2, "quantity": 1},
    ]
    assert (rest["order"]["status"], rest["order"]["fulfilment_status"]) == (
        "completed",
        "fulfilled",
    )
    refused({}, ConflictError, "order_already_fulfilled", "order_id", **C)
    shown = f.ok(ORDERS, "get-order", {"order_id": number})
    assert len(shown["fulfilments"]) == 2


def list_filters(f: OrderFlow) -> None:
    owing = f.order(("CASE-TRAVEL", 1), paid=False)
    paid = f.order(("GIFT-CARD-25", 1), paid=True)

    def listed(**body: Any) -> list[str]:
        found = f.ok(ORDERS, "list-orders", {"email": f.email, **body})
        return [o["order_id"] for o in found["orders"]]

    assert listed(payment_status="unpaid") == [owing["order_id"]]
    assert listed(status="paid") == [paid["order_id"]]
    assert listed(fulfilment_status="unfulfilled") == [paid["order_id"], owing["order_id"]]
    assert listed(overdue=True) == []  # made just now: not overdue at 14 days
    f.ok(ADMIN, "set-setting", {"key": "invoice_due_days", "value": 0})
    try:
        assert listed(overdue=True) == [owing["order_id"]]
    finally:
        f.ok(ADMIN, "set-setting", {"key": "invoice_due_days", "value": 14})
    f.ok(ORDERS, "fulfil-order", {"order_id": paid["order_number"]})
    assert listed(status="completed", fulfilment_status="fulfilled") == [paid["order_id"]]
    f.fails(
        ORDERS,
        "list-orders",
        {"fulfilment_status": "shipped"},
        ValidationError,
        "invalid_fulfilment_status",
        "fulfilment_status",
        **V,
    )


SCENARIOS: dict[str, Callable[[OrderFlow], None]] = {
    f.__name__: f for f in (fulfil_order, list_filters)
}
TRANSCRIPTS: dict[str, dict[str, list[tuple[str, Any]]]] = {}


def run_scenario(name: str, kind: str, served: Any, tmp_path: Any) -> None:
    with open_backend(kind, served, tmp_path) as (backend, db):
        flow = OrderFlow(backend, db)
        SCENARIOS[name](flow)
    TRANSCRIPTS.setdefault(name, {})[kind] = flow.transcript


@pytest.mark.parametrize("kind", ["local", "remote"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_same_on_both_backends(scenario: str, kind: str, served, tmp_path):
    run_scenario(scenario, kind, served, tmp_path)
    other = "remote" if kind == "local" else "local"
    if other not in TRANSCRIPTS[scenario]:
        run_scenario(scenario, other, served, tmp_path)
    seen = TRANSCRIPTS[scenario]
    assert seen["remote"] == seen["local"]
