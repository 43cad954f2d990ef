"""The store file's own problems are named, not "a bug": a directory, a file that is not a
store, a truncated one, a damaged page. One line, exit 6 (doctor: exit 4 naming the damage),
and the file is left as it was."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from tests.conftest import load_fixtures


def checkout(db: Path, *args: str):
    return CliRunner().invoke(app, ["--db", str(db), *args], env={"CHECKOUT_PROFILE": None})


def _store(path: Path) -> Path:
    backend = LocalBackend(path, actor="test")
    load_fixtures(backend)
    backend.close()  # its closing checkpoint leaves everything in the main file
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage_products_page(path: Path) -> None:
    """Overwrite part of the products table's root page, as a failing disk would."""
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'products'").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size + 8)
        f.write(b"\x00\x00")
        f.seek((root - 1) * page_size + 200)
        f.write(b"\xff" * 300)


def _one_error_line(result, code: str) -> str:
    assert result.exit_code == 6, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "this is a bug" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


def test_a_directory_is_not_a_store(tmp_path):
    line = _one_error_line(checkout(tmp_path, "products", "list"), "not_a_store")
    assert "is a directory" in line and str(tmp_path / "shop.db") in line
    assert list(tmp_path.glob("*.db*")) == []  # nothing made in it


def test_a_file_that_is_no_store(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n" * 200)
    before = _digest(notes)
    result = checkout(notes, "--json", "products", "list")
    assert result.exit_code == 6
    error = json.loads(result.stderr)["error_object"]
    assert (error["type"], error["code"]) == ("unavailable", "not_a_store")
    assert _digest(notes) == before


def test_a_truncated_store(tmp_path):
    db = _store(tmp_path / "shop.db")
    cut = tmp_path / "cut.db"
    cut.write_bytes(db.read_bytes()[:5000])
    line = _one_error_line(checkout(cut, "orders", "list"), "store_damaged")
    assert "is damaged" in line and "backup" in line


@pytest.mark.parametrize("command", [("products", "list"), ("doctor",)])
def test_a_damaged_page(tmp_path, command):
    db = _store(tmp_path / "shop.db")
    _damage_products_page(db)
    result = checkout(db, "--json", *command)
    if command == ("doctor",):
        # Regression: doctor said "no violations" of a store SQLite calls malformed.
        assert result.exit_code == 4, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is False
        assert {v["name"] for v in report["violations"]} == {"store_file_intact"}
        assert any("products" in v["message"] for v in report["violations"])
    else:
        assert result.exit_code == 6, result.output
        assert json.loads(result.stderr)["error_object"]["code"] == "store_damaged"


def test_doctor_on_a_sound_store_checks_the_file_too(tmp_path):
    db = _store(tmp_path / "shop.db")
    result = checkout(db, "--json", "doctor")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True


def test_a_mistyped_db_creates_nothing(tmp_path):
    """Only `init` (and `demo`) make a store: elsewhere a wrong path is "no store", and
    neither the file nor its folders appear."""
    typo = tmp_path / "shpo" / "shop.db"
    for command in (("products", "list"), ("settings", "set", "shop_name", "X"), ("doctor",)):
        result = checkout(typo, "--json", *command)
        assert result.exit_code == 3, result.output
        error = json.loads(result.stderr)["error_object"]
        assert error["code"] == "store_not_found" and "init" in error["recovery"]
    assert not (tmp_path / "shpo").exists()
    assert checkout(typo, "init").exit_code == 0
    assert checkout(typo, "products", "list").exit_code == 0
