"""checkout batch invoice: validation before any write, --skip-invalid, --dry-run, re-runs,
reports, JSON Lines."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from checkout_cli.engine.schema import SCHEMA_VERSION
from checkout_cli.workflows.batch import COLUMNS, Journal, Order, StoreIdentity, scan
from tests.conftest import FIXTURES, dump, load_fixtures
from tests.engine_helpers import FLOW, prescription

ADDRESS = {
    "line1": "Prinsengracht 263",
    "postal_code": "1016 GV",
    "city": "Amsterdam",
    "country": "NL",
}


def row(ref: str, sku: str = "GIFT-CARD-25", quantity: Any = 1, **fields: Any) -> dict:
    """One order row; ``fields`` override (None: leave the field out)."""
    base = {
        "reference": ref,
        "product_sku": sku,
        "quantity": quantity,
        "email": f"{ref.lower()}@example.com",
        "name": f"Customer {ref}",
        **ADDRESS,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def write_csv(path: Path, rows: list[dict], extra_columns: tuple[str, ...] = ()) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *extra_columns])
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
    return path


def write_jsonl(path: Path, lines: list[dict | str]) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def orders(db: Path) -> list[tuple[str, str]]:
    """(order number, customer email) of every order in the store."""
    conn = sqlite3.connect(db)
    try:
        return [
            (number, json.loads(customer)["email"])
            for number, customer in conn.execute(
                "SELECT order_number, customer FROM orders ORDER BY id"
            )
        ]
    finally:
        conn.close()


def journals(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data").rglob("batches/*.db"))


# Line numbers: the header is line 1, so rows[i] is on line i + 2.
BAD_ROWS = [
    row("OK-1"),  # 2
    row("MISSING-NAME", name=None),  # 3
    row("BAD-EMAIL", email="not-an-email"),  # 4
    row("BAD-COUNTRY", country="XX"),  # 5
    row("ZERO-QTY", quantity=0),  # 6
    row("ABC-QTY", quantity="abc"),  # 7
    row("UNKNOWN-SKU", sku="NO-SUCH-SKU"),  # 8
    row("OK-1", sku="LENS-DAILY-30"),  # 9: OK-1 again, after other orders
    row("CONFLICT", sku="LENS-DAILY-30"),  # 10
    row("CONFLICT", email="someone-else@example.com"),  # 11
    row("OK-2", sku="LENS-MONTH-6", quantity=2),  # 12
    row("OK-3", quantity="3", shipping_cents="0"),  # 13
]
EXPECTED_ERRORS = [
    ":3: name: ",
    ":4: email: ",
    ":5: country: ",
    ":6: quantity: ",
    ":7: quantity: ",
    ":8: product_sku: ",
    ":9: reference: ",
    ":11: email: ",
]
INVALID = {
    "MISSING-NAME",
    "BAD-EMAIL",
    "BAD-COUNTRY",
    "ZERO-QTY",
    "ABC-QTY",
    "UNKNOWN-SKU",
    "OK-1",  # its second group makes the reference invalid as a whole
    "CONFLICT",
}


def test_every_bad_row_is_reported_by_line_and_field_and_nothing_is_written(
    backend, cli, db_path, tmp_path
):
    source = write_csv(tmp_path / "orders.csv", BAD_ROWS)
    before = dump(db_path)
    result = cli("batch", "invoice", str(source))
    assert result.exit_code == 4, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith(f"{source}:")]
    assert len(lines) == len(EXPECTED_ERRORS), result.stderr
    for line, expected in zip(lines, EXPECTED_ERRORS, strict=True):
        assert line.startswith(f"{source}{expected}"), (line, expected)
    messages = "\n".join(lines)
    assert "not-an-email" in messages and "'XX'" in messages and "NO-SUCH-SKU" in messages
    assert "is required" in lines[0]
    assert "line 10" in lines[7]  # the conflict names the order's first row
    assert "nothing was written" in result.stderr and "--skip-invalid" in result.stderr
    assert dump(db_path) == before
    assert journals(tmp_path) == []


def test_invalid_rows_as_json_error_object(backend, cli, tmp_path):
    source = write_csv(tmp_path / "orders.csv", [row("A", quantity=0)])
    result = cli("--json", "batch", "invoice", str(source))
    assert result.exit_code == 4
    error = json.loads(result.stderr.splitlines()[-1])["error_object"]
    assert error["code"] == "invalid_rows" and error["type"] == "validation"


def test_a_row_without_a_reference_is_never_invoiced(backend, cli, db_path, tmp_path):
    source = write_csv(
        tmp_path / "orders.csv",
        [row("A"), row("X", reference=None), row("B", reference="bad ref!")],
    )
    result = cli("batch", "invoice", str(source))
    assert result.exit_code == 4
    assert f"{source}:3: reference: is required" in result.stderr
    assert f"{source}:4: reference: " in result.stderr
    report = tmp_path / "report.json"
    result = cli(
        "--json", "batch", "invoice", str(source), "--skip-invalid", "--report", str(report)
    )
    assert result.exit_code == 4, result.stderr  # rows were skipped
    assert result.json()["counts"] == {
        "created": 1,
        "already_done": 0,
        "conflict": 0,
        "failed": 0,
        "skipped_invalid": 2,
    }
    assert [e for _, e in orders(db_path)] == ["a@example.com"]
    statuses = {r["reference"]: r["status"] for r in json.loads(report.read_text())}
    assert statuses["A"] == "created"
    assert sorted(v for k, v in statuses.items() if k != "A") == ["skipped_invalid"] * 2


def test_skip_invalid_invoices_the_rest_and_reports_the_skipped(backend, cli, db_path, tmp_path):
    source = write_csv(tmp_path / "orders.csv", BAD_ROWS)
    report = tmp_path / "report.csv"
    result = cli(
        "--json", "batch", "invoice", str(source), "--skip-invalid", "--report", str(report)
    )
    assert result.exit_code == 4, result.stderr  # rows were skipped
    assert len([x for x in result.stderr.splitlines() if x.startswith(f"{source}:")]) == len(
        EXPECTED_ERRORS
    )
    summary = result.json()
    assert summary["counts"]["created"] == 2
    assert summary["counts"]["failed"] == 0
    # OK-1 and CONFLICT come as two groups each in the file: every group is reported.
    assert summary["counts"]["skipped_invalid"] == len(INVALID) + 1
    with report.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [
            "reference",
            "status",
            "checkout_token",
            "order_number",
            "error",
        ]
        rows = list(reader)
    created = {r["reference"]: r for r in rows if r["status"] == "created"}
    assert set(created) == {"OK-2", "OK-3"}
    assert all(
        r["checkout_token"].startswith("chk_") and r["order_number"] for r in created.values()
    )
    skipped = {r["reference"] for r in rows if r["status"] == "skipped_invalid"}
    assert skipped == INVALID
    assert all(r["error"] and not r["order_number"] for r in rows if r["status"] != "created")
    assert sorted(e for _, e in orders(db_path)) == ["ok-2@example.com", "ok-3@example.com"]
    # The order carries the file's quantities and shipping.
    order = backend.call(
        "order-management", "get-order", {"order_id": created["OK-3"]["order_number"]}
    )
    assert [(i["product_sku"], i["quantity"]) for i in order["items"]] == [("GIFT-CARD-25", 3)]
    assert order["totals"]["shipping_cents"] == 0


def test_dry_run_writes_nothing(backend, cli, db_path, tmp_path):
    source = write_csv(tmp_path / "orders.csv", [row("A"), row("A", sku="CASE-TRAVEL"), row("B")])
    before = dump(db_path)
    result = cli("--json", "batch", "invoice", str(source), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {
        "dry_run": True,
        "orders": 2,
        "rows": 3,
        "valid_orders": 2,
        "invalid_orders": 0,
        "would": {
            "create": 2,
            "resume": 0,
            "already_done": 0,
            "conflict": 0,
            "skipped_invalid": 0,
        },
        "errors": [],
    }
    assert dump(db_path) == before
    assert journals(tmp_path) == []
    bad = write_csv(tmp_path / "bad.csv", [row("A"), row("B", quantity=0)])
    result = cli("--json", "batch", "invoice", str(bad), "--dry-run", "--skip-invalid")
    assert result.exit_code == 0
    assert result.json()["invalid_orders"] == 1
    assert result.json()["errors"][0]["line"] == 3
    assert dump(db_path) == before


def test_fixture_file_then_a_rerun_creates_nothing_new(backend, cli, db_path, tmp_path):
    source = FIXTURES / "batch_invoice.csv"
    first = cli("--json", "batch", "invoice", str(source), "--report", str(tmp_path / "r1.json"))
    assert first.exit_code == 0, first.stderr
    assert first.json()["counts"]["created"] == 3
    made = orders(db_path)
    assert len(made) == 3
    order = backend.call("order-management", "get-order", {"order_id": made[0][0]})
    assert sorted((i["product_sku"], i["quantity"]) for i in order["items"]) == [
        ("CASE-TRAVEL", 1),
        ("LENS-DAILY-30", 2),
    ]
    assert order["status"] == "pending" and order["payment_status"] == "unpaid"
    before = dump(db_path)
    again = cli("--json", "batch", "invoice", str(source), "--report", str(tmp_path / "r2.json"))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"] == {
        "created": 0,
        "already_done": 3,
        "conflict": 0,
        "failed": 0,
        "skipped_invalid": 0,
    }
    assert dump(db_path) == before
    first_report = json.loads((tmp_path / "r1.json").read_text())
    second_report = json.loads((tmp_path / "r2.json").read_text())
    assert [r["status"] for r in second_report] == ["already_done"] * 3
    assert [(r["reference"], r["checkout_token"], r["order_number"]) for r in first_report] == [
        (r["reference"], r["checkout_token"], r["order_number"]) for r in second_report
    ]
    assert set(first_report[0]) == {
        "reference",
        "status",
        "checkout_token",
        "order_number",
        "error",
    }


def test_the_journal_is_the_stores_however_db_is_spelled(backend, db_path, tmp_path, monkeypatch):
    source = write_csv(tmp_path / "orders.csv", [row("A"), row("B")])
    runner = CliRunner()
    first = runner.invoke(app, ["--db", str(db_path), "batch", "invoice", str(source)])
    assert first.exit_code == 0, first.stderr
    monkeypatch.chdir(db_path.parent)
    again = runner.invoke(app, ["--db", db_path.name, "--json", "batch", "invoice", str(source)])
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["already_done"] == 2
    assert len(orders(db_path)) == 2
    assert len(journals(tmp_path)) == 1


def test_a_failed_order_exits_non_zero_and_a_rerun_finishes_it(backend, cli, db_path, tmp_path):
    # The pre-check knows a prescription is required, not that a sphere of 99 is out of range:
    # the engine refuses it when the order is run.
    bad = json.dumps({"lens_prescription": prescription(right_sphere="99.00")})
    rows = [row("A"), row("RX", sku="LENS-TORIC-6", meta_json=bad)]
    source = write_csv(tmp_path / "orders.csv", rows, extra_columns=("meta_json",))
    report = tmp_path / "report.json"
    result = cli("--json", "batch", "invoice", str(source), "--report", str(report))
    assert result.exit_code == 4, result.stderr
    assert result.json()["counts"]["failed"] == 1
    failed = [r for r in json.loads(report.read_text()) if r["status"] == "failed"]
    assert [r["reference"] for r in failed] == ["RX"]
    assert "right_sphere" in failed[0]["error"]
    # Nothing half-made is left open: the failed order's checkout is cancelled, and named.
    token = failed[0]["checkout_token"]
    assert token and f"its checkout {token} was cancelled" in failed[0]["error"]
    assert backend.call(FLOW, "get-checkout-status", {"checkout_token": token})["status"] == (
        "cancelled"
    )
    rows[1]["meta_json"] = json.dumps({"lens_prescription": prescription()})
    write_csv(source, rows, extra_columns=("meta_json",))
    again = cli("--json", "batch", "invoice", str(source), "--report", str(report))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"] == {
        "created": 1,
        "already_done": 1,
        "conflict": 0,
        "failed": 0,
        "skipped_invalid": 0,
    }
    assert len(orders(db_path)) == 2
    # The re-run went on with the cart made the first time, in a new checkout.
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM checkouts").fetchone()[0] == 3
        assert conn.execute("SELECT COUNT(*) FROM carts").fetchone()[0] == 2
    finally:
        conn.close()
    (made,) = backend.call("order-management", "list-orders", {"reference": "RX"})["orders"]
    assert made["items"][0]["meta"]["lens_prescription"]["right_sphere"] == "-2.25"


def test_jsonl_input(backend, cli, db_path, tmp_path):
    source = write_jsonl(
        tmp_path / "orders.jsonl",
        [
            row("J-1", quantity=2, shipping_cents=0),
            row("J-1", sku="CASE-TRAVEL"),
            row("J-2", sku="LENS-MONTH-6", phone="+31 20 555 0100", company="Optiek BV"),
        ],
    )
    report = tmp_path / "report.csv"
    result = cli("--json", "batch", "invoice", str(source), "--report", str(report))
    assert result.exit_code == 0, result.stderr
    assert result.json()["counts"]["created"] == 2
    with report.open(newline="") as handle:
        numbers = {r["reference"]: r["order_number"] for r in csv.DictReader(handle)}
    first = backend.call("order-management", "get-order", {"order_id": numbers["J-1"]})
    assert sorted((i["product_sku"], i["quantity"]) for i in first["items"]) == [
        ("CASE-TRAVEL", 1),
        ("GIFT-CARD-25", 2),
    ]
    second = backend.call("order-management", "get-order", {"order_id": numbers["J-2"]})
    assert second["customer"]["company"] == "Optiek BV"
    assert second["customer"]["phone"] == "+31 20 555 0100"


def test_jsonl_bad_lines_are_reported(backend, cli, db_path, tmp_path):
    source = write_jsonl(
        tmp_path / "orders.jsonl",
        [
            row("J-1"),  # 1
            '{"reference": "J-2", "product_sku": ',  # 2: not JSON
            "[1, 2]",  # 3: not an object
            row("J-3", colour="blue"),  # 4: unknown field
            "",  # 5: blank lines are fine
            row("J-4", email="nope"),  # 6
        ],
    )
    before = dump(db_path)
    result = cli("batch", "invoice", str(source))
    assert result.exit_code == 4
    lines = [x for x in result.stderr.splitlines() if x.startswith(f"{source}:")]
    assert [x.split(": ")[0:2] for x in lines] == [
        [f"{source}:2", "line"],
        [f"{source}:3", "line"],
        [f"{source}:4", "colour"],
        [f"{source}:6", "email"],
    ]
    assert "not valid JSON" in lines[0]
    assert dump(db_path) == before
    result = cli("--json", "batch", "invoice", str(source), "--skip-invalid")
    assert result.exit_code == 4, result.stderr  # rows were skipped
    assert result.json()["counts"]["created"] == 1
    assert [e for _, e in orders(db_path)] == ["j-1@example.com"]


def test_unreadable_or_unknown_files_are_usage_errors(backend, cli, tmp_path):
    assert cli("batch", "invoice", str(tmp_path / "missing.csv")).exit_code == 2
    other = tmp_path / "orders.txt"
    other.write_text("reference\n")
    result = cli("batch", "invoice", str(other))
    assert result.exit_code == 2
    assert ".csv or .jsonl" in result.stderr


# -- the files a run writes never overwrite the ones it must keep --------------------------------


def _link(kind: str, source: Path, tmp_path: Path) -> Path:
    if kind == "same path":
        return source
    link = tmp_path / f"{kind.replace(' ', '-')}.csv"
    if kind == "symlink":
        link.symlink_to(source)
    else:
        link.hardlink_to(source)
    return link


@pytest.mark.parametrize("kind", ["same path", "symlink", "hard link"])
def test_a_report_that_is_the_input_file_is_refused_and_the_input_kept(
    backend, cli, db_path, tmp_path, kind
):
    source = write_csv(tmp_path / "orders.csv", [row("A"), row("B")])
    original = source.read_bytes()
    before = dump(db_path)
    result = cli("batch", "invoice", str(source), "--report", str(_link(kind, source, tmp_path)))
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "is the input file" in result.stderr
    assert "refusing to overwrite it" in result.stderr
    assert source.read_bytes() == original
    assert dump(db_path) == before
    assert journals(tmp_path) == []


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        (
            ["--journal", "{tmp}/j.db", "--report", "{tmp}/j.db"],
            "--report {tmp}/j.db is the journal",
        ),
        (["--journal", "{tmp}/orders.csv"], "--journal {tmp}/orders.csv is the input file"),
        (["--report", "{db}"], "--report {db} is the store"),
        (["--report", "{db}-wal"], "--report {db}-wal is the store"),
        (["--journal", "{db}"], "--journal {db} is the store"),
    ],
)
def test_a_report_or_journal_over_the_journal_or_the_store_is_refused(
    backend, cli, db_path, tmp_path, flags, refused
):
    source = write_csv(tmp_path / "orders.csv", [row("A")])
    original = source.read_bytes()
    before = dump(db_path)
    fill = {"tmp": tmp_path, "db": db_path}
    result = cli("batch", "invoice", str(source), *(f.format(**fill) for f in flags))
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"error: {refused.format(**fill)} (")
    assert source.read_bytes() == original
    assert dump(db_path) == before
    assert not (tmp_path / "j.db").exists() and journals(tmp_path) == []


# -- the store is the truth: the journal is bound to it and checked against it -------------------


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a live store (SQLite's online backup), as a backup tool makes."""
    target.unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def restore_store(backup: Path, db: Path) -> None:
    """Put a backup in the store's place, as an operator would (the store is not in use)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    copy_store(backup, db)


def orders_per_email(db: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, email in orders(db):
        counts[email] = counts.get(email, 0) + 1
    return counts


def violations(db: Path) -> list[dict]:
    from checkout_cli.engine.invariants import check_invariants

    conn = sqlite3.connect(db)
    try:
        return [v.as_dict() for v in check_invariants(conn)]
    finally:
        conn.close()


def test_a_rerun_after_restoring_an_older_backup_makes_exactly_the_lost_orders(
    backend, cli, db_path, tmp_path
):
    source = tmp_path / "orders.csv"
    first_half = [row(f"R-{i}", quantity=1 + i % 2) for i in range(3)]
    write_csv(source, first_half)
    assert cli("batch", "invoice", str(source)).exit_code == 0
    backup = tmp_path / "backup.db"
    copy_store(db_path, backup)  # taken mid-way: 3 of the 6 orders are in it
    everything = [*first_half, *(row(f"R-{i}", sku="CASE-TRAVEL") for i in range(3, 6))]
    write_csv(source, everything)  # the same file, grown: the same journal
    result = cli("--json", "batch", "invoice", str(source))
    assert result.json()["counts"]["created"] == 3
    numbers_before = {n for n, _ in orders(db_path)}
    backend.close()
    restore_store(backup, db_path)

    report = tmp_path / "report.json"
    again = cli("--json", "batch", "invoice", str(source), "--report", str(report))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"] == {
        "created": 3,
        "already_done": 3,
        "conflict": 0,
        "failed": 0,
        "skipped_invalid": 0,
    }
    assert again.json()["remade"] == 3
    assert "3 order(s) the journal had recorded were not in this store" in again.stderr
    statuses = {r["reference"]: r["status"] for r in json.loads(report.read_text())}
    assert statuses == {f"R-{i}": "already_done" if i < 3 else "created" for i in range(6)}
    assert orders_per_email(db_path) == {f"r-{i}@example.com": 1 for i in range(6)}
    assert {n for n, _ in orders(db_path)} == numbers_before  # the counter was restored too
    assert violations(db_path) == []
    # And the journal now agrees with the store: a further run makes nothing.
    settled = cli("--json", "batch", "invoice", str(source))
    assert settled.json()["counts"]["already_done"] == 6 and settled.json()["remade"] == 0


def test_a_journal_is_refused_by_a_store_that_replaced_its_own(backend, cli, db_path, tmp_path):
    source = write_csv(tmp_path / "orders.csv", [row("A"), row("B")])
    assert cli("batch", "invoice", str(source)).exit_code == 0
    [journal] = journals(tmp_path)
    backend.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    fresh = LocalBackend(db_path, actor="test")  # a new store at the same path
    load_fixtures(fresh)
    fresh.close()
    before = dump(db_path)

    refused = cli("--json", "batch", "invoice", str(source))
    assert refused.exit_code == 4, refused.stderr
    error = json.loads(refused.stderr.splitlines()[-1])["error_object"]
    assert error["code"] == "journal_of_another_store"
    assert str(journal) in error["message"] and "move" in error["recovery"]
    assert dump(db_path) == before

    journal.rename(journal.with_suffix(".old"))  # the operator's call: start over here
    again = cli("--json", "batch", "invoice", str(source))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"]["created"] == 2
    assert orders_per_email(db_path) == {"a@example.com": 1, "b@example.com": 1}


def test_a_journal_from_before_store_binding_is_checked_against_the_store_and_bound(
    backend, cli, db_path, tmp_path
):
    source = write_csv(tmp_path / "orders.csv", [row("A")])
    assert cli("batch", "invoice", str(source)).exit_code == 0
    write_csv(source, [row("A"), row("B")])
    [journal] = journals(tmp_path)
    conn = sqlite3.connect(journal)
    with conn:  # as an earlier release left it: no identity, and B "done" in an order lost
        conn.execute("DROP TABLE journal_info")
        conn.execute("INSERT INTO refs VALUES ('B', 'cart_gone', 'chk_gone', '2020-999999')")
    conn.close()
    result = cli("--json", "batch", "invoice", str(source))
    assert result.exit_code == 0, result.stderr
    assert "was bound to no store" in result.stderr
    assert result.json()["counts"]["already_done"] == 1
    assert result.json()["counts"]["created"] == 1 and result.json()["remade"] == 1
    assert orders_per_email(db_path) == {"a@example.com": 1, "b@example.com": 1}
    conn = sqlite3.connect(journal)
    try:
        bound = dict(conn.execute("SELECT key, value FROM journal_info"))
    finally:
        conn.close()
    assert bound["store_id"] == backend.call("checkout-admin", "get-store")["store_id"]


def bound_journal(path: Path, backend: LocalBackend) -> Journal:
    journal = Journal(path)
    journal.bind(StoreIdentity(backend.call("checkout-admin", "get-store")["store_id"], "test"))
    return journal


def test_a_restored_store_has_its_open_checkout_completed_and_a_partial_cart_replaced(
    backend, cli, db_path, tmp_path
):
    """The backup was taken while PAID-LATER's checkout waited for completion and while
    HALF-CART's cart had one of its two lines; the journal went on to their orders."""
    source = write_csv(
        tmp_path / "orders.csv",
        [row("PAID-LATER"), row("HALF-CART"), row("HALF-CART", sku="CASE-TRAVEL", quantity=2)],
    )
    orders_in_file = {o.reference: o for o in scan(source, lambda sku: {})}
    journal = bound_journal(tmp_path / "journal.db", backend)
    flow = "checkout-flow"

    paid = orders_in_file["PAID-LATER"]
    cart = backend.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    checkout = backend.call(flow, "initiate-checkout", {"cart_token": cart["cart_token"]})
    token = checkout["checkout_token"]
    backend.call(flow, "set-customer", {"checkout_token": token, **paid.customer_body()})
    backend.call(flow, "create-payment", {"checkout_token": token, "provider": "invoice"})
    half = backend.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    backup = tmp_path / "backup.db"
    copy_store(db_path, backup)
    done = backend.call(flow, "complete-checkout", {"checkout_token": token})
    journal.record(
        "PAID-LATER",
        cart_token=cart["cart_token"],
        checkout_token=token,
        order_number=done["order"]["order_number"],
    )
    backend.call(
        "shopping-cart",
        "add-item",
        {"cart_token": half["cart_token"], "product_sku": "CASE-TRAVEL", "quantity": 2},
    )
    journal.record("HALF-CART", cart_token=half["cart_token"])
    journal.close()
    backend.close()
    restore_store(backup, db_path)

    result = cli(
        "--json", "batch", "invoice", str(source), "--journal", str(tmp_path / "journal.db")
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["counts"]["created"] == 2
    assert result.json()["remade"] == 1  # PAID-LATER; HALF-CART had no order in the journal
    store = LocalBackend(db_path, actor="test")
    try:
        made = {
            o["customer"]["email"]: o
            for o in store.call("order-management", "list-orders", {})["orders"]
        }
        assert sorted(made) == ["half-cart@example.com", "paid-later@example.com"]
        # PAID-LATER: the checkout the store had was completed; no second checkout.
        assert made["paid-later@example.com"]["checkout_token"] == token
        # HALF-CART: not the cart the store had half of, but one with both lines.
        assert sorted(
            (i["product_sku"], i["quantity"]) for i in made["half-cart@example.com"]["items"]
        ) == [("CASE-TRAVEL", 2), ("GIFT-CARD-25", 1)]
        assert (
            store.call("shopping-cart", "get-cart", {"cart_token": half["cart_token"]})["status"]
            == "active"
        )
    finally:
        store.close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM checkouts").fetchone()[0] == 2
    finally:
        conn.close()
    assert violations(db_path) == []


def test_a_cart_already_ordered_in_a_checkout_the_journal_lacks_is_not_invoiced_again(
    backend, cli, db_path, tmp_path
):
    source = write_csv(tmp_path / "orders.csv", [row("A")])
    [order] = [o for o in scan(source, lambda sku: {}) if isinstance(o, Order)]
    cart = backend.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    flow_body = {"checkout_token": token}
    backend.call("checkout-flow", "set-customer", {**flow_body, **order.customer_body()})
    backend.call("checkout-flow", "create-payment", {**flow_body, "provider": "invoice"})
    backend.call("checkout-flow", "complete-checkout", flow_body)
    journal = bound_journal(tmp_path / "journal.db", backend)
    journal.record("A", cart_token=cart["cart_token"])  # an older journal than the store
    journal.close()
    result = cli(
        "--json", "batch", "invoice", str(source), "--journal", str(tmp_path / "journal.db")
    )
    assert result.exit_code == 4
    assert result.json()["counts"]["failed"] == 1
    assert orders_per_email(db_path) == {"a@example.com": 1}


def test_get_store_names_the_store(backend, cli, db_path, tmp_path):
    store = backend.call("checkout-admin", "get-store")
    assert store == {
        "project_id": "local",
        "store_id": backend.engine.store_id,
        "schema_version": SCHEMA_VERSION,
    }
    assert store["store_id"].startswith("store_")
    assert cli("--json", "call", "checkout-admin", "get-store").json() == store
    copy_store(db_path, tmp_path / "copy.db")  # a backup is the same store
    copy = LocalBackend(tmp_path / "copy.db")
    try:
        assert copy.call("checkout-admin", "get-store")["store_id"] == store["store_id"]
    finally:
        copy.close()
    other = LocalBackend(tmp_path / "other.db")
    try:
        assert other.call("checkout-admin", "get-store")["store_id"] != store["store_id"]
    finally:
        other.close()
