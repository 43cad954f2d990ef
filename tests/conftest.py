"""Shared fixtures: an isolated config/data dir per test, a real SQLite store, the CLI runner."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app

FIXTURES = Path(__file__).resolve().parent.parent / "checkout_cli" / "fixtures"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's config or data dir."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for name in ("CHECKOUT_DB", "CHECKOUT_PROFILE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


def load_fixtures(backend: LocalBackend) -> None:
    settings = json.loads((FIXTURES / "settings.json").read_text())
    settings["email_outbox_dir"] = str(backend.db_path.parent / "outbox")
    for key, value in settings.items():
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    for definition in json.loads((FIXTURES / "meta_definitions.json").read_text())["definitions"]:
        backend.call("product-catalog", "upsert-meta-definition", definition)
    for product in json.loads((FIXTURES / "catalog.json").read_text())["products"]:
        backend.call("product-catalog", "upsert-product", product)


@pytest.fixture
def backend(db_path: Path):
    """A LocalBackend on a fresh store with the fixture catalog and settings loaded."""
    local = LocalBackend(db_path, actor="test")
    load_fixtures(local)
    yield local
    local.close()


CUSTOMER = {
    "customer": {"email": "anna@example.com", "name": "Anna de Vries"},
    "shipping_address": {
        "line1": "Prinsengracht 263",
        "postal_code": "1016 GV",
        "city": "Amsterdam",
        "country": "NL",
    },
}


def ready_checkout(backend: Any, items: list[tuple[str, int]] | None = None) -> str:
    """A checkout with a customer, ready for create-payment; returns its token."""
    cart = None
    for sku, quantity in items or [("LENS-DAILY-30", 2)]:
        cart = backend.call(
            "shopping-cart",
            "add-item",
            {"cart_token": cart and cart["cart_token"], "product_sku": sku, "quantity": quantity},
        )
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    backend.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    return token


def dump(path: Path) -> list[str]:
    """The store's whole content as SQL, to compare before and after a refused command."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(db_path: Path):
    """Run ``checkout --db <test store> ARGS`` in-process; stdout and stderr kept apart."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(app, ["--db", str(db_path), *args], input=input, env=env)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run
