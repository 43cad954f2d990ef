"""shopping-cart through the engine: carts, lines, live prices, and every refusal."""

from __future__ import annotations

import pytest

from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import (
    CART,
    CATALOG,
    add,
    cart_with,
    complete,
    invoice,
    refused,
    scalar,
)


@pytest.fixture
def converted_cart(backend):
    """A cart whose checkout completed (status ``converted``)."""
    token = ready_checkout(backend)
    invoice(backend, token)
    return complete(backend, token)["cart_token"]


# ---- add-item --------------------------------------------------------------------------------


def test_add_item_without_token_makes_a_new_cart(backend):
    cart = add(backend, "LENS-DAILY-30", 2)
    assert cart["cart_token"].startswith("cart_")
    assert cart == {
        "cart_token": cart["cart_token"],
        "status": "active",
        "currency": "EUR",
        "items": [
            {
                "product_sku": "LENS-DAILY-30",
                "name": "Daily contact lenses, 30 pack",
                "quantity": 2,
                "unit_price_cents": 2495,
                "line_total_cents": 4990,
            }
        ],
        "subtotal_cents": 4990,
        "visitor_id": None,
    }
    other = add(backend, "LENS-DAILY-30", 1)
    assert other["cart_token"] != cart["cart_token"]


def test_add_item_same_sku_adds_up_and_keeps_line_order(backend):
    token = cart_with(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    cart = add(backend, "LENS-DAILY-30", 3, token)
    assert [(i["product_sku"], i["quantity"]) for i in cart["items"]] == [
        ("LENS-DAILY-30", 5),
        ("CASE-TRAVEL", 1),
    ]
    assert cart["subtotal_cents"] == 5 * 2495 + 495


def test_add_item_up_to_the_line_maximum(backend):
    token = cart_with(backend, [("GIFT-CARD-25", 9998)])
    assert add(backend, "GIFT-CARD-25", 1, token)["items"][0]["quantity"] == 9999
    refused(
        backend,
        CART,
        "add-item",
        {"cart_token": token, "product_sku": "GIFT-CARD-25", "quantity": 1},
        ValidationError,
        "invalid_quantity",
        "quantity",
    )


def test_add_item_out_of_stock_product_is_allowed(backend):
    """Stock is checked at checkout (a warning) and at completion, not in the cart."""
    assert add(backend, "SOLUTION-360", 3)["items"][0]["quantity"] == 3


@pytest.mark.parametrize(
    ("quantity", "code"),
    [
        (0, "invalid_quantity"),
        (-1, "invalid_quantity"),
        (10_000, "invalid_quantity"),
        (10**12, "invalid_quantity"),
        (1.5, "invalid_type"),
        ("2", "invalid_type"),
        (True, "invalid_type"),
    ],
)
def test_add_item_bad_quantity(backend, quantity, code):
    token = cart_with(backend, [("LENS-DAILY-30", 1)])
    for body in (
        {"product_sku": "LENS-DAILY-30", "quantity": quantity},
        {"cart_token": token, "product_sku": "LENS-DAILY-30", "quantity": quantity},
    ):
        refused(backend, CART, "add-item", body, ValidationError, code, "quantity")


def test_add_item_unknown_sku_creates_nothing(backend):
    carts = scalar(backend.db_path, "SELECT COUNT(*) FROM carts")
    refused(
        backend,
        CART,
        "add-item",
        {"product_sku": "NOPE-1", "quantity": 1},
        NotFoundError,
        "product_not_found",
        "product_sku",
    )
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM carts") == carts
    token = cart_with(backend, [("LENS-DAILY-30", 1)])
    refused(
        backend,
        CART,
        "add-item",
        {"cart_token": token, "product_sku": "NOPE-1", "quantity": 1},
        NotFoundError,
        "product_not_found",
        "product_sku",
    )


def test_add_item_unknown_cart(backend):
    refused(
        backend,
        CART,
        "add-item",
        {"cart_token": "cart_doesnotexist", "product_sku": "LENS-DAILY-30", "quantity": 1},
        NotFoundError,
        "cart_not_found",
        "cart_token",
    )


def test_add_item_archived_product(backend):
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "OLD-1", "name": "Old", "price_cents": 100, "status": "archived"},
    )
    refused(
        backend,
        CART,
        "add-item",
        {"product_sku": "OLD-1", "quantity": 1},
        ConflictError,
        "product_not_active",
        "product_sku",
    )


def test_add_item_currency_mismatch(backend):
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "US-1", "name": "Imported", "price_cents": 100, "currency": "USD"},
    )
    token = cart_with(backend, [("LENS-DAILY-30", 1)])
    for body in (
        {"product_sku": "US-1", "quantity": 1},
        {"cart_token": token, "product_sku": "US-1", "quantity": 1},
    ):
        refused(backend, CART, "add-item", body, ConflictError, "currency_mismatch", "product_sku")


def test_add_item_to_converted_cart(backend, converted_cart):
    refused(
        backend,
        CART,
        "add-item",
        {"cart_token": converted_cart, "product_sku": "LENS-DAILY-30", "quantity": 1},
        ConflictError,
        "cart_not_active",
        "cart_token",
    )


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"quantity": 1}, "missing_field", "product_sku"),
        ({"product_sku": "LENS-DAILY-30"}, "missing_field", "quantity"),
        ({"product_sku": "LENS DAILY", "quantity": 1}, "invalid_sku", "product_sku"),
        (
            {"cart_token": "cart x!", "product_sku": "LENS-DAILY-30", "quantity": 1},
            "invalid_token_format",
            "cart_token",
        ),
        ({"product_sku": "LENS-DAILY-30", "quantity": 1, "qty": 2}, "unknown_field", "qty"),
    ],
)
def test_add_item_bad_request(backend, body, code, field):
    refused(backend, CART, "add-item", body, ValidationError, code, field)


def test_cart_prices_are_live_from_the_catalog(backend):
    token = cart_with(backend, [("LENS-MONTH-6", 2)])
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "LENS-MONTH-6", "name": "Monthly contact lenses, 6 pack", "price_cents": 3500},
    )
    cart = backend.call(CART, "get-cart", {"cart_token": token})
    assert cart["items"][0]["unit_price_cents"] == 3500
    assert cart["subtotal_cents"] == 7000


# ---- update-item -----------------------------------------------------------------------------


def test_update_item_sets_quantity_and_zero_removes(backend):
    token = cart_with(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    cart = backend.call(
        CART, "update-item", {"cart_token": token, "product_sku": "LENS-DAILY-30", "quantity": 7}
    )
    assert cart["items"][0]["quantity"] == 7
    assert cart["subtotal_cents"] == 7 * 2495 + 495
    cart = backend.call(
        CART, "update-item", {"cart_token": token, "product_sku": "LENS-DAILY-30", "quantity": 0}
    )
    assert [i["product_sku"] for i in cart["items"]] == ["CASE-TRAVEL"]


def test_update_item_errors(backend, converted_cart):
    token = cart_with(backend, [("LENS-DAILY-30", 2)])
    for body, cls, code, field in [
        (
            {"cart_token": token, "product_sku": "CASE-TRAVEL", "quantity": 1},
            NotFoundError,
            "cart_item_not_found",
            "product_sku",
        ),
        (
            {"cart_token": "cart_nope", "product_sku": "LENS-DAILY-30", "quantity": 1},
            NotFoundError,
            "cart_not_found",
            "cart_token",
        ),
        (
            {"cart_token": converted_cart, "product_sku": "LENS-DAILY-30", "quantity": 1},
            ConflictError,
            "cart_not_active",
            "cart_token",
        ),
        (
            {"cart_token": token, "product_sku": "LENS-DAILY-30", "quantity": -1},
            ValidationError,
            "invalid_quantity",
            "quantity",
        ),
        (
            {"cart_token": token, "product_sku": "LENS-DAILY-30", "quantity": 10_000},
            ValidationError,
            "invalid_quantity",
            "quantity",
        ),
        (
            {"cart_token": token, "product_sku": "LENS-DAILY-30"},
            ValidationError,
            "missing_field",
            "quantity",
        ),
    ]:
        refused(backend, CART, "update-item", body, cls, code, field)


# ---- remove-item -----------------------------------------------------------------------------


def test_remove_item(backend):
    token = cart_with(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    cart = backend.call(CART, "remove-item", {"cart_token": token, "product_sku": "LENS-DAILY-30"})
    assert [i["product_sku"] for i in cart["items"]] == ["CASE-TRAVEL"]
    assert cart["subtotal_cents"] == 495


def test_remove_item_errors(backend, converted_cart):
    token = cart_with(backend, [("LENS-DAILY-30", 2)])
    refused(
        backend,
        CART,
        "remove-item",
        {"cart_token": token, "product_sku": "CASE-TRAVEL"},
        NotFoundError,
        "cart_item_not_found",
        "product_sku",
    )
    refused(
        backend,
        CART,
        "remove-item",
        {"cart_token": "cart_nope", "product_sku": "CASE-TRAVEL"},
        NotFoundError,
        "cart_not_found",
        "cart_token",
    )
    refused(
        backend,
        CART,
        "remove-item",
        {"cart_token": converted_cart, "product_sku": "LENS-DAILY-30"},
        ConflictError,
        "cart_not_active",
        "cart_token",
    )


# ---- get-cart / clear-cart -------------------------------------------------------------------


def test_get_cart(backend, converted_cart):
    token = cart_with(backend, [("LENS-DAILY-30", 2)])
    added = add(backend, "CASE-TRAVEL", 1, token)
    assert backend.call(CART, "get-cart", {"cart_token": token}) == added
    converted = backend.call(CART, "get-cart", {"cart_token": converted_cart})
    assert converted["status"] == "converted"
    assert converted["items"][0]["product_sku"] == "LENS-DAILY-30"
    refused(
        backend,
        CART,
        "get-cart",
        {"cart_token": "cart_nope"},
        NotFoundError,
        "cart_not_found",
        "cart_token",
    )
    refused(backend, CART, "get-cart", {}, ValidationError, "missing_field", "cart_token")


def test_clear_cart(backend, converted_cart):
    token = cart_with(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    cart = backend.call(CART, "clear-cart", {"cart_token": token})
    assert cart["items"] == [] and cart["subtotal_cents"] == 0
    assert cart["status"] == "active"
    assert add(backend, "CASE-TRAVEL", 1, token)["items"][0]["quantity"] == 1
    refused(
        backend,
        CART,
        "clear-cart",
        {"cart_token": converted_cart},
        ConflictError,
        "cart_not_active",
        "cart_token",
    )
    refused(
        backend,
        CART,
        "clear-cart",
        {"cart_token": "cart_nope"},
        NotFoundError,
        "cart_not_found",
        "cart_token",
    )
