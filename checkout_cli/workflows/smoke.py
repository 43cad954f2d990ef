"""A smoke test of a whole checkout flow against any backend, step by step, timed.

It uses a dedicated product (``SMOKE-TEST``) and a recognisable customer
(``smoke-test@example.com``), and cleans up after itself: a provider payment is cancelled
with its checkout, an invoiced test order leaves the product's stock as it found it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.errors import CheckoutError

SMOKE_SKU = "SMOKE-TEST"
SMOKE_STOCK = 1000
SMOKE_CUSTOMER = {
    "customer": {"email": "smoke-test@example.com", "name": "Smoke Test (not a real order)"},
    "shipping_address": {
        "line1": "Teststraat 1",
        "postal_code": "1000 AA",
        "city": "Amsterdam",
        "country": "NL",
    },
}


@dataclass
class Step:
    name: str
    seconds: float
    ok: bool
    detail: str = ""
    error: CheckoutError | None = None


@dataclass
class SmokeRun:
    provider: str
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def as_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "provider": self.provider,
            "ok": failed is None,
            "failed_step": failed.name if failed else None,
            "steps": [
                {
                    "name": s.name,
                    "seconds": round(s.seconds, 4),
                    "ok": s.ok,
                    "detail": s.detail,
                    "error_object": s.error.to_error_object() if s.error else None,
                }
                for s in self.steps
            ],
        }


def run(
    backend: Backend,
    provider: str = "invoice",
    redirect_url: str = "https://example.com/smoke-test-return",
) -> SmokeRun:
    result = SmokeRun(provider)
    state: dict[str, Any] = {}

    def step(name: str, action: Callable[[], str]) -> bool:
        started = time.perf_counter()
        try:
            detail = action()
        except CheckoutError as exc:
            result.steps.append(Step(name, time.perf_counter() - started, False, exc.message, exc))
            return False
        result.steps.append(Step(name, time.perf_counter() - started, True, detail))
        return True

    def call(service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return backend.call(service, name, body)

    def prepare_product() -> str:
        call(
            "product-catalog",
            "upsert-product",
            {
                "sku": SMOKE_SKU,
                "name": "Smoke test product (not for sale)",
                "price_cents": 100,
                "stock": SMOKE_STOCK,
            },
        )
        return f"{SMOKE_SKU} with stock {SMOKE_STOCK}"

    def add_item() -> str:
        state["cart"] = call(
            "shopping-cart", "add-item", {"product_sku": SMOKE_SKU, "quantity": 1}
        )["cart_token"]
        return state["cart"]

    def initiate() -> str:
        state["token"] = call("checkout-flow", "initiate-checkout", {"cart_token": state["cart"]})[
            "checkout_token"
        ]
        return state["token"]

    def set_customer() -> str:
        co = call(
            "checkout-flow", "set-customer", {"checkout_token": state["token"], **SMOKE_CUSTOMER}
        )
        return f"total {co['totals']['total_cents']}"

    def create_payment() -> str:
        body = {"checkout_token": state["token"], "provider": provider}
        if provider != "invoice":
            body["redirect_url"] = redirect_url
        co = call("checkout-flow", "create-payment", body)
        payment = co["payment"]
        if provider != "invoice" and not (payment or {}).get("redirect_url"):
            raise CheckoutError("smoke_no_redirect", "the provider returned no payment link")
        return f"{payment['provider']} {payment['status']}"

    def status() -> str:
        return call("checkout-flow", "get-checkout-status", {"checkout_token": state["token"]})[
            "status"
        ]

    def complete() -> str:
        co = call("checkout-flow", "complete-checkout", {"checkout_token": state["token"]})
        return f"order {co['order']['order_number']}"

    def cancel() -> str:
        return call(
            "checkout-flow",
            "cancel-checkout",
            {"checkout_token": state["token"], "reason": "smoke test"},
        )["status"]

    def restore_stock() -> str:
        call("product-catalog", "set-stock", {"sku": SMOKE_SKU, "stock": SMOKE_STOCK})
        return f"{SMOKE_SKU} back to {SMOKE_STOCK}"

    plan = [
        ("prepare-product", prepare_product),
        ("add-item", add_item),
        ("initiate-checkout", initiate),
        ("set-customer", set_customer),
        ("create-payment", create_payment),
        ("get-checkout-status", status),
    ]
    plan += (
        [("complete-checkout", complete), ("restore-stock", restore_stock)]
        if provider == "invoice"
        else [("cancel-checkout", cancel)]
    )
    for name, action in plan:
        if not step(name, action):
            if "token" in state:  # leave no open test checkout behind
                step("cleanup: cancel-checkout", cancel)
            break
    return result


def junit_xml(run_result: SmokeRun) -> str:
    """The run as JUnit XML, one testcase per step."""
    from xml.etree import ElementTree as ET

    steps = run_result.steps
    suite = ET.Element(
        "testsuite",
        name=f"checkout smoke ({run_result.provider})",
        tests=str(len(steps)),
        failures=str(sum(not s.ok for s in steps)),
        time=f"{sum(s.seconds for s in steps):.4f}",
    )
    for s in steps:
        case = ET.SubElement(
            suite, "testcase", classname="checkout.smoke", name=s.name, time=f"{s.seconds:.4f}"
        )
        if not s.ok:
            failure = ET.SubElement(
                case, "failure", message=s.detail, type=s.error.code if s.error else "error"
            )
            failure.text = s.detail
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
