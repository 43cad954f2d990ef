"""Shared fixtures: an isolated config/data dir per test, a real SQLite store, the CLI runner."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sqlite3
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from checkout_cli.config import StoreTarget, is_pg_url
from checkout_cli.errors import CheckoutError
from tests.fakes.fake_mollie import FakeMollie
from tests.fakes.fake_stripe import FakeStripe
from tests.pg_cluster import Cluster, ClusterError, available
from tests.store_rows import dump as dump  # re-exported: the suite imports it from here

# Every answer a test's local backend gives (in-process, and in the CLIs and servers it starts,
# which inherit it) is checked against its endpoint's result model (backends/local.py).
os.environ.setdefault("CHECKOUT_CHECK_RESULTS", "1")

FIXTURES = Path(__file__).resolve().parent.parent / "checkout_cli" / "fixtures"
# The real temp dir, before isolated_dirs points tempfile at each test's own: the PostgreSQL
# cluster outlives every test, and its socket path must stay short.
PG_BASE_DIR = tempfile.gettempdir()


def encodings(secret: str) -> set[str]:
    """``secret`` raw, and the base64 (standard and URL-safe) found in base64 of any text
    that holds it: one string per offset of the secret modulo 3, so AUTH PLAIN's
    ``\\0user\\0password`` is caught as well as the password's own base64."""
    data = secret.encode()
    forms = {secret}
    for offset in range(3):
        part = data[offset:]
        part = part[: len(part) - len(part) % 3]
        if len(part) >= 6:  # shorter would match innocent text
            encoded = base64.b64encode(part).decode()
            forms |= {encoded, encoded.replace("+", "-").replace("/", "_")}
    return forms


class SecretWatch:
    """Suite-wide: no secret a test uses (vault values, passwords, API tokens) may show up,
    raw or base64-encoded, in CLI output, an answer or error object of a backend, an MCP
    result, a log line, a server's log, or a store: every row of every table, and the bytes
    of the database file and its WAL. Each text is checked against the secrets known when it
    is seen (a token is registered the moment it is made, before it could leak); the session
    fails at its end if anything leaked."""

    def __init__(self) -> None:
        self.forms: dict[str, set[str]] = {}
        self.leaks: list[str] = []
        self.test = "collection"  # which test is running, for the report

    def secret(self, value: str) -> str:
        self.forms[value] = encodings(value)
        return value

    def seen(self, where: str, text: str | bytes) -> None:
        if not text:
            return
        for secret, forms in self.forms.items():
            for form in forms:
                found = form.encode() in text if isinstance(text, bytes) else form in text
                if found:
                    kind = "raw" if form == secret else "base64 of"
                    self.leaks.append(f"{self.test}: {where} holds {kind} {secret[:8]}…")
                    break

    def export_store(self, path: StoreTarget) -> None:
        """The store's file and WAL byte by byte, then every row of every table."""
        if is_pg_url(path):
            self._export_database(str(path))
            return
        assert isinstance(path, Path)
        for part in (path, Path(f"{path}-wal")):
            if part.exists():
                self.seen(f"file {part}", part.read_bytes())
        if not path.exists():
            return
        conn = sqlite3.connect(path)
        try:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            export = {
                t: [list(row) for row in conn.execute(f"SELECT * FROM [{t}]")] for t in tables
            }
        finally:
            conn.close()
        self.seen(f"rows of {path}", json.dumps(export, default=str))

    def _export_database(self, url: str) -> None:
        """Every row of every table of a PostgreSQL store (its files are the server's)."""
        import psycopg

        try:
            rows = dump(url)
        except psycopg.OperationalError:
            return  # dropped already, or the test stopped the server
        self.seen(f"rows of {url}", "\n".join(rows))


WATCH = SecretWatch()


class _LogCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        WATCH.seen(f"log {record.name}", self.format(record))


class Watched:
    """A backend whose every answer and error goes past the secret watch."""

    def call(self, service: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            result = super().call(service, name, body)  # type: ignore[misc]
        except CheckoutError as exc:
            WATCH.seen(f"error of {service}/{name}", json.dumps(exc.to_error_object()))
            raise
        except Exception as exc:
            WATCH.seen(f"error of {service}/{name}", f"{type(exc).__name__}: {exc}")
            raise
        WATCH.seen(f"answer of {service}/{name}", json.dumps(result, default=str))
        return result


class WatchedBackend(Watched, LocalBackend):
    outbox_dir: Path  # where the fixture settings put the file transport's emails


@pytest.fixture(scope="session", autouse=True)
def secret_watch():
    """Fails the session if any output, answer, log line or store holds a secret."""
    handler = _LogCapture()
    logging.getLogger().addHandler(handler)
    ours = [logging.getLogger(name) for name in ("checkout_cli", "checkout")]
    for logger in ours:  # every line our code logs, whatever its level
        logger.setLevel(logging.DEBUG)
    yield WATCH
    logging.getLogger().removeHandler(handler)
    assert not WATCH.leaks, WATCH.leaks


@pytest.fixture(autouse=True)
def _name_the_test_for_the_watch(request: pytest.FixtureRequest) -> None:
    WATCH.test = request.node.nodeid


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's config or data dir, or leaves files in /tmp."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    scratch = tmp_path / "tmp"  # `checkout demo` makes its store in the temp dir
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))  # for the commands tests start as processes
    for name in ("CHECKOUT_DB", "CHECKOUT_PROFILE", "CHECKOUT_VAULT_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


# Tests that use the ``store`` fixture (through ``backend`` or ``cli`` too) run once on each
# store named in CHECKOUT_TEST_STORES (default both, "sqlite,postgres"; the PostgreSQL runs
# are skipped where no server can start unless CHECKOUT_REQUIRE_PG=1; "sqlite" is quicker).
# One that asks for ``db_path`` or is marked ``sqlite_only`` reads the SQLite file itself,
# and runs on SQLite.
STORE_KINDS = tuple(os.environ.get("CHECKOUT_TEST_STORES", "sqlite,postgres").split(","))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" not in metafunc.fixturenames:
        return
    on_file = "db_path" in metafunc.fixturenames or metafunc.definition.get_closest_marker(
        "sqlite_only"
    )
    kinds = [k for k in STORE_KINDS if k == "sqlite" or not on_file]
    metafunc.parametrize("store_kind", kinds, scope="function")


@pytest.fixture
def store_kind() -> str:
    """SQLite, for a fixture that asks for the store itself at run time (not parametrized)."""
    return "sqlite"


@pytest.fixture
def store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreTarget:
    """The test's store: an SQLite file, or a fresh PostgreSQL database (``pg_url``)."""
    if store_kind == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "shop.db"


def load_fixtures(backend: LocalBackend, outbox_dir: Path | None = None) -> None:
    settings = json.loads((FIXTURES / "settings.json").read_text())
    if outbox_dir is None:
        assert isinstance(backend.db_path, Path), "a PostgreSQL store's test names its outbox"
        outbox_dir = backend.db_path.parent / "outbox"
    settings["email_outbox_dir"] = str(outbox_dir)
    for key, value in settings.items():
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    for definition in json.loads((FIXTURES / "meta_definitions.json").read_text())["definitions"]:
        backend.call("product-catalog", "upsert-meta-definition", definition)
    for product in json.loads((FIXTURES / "catalog.json").read_text())["products"]:
        backend.call("product-catalog", "upsert-product", product)


@pytest.fixture
def backend(store: StoreTarget, tmp_path: Path):
    """A LocalBackend on a fresh store with the fixture catalog and settings loaded."""
    local = WatchedBackend(store, actor="test")
    local.outbox_dir = tmp_path / "outbox"
    load_fixtures(local, local.outbox_dir)
    yield local
    local.close()
    WATCH.export_store(store)


STRIPE_KEY = WATCH.secret("sk_test_51Fake0Stripe0Secret0Key0abcdefghijklmnop")
WEBHOOK_SECRET = WATCH.secret("whsec_fake0webhook0signing0secret0xyz")
MOLLIE_KEY = WATCH.secret("test_fake0mollie0api0key0abcdefghijklmnop")


@pytest.fixture
def stripe_fake(backend):
    """The fake Stripe, with the store's key, webhook secret and API address pointing at it."""
    with FakeStripe(api_key=STRIPE_KEY) as fake:
        backend.call(
            "checkout-admin", "set-vault", {"name": "stripe_secret_key", "value": STRIPE_KEY}
        )
        backend.call(
            "checkout-admin",
            "set-vault",
            {"name": "stripe_webhook_secret", "value": WEBHOOK_SECRET},
        )
        for key, value in {
            "stripe_api_base": fake.url,
            "provider_timeout_seconds": 2,
            "payment_redirect_url": "https://shop.example/thanks",
        }.items():
            backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
        yield fake


@pytest.fixture
def mollie_fake(backend):
    """The fake Mollie, with the store's key and API address pointing at it."""
    with FakeMollie(api_key=MOLLIE_KEY) as fake:
        backend.call("checkout-admin", "set-vault", {"name": "mollie_api_key", "value": MOLLIE_KEY})
        for key, value in {
            "mollie_api_endpoint": fake.url,
            "provider_timeout_seconds": 2,
            "payment_redirect_url": "https://shop.example/thanks",
        }.items():
            backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
        yield fake


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


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(store: StoreTarget):
    """Run ``checkout --db <test store> ARGS`` in-process; stdout and stderr kept apart."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(app, ["--db", str(store), *args], input=input, env=env)
        WATCH.seen(f"checkout {' '.join(args)}", result.stdout + result.stderr)
        return Result(result.exit_code, result.stdout, result.stderr)

    yield run
    WATCH.export_store(store)


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server (tests/pg_cluster.py), one per xdist worker. Skipped where
    PostgreSQL cannot run, unless CHECKOUT_REQUIRE_PG=1 (CI), where that fails instead."""
    reason = available()
    if reason:
        if os.environ.get("CHECKOUT_REQUIRE_PG") == "1":
            pytest.fail(f"CHECKOUT_REQUIRE_PG=1 but PostgreSQL cannot run: {reason}")
        pytest.skip(f"PostgreSQL: {reason}")
    try:
        cluster = Cluster.start(PG_BASE_DIR)
    except ClusterError as exc:  # binaries are here: a cluster that will not start is an error
        pytest.fail(f"the PostgreSQL test cluster did not start: {exc}")
    yield cluster
    cluster.close()


@pytest.fixture
def pg_new_database(pg_cluster: Cluster, request: pytest.FixtureRequest):
    """Makes fresh, empty databases on the test cluster (named after the test) and returns their
    URLs; each is dropped after the test."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    made: list[str] = []

    def new() -> str:
        name = f"t_{stem}_{uuid.uuid4().hex[:10]}"
        url = pg_cluster.create_database(name)
        made.append(name)
        return url

    yield new
    if made and not pg_cluster.running:  # a test stopped the server and failed before starting it
        pg_cluster.start_again()
    for name in made:
        pg_cluster.drop_database(name)


@pytest.fixture
def pg_url(pg_new_database) -> str:
    """A fresh, empty database on the test cluster for this test alone; dropped after it."""
    return pg_new_database()
