"""checkout batch invoice: the store, through the order's external reference, decides that a
reference is done — whatever file path, journal or machine the run comes from."""

from __future__ import annotations

import json
import shutil

from tests.conftest import FIXTURES, dump
from tests.test_batch import orders, row, write_csv

FIXTURE = FIXTURES / "batch_invoice.csv"


def invoice(cli, source, *args):
    return cli("--json", "batch", "invoice", str(source), *args)


def test_a_copy_of_the_file_makes_no_second_order(backend, cli, db_path, tmp_path):
    assert invoice(cli, FIXTURE).exit_code == 0
    before = dump(db_path)
    copy = shutil.copy(FIXTURE, tmp_path / "copy.csv")
    again = invoice(cli, copy, "--report", str(tmp_path / "r.json"))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"]["already_done"] == 3
    assert again.json()["counts"]["created"] == 0
    assert dump(db_path) == before
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["order_number"] for r in report] == [n for n, _ in orders(db_path)]


def test_another_journal_makes_no_second_order(backend, cli, db_path, tmp_path):
    # A run from another machine has another data dir, so another journal.
    assert invoice(cli, FIXTURE, "--journal", str(tmp_path / "a.db")).exit_code == 0
    before = dump(db_path)
    again = invoice(cli, FIXTURE, "--journal", str(tmp_path / "b.db"))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"]["already_done"] == 3
    assert dump(db_path) == before


def test_a_changed_row_for_a_done_reference_is_a_conflict(backend, cli, db_path, tmp_path):
    assert invoice(cli, write_csv(tmp_path / "a.csv", [row("R-1"), row("R-2")])).exit_code == 0
    before = dump(db_path)
    changed = write_csv(tmp_path / "b.csv", [row("R-1", quantity=2), row("R-2")])
    result = invoice(cli, changed, "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 4, result.stderr
    assert result.json()["counts"]["conflict"] == 1
    assert result.json()["counts"]["already_done"] == 1
    report = {r["reference"]: r for r in json.loads((tmp_path / "r.json").read_text())}
    assert report["R-1"]["status"] == "conflict"
    assert "items" in report["R-1"]["error"] and report["R-1"]["order_number"]
    assert dump(db_path) == before


def test_a_changed_customer_is_a_conflict_too(backend, cli, tmp_path):
    assert invoice(cli, write_csv(tmp_path / "a.csv", [row("R-1")])).exit_code == 0
    changed = write_csv(tmp_path / "b.csv", [row("R-1", email="other@example.com")])
    result = invoice(cli, changed)
    assert result.exit_code == 4
    assert result.json()["counts"]["conflict"] == 1


def test_the_reference_is_on_the_order_shown_and_searchable(backend, cli, db_path):
    assert invoice(cli, FIXTURE).exit_code == 0
    found = cli("--json", "orders", "list", "--reference", "INV-2026-0002")
    assert found.exit_code == 0, found.stderr
    (order,) = found.json()["orders"]
    assert order["external_reference"] == "INV-2026-0002"
    assert order["customer"]["email"] == "jan@example.com"
    shown = cli("orders", "show", order["order_number"])
    assert "reference INV-2026-0002" in shown.stdout


def test_a_run_left_open_completes_into_nothing_when_another_made_the_order(
    backend, cli, db_path, tmp_path
):
    # Run A got its checkout opened and stopped; run B (a copy of the file) made the order.
    # A's resume finds the order by reference and makes none of its own.
    source = write_csv(tmp_path / "a.csv", [row("R-1")])
    journal = tmp_path / "a.db"
    cart = backend.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    co = backend.call(
        "checkout-flow",
        "initiate-checkout",
        {"cart_token": cart["cart_token"], "external_reference": "R-1"},
    )
    from checkout_cli.workflows.batch import Journal

    j = Journal(journal)
    j.record("R-1", cart_token=cart["cart_token"], checkout_token=co["checkout_token"])
    j.close()
    assert invoice(cli, shutil.copy(source, tmp_path / "b.csv")).exit_code == 0
    again = invoice(cli, source, "--journal", str(journal))
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"]["already_done"] == 1
    assert len(orders(db_path)) == 1
