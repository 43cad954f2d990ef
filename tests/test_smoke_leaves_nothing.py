"""`checkout smoke` leaves a real shop exactly as it found it: every row of every table.

A run's rows are marked (engine/smoke_runs.py), hidden from lists, numbering and the outbox
while it runs, and removed when it ends, whichever step failed; a run killed midway is
removed by the next one. Proved here by comparing every table before and after, on a local
store and over a real `checkout serve`, with no table left out.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from checkout_cli.errors import CheckoutError
from tests.conftest import CUSTOMER, WATCH, Result
from tests.serve_helpers import prepare_store, serving, vault_key_env


def snapshot(db: Path) -> dict[str, Any]:
    """Every row of every table (sqlite_master's own included) and the schema version."""
    conn = sqlite3.connect(db)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        rows = {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in [*tables, "sqlite_master"]
        }
        return {"user_version": conn.execute("PRAGMA user_version").fetchone()[0], **rows}
    finally:
        conn.close()


def assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    changed = sorted(
        table for table in before.keys() | after.keys() if before.get(table) != after.get(table)
    )
    assert not changed, f"tables changed by smoke: {changed}"


def emails_written(db: Path) -> list[Path]:
    outbox = db.parent / "outbox"  # the fixture settings' file transport
    return sorted(outbox.rglob("*")) if outbox.exists() else []


def first_order_number() -> str:
    return f"{datetime.now(UTC).year}-000001"


def real_invoice_order(backend: Any) -> dict[str, Any]:
    cart = backend.call(
        "shopping-cart", "add-item", {"product_sku": "LENS-DAILY-30", "quantity": 1}
    )
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    backend.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    return backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})["order"]


def test_a_local_smoke_leaves_every_table_as_it_found_it(backend, cli, db_path):
    before = snapshot(db_path)
    result = cli("--json", "smoke")
    assert result.exit_code == 0, result.stderr
    assert_unchanged(before, snapshot(db_path))
    steps = result.json()["steps"]
    assert steps[-1]["name"] == "cleanup" and steps[-1]["ok"]
    assert any(s["detail"].startswith("order TEST-") for s in steps)  # an order was made
    assert emails_written(db_path) == []  # its confirmation never went out
    # The shop's numbering is untouched: the next real order is its first.
    assert real_invoice_order(backend)["order_number"] == first_order_number()
    assert len(emails_written(db_path)) == 1  # and real emails do go out


def test_a_smoke_failing_at_a_step_leaves_nothing_either(backend, cli, db_path):
    backend.call("checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": False})
    before = snapshot(db_path)
    result = cli("--json", "smoke")
    assert result.exit_code == 4, result.stderr  # exit code and message as before
    assert_unchanged(before, snapshot(db_path))
    run = result.json()
    assert run["failed_step"] == "create-payment"
    assert run["steps"][-1]["name"] == "cleanup" and run["steps"][-1]["ok"]


def test_a_stripe_smoke_closes_its_session_and_leaves_nothing(backend, cli, db_path, stripe_fake):
    before = snapshot(db_path)
    result = cli("--json", "smoke", "--provider", "stripe")
    assert result.exit_code == 0, result.stderr
    assert_unchanged(before, snapshot(db_path))
    [session] = stripe_fake.sessions.values()
    assert session["status"] == "expired"  # it can no longer be paid


def test_a_failing_provider_step_leaves_nothing(backend, cli, db_path, stripe_fake):
    before = snapshot(db_path)
    stripe_fake.fail_next(status=500, times=10)  # the SDK's retry fails too
    result = cli("--json", "smoke", "--provider", "stripe")
    assert result.exit_code != 0
    assert_unchanged(before, snapshot(db_path))
    run = result.json()
    assert run["failed_step"] == "create-payment"
    assert run["steps"][-1]["name"] == "cleanup" and run["steps"][-1]["ok"], run["steps"][-1]


def test_a_killed_smoke_is_named_by_doctor_and_removed_by_the_next(
    backend, cli, db_path, stripe_fake, monkeypatch
):
    before = snapshot(db_path)
    stripe_fake.delay_next(30)  # the session is made; the answer never comes in time
    env = {**os.environ, **vault_key_env(db_path)}
    smoke = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "checkout_cli",
            "--db",
            str(db_path),
            "smoke",
            "--provider",
            "stripe",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while stripe_fake.create_count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stripe_fake.create_count == 1
    finally:
        smoke.send_signal(signal.SIGKILL)  # killed midway: no cleanup ran
        smoke.wait(timeout=10)
    assert snapshot(db_path) != before
    doctor = cli("--json", "doctor")
    assert doctor.exit_code == 0, doctor.stdout  # a leftover run breaks no invariant
    [left] = doctor.json()["smoke_runs"]
    assert left["product_sku"].startswith("SMOKE-") and not left["paid"]
    assert "still in the store" in " ".join(cli("doctor").stderr.split())
    # A live run is never touched by another; once stale (10 minutes), the next removes it.
    monkeypatch.setattr("checkout_cli.engine.smoke_runs.STALE_AFTER", timedelta(0))
    again = cli("--json", "smoke")
    assert again.exit_code == 0, again.stderr
    assert_unchanged(before, snapshot(db_path))
    [session] = stripe_fake.sessions.values()
    assert session["status"] == "expired"  # the killed run's session was closed too


def test_a_runs_rows_are_hidden_and_cannot_hide_a_real_sale(backend, db_path):
    before = snapshot(db_path)
    run = backend.call("checkout-admin", "start-smoke", {"run_id": "0123456789ab"})
    sku, cart = run["product_sku"], run["cart_token"]
    # Its product is offered to no one, and a real cart cannot take it.
    listed = backend.call("product-catalog", "list-products", {"include_archived": True})
    assert sku not in [p["sku"] for p in listed["products"]]
    with pytest.raises(CheckoutError) as refused:
        backend.call("shopping-cart", "add-item", {"product_sku": sku, "quantity": 1})
    assert refused.value.code == "product_not_found"
    # Its cart takes no real product: nothing real can be sold inside a run.
    with pytest.raises(CheckoutError) as refused:
        backend.call(
            "shopping-cart",
            "add-item",
            {"cart_token": cart, "product_sku": "LENS-DAILY-30", "quantity": 1},
        )
    assert refused.value.code == "smoke_cart"
    backend.call(
        "shopping-cart", "add-item", {"cart_token": cart, "product_sku": sku, "quantity": 1}
    )
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart})[
        "checkout_token"
    ]
    backend.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    order = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})["order"]
    assert order["order_number"].startswith("TEST-0123456789ab-")
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute(
            "SELECT COUNT(*) FROM counters WHERE name LIKE 'order_number:%'"
        ).fetchone() == (0,)
    finally:
        conn.close()
    assert backend.call("order-management", "list-orders", {})["orders"] == []
    assert backend.call("checkout-admin", "list-checkouts", {})["checkouts"] == []
    assert backend.call("checkout-admin", "list-outbox", {})["emails"] == []
    sent = backend.call("checkout-admin", "send-outbox", {})
    assert (sent["sent"], sent["failed"]) == (0, 0) and emails_written(db_path) == []
    finished = backend.call("checkout-admin", "finish-smoke", {"run_id": "0123456789ab"})
    assert finished["removed"]["orders"] == 1 and finished["removed"]["products"] == 1
    assert_unchanged(before, snapshot(db_path))


def test_a_run_with_a_paid_payment_is_kept(backend, cli, db_path, stripe_fake):
    run = backend.call("checkout-admin", "start-smoke", {"run_id": "00000000beef"})
    cart = run["cart_token"]
    backend.call(
        "shopping-cart",
        "add-item",
        {"cart_token": cart, "product_sku": run["product_sku"], "quantity": 1},
    )
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart})[
        "checkout_token"
    ]
    backend.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    backend.call(
        "checkout-flow",
        "create-payment",
        {"checkout_token": token, "provider": "stripe", "redirect_url": "https://example.com/r"},
    )
    [session_id] = stripe_fake.sessions
    stripe_fake.mark_paid(session_id)  # someone paid the link: that is money
    with pytest.raises(CheckoutError) as refused:
        backend.call("checkout-admin", "finish-smoke", {"run_id": "00000000beef"})
    assert refused.value.code == "smoke_run_paid"
    assert backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    [left] = cli("--json", "doctor").json()["smoke_runs"]
    assert left["run_id"] == "00000000beef" and left["paid"] is True


# ---- over a real `checkout serve` ---------------------------------------------------------------


def remote(url: str, token: str, *args: str) -> Result:
    result = CliRunner().invoke(
        app, ["--remote", url, "--project", "shop-nl", *args], env={"CHECKOUT_TOKEN": token}
    )
    WATCH.seen(f"checkout --remote {' '.join(args)}", result.stdout + result.stderr)
    return Result(result.exit_code, result.stdout, result.stderr)


def test_a_remote_smoke_with_an_operate_token_leaves_every_table_as_it_found_it(tmp_path):
    db = tmp_path / "server.db"
    token = WATCH.secret(prepare_store(db, scope="operate"))  # smoke needs no admin token
    with serving(db, token, workers=1) as server:
        before = snapshot(db)
        result = remote(server.url, token, "--json", "smoke")
        assert result.exit_code == 0, result.stderr
        after_one = snapshot(db)
        failed = remote(server.url, token, "--json", "smoke", "--provider", "mollie")
        assert failed.exit_code != 0  # no Mollie key here: fails at create-payment
        assert json.loads(failed.stdout)["steps"][-1]["name"] == "cleanup"
        after_two = snapshot(db)
        order = real_invoice_order(server_backend(server.url, token))
    # No exclusion, not even the server's remembered answers: they go with the run.
    assert_unchanged(before, after_one)
    assert_unchanged(before, after_two)
    assert order["order_number"] == first_order_number()
    WATCH.export_store(db)


def server_backend(url: str, token: str) -> Any:
    from tests.serve_helpers import WatchedRemote

    return WatchedRemote(url, "shop-nl", token)
