"""Two `checkout serve` replicas on one PostgreSQL database, each on a machine of its own.

"Machines" are network namespaces made for the run: PostgreSQL in one, each replica
(`--workers 1`) in another, joined by veth pairs to a bridge in the root namespace, where the
test's clients and the SMTP server (aiosmtpd) live. Addresses are 10.217.X.0/24, X picked free
for the run. Both replicas get the same store URL and the same vault key (its SMTP password is
in the vault), as the README asks of replicas.

The clients spread their calls over both replicas and check, in the database itself, what the
shop must never do under concurrency, a killed replica or a restarted database: make two
orders of one checkout, sell stock it does not have, run one idempotent request twice, lose a
call that was answered, or send an order's confirmation twice (or never).
"""

from __future__ import annotations

import atexit
import base64
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.cli.app import app
from checkout_cli.engine.invariants import check_invariants
from checkout_cli.engine.stores import open_store
from tests.conftest import CUSTOMER, PG_BASE_DIR, WATCH, load_fixtures
from tests.pg_cluster import Cluster, ClusterError, available

pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"  # on purpose, on a test bridge
)

PROJECT = "shop-nl"
SERVE_PORT = 8787  # each replica has an address of its own
SMTP_USER = "shop"
SMTP_PASSWORD = WATCH.secret("smtp-replicas-Pa55-4c1e9a7b")
FLOW, CART = "checkout-flow", "shopping-cart"
# Failures a client of a load-balanced pair may see while a replica or the database is away.
CONNECTION_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)
CONNECTION_NAMES = tuple(error.__name__ for error in CONNECTION_ERRORS)
RETRIES = 400  # per call, while the database comes back (each waits RETRY_PAUSE or Retry-After)
RETRY_PAUSE = 0.05


def require_pg() -> bool:
    return os.environ.get("CHECKOUT_REQUIRE_PG") == "1"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def netns_unavailable() -> str | None:
    """Why this machine cannot make network namespaces, or None when it can."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"ckprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Network:
    """A bridge in the root namespace (10.217.X.1) and namespaces joined to it by veth pairs.
    Everything made is removed by ``close``, at interpreter exit at the latest."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.x = self._claim_subnet()
        self.bridge = f"ckbr{self.x}"
        atexit.register(self.close)
        _ip("addr", "add", f"{self.address(1)}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _claim_subnet(self) -> int:
        """A free 10.217.X.0/24: no address of it here, and its bridge made by us (the bridge's
        name is the claim, so two runs at once never take the same X)."""
        used = _ip("-o", "addr").stdout
        for x in random.sample(range(1, 255), 254):
            if f"10.217.{x}." in used:
                continue
            if _ip("link", "add", f"ckbr{x}", "type", "bridge", check=False).returncode == 0:
                self.links.append(f"ckbr{x}")
                return x
        raise RuntimeError("no free 10.217.X.0/24 subnet")

    def address(self, host: int) -> str:
        return f"10.217.{self.x}.{host}"

    def machine(self, role: str, host: int) -> str:
        """A namespace ``ck<X>-<role>`` holding ``10.217.X.<host>``; returns its name."""
        name, outside, inside = f"ck{self.x}-{role}", f"ck{self.x}{role}h", f"ck{self.x}{role}n"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self.links.append(outside)
        _ip("link", "set", inside, "netns", name)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", name, "addr", "add", f"{self.address(host)}/24", "dev", inside)
        _ip("-n", name, "link", "set", inside, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for name in reversed(self.namespaces):  # its veth end goes with it, and the pair
            _ip("netns", "del", name, check=False)
        for link in reversed(self.links):
            if _ip("link", "show", link, check=False).returncode == 0:
                _ip("link", "del", link, check=False)
        self.namespaces, self.links = [], []
        atexit.unregister(self.close)


class SmtpServer:
    """aiosmtpd on the bridge address, demanding AUTH; keeps what it accepts."""

    def __init__(self, host: str) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._controller = Controller(
            self,
            hostname=host,
            port=2525,
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        self.host, self.port = host, 2525

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.received.append({"rcpt_tos": list(envelope.rcpt_tos)})
        return "250 Message accepted for delivery"

    def _authenticate(self, *args: Any) -> AuthResult:
        auth_data = args[-1]
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)

    def per_recipient(self) -> Counter[str]:
        with self._lock:
            return Counter(r for m in self.received for r in m["rcpt_tos"])

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@dataclass
class Replica:
    """``checkout serve --workers 1`` in its own namespace (one process: SIGKILL is a crash)."""

    name: str
    netns: str
    host: str
    db_url: str
    env: dict[str, str] = field(repr=False)
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{SERVE_PORT}"

    def start(self) -> None:
        command = ["ip", "netns", "exec", self.netns, sys.executable, "-m", "checkout_cli"]
        command += ["--db", self.db_url, "serve", "--host", self.host, "--port", str(SERVE_PORT)]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [*command, "--workers", "1"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for _ in range(600):
            if self.process.poll() is not None:
                break
            if self.healthy():
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start:\n{self.log.read_text()}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


# -- the machines, once per module ------------------------------------------------------------


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    reason = netns_unavailable()
    if reason:
        if require_pg():
            pytest.fail(f"CHECKOUT_REQUIRE_PG=1 but network namespaces cannot be made: {reason}")
        pytest.skip(f"network namespaces: {reason}")
    net = Network()
    try:
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def database_machine(network: Network) -> Iterator[Cluster]:
    """PostgreSQL in its own namespace, listening on that namespace's address only."""
    reason = available()
    if reason:
        if require_pg():
            pytest.fail(f"CHECKOUT_REQUIRE_PG=1 but PostgreSQL cannot run: {reason}")
        pytest.skip(f"PostgreSQL: {reason}")
    netns = network.machine("pg", 10)
    try:
        cluster = Cluster.start(PG_BASE_DIR, host=network.address(10), netns=netns)
    except ClusterError as exc:
        pytest.fail(f"the PostgreSQL cluster in {netns} did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def replica_machines(network: Network) -> list[tuple[str, str]]:
    return [(network.machine(f"r{n}", 10 + n), network.address(10 + n)) for n in (1, 2)]


@pytest.fixture(scope="module")
def smtp(network: Network) -> Iterator[SmtpServer]:
    with SmtpServer(network.address(1)) as server:
        yield server


# -- one shop per test: a fresh database, both replicas on it -----------------------------------


@dataclass
class Shop:
    db_url: str
    token: str = field(repr=False)
    replicas: list[Replica]
    cluster: Cluster
    smtp: SmtpServer
    env: dict[str, str] = field(repr=False)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.cluster.connect(self.db_url.rsplit("/", 1)[1]) as conn:
            return list(conn.execute(query, params).fetchall())

    def one(self, query: str, *params: Any) -> Any:
        return self.sql(query, *params)[0][0]

    def checkout(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, ["--db", self.db_url, *args], env=self.env)
        WATCH.seen(f"checkout {' '.join(args)}", result.stdout + result.stderr)
        return result.exit_code, result.stdout, result.stderr


def _cli(args: list[str], env: dict[str, str]) -> Any:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def shop(
    database_machine: Cluster,
    replica_machines: list[tuple[str, str]],
    smtp: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Shop]:
    name = f"t_replicas_{uuid.uuid4().hex[:10]}"
    db_url = database_machine.create_database(name)
    vault_key = WATCH.secret(base64.b64encode(secrets.token_bytes(32)).decode())
    monkeypatch.setenv("CHECKOUT_VAULT_KEY", vault_key)  # this process sets the vault too
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "CHECKOUT_VAULT_KEY": vault_key,
    }
    _cli(["--db", db_url, "--json", "init", "--project-id", PROJECT], env)
    local = LocalBackend(db_url, actor="test")
    try:
        load_fixtures(local, tmp_path / "outbox")
        for key, value in {
            "allow_invoice_checkout": True,
            "email_transport": "smtp",
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "smtp_user": SMTP_USER,
        }.items():
            local.call("checkout-admin", "set-setting", {"key": key, "value": value})
        local.call("checkout-admin", "set-vault", {"name": "smtp_password", "value": SMTP_PASSWORD})
        local.call(
            "product-catalog",
            "upsert-product",
            {"sku": "SCARCE-6", "name": "Last six", "price_cents": 1500, "currency": "EUR",
             "stock": 6},
        )  # fmt: skip
    finally:
        local.close()
    token = WATCH.secret(
        _cli(
            ["--db", db_url, "--json", "tokens", "create", "--name", "lb", "--scope", "admin"], env
        )["token"]
    )
    served_env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}
    served_env |= env | {"CHECKOUT_CHECK_RESULTS": "1"}
    replicas = [
        Replica(f"replica-{n}", netns, host, db_url, served_env, tmp_path / f"replica-{n}.log")
        for n, (netns, host) in enumerate(replica_machines, start=1)
    ]
    smtp.received.clear()
    made = Shop(db_url, token, replicas, database_machine, smtp, env)
    try:
        for replica in replicas:
            replica.start()
        yield made
    finally:
        for replica in replicas:
            replica.stop()
        for replica in replicas:
            text = replica.log.read_text() if replica.log.exists() else ""
            WATCH.seen(f"{replica.name} log", text)
            assert "Traceback" not in text, f"{replica.name} logged a traceback:\n{text}"
        if not database_machine.running:  # the test stopped it and failed before starting it
            database_machine.start_again()
        WATCH.export_store(db_url)
        database_machine.drop_database(name)


# -- clients ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool
    replica: str
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.body.get("success") is True

    @property
    def result(self) -> dict[str, Any]:
        assert self.ok, self
        result: dict[str, Any] = self.body["result"]
        return result

    @property
    def code(self) -> str | None:
        error = self.body.get("error_object") or {}
        code: str | None = error.get("code")
        return code


def call(
    shop: Shop,
    replica: Replica,
    service: str,
    name: str,
    body: dict[str, Any],
    key: str | None = None,
) -> Answer:
    """One POST to one replica; a transport failure raises (httpx.TransportError)."""
    headers = {"Authorization": f"Bearer {shop.token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response = httpx.post(
        f"{replica.url}/iapi/project/{PROJECT}/{service}/{name}",
        json=body,
        headers=headers,
        timeout=60,
    )
    return Answer(
        response.status_code,
        response.json(),
        response.headers.get("idempotent-replayed") == "true",
        replica.name,
        response.headers.get("retry-after"),
    )


def customer(email: str) -> dict[str, Any]:
    return {**CUSTOMER, "customer": {**CUSTOMER["customer"], "email": email}}


def ready_checkout(shop: Shop, replica: Replica, email: str, sku: str = "LENS-DAILY-30") -> str:
    """A checkout with a customer and an invoice payment, made through ``replica``."""
    cart = call(shop, replica, CART, "add-item", {"product_sku": sku, "quantity": 1}).result
    token = call(
        shop, replica, FLOW, "initiate-checkout", {"cart_token": cart["cart_token"]}
    ).result["checkout_token"]
    set_customer = {"checkout_token": token, **customer(email)}
    assert call(shop, replica, FLOW, "set-customer", set_customer).ok
    payment = {"checkout_token": token, "provider": "invoice"}
    assert call(shop, replica, FLOW, "create-payment", payment).ok
    return token


def pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    return list(zip(items[::2], items[1::2], strict=True))


def concurrently(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job in its own thread, all released at once; their results, or exceptions."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- what must hold after every test -------------------------------------------------------------


def assert_store_sound(shop: Shop) -> None:
    """The engine's invariants and `checkout doctor`, on the database itself."""
    store = open_store(shop.db_url)
    try:
        assert [v.as_dict() for v in check_invariants(store.conn)] == []  # type: ignore[arg-type]
    finally:
        store.close()
    code, out, err = shop.checkout("--json", "doctor")
    assert code == 0, out + err
    assert json.loads(out)["violations"] == []
    assert "Traceback" not in err


def orders_by_checkout(shop: Shop) -> Counter[str]:
    rows = shop.sql("SELECT c.token FROM orders o JOIN checkouts c ON c.id = o.checkout_id")
    return Counter(token for (token,) in rows)


def assert_one_email_per_order(shop: Shop, cut_off: frozenset[str] = frozenset()) -> None:
    """One confirmation row per order, sent, and the SMTP server got each exactly once. An
    email of ``cut_off`` (recipients whose completion a killed replica may have been
    delivering) may be left ``sending``: sent once or not at all, for an operator to tell."""
    rows = shop.sql(
        "SELECT o.order_number, x.status, x.recipient FROM orders o "
        "LEFT JOIN outbox x ON x.order_id = o.id AND x.kind = 'order_confirmation'"
    )
    got = shop.smtp.per_recipient()
    sending = {r[2] for r in rows if r[1] == "sending"}
    assert sending <= cut_off, sending
    assert [r for r in rows if r[1] not in ("sent", "sending")] == []
    assert shop.one("SELECT count(*) FROM outbox") == len(rows)
    assert {r[2]: 1 for r in rows if r[2] not in sending} == {
        to: n for to, n in got.items() if to not in sending
    }
    assert all(got[to] <= 1 for to in sending), got


# -- (a) one checkout completed from both replicas at once ---------------------------------------


def test_the_same_checkouts_completed_from_both_replicas_make_one_order_each(shop: Shop) -> None:
    first, second = shop.replicas
    tokens = [ready_checkout(shop, first, f"buyer-a{i}@example.com") for i in range(8)]
    jobs = [
        (lambda t=token, r=replica: call(shop, r, FLOW, "complete-checkout", {"checkout_token": t}))
        for token in tokens
        for replica in (first, second)
    ]
    answers: list[Answer] = concurrently(jobs)
    assert all(isinstance(a, Answer) and a.ok for a in answers), answers
    for pair in pairs(answers):
        orders = {a.result["order"]["order_number"] for a in pair}
        assert len(orders) == 1, pair  # both answers name the one order
        assert sorted(a.result["already_completed"] for a in pair) == [False, True], pair
    assert orders_by_checkout(shop) == Counter(tokens)
    assert_one_email_per_order(shop)
    assert_store_sound(shop)


# -- (b) tight stock over both replicas ----------------------------------------------------------


def buy(shop: Shop, replica: Replica, email: str) -> Answer:
    """The whole flow for one unit of SCARCE-6 through one replica; the first refusal or the
    completion's answer."""
    added = call(shop, replica, CART, "add-item", {"product_sku": "SCARCE-6", "quantity": 1})
    if not added.ok:
        return added
    steps: list[tuple[str, dict[str, Any]]] = [
        ("initiate-checkout", {"cart_token": added.result["cart_token"]}),
    ]
    answer = call(shop, replica, FLOW, *steps[0])
    if not answer.ok:
        return answer
    token = answer.result["checkout_token"]
    for name, body in [
        ("set-customer", {"checkout_token": token, **customer(email)}),
        ("create-payment", {"checkout_token": token, "provider": "invoice"}),
        ("complete-checkout", {"checkout_token": token}),
    ]:
        answer = call(shop, replica, FLOW, name, body)
        if not answer.ok:
            return answer
    return answer


def test_twelve_buyers_for_six_units_over_both_replicas_make_six_orders(shop: Shop) -> None:
    jobs = [
        (lambda i=i: buy(shop, shop.replicas[i % 2], f"buyer-b{i}@example.com")) for i in range(12)
    ]
    answers: list[Answer] = concurrently(jobs)
    assert all(isinstance(a, Answer) for a in answers), answers
    sold = [a for a in answers if a.ok]
    refused = [a for a in answers if not a.ok]
    assert len(sold) == 6, answers
    assert {(a.status, a.code) for a in refused} == {(409, "insufficient_stock")}, refused
    assert {a.replica for a in sold} <= {"replica-1", "replica-2"}
    assert shop.one("SELECT stock FROM products WHERE sku = 'SCARCE-6'") == 0
    assert shop.one("SELECT min(stock) FROM products") >= 0
    assert sum(orders_by_checkout(shop).values()) == 6
    assert_one_email_per_order(shop)
    assert_store_sound(shop)


# -- (c) one Idempotency-Key at both replicas at once --------------------------------------------


def settle(shop: Shop, answer: Answer, *request: Any) -> Answer:
    """Retry a ``request_in_progress`` with the same key, as its Retry-After says."""
    for _ in range(RETRIES):
        if answer.code != "request_in_progress":
            return answer
        assert answer.status == 409 and answer.retry_after is not None, answer
        time.sleep(min(float(answer.retry_after), 0.2))
        answer = call(shop, *request)
    raise AssertionError(f"still in progress: {answer}")


def test_one_idempotency_key_sent_to_both_replicas_takes_effect_once(shop: Shop) -> None:
    first, second = shop.replicas
    carts = [
        call(shop, first, CART, "add-item", {"product_sku": "LENS-DAILY-30", "quantity": 1}).result[
            "cart_token"
        ]
        for _ in range(8)
    ]
    checkouts = [ready_checkout(shop, first, f"buyer-c{i}@example.com") for i in range(6)]
    requests: list[tuple[str, str, dict[str, Any], str]] = [
        (CART, "add-item", {"cart_token": c, "product_sku": "LENS-MONTH-6", "quantity": 1},
         f"add-{uuid.uuid4()}")
        for c in carts
    ] + [
        (FLOW, "complete-checkout", {"checkout_token": t}, f"complete-{uuid.uuid4()}")
        for t in checkouts
    ]  # fmt: skip
    jobs = [
        (lambda req=req, r=replica: call(shop, r, *req))
        for req in requests
        for replica in (first, second)
    ]
    answers: list[Answer] = concurrently(jobs)
    assert all(isinstance(a, Answer) for a in answers), answers
    for (service, name, body, key), pair in zip(requests, pairs(answers), strict=True):
        replicas = [first, second]
        settled = [
            settle(shop, a, replicas[i], service, name, body, key) for i, a in enumerate(pair)
        ]
        assert all(a.ok for a in settled), settled
        assert settled[0].body == settled[1].body  # the one answer, sent twice
        assert [a.replayed for a in settled].count(False) <= 1, settled
    # One effect each: one more line of one unit in every cart, one order per checkout.
    quantities = shop.sql(
        "SELECT c.token, i.quantity FROM cart_items i JOIN carts c ON c.id = i.cart_id "
        "WHERE i.product_sku = 'LENS-MONTH-6'"
    )
    assert sorted(quantities) == sorted((c, 1) for c in carts)
    assert orders_by_checkout(shop) == Counter(checkouts)
    # The same key for another request is the documented conflict, at either replica.
    service, name, body, key = requests[0]
    other = {**body, "quantity": 5}
    for replica in (first, second):
        reused = call(shop, replica, service, name, other, key)
        assert (reused.status, reused.code) == (409, "idempotency_key_reused"), reused
    assert_one_email_per_order(shop)
    assert_store_sound(shop)


# -- (d) and (e): a workload that survives a lost replica or a restarted database ----------------


@dataclass
class Workload:
    """Buyers each running the whole flow, every write under its own Idempotency-Key, their
    calls spread over the replicas. A call that fails at the transport or with 503 is sent
    again with the same key: to the other replica when one is gone (what a load balancer
    does), to any while the database is away. Every failure seen is kept to be judged."""

    shop: Shop
    buyers: int
    alive: list[Replica]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (replica, what)
    cut: set[str] = field(default_factory=set)  # keys of calls a replica may have been running
    done_calls: int = 0
    answered: dict[int, Answer] = field(default_factory=dict)  # buyer -> completion
    after_event: Counter[str] = field(default_factory=Counter)  # replica -> calls answered
    event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, service: str, name: str, body: dict[str, Any], key: str) -> Answer:
        for _ in range(RETRIES):
            with self._lock:
                replica = self.alive[next(self._turn) % len(self.alive)]
            try:
                answer = call(self.shop, replica, service, name, body, key)
            except CONNECTION_ERRORS as exc:
                self._failed(replica, f"{type(exc).__name__} on {name}")
                if not isinstance(exc, httpx.ConnectError):  # it may have got in
                    with self._lock:
                        self.cut.add(key)
                time.sleep(RETRY_PAUSE)
                continue
            if answer.status == 503:
                assert answer.code in {"database_unavailable", "database_busy"}, answer
                self._failed(replica, f"503 {answer.code} on {name}")
                time.sleep(RETRY_PAUSE)
                continue
            if answer.code == "request_in_progress":  # an attempt cut off mid-way holds it
                time.sleep(min(float(answer.retry_after or 1), 0.2))
                continue
            assert answer.ok, (name, answer)
            with self._lock:
                self.done_calls += 1
                if self.event.is_set():
                    self.after_event[replica.name] += 1
            return answer
        raise AssertionError(f"{name} never got through: {self.failures[-5:]}")

    def _failed(self, replica: Replica, what: str) -> None:
        with self._lock:
            self.failures.append((replica.name, what))

    def buyer(self, i: int) -> None:
        steps = itertools.count()

        def write(service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            return self.send(service, name, body, f"buyer-{i}-{next(steps)}").result

        cart = write(CART, "add-item", {"product_sku": "LENS-DAILY-30", "quantity": 2})
        write(CART, "add-item", {"cart_token": cart["cart_token"], "product_sku":
                                 "LENS-MONTH-6", "quantity": 1})  # fmt: skip
        token = write(FLOW, "initiate-checkout", {"cart_token": cart["cart_token"]})[
            "checkout_token"
        ]
        write(FLOW, "set-customer", {"checkout_token": token, **customer(email_of(i))})
        write(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
        completed = self.send(FLOW, "complete-checkout", {"checkout_token": token}, f"buyer-{i}")
        with self._lock:
            self.answered[i] = completed

    def run(self, disruption: Callable[[], None], after_calls: int, threads: int = 6) -> None:
        """The buyers on ``threads`` threads; ``disruption`` runs once ``after_calls`` calls
        were answered, while the rest go on."""
        queue = iter(range(self.buyers))
        queue_lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            while True:
                with queue_lock:
                    i = next(queue, None)
                if i is None:
                    return
                try:
                    self.buyer(i)
                except BaseException as exc:
                    errors.append(exc)
                    return

        def disrupt() -> None:
            while self.done_calls < after_calls and not errors:
                time.sleep(0.01)
            self.event.set()
            disruption()

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        disrupter = threading.Thread(target=disrupt)
        for thread in [*workers, disrupter]:
            thread.start()
        for thread in [*workers, disrupter]:
            thread.join()
        assert not errors, errors

    def assert_nothing_lost_or_doubled(self) -> None:
        shop = self.shop
        assert sorted(self.answered) == list(range(self.buyers))
        numbers = {a.result["order"]["order_number"] for a in self.answered.values()}
        assert len(numbers) == self.buyers  # every buyer got an order of its own
        stored = {n for (n,) in shop.sql("SELECT order_number FROM orders")}
        assert stored == numbers  # none lost, none the clients did not ask for
        assert set(orders_by_checkout(shop).values()) == {1}
        lines = shop.sql(
            "SELECT i.product_sku, i.quantity, count(*) FROM cart_items i "
            "GROUP BY i.product_sku, i.quantity ORDER BY 1"
        )
        assert lines == [("LENS-DAILY-30", 2, self.buyers), ("LENS-MONTH-6", 1, self.buyers)]
        assert shop.one("SELECT count(*) FROM carts") == self.buyers
        assert shop.one("SELECT count(*) FROM checkouts") == self.buyers
        # Stock moved once per order line.
        for sku, units in (("LENS-DAILY-30", 2), ("LENS-MONTH-6", 1)):
            moved = shop.one(
                "SELECT -COALESCE(sum(delta), 0) FROM stock_movements "
                "WHERE sku = %s AND reason = 'order'",
                sku,
            )
            assert moved == units * self.buyers, (sku, moved)


def email_of(i: int) -> str:
    return f"buyer-w{i}@example.com"


def send_outbox(shop: Shop) -> None:
    """What an operator runs after an outage: emails whose delivery was deferred go now."""
    code, out, err = shop.checkout("--json", "outbox", "send")
    assert code == 0, out + err


def test_a_replica_killed_mid_run_loses_and_doubles_nothing(shop: Shop) -> None:
    first, second = shop.replicas
    work = Workload(shop, buyers=24, alive=[first, second])

    def kill_first() -> None:
        first.kill()
        with work._lock:
            work.alive = [second]  # the load balancer's health check takes it out

    work.run(kill_first, after_calls=40)
    assert first.process is not None and first.process.returncode == -signal.SIGKILL
    # Transport errors from the killed replica only; the survivor, with every buyer on it, may
    # say it is too busy (503 database_busy: a hot row aborted a call too often).
    unclear = [
        (replica, what)
        for replica, what in work.failures
        if not what.startswith(CONNECTION_NAMES if replica == "replica-1" else "503 database_busy")
    ]
    assert unclear == [], Counter(unclear)
    assert work.after_event["replica-2"] > 0  # the calls went on, on the survivor
    assert second.healthy()
    work.assert_nothing_lost_or_doubled()
    send_outbox(shop)
    cut = frozenset(email_of(int(key.split("-")[1])) for key in work.cut if key.count("-") == 1)
    assert_one_email_per_order(shop, cut_off=cut)
    assert_store_sound(shop)


def test_a_database_restart_mid_run_loses_and_doubles_nothing(shop: Shop) -> None:
    work = Workload(shop, buyers=24, alive=list(shop.replicas))
    work.run(shop.cluster.restart, after_calls=40)
    # The replicas were not restarted: both answer again, from the same processes.
    for replica in shop.replicas:
        assert replica.process is not None and replica.process.poll() is None
        assert replica.healthy()
    assert sum(work.after_event.values()) > 0
    clear = ("503 database_", *CONNECTION_NAMES)  # unavailable, or busy once it is back
    unclear = [what for _, what in work.failures if not what.startswith(clear)]
    assert unclear == [], Counter(unclear)
    work.assert_nothing_lost_or_doubled()
    send_outbox(shop)
    assert_one_email_per_order(shop)
    assert_store_sound(shop)
