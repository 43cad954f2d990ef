"""product-catalog through the engine: products, stock and the stock ledger."""

from __future__ import annotations

import pytest

from checkout_cli.errors import NotFoundError, ValidationError
from tests.engine_helpers import (
    CATALOG,
    assert_invariants,
    query,
    refused,
    setting,
)

NEW = {"sku": "PIN-50", "name": "Lapel pin", "price_cents": 50}


def ledger(backend, sku):
    return query(
        backend.db_path,
        "SELECT delta, reason FROM stock_movements WHERE sku = ? ORDER BY id",
        (sku,),
    )


# ---- list-products ---------------------------------------------------------------------------


def test_list_products_active_sorted_by_sku(backend):
    products = backend.call(CATALOG, "list-products", {})["products"]
    skus = [p["sku"] for p in products]
    assert skus == sorted(skus)
    assert {"LENS-DAILY-30", "SOLUTION-360", "GIFT-CARD-25", "CASE-TRAVEL"} <= set(skus)
    gift = next(p for p in products if p["sku"] == "GIFT-CARD-25")
    assert gift == {
        "sku": "GIFT-CARD-25",
        "name": "Gift card EUR 25",
        "price_cents": 2500,
        "currency": "EUR",
        "stock": None,
        "allow_backorder": False,
        "status": "active",
        "meta_defs": [],
        "config": {},
    }


def test_list_products_query_limit_and_archived(backend):
    lenses = backend.call(CATALOG, "list-products", {"query": "lens"})["products"]
    assert {p["sku"] for p in lenses} >= {"LENS-DAILY-30", "LENS-TORIC-6", "CASE-TRAVEL"}
    assert "GIFT-CARD-25" not in {p["sku"] for p in lenses}
    assert len(backend.call(CATALOG, "list-products", {"limit": 2})["products"]) == 2
    backend.call(CATALOG, "upsert-product", {**NEW, "status": "archived"})
    assert "PIN-50" not in {
        p["sku"] for p in backend.call(CATALOG, "list-products", {})["products"]
    }
    every = backend.call(CATALOG, "list-products", {"include_archived": True})["products"]
    assert "PIN-50" in {p["sku"] for p in every}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"limit": 0}, "value_out_of_range", "limit"),
        ({"limit": "5"}, "invalid_type", "limit"),
        ({"include_archived": "yes"}, "invalid_type", "include_archived"),
        ({"colour": "red"}, "unknown_field", "colour"),
    ],
)
def test_list_products_bad_input(backend, body, code, field):
    refused(backend, CATALOG, "list-products", body, ValidationError, code, field)


# ---- get-product -----------------------------------------------------------------------------


def test_get_product(backend):
    product = backend.call(CATALOG, "get-product", {"sku": "CASE-TRAVEL"})
    assert product["stock"] == 2
    assert product["allow_backorder"] is True
    assert product["meta_defs"] == [{"def_key": "engraving", "required": False}]


def test_get_product_errors(backend):
    refused(
        backend,
        CATALOG,
        "get-product",
        {"sku": "NOPE-1"},
        NotFoundError,
        "product_not_found",
        "sku",
    )
    refused(backend, CATALOG, "get-product", {"sku": "no spaces"}, ValidationError, "invalid_sku")
    refused(backend, CATALOG, "get-product", {}, ValidationError, "missing_field", "sku")


# ---- upsert-product --------------------------------------------------------------------------


def test_upsert_creates_with_defaults(backend):
    product = backend.call(CATALOG, "upsert-product", NEW)
    assert product == {
        "sku": "PIN-50",
        "name": "Lapel pin",
        "price_cents": 50,
        "currency": "EUR",  # the shop's currency setting
        "stock": None,
        "allow_backorder": False,
        "status": "active",
        "meta_defs": [],
        "config": {},
    }
    assert ledger(backend, "PIN-50") == []
    tracked = backend.call(CATALOG, "upsert-product", {**NEW, "sku": "PIN-51", "stock": 7})
    assert tracked["stock"] == 7
    assert ledger(backend, "PIN-51") == [(7, "initial")]
    assert_invariants(backend.db_path)


def test_upsert_updates_and_keeps_what_is_not_given(backend):
    backend.call(
        CATALOG,
        "upsert-product",
        {
            **NEW,
            "currency": "USD",
            "stock": 10,
            "allow_backorder": True,
            "status": "archived",
            "config": {"colours": ["red"]},
        },
    )
    updated = backend.call(
        CATALOG, "upsert-product", {"sku": "PIN-50", "name": "Pin", "price_cents": 60}
    )
    assert updated["name"] == "Pin" and updated["price_cents"] == 60
    assert updated["currency"] == "USD"  # not reset to the shop's currency
    assert updated["allow_backorder"] is True
    assert updated["status"] == "archived"
    assert updated["config"] == {"colours": ["red"]}
    assert updated["stock"] == 10
    restocked = backend.call(CATALOG, "upsert-product", {**NEW, "stock": 4})
    assert restocked["stock"] == 4
    assert ledger(backend, "PIN-50") == [(10, "initial"), (-6, "adjustment")]
    assert_invariants(backend.db_path)


def test_upsert_currency_follows_the_setting_for_new_products(backend):
    setting(backend, "currency", "GBP")
    assert backend.call(CATALOG, "upsert-product", NEW)["currency"] == "GBP"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({**NEW, "price_cents": -1}, "invalid_amount", "price_cents"),
        ({**NEW, "price_cents": 12.5}, "invalid_type", "price_cents"),
        ({**NEW, "price_cents": "12"}, "invalid_type", "price_cents"),
        ({**NEW, "stock": -3}, "invalid_stock", "stock"),
        ({**NEW, "currency": "EURO"}, "invalid_currency", "currency"),
        ({**NEW, "currency": "XXY"}, "invalid_currency", "currency"),
        ({**NEW, "status": "deleted"}, "invalid_value", "status"),
        ({"sku": "PIN-50", "price_cents": 50}, "missing_field", "name"),
        ({**NEW, "name": "   "}, "missing_field", "name"),
        ({**NEW, "sku": "-bad"}, "invalid_sku", "sku"),
        ({**NEW, "weight": 3}, "unknown_field", "weight"),
        ({**NEW, "meta_defs": [{"def_key": "x", "colour": 1}]}, "unknown_field", None),
    ],
)
def test_upsert_bad_input(backend, body, code, field):
    error = refused(backend, CATALOG, "upsert-product", body, ValidationError, code)
    if field is not None:
        assert error.field == field


def test_upsert_unknown_meta_definition(backend):
    refused(
        backend,
        CATALOG,
        "upsert-product",
        {**NEW, "meta_defs": [{"def_key": "engraving"}, {"def_key": "tattoo"}]},
        NotFoundError,
        "meta_definition_not_found",
        "meta_defs[1].def_key",
    )


# ---- set-stock -------------------------------------------------------------------------------


def test_set_stock_records_adjustments(backend):
    product = backend.call(CATALOG, "set-stock", {"sku": "LENS-MONTH-6", "stock": 55})
    assert product["stock"] == 55
    backend.call(CATALOG, "set-stock", {"sku": "LENS-MONTH-6", "stock": 50})
    assert ledger(backend, "LENS-MONTH-6") == [
        (40, "initial"),
        (15, "adjustment"),
        (-5, "adjustment"),
    ]
    assert_invariants(backend.db_path)


def test_set_stock_untracked_and_tracked_again(backend):
    untracked = backend.call(CATALOG, "set-stock", {"sku": "LENS-MONTH-6", "untracked": True})
    assert untracked["stock"] is None
    assert ledger(backend, "LENS-MONTH-6") == []
    tracked = backend.call(CATALOG, "set-stock", {"sku": "GIFT-CARD-25", "stock": 12})
    assert tracked["stock"] == 12
    assert ledger(backend, "GIFT-CARD-25") == [(12, "initial")]
    again = backend.call(CATALOG, "set-stock", {"sku": "LENS-MONTH-6", "stock": 3})
    assert again["stock"] == 3
    assert ledger(backend, "LENS-MONTH-6") == [(3, "initial")]
    assert_invariants(backend.db_path)


@pytest.mark.parametrize(
    ("body", "cls", "code", "field"),
    [
        ({"sku": "LENS-MONTH-6"}, ValidationError, "missing_field", "stock"),
        (
            {"sku": "LENS-MONTH-6", "stock": 3, "untracked": True},
            ValidationError,
            "missing_field",
            "stock",
        ),
        ({"sku": "LENS-MONTH-6", "stock": -1}, ValidationError, "invalid_stock", "stock"),
        ({"sku": "LENS-MONTH-6", "stock": 10**10}, ValidationError, "invalid_stock", "stock"),
        ({"sku": "LENS-MONTH-6", "stock": "7"}, ValidationError, "invalid_type", "stock"),
        ({"sku": "NOPE-1", "stock": 3}, NotFoundError, "product_not_found", "sku"),
        ({"stock": 3}, ValidationError, "missing_field", "sku"),
    ],
)
def test_set_stock_errors(backend, body, cls, code, field):
    refused(backend, CATALOG, "set-stock", body, cls, code, field)


# ---- meta definitions (the catalog's line meta types) ----------------------------------------


def test_meta_definitions_list_get_and_resolve_sources(backend):
    listed = backend.call(CATALOG, "list-meta-definitions", {})["definitions"]
    assert [(d["def_key"], d["version"]) for d in listed] == [
        ("engraving", 1),
        ("lens_prescription", 1),
    ]
    plain = backend.call(CATALOG, "get-meta-definition", {"def_key": "lens_prescription"})
    assert plain == next(d for d in listed if d["def_key"] == "lens_prescription")
    resolved = backend.call(
        CATALOG,
        "get-meta-definition",
        {"def_key": "lens_prescription", "product_sku": "LENS-TORIC-6"},
    )
    curve = next(f for f in resolved["fields"] if f["name"] == "right_base_curve")
    assert curve["values"] == ["8.6", "8.9"]  # from the product's config


def test_upsert_meta_definition_versions_only_on_change(backend):
    definition = {
        "def_key": "gift_note",
        "title": "Gift note",
        "fields": [{"name": "text", "type": "string", "max_length": 100}],
    }
    first = backend.call(CATALOG, "upsert-meta-definition", definition)
    assert (first["version"], first["changed"]) == (1, True)
    same = backend.call(CATALOG, "upsert-meta-definition", definition)
    assert (same["version"], same["changed"]) == (1, False)
    definition["fields"].append({"name": "sign", "type": "boolean"})
    second = backend.call(CATALOG, "upsert-meta-definition", definition)
    assert (second["version"], second["changed"]) == (2, True)


def test_meta_definition_errors(backend):
    refused(
        backend,
        CATALOG,
        "get-meta-definition",
        {"def_key": "tattoo"},
        NotFoundError,
        "meta_definition_not_found",
        "def_key",
    )
    refused(
        backend,
        CATALOG,
        "get-meta-definition",
        {"def_key": "engraving", "product_sku": "NOPE-1"},
        NotFoundError,
        "product_not_found",
    )
    refused(
        backend,
        CATALOG,
        "upsert-meta-definition",
        {"def_key": "bad", "fields": [{"name": "x", "type": "colour"}]},
        ValidationError,
        "invalid_meta_definition",
    )
    refused(
        backend,
        CATALOG,
        "upsert-meta-definition",
        {"def_key": "Bad Key", "fields": []},
        ValidationError,
        "invalid_def_key",
        "def_key",
    )
