"""Helpers for the engine-level tests (through ``LocalBackend``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from checkout_cli.config import StoreTarget
from checkout_cli.engine.core import utc_now
from checkout_cli.engine.invariants import check_invariants
from checkout_cli.engine.stores import open_store
from checkout_cli.errors import (
    AuthError,
    CheckoutError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PaymentError,
    UnavailableError,
    ValidationError,
)
from tests.conftest import CUSTOMER
from tests.store_rows import dump, query

FLOW = "checkout-flow"
CART = "shopping-cart"
CATALOG = "product-catalog"
ORDERS = "order-management"
ADMIN = "checkout-admin"

# DESIGN §2: each error type's HTTP status and exit code.
FACES: dict[type[CheckoutError], tuple[str, int, int]] = {
    ValidationError: ("validation", 422, 4),
    NotFoundError: ("not_found", 404, 3),
    ConflictError: ("conflict", 409, 4),
    PaymentError: ("payment", 402, 5),
    ForbiddenError: ("forbidden", 403, 7),
    AuthError: ("auth", 401, 7),
    UnavailableError: ("unavailable", 503, 6),
}

ANY = object()


def refused(
    backend: Any,
    service: str,
    name: str,
    body: dict[str, Any],
    cls: type[CheckoutError],
    code: str,
    field: Any = ANY,
    *,
    unchanged: bool = True,
) -> CheckoutError:
    """Call an endpoint that must fail; check the error's class, code, field, HTTP status and
    exit code, and (by default) that the store's content is exactly as before."""
    before = dump(backend.db_path)
    with pytest.raises(CheckoutError) as info:
        backend.call(service, name, body)
    error = info.value
    assert type(error) is cls, (type(error), error.code, error.message)
    assert error.code == code, (error.code, error.message)
    if field is not ANY:
        assert error.field == field, (error.field, error.message)
    kind, http_status, exit_code = FACES[cls]
    assert (error.type, error.http_status, error.exit_code) == (kind, http_status, exit_code)
    assert error.message and "\n" not in error.message
    obj = error.to_error_object()
    assert obj["code"] == code and obj["type"] == kind
    if unchanged:
        assert dump(backend.db_path) == before, f"{service}/{name} changed the store"
    return error


def add(backend: Any, sku: str, quantity: int = 1, cart: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"product_sku": sku, "quantity": quantity}
    if cart:
        body["cart_token"] = cart
    return backend.call(CART, "add-item", body)


def cart_with(backend: Any, items: list[tuple[str, int]]) -> str:
    token = None
    for sku, quantity in items:
        token = add(backend, sku, quantity, token)["cart_token"]
    assert token is not None
    return token


def initiate(backend: Any, cart: str) -> dict[str, Any]:
    return backend.call(FLOW, "initiate-checkout", {"cart_token": cart})


def set_customer(backend: Any, token: str, **extra: Any) -> dict[str, Any]:
    return backend.call(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER, **extra})


def invoice(backend: Any, token: str) -> dict[str, Any]:
    return backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})


def complete(backend: Any, token: str) -> dict[str, Any]:
    return backend.call(FLOW, "complete-checkout", {"checkout_token": token})


def status(backend: Any, token: str) -> dict[str, Any]:
    return backend.call(FLOW, "get-checkout-status", {"checkout_token": token})


def stock(backend: Any, sku: str) -> int | None:
    return backend.call(CATALOG, "get-product", {"sku": sku})["stock"]


def setting(backend: Any, key: str, value: Any) -> None:
    backend.call(ADMIN, "set-setting", {"key": key, "value": value})


def scalar(db_path: StoreTarget, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return query(db_path, sql, params)[0][0]


def events(db_path: StoreTarget, token: str) -> list[tuple[str, str | None, str | None]]:
    """``(kind, from_status, to_status)`` of a checkout's timeline, oldest first."""
    return query(
        db_path,
        "SELECT e.kind, e.from_status, e.to_status FROM events e "
        "JOIN checkouts c ON c.id = e.checkout_id WHERE c.token = ? ORDER BY e.id",
        (token,),
    )


def assert_invariants(target: StoreTarget) -> None:
    store = open_store(target)
    try:
        violations = check_invariants(store.conn)  # type: ignore[arg-type]
    finally:
        store.close()
    assert violations == [], [v.message for v in violations]


def shift_clock(backend: Any, delta: timedelta) -> None:
    """From now on the backend's engine lives ``delta`` from the real time."""
    backend.engine.clock = lambda: utc_now() + delta


def fixed_clock(moment: datetime):
    return lambda: moment


def prescription(**overrides: Any) -> dict[str, Any]:
    """Valid lens_prescription values for LENS-TORIC-6."""
    values: dict[str, Any] = {
        "right_sphere": "-2.25",
        "right_cylinder": "-0.75",
        "right_axis": 170,
        "right_base_curve": "8.6",
        "right_diameter": "14.5",
        "left_sphere": "-1.50",
        "left_base_curve": "8.6",
        "left_diameter": "14.5",
        "prescribed_on": (date.today() - timedelta(days=30)).isoformat(),
    }
    values.update(overrides)
    return values
