"""checkout batch invoice reporting: skipped rows make a non-zero exit and are explained in
the report, a run refused by validation still writes its report, and a run off a terminal
prints progress lines."""

from __future__ import annotations

import json

from checkout_cli.workflows.batch import ProgressLines
from tests.conftest import dump
from tests.test_batch import row, write_csv


def test_skip_invalid_exits_4_and_the_report_gives_each_reason(backend, cli, tmp_path):
    rows = [row("A"), row("B", name=None), row("C", quantity=0), row("C", email="x")]
    source = write_csv(tmp_path / "o.csv", rows)
    report = tmp_path / "r.json"
    command = ("--json", "batch", "invoice", str(source), "--skip-invalid", "--report", str(report))
    result = cli(*command)
    assert result.exit_code == 4, result.stderr
    assert result.json()["counts"]["created"] == 1
    reasons = {r["reference"]: r["error"] for r in json.loads(report.read_text())}
    assert reasons["A"] is None
    assert reasons["B"] == "line 3: name: is required"
    assert reasons["C"].startswith("line 4: quantity: must be at least 1")
    assert "line 5: email: " in reasons["C"]


def test_a_run_refused_by_validation_writes_its_report(backend, cli, db_path, tmp_path):
    source = write_csv(tmp_path / "o.csv", [row("A"), row("B", quantity=0)])
    report = tmp_path / "r.csv"
    before = dump(db_path)
    result = cli("batch", "invoice", str(source), "--report", str(report))
    assert result.exit_code == 4
    lines = report.read_text().splitlines()
    assert lines[0] == "reference,status,checkout_token,order_number,error"
    assert lines[1] == "A,not_run,,,"
    assert lines[2] == 'B,invalid,,,"line 3: quantity: must be at least 1, got 0"'
    assert dump(db_path) == before


def test_a_wrong_header_writes_a_report_saying_so(backend, cli, tmp_path):
    source = tmp_path / "o.csv"
    source.write_text("reference,sku\nA,GIFT-CARD-25\n")
    report = tmp_path / "r.json"
    assert cli("batch", "invoice", str(source), "--report", str(report)).exit_code == 4
    (only,) = json.loads(report.read_text())
    assert only["status"] == "invalid" and "header: unknown column 'sku'" in only["error"]


def test_off_a_terminal_progress_lines_go_to_stderr(backend, cli, tmp_path):
    source = write_csv(tmp_path / "o.csv", [row(f"R-{n}") for n in range(5)])
    result = cli("batch", "invoice", str(source), "--progress-every", "2")
    assert result.exit_code == 0, result.stderr
    progress = [x for x in result.stderr.splitlines() if x.startswith("invoicing: ")]
    assert [x.split(" orders")[0] for x in progress] == [
        "invoicing: 2/5",
        "invoicing: 4/5",
        "invoicing: 5/5",
    ]
    assert "5 created" in progress[-1]
    assert not [x for x in result.stdout.splitlines() if x.startswith("invoicing: ")]


def test_progress_lines_come_every_few_seconds_too():
    said: list[str] = []
    now = [0.0]
    lines = ProgressLines(1000, 500, False, said.append, seconds=10, clock=lambda: now[0])
    counts = {"created": 0, "already_done": 0, "conflict": 0, "failed": 0}
    for step in range(30):
        now[0] = step * 1.0
        lines.tick(counts)
    assert len(said) == 2  # at 10 s and 20 s, long before 500 orders
    quiet = ProgressLines(3, 1, True, said.append)
    quiet.tick(counts)
    assert len(said) == 2  # a terminal has the bar instead
