"""The store file's own problems are named, not "a bug": a directory, a file that is not a
store, a truncated one, a damaged page, one this user cannot write or create. One line,
exit 6 (doctor: exit 4 naming the damage), and the file is left as it was. A read-only
store still answers every read (doctor and inspect too) and gets nothing made beside it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from tests.conftest import load_fixtures
from tests.serve_helpers import prepare_store, serving


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


# ---- a store that cannot be written ------------------------------------------------------------
# Real permissions: chmod for an ordinary user; as root, whom chmod does not stop, the file or
# folder is made immutable (chattr +i), which the kernel refuses to root too.


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkout_cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def read_only():
    """``read_only(path)`` makes a file or folder one this process cannot write; undone at
    the end of the test."""
    undo: list[list[str] | tuple[Path, int]] = []

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            if chattr is None:
                pytest.skip("running as root, where only chattr +i makes a file read-only")
            done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"running as root and chattr +i fails here: {done.stderr.strip()}")
            undo.append([chattr, "-i", str(path)])
        else:
            undo.append((path, path.stat().st_mode))
            path.chmod(0o555 if path.is_dir() else 0o444)
        assert not os.access(path, os.W_OK)

    yield make
    for step in reversed(undo):
        if isinstance(step, list):
            subprocess.run(step, check=True)
        else:
            step[0].chmod(step[1])


def _shop_with_a_checkout(folder: Path) -> tuple[Path, str]:
    folder.mkdir()
    db = _store(folder / "shop.db")
    backend = LocalBackend(db, actor="test")
    cart = backend.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})
    backend.close()
    return db, token["checkout_token"]


def _files(folder: Path) -> dict[str, str]:
    return {p.name: _digest(p) for p in folder.iterdir()}


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_reads_and_refuses_writes(tmp_path, read_only, what):
    db, token = _shop_with_a_checkout(tmp_path / "shop")
    before = _files(db.parent)
    culprit = db if what == "file" else db.parent
    read_only(culprit)

    status = _run(db, "--json", "status", token)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["checkout_token"] == token
    products = _run(db, "--json", "products", "list")
    assert products.returncode == 0, products.stderr
    assert "GIFT-CARD-25" in products.stdout
    orders = _run(db, "--json", "orders", "list")
    assert orders.returncode == 0, orders.stderr
    doctor = _run(db, "--json", "doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert json.loads(doctor.stdout)["ok"] is True
    inspect = _run(db, "--json", "inspect", token)
    assert inspect.returncode == 0, inspect.stderr

    for write in (
        ("cart", "add", "GIFT-CARD-25"),
        ("init", "--project-id", "elsewhere", "--force"),
        ("settings", "set", "shop_name", "Other"),
        ("cancel-checkout", token, "--yes"),
    ):
        result = _run(db, *write)
        assert result.returncode == 6, (write, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert f"the store at {db} is read-only" in lines[0]
        assert f"chmod u+w {os.path.realpath(culprit)})" in lines[0]  # what stops the write
        assert "Traceback" not in result.stderr and "this is a bug" not in result.stderr

    refused = _run(db, "--json", "cart", "add", "GIFT-CARD-25")
    error = json.loads(refused.stderr)["error_object"]
    assert (error["type"], error["code"]) == ("unavailable", "store_read_only")
    # Nothing made beside it (no WAL, index, journal or lock file), nothing changed in it.
    assert _files(db.parent) == before


def test_a_read_only_folder_with_a_live_wal_reads_its_commits(tmp_path, read_only):
    """A writer elsewhere has the store open: its last commits are only in the WAL, which a
    read sees through the WAL index already there."""
    db = _store(tmp_path / "shop.db")
    writer = LocalBackend(db, actor="test")
    try:
        product = {"sku": "WAL-ONLY", "name": "In the WAL", "price_cents": 100, "currency": "EUR"}
        writer.call("product-catalog", "upsert-product", product)
        assert (tmp_path / "shop.db-wal").stat().st_size > 0
        before = sorted(p.name for p in tmp_path.iterdir())
        read_only(tmp_path)
        result = _run(db, "--json", "products", "show", "WAL-ONLY")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["name"] == "In the WAL"
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    finally:
        writer.close()


def test_a_read_only_store_that_needs_an_upgrade_says_so(tmp_path, read_only):
    db = _store(tmp_path / "shop" / "shop.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = _digest(db)
    read_only(db)
    result = _run(db, "products", "list")
    assert result.returncode == 6, result.stderr
    line = result.stderr.strip()
    assert "read-only" in line and "schema version 7" in line and "chmod u+w" in line
    assert "Traceback" not in result.stderr
    assert _digest(db) == before


def test_a_wal_another_user_left_read_only_refuses_writes_by_name(tmp_path, read_only):
    """The file and folder are writable, but the WAL a process of someone else keeps open is
    not: SQLite's own "attempt to write a readonly database" is the same one line."""
    db = _store(tmp_path / "shop.db")
    writer = LocalBackend(db, actor="test")
    try:
        product = {"sku": "WAL-ONLY", "name": "In the WAL", "price_cents": 100, "currency": "EUR"}
        writer.call("product-catalog", "upsert-product", product)
        wal = tmp_path / "shop.db-wal"
        read_only(wal)
        assert _run(db, "products", "show", "WAL-ONLY").returncode == 0
        result = _run(db, "products", "set-stock", "WAL-ONLY", "5")
        assert result.returncode == 6, result.stderr
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in result.stderr
        assert "is read-only" in line and f"chmod u+w {os.path.realpath(wal)})" in line
    finally:
        writer.close()
    after = LocalBackend(db, actor="test")  # the refused write changed nothing
    assert after.call("product-catalog", "get-product", {"sku": "WAL-ONLY"})["stock"] is None
    after.close()


def test_a_store_cannot_be_made_in_a_read_only_folder(tmp_path, read_only):
    folder = tmp_path / "shop"
    folder.mkdir()
    read_only(folder)
    result = _run(folder / "shop.db", "init")
    assert result.returncode == 6, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"cannot create the store at {folder / 'shop.db'}" in line
    assert list(folder.iterdir()) == []


def test_a_read_only_store_served_answers_reads_and_refuses_writes(tmp_path, read_only):
    db = tmp_path / "shop.db"
    token = prepare_store(db)
    before = _digest(db)
    read_only(db)
    with serving(db, token, workers=1) as served:
        read = httpx.post(
            served.endpoint_url("product-catalog", "list-products"), json={}, headers=served.auth
        )
        assert read.status_code == 200, read.text
        write = httpx.post(
            served.endpoint_url("shopping-cart", "add-item"),
            json={"product_sku": "GIFT-CARD-25", "quantity": 1},
            headers=served.auth | {"Idempotency-Key": "ro-1"},
        )
        assert write.status_code == 503, write.text
        assert write.json()["error_object"]["code"] == "store_read_only"
    assert _digest(db) == before


def test_a_read_only_copy_of_a_wal_without_its_index_says_so(tmp_path, read_only):
    """The file and its WAL copied while a writer had them open, the WAL index left behind,
    into a folder that cannot hold a new one: named, not "unable to open database file"."""
    db = _store(tmp_path / "shop.db")
    writer = LocalBackend(db, actor="test")
    copy = tmp_path / "copy"
    copy.mkdir()
    try:
        product = {"sku": "WAL-ONLY", "name": "In the WAL", "price_cents": 100, "currency": "EUR"}
        writer.call("product-catalog", "upsert-product", product)
        shutil.copy(db, copy / "shop.db")
        shutil.copy(tmp_path / "shop.db-wal", copy / "shop.db-wal")
    finally:
        writer.close()
    read_only(copy)
    result = _run(copy / "shop.db", "products", "show", "WAL-ONLY")
    assert result.returncode == 6, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "read-only" in line and "write-ahead log" in line
    assert f"chmod u+w {os.path.realpath(copy)})" in line
    assert sorted(p.name for p in copy.iterdir()) == ["shop.db", "shop.db-wal"]


def test_a_read_only_file_that_is_no_store(tmp_path, read_only):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n" * 200)
    read_only(notes)
    result = _run(notes, "--json", "products", "list")
    assert result.returncode == 6, result.stderr
    assert json.loads(result.stderr)["error_object"]["code"] == "not_a_store"
    assert list(tmp_path.glob("notes.txt-*")) == []  # no WAL, index or lock file beside it


def test_completion_reads_a_read_only_store_and_leaves_nothing(tmp_path, read_only):
    from tests.test_value_completion import offered

    db = _store(tmp_path / "shop" / "shop.db")
    before = _files(db.parent)
    read_only(db.parent)
    assert offered("checkout cart add GIFT-", db) == ["GIFT-CARD-25"]
    assert _files(db.parent) == before
