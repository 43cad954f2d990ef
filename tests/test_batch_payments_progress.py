"""`checkout batch payments` shows how far it is: a progress bar on a terminal, a progress line
every N lines on stderr off one (a log a cron job keeps), and the summary at the end."""

from __future__ import annotations

import re

import pytest

from tests.engine_helpers import assert_invariants
from tests.terminal import Terminal, starter
from tests.test_batch_payments import cents, invoice_orders, paid, statement


@pytest.fixture
def terminal(db_path, tmp_path):
    yield from starter(lambda *args: Terminal(db_path, tmp_path, *args, dimensions=(30, 120)))


def _statement(backend, tmp_path, n: int):
    orders = invoice_orders(backend, n)
    rows = [
        (
            "2026-12-01",
            cents(o["totals"]["total_cents"]),
            "EUR",
            "Anna",
            o["order_number"],
            f"TX-{i}",
        )
        for i, o in enumerate(orders)
    ]
    return statement(tmp_path / "st.csv", *rows)


def test_a_progress_bar_on_a_terminal(backend, db_path, terminal, tmp_path):
    file = _statement(backend, tmp_path, 3)
    t = terminal("batch", "payments", str(file))
    assert t.finish() == 0, t.text
    assert re.search(r"recording payments.*3/3", t.text), t.text
    assert re.search(r"payments recorded\s*│?\s*3", t.text), t.text
    assert len(paid(db_path)) == 3
    assert_invariants(db_path)


def test_progress_lines_off_a_terminal(cli, backend, db_path, tmp_path):
    file = _statement(backend, tmp_path, 3)
    run = cli("batch", "payments", str(file), "--progress-every", "2")
    assert run.exit_code == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("payments: ")]
    assert [line.split(" lines")[0] for line in lines] == ["payments: 2/3", "payments: 3/3"]
    assert "\x1b[" not in run.stderr  # no bar drawn into a log
    assert len(paid(db_path)) == 3
