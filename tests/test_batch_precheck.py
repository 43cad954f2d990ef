"""checkout batch invoice: the pre-check catches what would surely fail (required line meta,
stock the file itself exhausts), and --dry-run says what a real run would do."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES, dump
from tests.engine_helpers import prescription
from tests.test_batch import journals, orders, row, write_csv


def invoice(cli, source, *args):
    return cli("--json", "batch", "invoice", str(source), *args)


def test_required_line_meta_missing_is_a_row_error_and_nothing_is_written(
    backend, cli, db_path, tmp_path
):
    source = write_csv(tmp_path / "o.csv", [row("A"), row("RX", sku="LENS-TORIC-6")])
    before = dump(db_path)
    result = invoice(cli, source)
    assert result.exit_code == 4
    assert f"{source}:3: meta.lens_prescription: LENS-TORIC-6 needs lens_prescription" in (
        result.stderr
    )
    assert dump(db_path) == before


def test_meta_for_a_product_that_takes_none_is_a_row_error(backend, cli, tmp_path):
    columns = ("meta.engraving.text",)
    source = write_csv(tmp_path / "o.csv", [row("A", **{columns[0]: "Hi"})], columns)
    result = invoice(cli, source)
    assert result.exit_code == 4
    assert f"{source}:2: meta.engraving: GIFT-CARD-25 does not take engraving" in result.stderr


def test_meta_columns_reach_the_order_line(backend, cli, db_path, tmp_path):
    values = prescription()
    columns = tuple(f"meta.lens_prescription.{k}" for k in values)
    fields = {f"meta.lens_prescription.{k}": v for k, v in values.items()}
    source = write_csv(tmp_path / "o.csv", [row("RX", sku="LENS-TORIC-6", **fields)], columns)
    result = invoice(cli, source)
    assert result.exit_code == 0, result.stderr
    (order,) = backend.call("order-management", "list-orders", {"reference": "RX"})["orders"]
    stored = order["items"][0]["meta"]["lens_prescription"]
    assert stored["right_sphere"] == "-2.25" and stored["right_axis"] == 170


def test_stock_the_file_exhausts_is_caught_before_anything_is_written(
    backend, cli, db_path, tmp_path
):
    # LENS-MONTH-6 has 40 in stock: 30 + 20 is more than the shop has.
    rows = [row("A", sku="LENS-MONTH-6", quantity=30), row("B", sku="LENS-MONTH-6", quantity=20)]
    source = write_csv(tmp_path / "o.csv", rows)
    before = dump(db_path)
    result = invoice(cli, source)
    assert result.exit_code == 4
    assert f"{source}:3: quantity: LENS-MONTH-6: the file's orders need 50" in result.stderr
    assert "40 in stock" in result.stderr
    assert dump(db_path) == before
    skipped = invoice(cli, source, "--skip-invalid")
    assert skipped.json()["counts"]["created"] == 1
    assert skipped.json()["counts"]["skipped_invalid"] == 1
    assert len(orders(db_path)) == 1


def test_a_rerun_counts_stock_only_for_orders_not_yet_made(backend, cli, db_path, tmp_path):
    source = write_csv(tmp_path / "o.csv", [row("A", sku="LENS-MONTH-6", quantity=30)])
    assert invoice(cli, source).exit_code == 0  # 10 left
    again = invoice(cli, source)
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"]["already_done"] == 1


def test_backorder_products_are_not_limited(backend, cli, tmp_path):
    source = write_csv(tmp_path / "o.csv", [row("A", sku="CASE-TRAVEL", quantity=5)])
    assert invoice(cli, source).exit_code == 0


def test_dry_run_on_a_finished_file_says_nothing_would_be_made(backend, cli, db_path, tmp_path):
    source = FIXTURES / "batch_invoice.csv"
    assert invoice(cli, source).exit_code == 0
    before = dump(db_path)
    journal_before = [p.read_bytes() for p in journals(tmp_path)]
    result = invoice(cli, source, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.json()["would"] == {
        "create": 0,
        "resume": 0,
        "already_done": 3,
        "conflict": 0,
        "skipped_invalid": 0,
    }
    assert dump(db_path) == before
    assert [p.read_bytes() for p in journals(tmp_path)] == journal_before
    text = cli("batch", "invoice", str(source), "--dry-run")
    assert "create 0 order(s)" in text.stderr and "find 3 already done" in text.stderr


def test_dry_run_reads_the_journal_for_orders_under_way(backend, cli, tmp_path):
    # A's checkout was opened and the run stopped (a failure at completion stands for it).
    bad = json.dumps({"lens_prescription": prescription(right_sphere="99.00")})
    rows = [row("A", sku="LENS-TORIC-6", meta_json=bad), row("B")]
    source = write_csv(tmp_path / "o.csv", rows, extra_columns=("meta_json",))
    assert invoice(cli, source).exit_code == 4
    result = invoice(cli, source, "--dry-run")
    assert result.json()["would"]["resume"] == 1
    assert result.json()["would"]["already_done"] == 1
