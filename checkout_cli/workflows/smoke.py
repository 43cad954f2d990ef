"""A smoke test of a whole checkout flow against any backend, step by step, timed.

It runs as a smoke run (engine/smoke_runs.py): its own product and cart, made by
``start-smoke``, and everything made from them, are hidden from the shop's lists, numbering
and outbox, and ``finish-smoke`` removes them all at the end, whichever step failed. A run
killed before that is removed by the next one. The customer is recognisable
(``smoke-test@example.com``) should a run ever be kept.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.endpoints import SMOKE_KEY_PREFIX
from checkout_cli.errors import CheckoutError

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
    run_id = secrets.token_hex(6)
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

    def prepare() -> str:
        run = call("checkout-admin", "start-smoke", {"run_id": run_id})
        state.update(sku=run["product_sku"], cart=run["cart_token"])
        return f"smoke run {run_id}: {run['product_sku']}"

    def add_item() -> str:
        cart = call(
            "shopping-cart",
            "add-item",
            {"cart_token": state["cart"], "product_sku": state["sku"], "quantity": 1},
        )
        return cart["cart_token"]

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

    def cleanup() -> str:
        removed = call("checkout-admin", "finish-smoke", {"run_id": run_id})["removed"]
        return f"removed {sum(removed.values())} rows"

    plan = [
        ("add-item", add_item),
        ("initiate-checkout", initiate),
        ("set-customer", set_customer),
        ("create-payment", create_payment),
        ("get-checkout-status", status),
        ("complete-checkout", complete) if provider == "invoice" else ("cancel-checkout", cancel),
    ]
    with _keys_naming(backend, run_id):
        if not step("prepare-product", prepare):
            return result
        try:
            for name, action in plan:
                if not step(name, action):
                    break
        finally:  # whatever failed, the run leaves nothing behind
            step("cleanup", cleanup)
    return result


@contextmanager
def _keys_naming(backend: Backend, run_id: str) -> Iterator[None]:
    """A remote's Idempotency-Keys name the run, so the server forgets its answers with it."""
    before = getattr(backend, "idempotency_key_prefix", None)
    if before is None:  # a local store remembers no answers
        yield
        return
    setattr(backend, "idempotency_key_prefix", f"{SMOKE_KEY_PREFIX}{run_id}-")  # noqa: B010
    try:
        yield
    finally:
        setattr(backend, "idempotency_key_prefix", before)  # noqa: B010


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
