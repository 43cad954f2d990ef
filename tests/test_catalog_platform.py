"""The catalog by the platform's endpoint names (create-, update-, delete-, search- and
bulk-upsert-products), each on the local backend and over a real `checkout serve`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.errors import CheckoutError, ConflictError, NotFoundError, ValidationError
from tests.conftest import ready_checkout
from tests.serve_helpers import Served, served_fixture  # noqa: F401

CATALOG = "product-catalog"


@pytest.fixture(params=["local", "served"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(the backend under test, a local backend on the same store to look behind it)."""
    if request.param == "local":
        local = request.getfixturevalue("backend")
        yield local, local
        return
    served: Served = request.getfixturevalue("served")
    remote, behind = served.remote(), served.local()
    try:
        yield remote, behind
    finally:
        remote.close()
        behind.close()


@pytest.fixture
def prefix() -> str:
    """SKUs of this test only (the served store is shared by the session)."""
    return f"T{uuid.uuid4().hex[:8].upper()}"


def refused(call: Any, kind: type[CheckoutError]) -> CheckoutError:
    with pytest.raises(kind) as info:
        call()
    return info.value


def skus(conn: Any, prefix: str) -> list[str]:
    rows = conn.execute("SELECT sku FROM products WHERE sku LIKE ? ORDER BY sku", (prefix + "%",))
    return [r[0] for r in rows]


def test_create_product_then_the_same_sku_is_a_conflict(shop, prefix):
    backend, _ = shop
    sku = f"{prefix}-A"
    body = {"sku": sku, "name": "Lens cleaner", "price_cents": 695, "stock": 3}
    created = backend.call(CATALOG, "create-product", body)
    assert (created["sku"], created["price_cents"], created["stock"]) == (sku, 695, 3)
    error = refused(
        lambda: backend.call(CATALOG, "create-product", {**body, "price_cents": 1}), ConflictError
    )
    assert (error.code, error.field, error.http_status) == ("product_exists", "sku", 409)
    assert backend.call(CATALOG, "get-product", {"sku": sku})["price_cents"] == 695


def test_update_product_changes_only_the_fields_given(shop, prefix):
    backend, _ = shop
    sku = f"{prefix}-U"
    backend.call(
        CATALOG,
        "create-product",
        {"sku": sku, "name": "Case", "price_cents": 300, "stock": 9, "allow_backorder": True},
    )
    updated = backend.call(CATALOG, "update-product", {"sku": sku, "price_cents": 350})
    assert updated["price_cents"] == 350
    assert (updated["name"], updated["stock"], updated["allow_backorder"]) == ("Case", 9, True)
    renamed = backend.call(CATALOG, "update-product", {"sku": sku, "name": "Hard case"})
    assert (renamed["name"], renamed["price_cents"]) == ("Hard case", 350)
    error = refused(
        lambda: backend.call(CATALOG, "update-product", {"sku": f"{prefix}-NONE", "name": "x"}),
        NotFoundError,
    )
    assert (error.code, error.field) == ("product_not_found", "sku")


def test_delete_product_deletes_or_archives_what_is_referred_to(shop, prefix):
    backend, behind = shop
    loose, used = f"{prefix}-LOOSE", f"{prefix}-USED"
    for sku in (loose, used):
        backend.call(CATALOG, "create-product", {"sku": sku, "name": sku, "price_cents": 100})
    backend.call(CATALOG, "set-stock", {"sku": loose, "stock": 4})  # a ledger row goes too
    backend.call("shopping-cart", "add-item", {"product_sku": used, "quantity": 1})

    assert backend.call(CATALOG, "delete-product", {"sku": loose}) == {
        "sku": loose,
        "action": "deleted",
    }
    refused(lambda: backend.call(CATALOG, "get-product", {"sku": loose}), NotFoundError)
    assert (
        behind.engine.conn.execute(
            "SELECT COUNT(*) FROM stock_movements WHERE sku = ?", (loose,)
        ).fetchone()[0]
        == 0
    )

    archived = {"sku": used, "action": "archived"}
    assert backend.call(CATALOG, "delete-product", {"sku": used}) == archived
    assert backend.call(CATALOG, "get-product", {"sku": used})["status"] == "archived"
    assert backend.call(CATALOG, "delete-product", {"sku": used}) == archived  # idempotent
    error = refused(lambda: backend.call(CATALOG, "delete-product", {"sku": loose}), NotFoundError)
    assert (error.code, error.field) == ("product_not_found", "sku")


def test_delete_product_archives_what_an_order_refers_to(backend):
    token = ready_checkout(backend, [("LENS-DAILY-30", 1)])
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
    conn = backend.engine.conn
    assert conn.execute("SELECT 1 FROM order_lines WHERE product_sku = 'LENS-DAILY-30'").fetchone()
    result = backend.call(CATALOG, "delete-product", {"sku": "LENS-DAILY-30"})
    assert result == {"sku": "LENS-DAILY-30", "action": "archived"}


def test_search_products_matches_every_word_and_pages(shop, prefix):
    backend, _ = shop
    names = ["Daily Lens Blue", "daily lens green", "Monthly lens", "Daily drops"]
    for i, name in enumerate(names):
        backend.call(
            CATALOG, "create-product", {"sku": f"{prefix}-S{i}", "name": name, "price_cents": 10}
        )
    backend.call(CATALOG, "update-product", {"sku": f"{prefix}-S1", "status": "archived"})

    found = backend.call(CATALOG, "search-products", {"query": f"{prefix.lower()} LENS daily"})
    assert [p["sku"] for p in found["products"]] == [f"{prefix}-S0"]
    assert found["total"] == 1
    with_archived = backend.call(
        CATALOG,
        "search-products",
        {"query": f"{prefix} lens", "include_archived": True, "limit": 2, "offset": 1},
    )
    assert with_archived["total"] == 3
    assert (with_archived["limit"], with_archived["offset"]) == (2, 1)
    assert [p["sku"] for p in with_archived["products"]] == [f"{prefix}-S1", f"{prefix}-S2"]
    assert backend.call(CATALOG, "search-products", {"query": f"{prefix} 100%"})["total"] == 0
    error = refused(
        lambda: backend.call(CATALOG, "search-products", {"query": "  "}), ValidationError
    )
    assert error.field == "query"
    refused(lambda: backend.call(CATALOG, "search-products", {}), ValidationError)


def test_bulk_upsert_over_500_is_refused_whole(shop, prefix):
    backend, behind = shop
    products = [{"sku": f"{prefix}-{i:04}", "name": "n", "price_cents": 1} for i in range(501)]
    error = refused(
        lambda: backend.call(CATALOG, "bulk-upsert-products", {"products": products}),
        ValidationError,
    )
    assert (error.code, error.field, error.http_status) == ("too_many_items", "products", 422)
    assert skus(behind.engine.conn, prefix) == []
    result = backend.call(CATALOG, "bulk-upsert-products", {"products": products[:500]})
    assert result["summary"]["by_action"] == {"created": 500, "updated": 0, "failed": 0}
    assert len(skus(behind.engine.conn, prefix)) == 500


def test_bulk_upsert_fails_each_bad_item_alone(shop, prefix):
    backend, behind = shop
    backend.call(
        CATALOG, "create-product", {"sku": f"{prefix}-OLD", "name": "Old", "price_cents": 5}
    )
    products = [
        {"sku": f"{prefix}-NEW", "name": "New", "price_cents": 10, "stock": 2},
        {"sku": f"{prefix}-BAD", "name": "Bad", "price_cents": -1},
        {"sku": f"{prefix}-OLD", "name": "Old, renamed", "price_cents": 6},
        {"name": "no sku", "price_cents": 1},
        {"sku": f"{prefix}-META", "name": "M", "price_cents": 1, "meta_defs": [{"def_key": "no"}]},
        "not a product",
    ]
    result = backend.call(CATALOG, "bulk-upsert-products", {"products": products})
    statuses = [(i["index"], i["sku"], i["status"]) for i in result["items"]]
    assert statuses == [
        (0, f"{prefix}-NEW", "created"),
        (1, f"{prefix}-BAD", "failed"),
        (2, f"{prefix}-OLD", "updated"),
        (3, None, "failed"),
        (4, f"{prefix}-META", "failed"),
        (5, None, "failed"),
    ]
    errors = [i["error"] for i in result["items"] if i["status"] == "failed"]
    assert [(e["type"], e["field"]) for e in errors] == [
        ("validation", "price_cents"),
        ("validation", "sku"),
        ("not_found", "meta_defs[0].def_key"),
        ("validation", "body"),
    ]
    assert result["summary"] == {
        "total": 6,
        "by_action": {"created": 1, "updated": 1, "failed": 4},
        "by_error_type": {"validation": 3, "not_found": 1},
    }
    conn = behind.engine.conn
    assert skus(conn, prefix) == [f"{prefix}-NEW", f"{prefix}-OLD"]
    assert backend.call(CATALOG, "get-product", {"sku": f"{prefix}-OLD"})["name"] == "Old, renamed"
    ledger = conn.execute("SELECT delta FROM stock_movements WHERE sku = ?", (f"{prefix}-NEW",))
    assert [r[0] for r in ledger] == [2]
