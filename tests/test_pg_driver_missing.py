"""Without the psycopg driver a postgresql:// store is a usage error (exit 2) in one line that
says what to install, whatever the command and however the URL is given; no traceback, and
never the URL's password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

URL = "postgresql://shop:not-the-password-1@127.0.0.1:1/shop"
INSTALL = "pip install 'checkout-cli[postgres]'"


@pytest.fixture
def no_driver(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import psycopg (nor its pool), as where the
    ``postgres`` extra was not installed."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\nsys.modules['psycopg'] = None\nsys.modules['psycopg_pool'] = None\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}
    return env | {"PYTHONPATH": str(shim)}


def checkout(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkout_cli", *args],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_shim_really_hides_the_driver(no_driver: dict[str, str]) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import psycopg"], env=no_driver, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status", "chk_missing"),
        ("init",),
        ("cart", "add", "LENS-DAILY-30"),
        ("orders", "list"),
        ("doctor",),
        ("serve", "--port", "1"),
    ],
)
def test_a_command_on_a_postgresql_store_names_the_extra_to_install(
    no_driver: dict[str, str], args: tuple[str, ...]
) -> None:
    done = checkout(no_driver, "--db", URL, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and INSTALL in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "not-the-password-1" not in done.stderr


def test_the_url_from_checkout_db_and_json_errors_alike(no_driver: dict[str, str]) -> None:
    done = checkout(no_driver | {"CHECKOUT_DB": URL}, "--json", "status", "chk_missing")
    assert done.returncode == 2, (done.stdout, done.stderr)
    error = json.loads(done.stderr)["error_object"]
    assert (error["type"], error["code"]) == ("usage", "postgres_driver_missing")
    assert error["recovery"] == INSTALL
    assert "not-the-password-1" not in done.stdout + done.stderr


def test_an_sqlite_store_needs_no_driver(no_driver: dict[str, str], tmp_path: Path) -> None:
    done = checkout(no_driver, "--db", str(tmp_path / "shop.db"), "init")
    assert done.returncode == 0, done.stderr
