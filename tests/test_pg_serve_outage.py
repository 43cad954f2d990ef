"""`checkout serve` on a PostgreSQL store through an outage of the server: while PostgreSQL is
down, /healthz and the API answer 503 ``database_unavailable`` and the CLI over --remote exits 6
in one line; once PostgreSQL is back the same serving process (not restarted) answers again,
and a whole checkout goes through it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from tests.conftest import CUSTOMER, WATCH, WatchedBackend, load_fixtures
from tests.pg_cluster import Cluster
from tests.serve_helpers import WatchedRemote, free_port, stop

PROJECT = "shop-nl"


def checkout(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``checkout ARGS`` in-process with its own config and data dirs."""
    base = {"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    result = CliRunner().invoke(app, list(args), env={**base, **(env or {})})
    WATCH.seen(f"checkout {' '.join(args)}", result.stdout + result.stderr)
    return result


def prepare(url: str, home: Path) -> str:
    """A PostgreSQL store as an operator makes one; returns an admin API token."""
    assert checkout(home, "--db", url, "init", "--project-id", PROJECT).exit_code == 0
    local = WatchedBackend(url, actor="test")
    try:
        load_fixtures(local, home / "outbox")
        local.call(
            "checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": True}
        )
    finally:
        local.close()
    made = checkout(
        home, "--db", url, "--json", "tokens", "create", "--name", "t", "--scope", "admin"
    )
    assert made.exit_code == 0, made.stderr
    return WATCH.secret(json.loads(made.stdout)["token"])


@contextmanager
def serving(url: str, home: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}
    env |= {"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    env["CHECKOUT_CHECK_RESULTS"] = "1"
    log = home / "serve.log"
    command = [sys.executable, "-m", "checkout_cli", "--db", url, "serve", "--port", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(
            [*command, "--workers", "2"], env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        while True:  # until it answers (or has died)
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
        assert server.poll() is None, f"the server died:\n{log.read_text()}"
    finally:
        stop(server)
        text = log.read_text()
        WATCH.seen("checkout serve log", text)
        assert "Traceback" not in text, text


def error_code(response: httpx.Response) -> str:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False
    return str(body["error_object"]["code"])


def whole_checkout(remote: WatchedRemote) -> dict[str, Any]:
    cart = remote.call("shopping-cart", "add-item", {"product_sku": "LENS-DAILY-30", "quantity": 1})
    token = remote.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    remote.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    remote.call("checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"})
    return remote.call("checkout-flow", "complete-checkout", {"checkout_token": token})


@pytest.mark.slow
def test_serve_answers_503_while_postgresql_is_down_and_recovers_without_restart(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token = prepare(pg_url, home)
    auth = {"Authorization": f"Bearer {token}"}
    with serving(pg_url, home) as base:
        remote = WatchedRemote(base, PROJECT, token)
        assert whole_checkout(remote)["status"] == "completed"
        add_item = f"{base}/iapi/project/{PROJECT}/shopping-cart/add-item"
        body = {"product_sku": "LENS-DAILY-30", "quantity": 1}

        pg_cluster.stop()
        try:
            began = time.monotonic()
            health = httpx.get(f"{base}/healthz", timeout=60)
            seconds = time.monotonic() - began
            print(f"/healthz while PostgreSQL is down: {seconds:.2f} s")
            assert error_code(health) == "database_unavailable"
            for _ in range(2):  # each worker: none answers anything else
                answer = httpx.post(add_item, json=body, headers=auth, timeout=60)
                assert error_code(answer) == "database_unavailable"
                assert "password" not in answer.text
            assert error_code(httpx.get(f"{base}/healthz", timeout=60)) == "database_unavailable"
            cli = checkout(
                home, "--remote", base, "--project", PROJECT, "cart", "add", "LENS-DAILY-30",
                env={"CHECKOUT_TOKEN": token},
            )  # fmt: skip
            assert cli.exit_code == 6, (cli.stdout, cli.stderr)
            lines = cli.stderr.strip().splitlines()
            assert len(lines) == 1 and "database" in lines[0], cli.stderr
            assert "Traceback" not in cli.stdout + cli.stderr
        finally:
            pg_cluster.start_again()

        assert httpx.get(f"{base}/healthz", timeout=60).status_code == 200
        assert httpx.post(add_item, json=body, headers=auth, timeout=60).status_code == 200
        done = whole_checkout(remote)
        assert done["status"] == "completed" and not done["already_completed"]
