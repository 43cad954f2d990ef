"""A real `checkout serve` subprocess on 127.0.0.1 for the server and remote tests.

``prepare_store`` makes a store the way an operator would (``checkout init --project-id``,
the fixture catalog and settings, invoice checkout allowed, ``checkout tokens create --scope
admin``: the contract suite calls every endpoint HTTP may reach);
``serving`` starts ``python -m checkout_cli --db DB serve --port FREE --workers N``, waits
for ``/healthz`` and stops it afterwards. The ``served`` fixture (one per session) is the
store most tests share; tests that change settings put them back.

A test module gets the ``served`` fixture by importing it:
``from tests.serve_helpers import served_fixture  # noqa: F401``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.backends.remote import RemoteBackend
from tests.conftest import WATCH, Watched, WatchedBackend, load_fixtures

PROJECT = "shop-nl"
TOKEN_NAME = "contract-suite"


@dataclass(frozen=True)
class Served:
    url: str
    project: str
    token: str = field(repr=False)
    db: Path = field(default=Path())
    log: Path = field(default=Path())
    pid: int = 0  # the `checkout serve` process (its workers are its children)

    def __iter__(self) -> Iterator[Any]:  # (url, project, token, db) = served
        return iter((self.url, self.project, self.token, self.db))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def endpoint_url(self, service: str, name: str, project: str | None = None) -> str:
        return f"{self.url}/iapi/project/{project or self.project}/{service}/{name}"

    def remote(self, **kwargs: Any) -> RemoteBackend:
        return WatchedRemote(self.url, self.project, self.token, **kwargs)

    def local(self, actor: str = "test") -> LocalBackend:
        """The same store opened directly (to look behind the server's back)."""
        return WatchedBackend(self.db, actor=actor)

    def cli_env(self, **extra: str) -> dict[str, str]:
        return {"CHECKOUT_TOKEN": self.token, **extra}

    def remote_args(self) -> list[str]:
        return ["--remote", self.url, "--project", self.project]


class WatchedRemote(Watched, RemoteBackend):
    pass


def vault_key_env(db: Path) -> dict[str, str]:
    """The store's vault key as a server gets it (``CHECKOUT_VAULT_KEY``), taken from the key
    file this test process made, if it made one: the operator's way of serving a store whose
    secrets were set from the command line."""
    from checkout_cli.engine.vault_keys import KEY_ENV, key_file

    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM store_info WHERE key = 'store_id'").fetchone()
    except sqlite3.OperationalError:  # no store_info: not a store yet
        row = None
    finally:
        conn.close()
    path = key_file(row[0]) if row else None
    return {KEY_ENV: path.read_text()} if path and path.exists() else {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _checkout(args: list[str], home: Path) -> Any:
    """``checkout ARGS`` in-process, config and data dirs under ``home``; parsed --json output."""
    from checkout_cli.cli.app import app

    env = {"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    env |= {name: None for name in ("CHECKOUT_PROFILE", "CHECKOUT_REMOTE", "CHECKOUT_DB")}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def prepare_store(
    db: Path, project: str = PROJECT, token_name: str = TOKEN_NAME, scope: str = "admin"
) -> str:
    """A store as an operator makes one; returns the API token (shown once)."""
    home = db.parent / "serve-home"
    _checkout(["--db", str(db), "--json", "init", "--project-id", project], home)
    local = LocalBackend(db, actor="test")
    try:
        load_fixtures(local)
        local.call(
            "checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": True}
        )
    finally:
        local.close()
    created = create_token(db, token_name, scope=scope, full=True)
    assert created["name"] == token_name and created["token"].startswith("ck_")
    assert created["scope"] == scope
    return created["token"]


def create_token(db: Path, name: str, *, scope: str | None = None, full: bool = False) -> Any:
    """``checkout tokens create --name NAME [--scope S] --json``: the token (or the result)."""
    args = ["--db", str(db), "--json", "tokens", "create", "--name", name]
    args += ["--scope", scope] if scope else []
    created = _checkout(args, db.parent / "serve-home")
    return created if full else created["token"]


def _wait_healthy(url: str, server: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


@contextmanager
def serving(
    db: Path, token: str, *, project: str = PROJECT, workers: int = 2, timeout: float = 30
) -> Iterator[Served]:
    """``checkout serve`` on a free loopback port until the block ends."""
    home = db.parent / "serve-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"))
    env.update(vault_key_env(db))
    for attempt in range(3):  # the port is free when picked, but another process may take it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = db.parent / f"serve-{port}.log"
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "checkout_cli",
                    "--db",
                    str(db),
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            healthy = _wait_healthy(url, server, time.monotonic() + timeout)
            if not healthy and server.poll() is not None and attempt < 2:
                continue
            assert healthy, f"checkout serve did not start:\n{log.read_text()}"
            yield Served(url, project, token, db, log, server.pid)
            return
        finally:
            stop(server)
            text = log.read_text()
            WATCH.seen("checkout serve log", text)
            assert token not in text, "the access log holds an API token"


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


@pytest.fixture(scope="session", name="served")
def served_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One store served by `checkout serve --workers 2` for the whole session."""
    db = tmp_path_factory.mktemp("served") / "shop.db"
    token = prepare_store(db)
    with serving(db, token, workers=2) as server:
        yield server
    WATCH.export_store(db)


# -- stand-in servers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Recorded], tuple[int, dict[str, str], bytes]]


def plain_404(request: Recorded) -> tuple[int, dict[str, str], bytes]:
    """What a server without the route says: no JSON, no error_object."""
    return 404, {"Content-Type": "text/html"}, b"<html><body>404 Not Found</body></html>"


class StandIn:
    """A tiny HTTP server on 127.0.0.1 that records every request and answers with
    ``respond`` (default: a plain 404). ``StandIn.proxy(url)`` forwards to a real server."""

    def __init__(self, respond: Responder = plain_404) -> None:
        self.requests: list[Recorded] = []
        self._respond = respond
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Recorded(self.command, self.path, dict(self.headers.items()), body)
                stand_in.requests.append(request)
                status, headers, payload = stand_in._respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @classmethod
    def proxy(cls, target: str) -> StandIn:
        client = httpx.Client(base_url=target, timeout=30)

        def forward(request: Recorded) -> tuple[int, dict[str, str], bytes]:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            answer = client.request(
                request.method, request.path, headers=headers, content=request.body
            )
            keep = {"content-type", "idempotent-replayed"}
            return (
                answer.status_code,
                {k: v for k, v in answer.headers.items() if k.lower() in keep},
                answer.content,
            )

        return cls(forward)

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- comparing results across backends ------------------------------------------------------

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
_ORDER_NUMBER = re.compile(r"\b\d{4}-\d{6}\b")
_TOKEN = re.compile(r"\b(chk|cart|ord|pay|ck|tr|cs|pi)_[A-Za-z0-9_\-]{6,}")
# A row of one store (refund, order payment, shipment, the email of one): its number is the
# store's, not the answer's.
_ROW_ID = re.compile(r"\b(ref_|opay_|ful_|payment_received:|refund:|shipped:)\d+\b")
_ID_KEYS = {"id", "order_id", "order_number", "checkout_token", "cart_token"}
# Who did it: the local backend's actor, or the token a remote call came with.
_ACTOR_KEYS = {"actor", "recorded_by", "created_by"}


def normalize(value: Any, key: str = "") -> Any:
    """``value`` with tokens, ids and timestamps replaced by placeholders."""
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if value is None:
        return None
    if key.endswith("_at") or key in _ID_KEYS or key in _ACTOR_KEYS:
        return f"<{key}>"
    if isinstance(value, str):
        value = _TIMESTAMP.sub("<timestamp>", value)
        value = _ORDER_NUMBER.sub("<order_number>", value)
        value = _ROW_ID.sub(lambda m: f"{m.group(1)}<id>", value)
        return _TOKEN.sub(lambda m: f"{m.group(1)}_<token>", value)
    return value


def count(db: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def invariant_violations(db: Path) -> list[dict[str, Any]]:
    """The engine's six invariants (DESIGN §3) on the store; [] when they all hold."""
    from checkout_cli.engine.invariants import check_invariants

    conn = sqlite3.connect(db, timeout=30)
    try:
        return [v.as_dict() for v in check_invariants(conn)]
    finally:
        conn.close()
