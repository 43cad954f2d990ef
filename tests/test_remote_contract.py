"""Contract suite: the checkout-flow scenarios on LocalBackend and on RemoteBackend talking to a
real `checkout serve` subprocess give the same results (tokens, ids and timestamps aside).

Each scenario runs once per backend and asserts its own expectations there; the normalized
transcripts of the two runs (every result, every error's class, type, code, field, HTTP
status, exit code, message and recovery) must be equal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from checkout_cli.errors import (
    CheckoutError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PaymentError,
    ValidationError,
)
from tests.conftest import CUSTOMER, WATCH, load_fixtures
from tests.serve_helpers import (
    Served,
    count,
    normalize,
    served_fixture,  # noqa: F401
)

FLOW, CART, ORDERS, ADMIN = "checkout-flow", "shopping-cart", "order-management", "checkout-admin"


class Flow:
    """Calls one backend and keeps a normalized transcript of every answer."""

    def __init__(self, backend: Any, db: Path) -> None:
        self.backend = backend
        self.db = db
        self.transcript: list[tuple[str, Any]] = []

    def ok(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = self.backend.call(service, name, body)
        self.transcript.append((name, normalize(result)))
        return result

    def fails(
        self,
        service: str,
        name: str,
        body: dict[str, Any],
        cls: type[CheckoutError],
        code: str,
        field: str | None = None,
        *,
        http_status: int,
        exit_code: int,
    ) -> CheckoutError:
        with pytest.raises(CheckoutError) as caught:
            self.backend.call(service, name, body)
        exc = caught.value
        assert type(exc) is cls, exc.to_error_object()
        assert (exc.code, exc.field) == (code, field), exc.to_error_object()
        assert (exc.http_status, exc.exit_code) == (http_status, exit_code)
        self.transcript.append((name, error_signature(exc)))
        return exc

    # steps used by several scenarios
    def cart(self, *items: tuple[str, int]) -> str:
        cart = None
        for sku, quantity in items:
            body = {"product_sku": sku, "quantity": quantity}
            if cart:
                body["cart_token"] = cart
            cart = self.ok(CART, "add-item", body)["cart_token"]
        assert cart
        return cart

    def ready(self, *items: tuple[str, int]) -> str:
        cart = self.cart(*(items or (("LENS-MONTH-6", 1),)))
        token = self.ok(FLOW, "initiate-checkout", {"cart_token": cart})["checkout_token"]
        self.ok(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER})
        return token

    def orders_for(self, checkout_token: str) -> int:
        return count(
            self.db,
            "SELECT COUNT(*) FROM orders o JOIN checkouts c ON c.id = o.checkout_id "
            "WHERE c.token = ?",
            (checkout_token,),
        )


def error_signature(exc: CheckoutError) -> dict[str, Any]:
    return {
        "class": type(exc).__name__,
        "http_status": exc.http_status,
        "exit_code": exc.exit_code,
        **normalize(exc.to_error_object()),
    }


def _prescription() -> dict[str, str]:
    prescribed = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)).isoformat()
    return {"right_sphere": "-1.25", "left_sphere": "-1.50", "prescribed_on": prescribed}


# -- scenarios ----------------------------------------------------------------------------------


def happy_invoice(f: Flow) -> None:
    cart = f.cart(("LENS-DAILY-30", 2), ("GIFT-CARD-25", 1))
    shown = f.ok(CART, "get-cart", {"cart_token": cart})
    assert [i["quantity"] for i in shown["items"]] == [2, 1]
    co = f.ok(FLOW, "initiate-checkout", {"cart_token": cart})
    token = co["checkout_token"]
    assert (co["status"], co["reused"], co["customer"]) == ("active", False, None)
    meta = f.ok(
        FLOW,
        "set-line-meta",
        {
            "checkout_token": token,
            "product_sku": "LENS-DAILY-30",
            "def_key": "lens_prescription",
            "values": _prescription(),
        },
    )
    assert meta["items"][0]["meta"]["lens_prescription"]["right_sphere"] == "-1.25"
    co = f.ok(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER})
    assert co["billing_address"] == co["shipping_address"]
    assert co["totals"]["total_cents"] == sum(
        co["totals"][k] for k in ("subtotal_cents", "shipping_cents", "tax_cents")
    )
    f.ok(FLOW, "get-checkout-status", {"checkout_token": token})
    co = f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    assert (co["status"], co["payment"]["provider"]) == ("completable", "invoice")
    done = f.ok(FLOW, "complete-checkout", {"checkout_token": token})
    assert done["status"] == "completed" and done["already_completed"] is False
    assert (done["order"]["status"], done["order"]["payment_status"]) == ("pending", "unpaid")
    order = f.ok(ORDERS, "get-order", {"order_id": done["order"]["order_id"]})
    assert order["checkout_token"] == token
    assert order["items"][0]["meta"]["lens_prescription"]["left_sphere"] == "-1.50"
    assert f.orders_for(token) == 1


def set_payment_flow(f: Flow) -> None:
    token = f.ready(("LENS-MONTH-6", 1))
    co = f.ok(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-4711", "status": "paid"},
    )
    assert co["payment"]["reference"] == "NL-4711"
    assert co["payment"]["amount_cents"] == co["totals"]["total_cents"]
    done = f.ok(FLOW, "complete-checkout", {"checkout_token": token})
    assert (done["order"]["status"], done["order"]["payment_status"]) == ("paid", "paid")
    assert f.orders_for(token) == 1


def idempotency(f: Flow) -> None:
    cart = f.cart(("GIFT-CARD-25", 2))
    first = f.ok(FLOW, "initiate-checkout", {"cart_token": cart})
    again = f.ok(FLOW, "initiate-checkout", {"cart_token": cart})
    assert (first["reused"], again["reused"]) == (False, True)
    assert again["checkout_token"] == first["checkout_token"]
    token = first["checkout_token"]
    f.ok(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER})
    f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    done = f.ok(FLOW, "complete-checkout", {"checkout_token": token})
    repeat = f.ok(FLOW, "complete-checkout", {"checkout_token": token})
    assert (done["already_completed"], repeat["already_completed"]) == (False, True)
    assert repeat["order"] == done["order"]
    assert f.orders_for(token) == 1
    outbox = count(
        f.db,
        "SELECT COUNT(*) FROM outbox x JOIN orders o ON o.id = x.order_id "
        "WHERE o.order_id = ? AND x.kind = 'order_confirmation'",
        (done["order"]["order_id"],),
    )
    assert outbox == 1


def cancel_then_reinitiate(f: Flow) -> None:
    cart = f.cart(("GIFT-CARD-25", 1))
    old = f.ok(FLOW, "initiate-checkout", {"cart_token": cart})["checkout_token"]
    cancelled = f.ok(FLOW, "cancel-checkout", {"checkout_token": old, "reason": "changed mind"})
    assert cancelled["status"] == "cancelled"
    assert f.ok(FLOW, "get-checkout-status", {"checkout_token": old})["status"] == "cancelled"
    assert f.ok(CART, "get-cart", {"cart_token": cart})["status"] == "active"
    new = f.ok(FLOW, "initiate-checkout", {"cart_token": cart})
    assert new["checkout_token"] != old and new["reused"] is False
    f.fails(
        FLOW,
        "complete-checkout",
        {"checkout_token": old},
        ConflictError,
        "checkout_cancelled",
        "checkout_token",
        http_status=409,
        exit_code=4,
    )
    token = new["checkout_token"]
    f.ok(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER})
    f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    assert f.ok(FLOW, "complete-checkout", {"checkout_token": token})["status"] == "completed"
    assert (f.orders_for(old), f.orders_for(token)) == (0, 1)


def validation_errors(f: Flow) -> None:
    token = f.ready(("LENS-DAILY-30", 1))
    bad_email = {**CUSTOMER, "customer": {"email": "anna-at-example", "name": "Anna"}}
    for body, code, field in [
        (bad_email, "invalid_email", "customer.email"),
        (
            {**CUSTOMER, "shipping_address": {**CUSTOMER["shipping_address"], "country": "XX"}},
            "invalid_country",
            "shipping_address.country",
        ),
        ({**CUSTOMER, "gift_wrap": True}, "unknown_field", "gift_wrap"),
    ]:
        f.fails(
            FLOW,
            "set-customer",
            {"checkout_token": token, **body},
            ValidationError,
            code,
            field,
            http_status=422,
            exit_code=4,
        )
    f.fails(
        CART,
        "add-item",
        {"product_sku": "GIFT-CARD-25", "quantity": 0},
        ValidationError,
        "invalid_quantity",
        "quantity",
        http_status=422,
        exit_code=4,
    )
    f.fails(
        FLOW,
        "create-payment",
        {"checkout_token": token, "provider": "paypal"},
        ValidationError,
        "unknown_provider",
        "provider",
        http_status=422,
        exit_code=4,
    )
    f.fails(
        FLOW,
        "set-line-meta",
        {
            "checkout_token": token,
            "product_sku": "LENS-DAILY-30",
            "def_key": "lens_prescription",
            "values": {**_prescription(), "left_sphere": "-99"},
        },
        ValidationError,
        "meta_value_out_of_range",
        "values.left_sphere",
        http_status=422,
        exit_code=4,
    )
    # nothing above changed the checkout
    assert f.ok(FLOW, "get-checkout-status", {"checkout_token": token})["status"] == "active"


def not_found_errors(f: Flow) -> None:
    for service, name, body, code, field in [
        (
            FLOW,
            "get-checkout-status",
            {"checkout_token": "chk_doesnotexist"},
            "checkout_not_found",
            "checkout_token",
        ),
        (
            FLOW,
            "complete-checkout",
            {"checkout_token": "chk_doesnotexist"},
            "checkout_not_found",
            "checkout_token",
        ),
        (
            CART,
            "add-item",
            {"product_sku": "NO-SUCH-SKU", "quantity": 1},
            "product_not_found",
            "product_sku",
        ),
        (
            CART,
            "add-item",
            {"cart_token": "cart_doesnotexist", "product_sku": "GIFT-CARD-25", "quantity": 1},
            "cart_not_found",
            "cart_token",
        ),
        (ORDERS, "get-order", {"order_id": "ord_doesnotexist"}, "order_not_found", "order_id"),
    ]:
        f.fails(service, name, body, NotFoundError, code, field, http_status=404, exit_code=3)


def conflict_errors(f: Flow) -> None:
    token = f.ready()
    f.ok(FLOW, "cancel-checkout", {"checkout_token": token})
    f.fails(
        FLOW,
        "set-customer",
        {"checkout_token": token, **CUSTOMER},
        ConflictError,
        "checkout_cancelled",
        "checkout_token",
        http_status=409,
        exit_code=4,
    )
    token = f.ready(("GIFT-CARD-25", 1))
    f.fails(
        FLOW,
        "set-payment",
        {
            "checkout_token": token,
            "provider": "bank",
            "reference": "short",
            "status": "paid",
            "amount_cents": 1,
        },
        ConflictError,
        "amount_mismatch",
        "amount_cents",
        http_status=409,
        exit_code=4,
    )
    cart = f.cart(("GIFT-CARD-25", 1))
    f.ok(CART, "remove-item", {"cart_token": cart, "product_sku": "GIFT-CARD-25"})
    f.fails(
        FLOW,
        "initiate-checkout",
        {"cart_token": cart},
        ConflictError,
        "cart_empty",
        "cart_token",
        http_status=409,
        exit_code=4,
    )


def payment_errors(f: Flow) -> None:
    token = f.ready(("GIFT-CARD-25", 1))
    co = f.ok(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "R-1", "status": "pending"},
    )
    assert co["status"] == "payment_pending"
    f.fails(
        FLOW,
        "complete-checkout",
        {"checkout_token": token},
        PaymentError,
        "payment_not_paid",
        None,
        http_status=402,
        exit_code=5,
    )
    assert f.ok(FLOW, "get-checkout-status", {"checkout_token": token})["order"] is None
    assert f.orders_for(token) == 0


def forbidden_errors(f: Flow) -> None:
    token = f.ready(("GIFT-CARD-25", 1))
    f.backend.call(ADMIN, "set-setting", {"key": "allow_invoice_checkout", "value": False})
    try:
        f.fails(
            FLOW,
            "create-payment",
            {"checkout_token": token, "provider": "invoice"},
            ForbiddenError,
            "invoice_checkout_not_allowed",
            "provider",
            http_status=403,
            exit_code=7,
        )
    finally:
        f.backend.call(ADMIN, "set-setting", {"key": "allow_invoice_checkout", "value": True})
    co = f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    assert co["status"] == "completable"


SCENARIOS: dict[str, Callable[[Flow], None]] = {
    f.__name__: f
    for f in (
        happy_invoice,
        set_payment_flow,
        idempotency,
        cancel_then_reinitiate,
        validation_errors,
        not_found_errors,
        conflict_errors,
        payment_errors,
        forbidden_errors,
        # order-management after the order: record-payment
        # order-management after the order: refund-order, cancel-order
        # order-management after the order: fulfil-order
        # order-management after the order: create-payment-link
    )
}
TRANSCRIPTS: dict[str, dict[str, list[tuple[str, Any]]]] = {}


@contextmanager
def open_backend(kind: str, served: Served, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    if kind == "remote":
        remote = served.remote()
        try:
            yield remote, served.db
        finally:
            remote.close()
        return
    db = tmp_path / f"local-{len(list(tmp_path.glob('local-*.db')))}.db"
    local = LocalBackend(db, actor="test")
    load_fixtures(local)
    try:
        yield local, db
    finally:
        local.close()
        WATCH.export_store(db)


def run_scenario(name: str, kind: str, served: Served, tmp_path: Path) -> list[Any]:
    with open_backend(kind, served, tmp_path) as (backend, db):
        flow = Flow(backend, db)
        SCENARIOS[name](flow)
    TRANSCRIPTS.setdefault(name, {})[kind] = flow.transcript
    return flow.transcript


@pytest.mark.parametrize("kind", ["local", "remote"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_same_on_both_backends(scenario: str, kind: str, served, tmp_path):
    run_scenario(scenario, kind, served, tmp_path)
    other = "remote" if kind == "local" else "local"
    seen = TRANSCRIPTS[scenario]
    if other not in seen:  # run alone (-k): compare with a fresh run on the other backend
        run_scenario(scenario, other, served, tmp_path)
    assert seen["remote"] == seen["local"]


# -- the CLI through --remote ---------------------------------------------------------------------


def _cli_session(run: Callable[..., Any]) -> list[tuple[str, int, Any]]:
    """A phone order on the CLI; each step's exit code and normalized --json output."""
    steps: list[tuple[str, int, Any]] = []

    def step(*args: str, expect: int = 0) -> Any:
        result = run(*args)
        assert result.exit_code == expect, (args, result.stdout, result.stderr)
        output = result.json() if expect == 0 else result.stderr
        steps.append((" ".join(args[:2]), result.exit_code, normalize(output)))
        return output

    cart = step("--json", "cart", "add", "LENS-MONTH-6", "--quantity", "2")["cart_token"]
    step("--json", "cart", "add", "GIFT-CARD-25", "--cart", cart)
    step("--json", "cart", "show", cart)
    chk = step("--json", "initiate-checkout", cart)["checkout_token"]
    step("--json", "initiate-checkout", cart)
    address = ["--line1", "Kerkstraat 1", "--postal-code", "1017GA", "--city", "Amsterdam"]
    step(
        "--json",
        "--no-input",
        "set-customer",
        chk,
        "--email",
        "not-an-email",
        "--name",
        "Ann Smit",
        *address,
        "--country",
        "NL",
        expect=4,
    )
    step(
        "--no-input",
        "set-customer",
        chk,
        "--email",
        "not-an-email",
        "--name",
        "Ann Smit",
        *address,
        "--country",
        "NL",
        expect=4,
    )
    step(
        "--json",
        "--no-input",
        "set-customer",
        chk,
        "--email",
        "ann@example.com",
        "--name",
        "Ann Smit",
        *address,
        "--country",
        "NL",
    )
    step("--json", "settings", "set", "allow_invoice_checkout", "false")
    step("--json", "create-payment", chk, "--provider", "invoice", expect=7)
    step("--json", "settings", "set", "allow_invoice_checkout", "true")
    step("--json", "create-payment", chk, "--provider", "invoice")
    step("--json", "status", chk)
    order = step("--json", "complete-checkout", chk)["order"]
    step("--json", "complete-checkout", chk)
    step("--json", "orders", "show", order["order_id"])
    step("--json", "get-checkout-status", "chk_doesnotexist", expect=3)
    step("get-checkout-status", "chk_doesnotexist", expect=3)
    step("--json", "cancel-checkout", chk, "--yes", expect=4)
    step("--json", "products", "show", "GIFT-CARD-25")
    # a payment that is not paid yet: exit 5
    cart = step("--json", "cart", "add", "GIFT-CARD-25")["cart_token"]
    chk = step("--json", "initiate-checkout", cart)["checkout_token"]
    step(
        "--json",
        "--no-input",
        "set-customer",
        chk,
        "--email",
        "ann@example.com",
        "--name",
        "Ann Smit",
        *address,
        "--country",
        "NL",
    )
    step(
        "--json",
        "set-payment",
        chk,
        "--provider",
        "bank",
        "--reference",
        "R-9",
        "--status",
        "pending",
    )
    step("--json", "complete-checkout", chk, expect=5)
    return steps


def test_cli_commands_same_over_remote(backend, cli, served):
    local = _cli_session(cli)
    runner = CliRunner()

    def remote(*args: str):
        from tests.conftest import Result

        result = runner.invoke(app, [*served.remote_args(), *args], env=served.cli_env())
        WATCH.seen(f"checkout --remote {' '.join(args)}", result.stdout + result.stderr)
        return Result(result.exit_code, result.stdout, result.stderr)

    assert _cli_session(remote) == local
