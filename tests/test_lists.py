"""Lists are counted, paged and exported: --limit/--offset, a total, --format csv|json|table,
--quiet for ids; the same options on every list command, over the local store and --remote."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import dump, ready_checkout
from tests.serve_helpers import served_fixture  # noqa: F401

CATALOG, ORDERS, ADMIN = "product-catalog", "order-management", "checkout-admin"

# (command, the result's rows key, the id --quiet prints, a CSV column that must be there)
LISTS = [
    (["products", "list"], "products", "sku", "price_cents"),
    (["orders", "list"], "orders", "order_number", "total_cents"),
    (["checkouts", "list"], "checkouts", "checkout_token", "total_cents"),
    (["outbox", "list"], "emails", "id", "recipient"),
    (["tokens", "list"], "tokens", "name", "scope"),
    (["meta", "list"], "definitions", "def_key", "version"),
]


def many_products(backend, n: int = 12) -> None:
    for i in range(n):
        backend.call(
            CATALOG,
            "upsert-product",
            {"sku": f"BULK-{i:03d}", "name": f"Bulk item {i}", "price_cents": 100 + i},
        )


def two_orders(backend) -> None:
    for _ in range(2):
        token = ready_checkout(backend)
        backend.call(
            "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
        )
        backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})


def some_of_everything(backend) -> None:
    two_orders(backend)
    for name in ("front-desk", "batch-bot"):
        backend.call(ADMIN, "create-token", {"name": name})


@pytest.mark.parametrize("command, rows, id_field, column", LISTS, ids=lambda v: str(v))
def test_every_list_pages_counts_and_exports(backend, cli, command, rows, id_field, column):
    some_of_everything(backend)
    whole = cli("--json", *command)
    assert whole.exit_code == 0, whole.stderr
    everything = whole.json()
    assert everything["total"] == len(everything[rows]) >= 2
    ids = [str(row[id_field]) for row in everything[rows]]

    paged = cli("--json", *command, "--limit", "1", "--offset", "1").json()
    assert [str(r[id_field]) for r in paged[rows]] == ids[1:2]
    assert (paged["total"], paged["limit"], paged["offset"]) == (len(ids), 1, 1)
    assert cli(*command, "--format", "json", "--limit", "1", "--offset", "1").json() == paged

    quiet = cli(*command, "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == "".join(f"{i}\n" for i in ids)

    exported = cli(*command, "--format", "csv")
    assert exported.exit_code == 0
    table = list(csv.DictReader(io.StringIO(exported.stdout, newline="")))
    assert [row[id_field] for row in table] == ids
    assert all(row[column] != "" for row in table)


def test_table_footer_says_how_many_and_where_the_rest_is(backend, cli):
    many_products(backend)  # 12 + the fixture catalog's 7
    first = cli("products", "list", "--limit", "5")
    assert first.exit_code == 0
    assert len(first.stdout.splitlines()) == 5  # piped: one record a line, no footer in data
    assert first.stderr.strip() == "5 of 19 products — use --offset 5 for more"
    middle = cli("products", "list", "--limit", "5", "--offset", "5")
    assert middle.stderr.strip() == "6–10 of 19 products — use --offset 10 for more"
    last = cli("products", "list", "--limit", "5", "--offset", "15")
    assert last.stderr.strip() == "16–19 of 19 products"
    beyond = cli("products", "list", "--offset", "40")
    assert (
        beyond.stdout == "" and beyond.stderr.strip() == "no products from offset 40: there are 19"
    )
    assert cli("products", "list").stderr == ""  # the whole list: nothing to say


def test_default_page_is_100_rows(backend, cli):
    many_products(backend, 120)
    listed = cli("--json", "products", "list").json()
    assert (len(listed["products"]), listed["total"], listed["limit"]) == (100, 127, 100)
    # the endpoint keeps its own default (the phone-order picker lists the whole catalog)
    assert len(backend.call(CATALOG, "list-products", {})["products"]) == 127


def test_filters_count_what_they_match(backend, cli):
    many_products(backend)
    found = cli("--json", "products", "list", "--query", "BULK-00", "--limit", "3").json()
    assert found["total"] == 10 and len(found["products"]) == 3
    two_orders(backend)
    orders = backend.call(ORDERS, "list-orders", {"status": "pending", "limit": 1})
    assert orders["total"] == 2 and len(orders["orders"]) == 1
    assert backend.call(ORDERS, "list-orders", {"status": "paid"})["total"] == 0


def test_stuck_checkouts_are_counted_and_paged(backend, cli):
    tokens = [ready_checkout(backend) for _ in range(3)]
    for token in tokens:
        backend.call(
            "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
        )  # completable, not completed: stuck at once with --older-than 0m
    ready_checkout(backend)  # active: not stuck
    body = {"stuck": True, "older_than_minutes": 0, "limit": 2, "offset": 1}
    stuck = backend.call(ADMIN, "list-checkouts", body)
    assert stuck["total"] == 3 and len(stuck["checkouts"]) == 2
    listed = cli("checkouts", "list", "--stuck", "--older-than", "0m", "--quiet", "--limit", "2")
    assert len(listed.stdout.split()) == 2 and set(listed.stdout.split()) <= set(tokens)


def test_csv_keeps_full_values_money_in_minor_units_and_defuses_formulas(backend, cli):
    backend.call(
        CATALOG,
        "upsert-product",
        {
            "sku": "EVIL-1",
            "name": '=HYPERLINK("http://evil.example","click"), "quoted"',
            "price_cents": 123456,
            "currency": "JPY",
            "stock": 3,
        },
    )
    for name in ("+1 free", "-minus", "@SUM(A1)"):
        backend.call(
            CATALOG,
            "upsert-product",
            {"sku": f"EVIL-{len(name)}", "name": name, "price_cents": 5},
        )
    exported = cli("products", "list", "--format", "csv", "--query", "EVIL")
    rows = {r["sku"]: r for r in csv.DictReader(io.StringIO(exported.stdout, newline=""))}
    evil = rows["EVIL-1"]
    assert evil["name"] == '\'=HYPERLINK("http://evil.example","click"), "quoted"'
    assert (evil["price_cents"], evil["currency"], evil["stock"]) == ("123456", "JPY", "3")
    assert {r["name"] for sku, r in rows.items() if sku != "EVIL-1"} == {
        "'+1 free",
        "'-minus",
        "'@SUM(A1)",
    }
    # only CSV is defused: JSON and the table carry the value as it is
    shown = cli("--json", "products", "list", "--query", "EVIL-1").json()["products"][0]
    assert shown["name"].startswith("=HYPERLINK")
    assert cli("products", "list", "--query", "EVIL-1").stdout.split("\t")[1].startswith("=")


def test_settings_show_exports_too(backend, cli):
    exported = cli("settings", "show", "--format", "csv")
    rows = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(exported.stdout))}
    assert rows["shop_name"] == "Lens Shop Amsterdam"
    assert rows["tax_rates"].startswith("{") and '"NL": "21"' in rows["tax_rates"]
    keys = cli("settings", "show", "--quiet").stdout.split()
    assert "shop_name" in keys and "project_id" in keys
    assert (
        cli("settings", "show", "--format", "json").json()
        == cli("--json", "settings", "show").json()
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--limit", "0"],
        ["--limit", "-1"],
        ["--limit", "10001"],
        ["--limit", "many"],
        ["--offset", "x"],
        ["--offset", "-1"],
        ["--format", "xml"],
        ["--json", "--format", "csv"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("command", [c for c, *_ in LISTS], ids=" ".join)
def test_bad_paging_or_format_is_one_usage_line(backend, cli, db_path, command, args):
    before = dump(db_path)
    refused = cli(*command, *args)
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1
    if "--json" in args:  # scripts get the error object
        assert json.loads(refused.stderr)["error_object"]["type"] == "usage"
    else:
        assert refused.stderr.startswith("error: ")
    assert dump(db_path) == before


def test_a_reader_that_stops_early_gets_no_error(backend, db_path):
    many_products(backend, 300)
    command = ["products", "list", "--format", "csv", "--limit", "10000"]
    # A one-page pipe, made before the child starts: the listing (~15 KB) cannot
    # all fit, so the writer always meets the closed end, however fast it runs.
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    run = subprocess.Popen(
        [sys.executable, "-m", "checkout_cli", "--db", str(db_path), *command],
        stdout=write_end,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    run.stdout = os.fdopen(read_end, "rb")
    assert run.stderr is not None
    assert (
        run.stdout.readline()
        == b"sku,name,price_cents,currency,stock,allow_backorder,status,meta_defs\r\n"
    )  # RFC 4180: CRLF
    run.stdout.close()  # `| head -1`
    assert run.wait(timeout=60) == 141
    assert run.stderr.read() == b""


def test_remote_lists_count_and_page_on_the_server(served, cli):
    local = served.local().call(CATALOG, "list-products", {})
    env = served.cli_env()
    paged = cli(*served.remote_args(), "--json", "products", "list", "--limit", "2", env=env)
    assert paged.exit_code == 0, paged.stderr
    assert paged.json()["total"] == local["total"] == len(local["products"])
    assert [p["sku"] for p in paged.json()["products"]] == [p["sku"] for p in local["products"][:2]]
    footer = cli(*served.remote_args(), "products", "list", "--limit", "2", env=env).stderr
    assert footer.strip() == f"2 of {local['total']} products — use --offset 2 for more"
    ids = cli(*served.remote_args(), "products", "list", "--quiet", "--offset", "1", env=env)
    assert ids.stdout.split() == [p["sku"] for p in local["products"][1:]]
