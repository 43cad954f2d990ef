"""checkout smoke: a whole timed flow for CI, on a local store and against `checkout serve`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from tests.conftest import WATCH, Result, load_fixtures
from tests.serve_helpers import free_port, serving

INVOICE_STEPS = [
    "prepare-product",
    "add-item",
    "initiate-checkout",
    "set-customer",
    "create-payment",
    "get-checkout-status",
    "complete-checkout",
    "cleanup",
]
OPEN = ("active", "payment_pending", "completable")


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def open_checkouts(db: Path) -> int:
    return query(db, f"SELECT COUNT(*) FROM checkouts WHERE status IN {OPEN}")[0][0]


def junit(path: Path) -> ET.Element:
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite"
    return suite


def test_smoke_passes_on_a_healthy_local_store(backend, cli, db_path, tmp_path):
    xml = tmp_path / "smoke.xml"
    result = cli("--json", "smoke", "--junit-xml", str(xml))
    assert result.exit_code == 0, result.stderr
    run = result.json()
    assert run["ok"] is True and run["failed_step"] is None and run["provider"] == "invoice"
    assert [s["name"] for s in run["steps"]] == INVOICE_STEPS
    assert all(s["ok"] and s["error_object"] is None for s in run["steps"])
    assert all(isinstance(s["seconds"], float) and s["seconds"] >= 0 for s in run["steps"])
    # Cleaned up: no smoke product, checkout or order is left (tests/test_smoke_leaves_nothing.py
    # compares every table).
    assert query(db_path, "SELECT COUNT(*) FROM products WHERE sku LIKE 'SMOKE-%'") == [(0,)]
    assert query(db_path, "SELECT COUNT(*) FROM checkouts") == [(0,)]
    assert backend.call("order-management", "list-orders", {})["orders"] == []
    suite = junit(xml)
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == INVOICE_STEPS
    assert suite.get("tests") == str(len(INVOICE_STEPS)) and suite.get("failures") == "0"
    assert all(c.find("failure") is None for c in cases)
    # A second run passes too, and cleans up too.
    again = cli("smoke")
    assert again.exit_code == 0, again.stderr
    assert "smoke test passed" in again.stderr
    assert "cleanup" in again.stdout
    assert query(db_path, "SELECT COUNT(*) FROM checkouts") == [(0,)]


def test_smoke_fails_at_create_payment_when_invoice_is_not_allowed(backend, cli, db_path, tmp_path):
    backend.call("checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": False})
    xml = tmp_path / "smoke.xml"
    result = cli("--json", "smoke", "--junit-xml", str(xml))
    assert result.exit_code == 4, result.stderr  # the shop's setting; 7 means a bad token
    run = result.json()
    assert run["ok"] is False and run["failed_step"] == "create-payment"
    failed = next(s for s in run["steps"] if not s["ok"])
    assert failed["error_object"]["code"] == "invoice_checkout_not_allowed"
    assert run["steps"][-1]["name"] == "cleanup" and run["steps"][-1]["ok"]
    assert open_checkouts(db_path) == 0
    assert query(db_path, "SELECT COUNT(*) FROM orders")[0][0] == 0
    suite = junit(xml)
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [s["name"] for s in run["steps"]]
    failing = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failing == ["create-payment"]
    failure = suite.find("testcase[@name='create-payment']/failure")
    assert failure.get("type") == "invoice_checkout_not_allowed"
    assert "not allowed" in failure.get("message")
    assert suite.get("failures") == "1"
    text = cli("smoke")
    assert text.exit_code == 4
    assert "pass `--provider stripe`" in " ".join(text.stderr.split())
    assert "smoke test failed at create-payment" in text.stderr
    # the way out, as with any other error
    assert "checkout settings set allow_invoice_checkout true" in " ".join(text.stderr.split())


def test_smoke_refuses_an_unknown_provider(backend, cli):
    assert cli("smoke", "--provider", "paypal").exit_code == 2


# ---- against a remote ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A store served by a real `checkout serve` subprocess: (url, project, token, db)."""
    tmp = tmp_path_factory.mktemp("served")
    db = tmp / "server.db"
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
    }
    local = LocalBackend(db, actor="test")
    load_fixtures(local)
    local.close()

    def checkout(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "checkout_cli", "--db", str(db), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    checkout("init", "--project-id", "shop-ci", "--force")  # the store exists, as "local"
    # operate is enough: a smoke run's product and cart are its own, hidden, and removed
    created = checkout("tokens", "create", "--name", "ci", "--scope", "operate", "--json")
    token = WATCH.secret(json.loads(created)["token"])
    with serving(db, token, project="shop-ci", workers=1) as server:
        yield server.url, "shop-ci", token, db
        WATCH.export_store(db)


def remote(url: str, project: str, token: str | None, *args: str) -> Result:
    env = {"CHECKOUT_TOKEN": token} if token else {"CHECKOUT_TOKEN": ""}
    result = CliRunner().invoke(app, ["--remote", url, "--project", project, *args], env=env)
    WATCH.seen(f"checkout --remote {' '.join(args)}", result.stdout + result.stderr)
    return Result(result.exit_code, result.stdout, result.stderr)


def test_smoke_passes_against_a_remote(served, tmp_path):
    url, project, token, db = served
    xml = tmp_path / "smoke.xml"
    result = remote(url, project, token, "--json", "smoke", "--junit-xml", str(xml))
    assert result.exit_code == 0, result.stderr
    run = result.json()
    assert run["ok"] and [s["name"] for s in run["steps"]] == INVOICE_STEPS
    assert query(db, "SELECT COUNT(*) FROM products WHERE sku LIKE 'SMOKE-%'") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM checkouts") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM orders") == [(0,)]
    assert len(junit(xml).findall("testcase")) == len(INVOICE_STEPS)


def test_smoke_with_a_wrong_token_fails_at_the_first_step_with_exit_7(served, tmp_path):
    url, project, _, db = served
    before = query(db, "SELECT COUNT(*) FROM checkouts")
    xml = tmp_path / "smoke.xml"
    result = remote(url, project, "ck_not_a_real_token", "--json", "smoke", "--junit-xml", str(xml))
    assert result.exit_code == 7, result.stderr
    run = result.json()
    assert run["failed_step"] == "prepare-product"
    assert [s["name"] for s in run["steps"]] == ["prepare-product"]
    assert run["steps"][0]["error_object"]["type"] in ("auth", "forbidden")
    assert query(db, "SELECT COUNT(*) FROM checkouts") == before
    cases = junit(xml).findall("testcase")
    assert len(cases) == 1 and cases[0].find("failure") is not None


def test_smoke_with_the_server_down_fails_at_the_first_step_with_exit_6(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    xml = tmp_path / "smoke.xml"
    result = remote(url, "shop-ci", "ck_whatever", "--json", "smoke", "--junit-xml", str(xml))
    assert result.exit_code == 6, result.stderr
    run = result.json()
    assert run["failed_step"] == "prepare-product"
    assert run["steps"][0]["error_object"]["code"] == "remote_unreachable"
    suite = junit(xml)
    assert suite.get("failures") == "1"
    failure = suite.find("testcase[@name='prepare-product']/failure")
    assert failure is not None and failure.get("type") == "remote_unreachable"
    text = remote(url, "shop-ci", "ck_whatever", "smoke")
    assert text.exit_code == 6
    assert "smoke test failed at prepare-product" in text.stderr
    assert "prepare-product" in text.stdout and "FAILED" in text.stdout
