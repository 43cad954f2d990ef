"""Everyday output: piped lists are whole records per line; narrow terminals fold, never cut."""

from __future__ import annotations

import pytest

from tests.conftest import ready_checkout
from tests.terminal import ANSI, Terminal, starter

LONG_SKU = "LENS-DAILY-30-TORIC-ASTIGMATISM-EXTENDED-WEAR-PACK"


@pytest.fixture
def terminal(db_path, tmp_path):
    yield from starter(lambda *args, **kw: Terminal(db_path, tmp_path, *args, **kw))


def long_product(backend) -> None:
    backend.call(
        "product-catalog",
        "upsert-product",
        {
            "sku": LONG_SKU,
            "name": "Daily toric lenses for astigmatism, extended wear, 30 pack",
            "price_cents": 2995,
            "currency": "EUR",
            "stock": 7,
        },
    )


def test_piped_list_is_one_whole_record_per_line(backend, cli):
    long_product(backend)
    listed = cli("products", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert "SKU" not in rows  # no header: every line is a record
    assert rows["LENS-DAILY-30"][:2] == ["LENS-DAILY-30", "Daily contact lenses, 30 pack"]
    long_row = rows[LONG_SKU]
    assert long_row[1] == "Daily toric lenses for astigmatism, extended wear, 30 pack"
    assert long_row[3] == "7"
    assert "…" not in listed.stdout
    assert [line for line in lines if "LENS-DAILY-30\t" in line]  # `| grep LENS-DAILY-30`


def test_piped_timeline_keeps_every_detail(backend, cli):
    token = ready_checkout(backend)
    shown = cli("inspect", token, "--no-live")
    assert shown.exit_code == 0
    created = next(line for line in shown.stdout.splitlines() if "\tcheckout_created\t" in line)
    when, _who, _what, change, detail = created.split("\t")
    assert when.endswith("Z") and len(when) == len("2026-12-02T14:32:27.754601Z")
    assert change == "· → active"
    assert detail.startswith("cart_token=cart_") and "lines=" in detail


def _screen(term: Terminal) -> list[str]:
    assert term.finish() == 0
    return ANSI.sub("", term.transcript.getvalue()).replace("\r", "").splitlines()


def test_narrow_terminal_folds_and_keeps_identifiers_whole(backend, terminal):
    long_product(backend)
    lines = _screen(terminal("products", "list", dimensions=(50, 80)))
    text = "\n".join(lines)
    assert "…" not in text
    assert all(len(line) <= 80 for line in lines)
    assert any(line.startswith("LENS-DAILY-30 ") for line in lines)
    # The over-long SKU folds over lines in its column: every character is there, in order.
    first_column = "".join(line.split("│")[0].strip() for line in lines if "│" in line)
    assert LONG_SKU in first_column


def test_inspect_timeline_fits_80_columns_with_whole_times(backend, terminal):
    token = ready_checkout(backend)
    lines = _screen(terminal("inspect", token, "--no-live", dimensions=(50, 80)))
    assert all(len(line) <= 80 for line in lines)
    timeline = lines[next(i for i, line in enumerate(lines) if line.startswith("Timeline")) :]
    times = [line.split(" ")[0] for line in timeline if line[:4].isdigit()]
    assert len(times) >= 2 and all(t.endswith("Z") and len(t) == 27 for t in times)
    assert "…" not in "\n".join(lines)
