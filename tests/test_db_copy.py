"""checkout db copy: a shop of thousands of orders (batch invoicing and the lifecycle after the
order) copied SQLite → PostgreSQL → SQLite and compared record by record; each copy a working
shop (its numbering goes on, its vault opens); every refusal with nothing written."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from checkout_cli.config import StoreTarget
from checkout_cli.engine import store_copy, vault
from checkout_cli.engine.stores import open_store
from checkout_cli.workflows.batch import COLUMNS
from tests.conftest import WATCH, load_fixtures, ready_checkout
from tests.engine_helpers import ADMIN, CART, ORDERS, assert_invariants, complete, invoice
from tests.store_rows import dump, query

BATCH_ORDERS = 1800
FLOW_ORDERS = 200
VAULT_VALUE = WATCH.secret("sk_test_51Copy0Stripe0Secret0Key0abcdefghijklmnop")
ADDRESS = {"line1": "Prinsengracht 263", "postal_code": "1016 GV", "city": "Amsterdam"}


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def one_line_error(result: Any, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def tables(target: StoreTarget) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, in key order (PostgreSQL's own
    ``schema_migrations`` aside: SQLite keeps its version in the file's header)."""
    names = (
        [
            row[0]
            for row in query(
                target,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'",
            )
        ]
        if not str(target).startswith("postgresql")
        else [
            row[0]
            for row in query(
                target,
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'schema_migrations'",
            )
        ]
    )
    return {name: sorted(query(target, f'SELECT * FROM "{name}"'), key=repr) for name in names}


def shop_with_history(tmp_path: Path) -> Path:
    """A SQLite shop: orders through the engine and their lifecycle (paid in part and in full,
    shipped, refunded, cancelled), a merged cart, a vault secret, then a batch of invoices."""
    source = tmp_path / "shop.db"
    backend = LocalBackend(source, actor="test")
    try:
        load_fixtures(backend, tmp_path / "outbox")
        backend.call(ADMIN, "set-vault", {"name": "stripe_secret_key", "value": VAULT_VALUE})
        backend.call(
            "product-catalog", "set-stock", {"sku": "LENS-DAILY-30", "stock": 10 * FLOW_ORDERS}
        )
        visitor = backend.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
        customer = backend.call(CART, "add-item", {"product_sku": "CASE-TRAVEL", "quantity": 1})
        backend.call(
            CART,
            "merge-cart",
            {
                "source_cart_token": visitor["cart_token"],
                "target_cart_token": customer["cart_token"],
            },
        )
        for n in range(FLOW_ORDERS):
            token = ready_checkout(backend, [("LENS-DAILY-30", 1 + n % 3), ("GIFT-CARD-25", 1)])
            invoice(backend, token)
            order = complete(backend, token)["order"]
            number = order["order_number"]
            due = backend.call(ORDERS, "get-order", {"order_id": number})["balance_due_cents"]
            step = n % 5
            if step == 1:  # paid in part
                record(backend, number, due // 2, n)
            if step in (2, 3, 4):  # paid in full
                record(backend, number, due, n)
            if step == 3:
                backend.call(ORDERS, "fulfil-order", {"order_id": number, "carrier": "PostNL"})
            if step == 4:
                backend.call(ORDERS, "refund-order", {"order_id": number, "amount_cents": 500})
            if step == 0 and n % 10 == 0:
                backend.call(ORDERS, "cancel-order", {"order_id": number, "reason": "by phone"})
    finally:
        backend.close()
    invoices = tmp_path / "invoices.csv"
    with invoices.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for n in range(BATCH_ORDERS):
            writer.writerow(
                {
                    "reference": f"INV-{n:05d}",
                    "product_sku": "GIFT-CARD-25",
                    "quantity": 1 + n % 4,
                    "email": f"buyer{n}@example.com",
                    "name": f"Buyer {n}",
                    "country": "NL",
                    **ADDRESS,
                }
            )
    result = run("--db", str(source), "batch", "invoice", str(invoices))
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return source


def record(backend: Any, number: str, amount: int, n: int) -> None:
    body = {"order_id": number, "amount_cents": amount, "method": "bank_transfer"}
    backend.call(ORDERS, "record-payment", {**body, "reference": f"BANK-{n}"})


def copy(source: StoreTarget, target: StoreTarget, *more: str) -> dict[str, Any]:
    result = run("--json", "db", "copy", "--from", str(source), "--to", str(target), *more)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def get_orders(target: StoreTarget) -> list[dict[str, Any]]:
    backend = LocalBackend(target, actor="test")
    try:
        numbers = [row[0] for row in query(target, "SELECT order_number FROM orders ORDER BY id")]
        return [backend.call(ORDERS, "get-order", {"order_id": n}) for n in numbers]
    finally:
        backend.close()


def test_round_trip_sqlite_postgresql_sqlite_record_by_record(tmp_path: Path, pg_url: str) -> None:
    source = shop_with_history(tmp_path)
    original = tables(source)
    orders = len(original["orders"])
    assert orders == BATCH_ORDERS + FLOW_ORDERS
    assert any(row for row in original["carts"] if row[-1] is not None)  # merged_into set
    assert original["refunds"] and original["fulfilments"] and original["order_payments"]

    there = copy(source, pg_url)
    assert there["orders_compared"] == orders
    assert there["doctor_findings"] == [] and there["replaced"] is False
    assert there["tables"]["orders"] == orders
    assert tables(pg_url) == original

    back = tmp_path / "back.db"
    again = copy(pg_url, back)
    assert again["orders_compared"] == orders
    assert tables(back) == original
    assert get_orders(back) == get_orders(source)
    assert_invariants(back)

    # Each copy is a working shop: numbering goes on, new rows get new ids, the vault opens.
    for target in (pg_url, back):
        backend = LocalBackend(target, actor="test")
        try:
            token = ready_checkout(backend, [("GIFT-CARD-25", 1)])
            invoice(backend, token)
            number = complete(backend, token)["order"]["order_number"]
            store = open_store(target)
            try:
                assert vault.secret(store.conn, "stripe_secret_key") == VAULT_VALUE  # type: ignore[arg-type]
            finally:
                store.close()
        finally:
            backend.close()
        year, last = max(row[2] for row in original["orders"]).split("-")
        assert number == f"{year}-{int(last) + 1:06d}"
        assert_invariants(target)


def test_a_forced_copy_replaces_a_shop_and_keeps_the_numbering_of_the_source(
    tmp_path: Path, pg_url: str
) -> None:
    small, big = tmp_path / "small.db", tmp_path / "big.db"
    for path, count in ((small, 1), (big, 3)):
        backend = LocalBackend(path, actor="test")
        load_fixtures(backend, tmp_path / "outbox")
        for _ in range(count):
            token = ready_checkout(backend, [("GIFT-CARD-25", 1)])
            invoice(backend, token)
            complete(backend, token)
        backend.close()
    copy(big, pg_url)
    before = dump(pg_url)
    refused = run("db", "copy", "--from", str(small), "--to", pg_url)
    line = one_line_error(refused, 4)
    assert "already holds a shop" in line and "--force" in line
    assert dump(pg_url) == before

    replaced = copy(small, pg_url, "--force")
    assert replaced["replaced"] is True
    assert tables(pg_url) == tables(small)
    # The big shop's counter sequence went with it: the next number follows the small shop's.
    backend = LocalBackend(pg_url, actor="test")
    token = ready_checkout(backend, [("GIFT-CARD-25", 1)])
    invoice(backend, token)
    assert complete(backend, token)["order"]["order_number"].endswith("-000002")
    backend.close()


@pytest.fixture
def small_shop(tmp_path: Path) -> Path:
    return make_small_shop(tmp_path)


def make_small_shop(tmp_path: Path) -> Path:
    """A shop of one invoiced order."""
    path = tmp_path / "shop.db"
    backend = LocalBackend(path, actor="test")
    load_fixtures(backend, tmp_path / "outbox")
    token = ready_checkout(backend, [("GIFT-CARD-25", 1)])
    invoice(backend, token)
    complete(backend, token)
    backend.close()
    return path


def test_refusals_write_nothing(tmp_path: Path, small_shop: Path) -> None:
    before = dump(small_shop)
    same = one_line_error(run("db", "copy", "--from", str(small_shop), "--to", str(small_shop)), 2)
    assert "the same store" in same
    link = tmp_path / "link.db"
    link.symlink_to(small_shop)
    one_line_error(run("db", "copy", "--from", str(small_shop), "--to", str(link)), 2)
    missing = one_line_error(
        run("db", "copy", "--from", str(tmp_path / "nope.db"), "--to", str(tmp_path / "x.db")), 3
    )
    assert "no store at" in missing and "--from" in missing
    assert not (tmp_path / "x.db").exists()
    folder = one_line_error(run("db", "copy", "--from", str(small_shop), "--to", str(tmp_path)), 2)
    assert "is a folder" in folder
    other = tmp_path / "notes.txt"
    other.write_text("not a store\n")
    one_line_error(run("db", "copy", "--from", str(small_shop), "--to", str(other)), 6)
    assert other.read_text() == "not a store\n"
    remote = run(
        "--remote", "http://127.0.0.1:9", "db", "copy", "--from", str(small_shop), "--to", "x.db"
    )
    one_line_error(remote, 2)
    assert dump(small_shop) == before


def test_an_unreachable_database_is_exit_6_without_its_password(small_shop: Path) -> None:
    url = "postgresql://shop:hunter2-copy@127.0.0.1:1/shop"
    WATCH.secret("hunter2-copy")
    line = one_line_error(run("db", "copy", "--from", str(small_shop), "--to", url), 6)
    assert "cannot be reached" in line and "hunter2" not in line
    line = one_line_error(run("db", "copy", "--from", url, "--to", "x.db"), 6)
    assert "hunter2" not in line


def test_a_copy_that_fails_its_check_leaves_the_target_as_it_was(
    tmp_path: Path, small_shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "copy.db"
    copy(small_shop, target)
    before = dump(target)
    findings = iter([["from the source"], []])  # the target's check finds what the source lacks
    monkeypatch.setattr(store_copy, "_findings", lambda conn: next(findings))
    result = CliRunner().invoke(
        app, ["db", "copy", "--from", str(small_shop), "--to", str(target), "--force"]
    )
    line = one_line_error(result, 1)
    assert "rolled back" in line
    assert dump(target) == before


ORDER_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from checkout_cli.backends.local import LocalBackend
    from tests.conftest import CUSTOMER

    target, stop = sys.argv[1], Path(sys.argv[2])
    backend = LocalBackend(Path(target) if "://" not in target else target, actor="writer")
    n = 0
    while not stop.exists():
        cart = backend.call(
            "shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1}
        )
        token = backend.call(
            "checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]}
        )["checkout_token"]
        flow = lambda name, **body: backend.call(
            "checkout-flow", name, {"checkout_token": token, **body}
        )
        flow("set-customer", **CUSTOMER)
        flow("create-payment", provider="invoice")
        flow("complete-checkout")
        n += 1
        print(n, flush=True)
    backend.close()
    """
)


@pytest.mark.parametrize("source_kind", ["sqlite", "postgres"])
def test_a_store_taking_orders_meanwhile_is_copied_as_it_was_at_one_moment(
    tmp_path: Path, source_kind: str, pg_new_database: Any
) -> None:
    source: StoreTarget = tmp_path / "shop.db" if source_kind == "sqlite" else pg_new_database()
    backend = LocalBackend(source, actor="test")
    load_fixtures(backend, tmp_path / "outbox")
    backend.close()
    target: StoreTarget = pg_new_database() if source_kind == "sqlite" else tmp_path / "copy.db"
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", ORDER_WRITER, str(source), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert writer.stdout is not None
        for _ in range(5):  # a few orders in before the copy starts
            writer.stdout.readline()
        copied = copy(source, target)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    orders = copied["orders_compared"]
    assert orders >= 5 and copied["doctor_findings"] == []
    assert int(out.split()[-1]) > orders  # the source took orders after the snapshot
    # One moment: the first n orders whole (numbers without a hole, each with its line and
    # its one email), nothing of the orders after it.
    numbers = [row[0] for row in query(target, "SELECT order_number FROM orders ORDER BY id")]
    assert [int(n.split("-")[1]) for n in numbers] == list(range(1, orders + 1))
    assert query(target, "SELECT count(*) FROM order_lines")[0][0] == orders
    assert query(target, "SELECT count(*) FROM outbox")[0][0] == orders
    assert_invariants(target)
