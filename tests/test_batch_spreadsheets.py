"""checkout batch invoice reads files as spreadsheets save them: a UTF-8 BOM, `;` as the
separator, CRLF line ends; a wrong header is one error about the header."""

from __future__ import annotations

import json

from checkout_cli.workflows.batch import COLUMNS
from tests.conftest import dump
from tests.test_batch import orders, row


def spreadsheet(path, rows, *, separator=";", header=COLUMNS, bom=True):
    lines = [separator.join(header)]
    lines += [separator.join(str(r.get(c, "")) for c in COLUMNS) for r in rows]
    path.write_bytes(("\ufeff" if bom else "").encode() + "\r\n".join(lines).encode() + b"\r\n")
    return path


def test_an_excel_csv_with_bom_semicolons_and_crlf_is_read(backend, cli, db_path, tmp_path):
    rows = [row("A", name="Zoë Çelik"), row("B", quantity=2)]
    source = spreadsheet(tmp_path / "orders.csv", rows)
    result = cli("--json", "batch", "invoice", str(source))
    assert result.exit_code == 0, result.stderr
    assert result.json()["counts"]["created"] == 2
    (a,) = backend.call("order-management", "list-orders", {"reference": "A"})["orders"]
    assert a["customer"]["name"] == "Zoë Çelik"  # no BOM, no \r kept in any value
    assert a["shipping_address"]["country"] == "NL"


def test_a_comma_csv_with_bom_and_crlf_is_read(backend, cli, tmp_path):
    source = spreadsheet(tmp_path / "orders.csv", [row("A")], separator=",")
    result = cli("--json", "batch", "invoice", str(source))
    assert result.exit_code == 0, result.stderr


def test_a_jsonl_file_with_bom_and_crlf_is_read(backend, cli, tmp_path):
    source = tmp_path / "orders.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + (json.dumps(row("A")) + "\r\n").encode())
    result = cli("--json", "batch", "invoice", str(source))
    assert result.exit_code == 0, result.stderr


def test_one_wrong_header_name_is_one_error(backend, cli, db_path, tmp_path):
    header = tuple("nmae" if c == "name" else c for c in COLUMNS)
    rows = [row(f"R-{n}") for n in range(50)]
    source = spreadsheet(tmp_path / "orders.csv", rows, header=header)
    before = dump(db_path)
    for extra in ((), ("--skip-invalid",)):
        result = cli("batch", "invoice", str(source), *extra)
        assert result.exit_code == 4, result.stderr
        problems = [x for x in result.stderr.splitlines() if str(source) in x]
        assert len(problems) == 1, result.stderr
        assert problems[0].startswith(
            f"error: {source}:1: header: unknown column 'nmae' (did you mean 'name'?); "
            "no 'name' column — columns: reference, product_sku,"
        )
    assert dump(db_path) == before
    assert orders(db_path) == []


def test_a_row_with_more_values_than_the_header_is_reported_on_its_line(backend, cli, tmp_path):
    source = spreadsheet(tmp_path / "orders.csv", [row("A")])
    extra = b"B;GIFT-CARD-25;1;b@example.com;B;;;x;;1;c;;NL;0;more\r\n"
    source.write_bytes(source.read_bytes() + extra)
    result = cli("batch", "invoice", str(source))
    assert result.exit_code == 4
    assert f"{source}:3: (extra values): unknown column" in result.stderr


def test_a_file_saved_in_latin_1_is_one_clear_refusal(backend, cli, db_path, tmp_path):
    """Not UTF-8 (an old spreadsheet's "CSV" save): refused whole, before any order."""
    source = tmp_path / "orders.csv"
    lines = [";".join(COLUMNS), ";".join(str(row("A", name="José").get(c, "")) for c in COLUMNS)]
    source.write_bytes("\r\n".join(lines).encode("latin-1"))
    before = dump(db_path)
    result = cli("batch", "invoice", str(source))
    assert result.exit_code == 2, result.stderr
    assert f"error: {source}: not UTF-8 text" in result.stderr
    assert "CSV UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert dump(db_path) == before


def test_unicode_digits_are_not_a_quantity(backend, cli, db_path, tmp_path):
    """``"²".isdigit()`` is true and ``int("²")`` raises: a quantity is ASCII digits only."""
    source = spreadsheet(tmp_path / "orders.csv", [row("A", quantity="²"), row("B", quantity="٣")])
    result = cli("--json", "batch", "invoice", str(source))
    assert result.exit_code == 4, result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert orders(db_path) == []
