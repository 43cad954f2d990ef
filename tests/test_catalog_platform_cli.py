"""`checkout products add/update/delete/search/import` on the platform's catalog endpoints:
locally, on a terminal, and against a real `checkout serve` (import in calls of 500)."""

from __future__ import annotations

import json
import re
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from tests.conftest import WATCH, dump
from tests.serve_helpers import Served, served_fixture  # noqa: F401
from tests.terminal import Terminal, starter

BULK = "/product-catalog/bulk-upsert-products "


@pytest.fixture
def terminal(db_path, tmp_path):
    yield from starter(lambda *args: Terminal(db_path, tmp_path, *args))


def remote_cli(served: Served, *args: str) -> Any:
    result = CliRunner().invoke(app, [*served.remote_args(), *args], env=served.cli_env())
    WATCH.seen(f"checkout {' '.join(args)}", result.stdout + result.stderr)
    return result


def bulk_calls(served: Served, at_least: int = 0) -> int:
    """bulk-upsert-products requests so far, as the server's access log has them. The server
    logs a request after answering it, so the last line may lag the client: wait (≤ 10 s) for
    ``at_least`` lines before counting."""
    deadline = time.monotonic() + 10
    while served.log.read_text().count(BULK) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return served.log.read_text().count(BULK)


def catalog_file(tmp_path: Path, products: list[dict[str, Any]]) -> Path:
    path = tmp_path / f"catalog-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(products))
    return path


def many(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"sku": f"{prefix}-{i:05}", "name": f"Item {i}", "price_cents": 100 + i}
        for i in range(count)
    ]


def test_add_update_search_delete(backend, cli):
    added = cli(
        "--json",
        "products",
        "add",
        "CLEANER-1",
        "--name",
        "Lens cleaner",
        "--price-cents",
        "695",
        "--stock",
        "4",
    )
    assert added.exit_code == 0, added.stderr
    assert json.loads(added.stdout)["stock"] == 4
    again = cli("products", "add", "CLEANER-1", "--name", "Other", "--price-cents", "1")
    assert again.exit_code == 4 and "exists already" in again.stderr
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr

    updated = cli("--json", "products", "update", "CLEANER-1", "--price-cents", "595")
    assert updated.exit_code == 0, updated.stderr
    product = json.loads(updated.stdout)
    assert (product["name"], product["price_cents"], product["stock"]) == ("Lens cleaner", 595, 4)
    missing = cli("products", "update", "NO-SUCH", "--price-cents", "5")
    assert missing.exit_code == 3 and "NO-SUCH" in missing.stderr

    found = cli("products", "search", "lens CLEAN", "--quiet")
    assert (found.exit_code, found.stdout.split()) == (0, ["CLEANER-1"])
    as_json = json.loads(cli("products", "search", "lens", "--format", "json").stdout)
    assert "CLEANER-1" in [p["sku"] for p in as_json["products"]]
    assert as_json["total"] == len(as_json["products"])

    piped = cli("products", "delete", "CLEANER-1")  # no terminal, no --yes: nothing happens
    assert piped.exit_code == 2 and "--yes" in piped.stderr
    assert backend.call("product-catalog", "get-product", {"sku": "CLEANER-1"})
    deleted = cli("products", "delete", "CLEANER-1", "--yes")
    assert deleted.exit_code == 0 and "CLEANER-1 deleted" in deleted.stderr


def test_delete_asks_on_a_terminal(backend, terminal):
    backend.call("shopping-cart", "add-item", {"product_sku": "CASE-TRAVEL", "quantity": 1})
    before = dump(backend.db_path)
    declined = terminal("products", "delete", "CASE-TRAVEL")
    declined.at(re.escape("Delete product CASE-TRAVEL?"), "n")
    assert declined.finish() == 0, declined.text
    assert "not deleted" in declined.text
    assert dump(backend.db_path) == before
    confirmed = terminal("products", "delete", "CASE-TRAVEL")
    confirmed.at(re.escape("Delete product CASE-TRAVEL?"), "y")
    assert confirmed.finish() == 0, confirmed.text
    assert "archived" in confirmed.text  # a cart holds it
    product = backend.call("product-catalog", "get-product", {"sku": "CASE-TRAVEL"})
    assert product["status"] == "archived"


def test_import_sends_calls_of_500_to_the_server(served, tmp_path):
    prefix = f"IMP{uuid.uuid4().hex[:6].upper()}"
    before = bulk_calls(served)
    result = remote_cli(
        served, "products", "import", str(catalog_file(tmp_path, many(prefix, 1201)))
    )
    assert result.exit_code == 0, result.stderr
    assert "1201 created, 0 updated, 0 failed" in result.stderr
    assert bulk_calls(served, at_least=before + 3) - before == 3
    with closing(served.local()) as behind:
        count = behind.engine.conn.execute(
            "SELECT COUNT(*) FROM products WHERE sku LIKE ?", (prefix + "%",)
        ).fetchone()[0]
    assert count == 1201
    again = remote_cli(
        served, "--json", "products", "import", str(catalog_file(tmp_path, many(prefix, 3)))
    )
    assert json.loads(again.stdout)["summary"]["by_action"] == {
        "created": 0,
        "updated": 3,
        "failed": 0,
    }


def test_import_of_a_bad_file_writes_nothing_and_sends_nothing(served, tmp_path):
    prefix = f"BAD{uuid.uuid4().hex[:6].upper()}"
    products = many(prefix, 700)
    products[650]["price_cents"] = -5
    before = bulk_calls(served)
    result = remote_cli(served, "products", "import", str(catalog_file(tmp_path, products)))
    assert result.exit_code == 4
    assert "product 651" in result.stderr and "Traceback" not in result.stderr
    assert bulk_calls(served) == before
    with closing(served.local()) as behind:
        assert (
            behind.engine.conn.execute(
                "SELECT COUNT(*) FROM products WHERE sku LIKE ?", (prefix + "%",)
            ).fetchone()[0]
            == 0
        )


def test_import_names_each_item_the_store_refused_after_writing_the_others(served, tmp_path):
    prefix = f"MIX{uuid.uuid4().hex[:6].upper()}"
    products = many(prefix, 502)
    for index in (3, 501):  # passes the local check; the store has no such definition
        products[index]["meta_defs"] = [{"def_key": "no_such_definition"}]
    result = remote_cli(
        served, "--json", "products", "import", str(catalog_file(tmp_path, products))
    )
    assert result.exit_code == 4
    merged = json.loads(result.stdout)
    assert merged["summary"] == {
        "total": 502,
        "by_action": {"created": 500, "updated": 0, "failed": 2},
        "by_error_type": {"not_found": 2},
    }
    failed = [(i["index"], i["sku"]) for i in merged["items"] if i["status"] == "failed"]
    assert failed == [(3, f"{prefix}-00003"), (501, f"{prefix}-00501")]
    error = json.loads(result.stderr)["error_object"]
    assert f"product 4 ({prefix}-00003)" in error["message"]
    assert f"product 502 ({prefix}-00501)" in error["message"]
    with closing(served.local()) as behind:
        written = behind.engine.conn.execute(
            "SELECT COUNT(*) FROM products WHERE sku LIKE ?", (prefix + "%",)
        ).fetchone()[0]
    assert written == 500


def test_demo_still_imports_its_catalog(tmp_path):
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "demo.db"), "demo"])
    assert result.exit_code == 0, result.stderr
    assert "LENS-DAILY-30" in result.stdout
