"""checkout batch invoice over a remote: the store's identity comes through the API, and a
remote that cannot say which store it is (the hosted platform) binds the journal to its
address instead."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from checkout_cli.engine.schema import SCHEMA_VERSION
from tests.conftest import WATCH
from tests.serve_helpers import (
    PROJECT,
    Recorded,
    Served,
    StandIn,
    plain_404,
    prepare_store,
    serving,
)
from tests.test_batch import orders_per_email, row, write_csv


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Served]:
    """A store of its own behind `checkout serve` (batch orders would crowd the shared one)."""
    db = tmp_path / "served" / "shop.db"
    db.parent.mkdir()
    token = prepare_store(db)
    with serving(db, token, workers=1) as server:
        yield server


def checkout(*args: str, token: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"CHECKOUT_TOKEN": token})
    WATCH.seen(f"checkout {' '.join(args)}", result.stdout + result.stderr)
    return result.exit_code, result.stdout, result.stderr


def test_get_store_over_http_is_the_stores_own_identity(own_server):
    remote = own_server.remote()
    local = own_server.local()
    try:
        assert remote.call("checkout-admin", "get-store") == {
            "project_id": PROJECT,
            "store_id": local.engine.store_id,
            "schema_version": SCHEMA_VERSION,
        }
    finally:
        remote.close()
        local.close()


def without_get_store(target: str):
    """A stand-in for the hosted platform: everything is the served store's, but it has no
    checkout-admin/get-store (a server without that route answers a plain 404)."""
    client = httpx.Client(base_url=target, timeout=30)

    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if request.path.endswith("/checkout-admin/get-store"):
            return plain_404(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = client.request(request.method, request.path, headers=headers, content=request.body)
        return answer.status_code, {"Content-Type": "application/json"}, answer.content

    return StandIn(respond)


def test_a_remote_without_get_store_binds_the_journal_to_its_address(own_server, tmp_path):
    source = write_csv(tmp_path / "orders.csv", [row("A"), row("B")])
    journal = tmp_path / "journal.db"
    with without_get_store(own_server.url) as hosted:
        remote = ["--remote", hosted.url, "--project", PROJECT, "--json"]
        command = [*remote, "batch", "invoice", str(source), "--journal", str(journal)]
        code, out, err = checkout(*command, token=own_server.token)
        assert code == 0, err
        assert json.loads(out)["counts"]["created"] == 2
        assert err.count("does not say which store it is") == 1
        assert f"remote {hosted.url} (project {PROJECT})" in err
        conn = sqlite3.connect(journal)
        try:
            bound = dict(conn.execute("SELECT key, value FROM journal_info"))
        finally:
            conn.close()
        assert bound["store_id"] == f"remote {hosted.url} (project {PROJECT})"

        # A re-run still checks each order in the store (over HTTP) before skipping it.
        hosted.requests.clear()
        code, out, err = checkout(*command, token=own_server.token)
        assert code == 0, err
        assert json.loads(out)["counts"] == {
            "created": 0,
            "already_done": 2,
            "conflict": 0,
            "failed": 0,
            "skipped_invalid": 0,
        }
        # Once by the pre-check (what is done takes no stock), once right before the order.
        asked = [r.path for r in hosted.requests if r.path.endswith("/list-orders")]
        assert len(asked) == 4
    assert orders_per_email(own_server.db) == {"a@example.com": 1, "b@example.com": 1}
