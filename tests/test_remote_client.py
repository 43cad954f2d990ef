"""RemoteBackend and the CLI's --remote mode: unreachable servers, bad tokens, remotes without
an endpoint, retries that never run a write twice, and what goes over the wire (the token only
in the Authorization header, never a vault value)."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.backends.remote import RemoteBackend
from checkout_cli.cli.app import app
from checkout_cli.errors import (
    AuthError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
)
from tests.conftest import CUSTOMER, WATCH, Result, dump
from tests.serve_helpers import (
    Recorded,
    StandIn,
    count,
    free_port,
    plain_404,
    served_fixture,  # noqa: F401
)

FLOW, CART = "checkout-flow", "shopping-cart"
SECRET = WATCH.secret("sk_live_remote0never0leaves0this0machine0xyz")


def checkout(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=env, input=input)
    WATCH.seen(f"checkout {' '.join(args)}", result.stdout + result.stderr)
    return Result(result.exit_code, result.stdout, result.stderr)


# -- failures the CLI maps to exit codes ----------------------------------------------------------


def test_unreachable_server_is_remote_unreachable_exit_6():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = RemoteBackend(url, "shop-nl", "ck_unused", timeout=2)
    for service, name, body in [
        (FLOW, "get-checkout-status", {"checkout_token": "chk_x"}),
        (CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1}),
    ]:
        with pytest.raises(UnavailableError) as caught:
            remote.call(service, name, body)
        assert caught.value.code == "remote_unreachable" and url in caught.value.message
        assert caught.value.exit_code == 6
    remote.close()
    token = "ck_unreachable0token0value"
    result = checkout(
        "--remote", url, "--project", "shop-nl", "status", "chk_x", env={"CHECKOUT_TOKEN": token}
    )
    assert result.exit_code == 6 and url in result.stderr
    assert token not in result.stdout + result.stderr
    as_json = checkout(
        "--remote",
        url,
        "--project",
        "shop-nl",
        "--json",
        "status",
        "chk_x",
        env={"CHECKOUT_TOKEN": token},
    )
    error = json.loads(as_json.stderr)["error_object"]
    assert (as_json.exit_code, error["type"], error["code"]) == (
        6,
        "unavailable",
        "remote_unreachable",
    )


@pytest.mark.parametrize(
    "token, code", [("ck_wrong0token", "invalid_token"), (None, "missing_token")]
)
def test_wrong_or_missing_token_is_exit_7(served, token, code):
    env = {"CHECKOUT_TOKEN": token} if token else {"CHECKOUT_TOKEN": None}
    before = dump(served.db)
    result = checkout(*served.remote_args(), "--json", "cart", "add", "GIFT-CARD-25", env=env)
    assert result.exit_code == 7, result.stderr
    error = json.loads(result.stderr)["error_object"]
    assert (error["type"], error["code"]) == ("auth", code)
    human = checkout(*served.remote_args(), "status", "chk_x", env=env)
    assert human.exit_code == 7 and human.stderr.startswith("error: ")
    assert dump(served.db) == before
    with pytest.raises(AuthError):
        RemoteBackend(served.url, served.project, token).call(
            "product-catalog", "list-products", {}
        )


def _hosted_platform(request: Recorded) -> tuple[int, dict[str, str], bytes]:
    """Like the hosted platform: the checkout flow is there, checkout-admin is not."""
    if "/checkout-admin/" in request.path:
        return plain_404(request)
    result = {"checkout_token": "chk_hosted", "status": "active", "items": []}
    payload = json.dumps({"success": True, "result": result}).encode()
    return 200, {"Content-Type": "application/json"}, payload


@pytest.mark.parametrize(
    "args",
    [
        ("checkouts", "list"),
        ("doctor",),
        ("outbox", "list"),
        ("settings", "show"),
        ("call", "checkout-admin", "reconcile"),
    ],
)
def test_an_endpoint_the_remote_lacks_is_exit_3_not_supported(args):
    env = {"CHECKOUT_TOKEN": "ck_hosted0token"}
    with StandIn(_hosted_platform) as hosted:
        remote = ["--remote", hosted.url, "--project", "shop-nl"]
        assert checkout(*remote, "--json", "status", "chk_hosted", env=env).exit_code == 0
        result = checkout(*remote, *args, env=env)
        assert result.exit_code == 3, (result.stdout, result.stderr)
        assert "not supported by this remote" in result.stderr
        as_json = checkout(*remote, "--json", *args, env=env)
        error = json.loads(as_json.stderr)["error_object"]
        assert (as_json.exit_code, error["code"]) == (3, "endpoint_not_supported")
        assert all("/checkout-admin/" in r.path for r in hosted.requests[1:])


def test_an_unknown_endpoint_on_checkout_serve_is_not_supported(served):
    remote = served.remote()
    with pytest.raises(NotFoundError) as caught:
        remote.call("checkout-admin", "rebuild-everything", {})
    assert caught.value.code == "endpoint_not_supported"
    assert "not supported by this remote" in caught.value.message
    with pytest.raises(NotFoundError) as caught:  # a real not-found stays what it is
        remote.call(FLOW, "get-checkout-status", {"checkout_token": "chk_doesnotexist"})
    assert caught.value.code == "checkout_not_found"
    remote.close()


def test_a_server_error_without_error_object_is_unavailable():
    def broken(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        return 502, {"Content-Type": "text/plain"}, b"Bad Gateway"

    with StandIn(broken) as proxy_down:
        remote = RemoteBackend(proxy_down.url, "shop-nl", "ck_x")
        with pytest.raises(UnavailableError) as caught:
            remote.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
        assert "502" in caught.value.message and caught.value.exit_code == 6
        assert len(proxy_down.requests) == 1  # an answer is not a network error: no retry


# -- retries never run a write twice ------------------------------------------------------------


class DropFirstResponse(httpx.BaseTransport):
    """Forwards to the real server; the first answer to ``endpoint`` is lost on the way back
    (the write ran, the client sees a timeout). With ``before=True`` the first request never
    reaches the server instead."""

    def __init__(self, endpoint: str, *, before: bool = False) -> None:
        self.inner = httpx.HTTPTransport()
        self.endpoint = endpoint
        self.before = before
        self.dropped = False
        self.seen: list[tuple[str, str | None, httpx.Headers | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        hit = request.url.path.endswith(f"/{self.endpoint}") and not self.dropped
        if hit and self.before:
            self.dropped = True
            self.seen.append((request.url.path, key, None))
            raise httpx.ConnectError("connection refused", request=request)
        response = self.inner.handle_request(request)
        if hit:
            self.dropped = True
            response.read()
            response.close()
            self.seen.append((request.url.path, key, response.headers))
            raise httpx.ReadTimeout("timed out reading the response", request=request)
        self.seen.append((request.url.path, key, response.headers))
        return response

    def close(self) -> None:
        self.inner.close()

    def calls(self, endpoint: str) -> list[tuple[str | None, httpx.Headers | None]]:
        return [(k, h) for p, k, h in self.seen if p.endswith(f"/{endpoint}")]


def test_a_write_retried_after_a_lost_response_runs_once(served):
    local = served.local()
    cart = local.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    transport = DropFirstResponse("add-item")
    remote = served.remote(transport=transport)
    result = remote.call(
        CART,
        "add-item",
        {"cart_token": cart["cart_token"], "product_sku": "GIFT-CARD-25", "quantity": 2},
    )
    assert result["items"][0]["quantity"] == 3  # 1 + 2 once
    (key1, lost), (key2, replayed) = transport.calls("add-item")
    assert key1 and key1 == key2  # the retry is the same request, not a second one
    assert lost is not None and "idempotent-replayed" not in lost
    assert replayed is not None and replayed["idempotent-replayed"] == "true"
    stored = local.call(CART, "get-cart", {"cart_token": cart["cart_token"]})
    assert stored["items"][0]["quantity"] == 3
    remote.close()
    local.close()


def test_complete_retried_after_a_lost_response_makes_one_order(served):
    local = served.local()
    cart = local.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    token = local.call(FLOW, "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    local.call(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER})
    local.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    transport = DropFirstResponse("complete-checkout")
    remote = served.remote(transport=transport)
    done = remote.call(FLOW, "complete-checkout", {"checkout_token": token})
    # the replay is the first answer itself, not a second completion's "already_completed"
    assert done["status"] == "completed" and done["already_completed"] is False
    (key1, _), (key2, replayed) = transport.calls("complete-checkout")
    assert key1 == key2 and replayed["idempotent-replayed"] == "true"
    orders = count(
        served.db,
        "SELECT COUNT(*) FROM orders o JOIN checkouts c ON c.id = o.checkout_id WHERE c.token = ?",
        (token,),
    )
    assert orders == 1
    remote.close()
    local.close()


def test_a_write_that_never_arrived_runs_once_on_retry(served):
    transport = DropFirstResponse("add-item", before=True)
    remote = served.remote(transport=transport)
    cart = remote.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 4})
    (key1, _), (key2, headers) = transport.calls("add-item")
    assert key1 == key2 and "idempotent-replayed" not in headers
    assert (
        remote.call(CART, "get-cart", {"cart_token": cart["cart_token"]})["items"][0]["quantity"]
        == 4
    )
    remote.close()


class CutOff(httpx.BaseTransport):
    """Forwards to the real server; the answers to the first ``times`` requests for
    ``endpoint`` are cut off (the server ran them; the client sees its connection drop, as when
    a worker is killed mid-request)."""

    def __init__(self, endpoint: str, times: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.endpoint, self.times = endpoint, times
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith(f"/{self.endpoint}"):
            self.keys.append(request.headers.get("idempotency-key"))
            if len(self.keys) <= self.times:
                response.read()
                response.close()
                raise httpx.RemoteProtocolError("server disconnected", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_write_cut_off_again_and_again_is_retried_until_it_is_answered(served):
    local = served.local()
    cart = local.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    transport = CutOff("add-item", times=4)
    remote = served.remote(transport=transport)
    body = {"cart_token": cart["cart_token"], "product_sku": "GIFT-CARD-25", "quantity": 2}
    result = remote.call(CART, "add-item", body)
    assert result["items"][0]["quantity"] == 3  # ran once, replayed four times
    assert len(transport.keys) == 5 and len(set(transport.keys)) == 1
    remote.close()
    local.close()


def test_a_write_never_answered_says_it_may_have_run(served, monkeypatch):
    from checkout_cli.backends import remote as remote_module

    monkeypatch.setattr(remote_module, "RETRY_SECONDS", 1.0)
    remote = served.remote(transport=CutOff("add-item", times=1000))
    with pytest.raises(UnavailableError) as caught:
        remote.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    assert caught.value.code == "remote_unreachable"
    assert "may have run" in caught.value.message
    assert caught.value.recovery == "check its result before doing it again"
    remote.close()


class ClaimedElsewhereFirst(httpx.BaseTransport):
    """Forwards to the real server; before the first write arrives, a worker on another host
    claims its key for ``lease`` seconds (the lease is all this server can go by)."""

    def __init__(self, db: Any, digest: str, lease: float) -> None:
        self.inner = httpx.HTTPTransport()
        self.db, self.digest, self.lease = db, digest, lease
        self.answers: list[tuple[int, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if key and not self.answers:
            _claim_elsewhere(self.db, f"contract-suite:{key}", self.digest, self.lease)
        response = self.inner.handle_request(request)
        self.answers.append((response.status_code, response.headers.get("retry-after")))
        return response

    def close(self) -> None:
        self.inner.close()


def _claim_elsewhere(db: Any, key: str, digest: str, lease: float) -> None:
    import sqlite3
    from datetime import timedelta

    from checkout_cli.engine.core import iso, utc_now

    conn = sqlite3.connect(db, timeout=30)
    with conn:
        conn.execute(
            "INSERT INTO idempotent_requests (key, request_hash, status, owner, lease_until, "
            "created_at) VALUES (?, ?, 'in_progress', ?, ?, ?)",
            (
                key,
                digest,
                "elsewhere.example/4242/1.00/abcd",
                iso(utc_now() + timedelta(seconds=lease)),
                iso(utc_now()),
            ),
        )
    conn.close()


def test_a_retry_waits_for_the_first_attempt_as_long_as_its_lease(served):
    """The first attempt's claim (another host's, so only its lease tells) outlasts the
    ~1.5 s the client used to wait; the client keeps asking as Retry-After says, the lease
    passes, and the request runs."""
    from checkout_cli.engine.idempotency import request_hash

    body = {"product_sku": "GIFT-CARD-25", "quantity": 5}
    digest = request_hash(CART, "add-item", body)
    transport = ClaimedElsewhereFirst(served.db, digest, lease=3.0)
    remote = served.remote(transport=transport)
    cart = remote.call(CART, "add-item", body)
    assert cart["items"][0]["quantity"] == 5
    statuses = [status for status, _ in transport.answers]
    assert statuses[0] == 409 and statuses[-1] == 200 and len(statuses) >= 3
    assert {after for status, after in transport.answers if status == 409} == {"1"}
    remote.close()


def test_each_write_gets_its_own_key(served):
    transport = DropFirstResponse("never-dropped")
    remote = served.remote(transport=transport)
    first = remote.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    remote.call(
        CART,
        "add-item",
        {"cart_token": first["cart_token"], "product_sku": "GIFT-CARD-25", "quantity": 1},
    )
    remote.call(CART, "get-cart", {"cart_token": first["cart_token"]})
    keys = [k for k, _ in transport.calls("add-item")]
    assert len(set(keys)) == 2 and all(keys)
    assert transport.calls("get-cart") == [(None, transport.calls("get-cart")[0][1])]
    remote.close()


def test_concurrent_calls_share_one_client_safely(served):
    """RemoteBackend is used from several threads (batch, MCP); connections are reused."""
    remote = served.remote()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                remote.call("product-catalog", "get-product", {"sku": "GIFT-CARD-25"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    remote.close()


# -- what goes over the wire ----------------------------------------------------------------------


def _commands(chk: str, cart: str) -> list[tuple[str, ...]]:
    return [
        ("--json", "cart", "show", cart),
        ("--json", "status", chk),
        ("--json", "products", "list"),
        ("--json", "vault", "list"),
        ("--json", "settings", "show"),
        ("--json", "tokens", "list"),
        ("--json", "orders", "list", "--limit", "2"),
        ("--json", "get-checkout-status", "chk_doesnotexist"),
    ]


def test_the_token_travels_only_in_the_authorization_header(served):
    with StandIn.proxy(served.url) as proxy:
        remote = ["--remote", proxy.url, "--project", served.project]
        env = served.cli_env()
        cart = checkout(*remote, "--json", "cart", "add", "GIFT-CARD-25", env=env).json()
        chk = checkout(*remote, "--json", "initiate-checkout", cart["cart_token"], env=env).json()
        chk = chk["checkout_token"]
        address = ["--line1", "Kerkstraat 1", "--postal-code", "1017GA", "--city", "Amsterdam"]
        done = checkout(
            *remote,
            "--json",
            "--no-input",
            "set-customer",
            chk,
            "--email",
            "ann@example.com",
            "--name",
            "Ann",
            *address,
            "--country",
            "NL",
            env=env,
        )
        assert done.exit_code == 0, done.stderr
        for args in _commands(chk, cart["cart_token"]):
            result = checkout(*remote, *args, env=env)
            assert result.exit_code in (0, 3), (args, result.stderr)
            assert served.token not in result.stdout + result.stderr
        # the same through a profile (token from config.toml, read from stdin when added)
        added = checkout(
            "--json",
            "profiles",
            "add",
            "team",
            "--remote",
            proxy.url,
            "--project",
            served.project,
            "--token-stdin",
            input=served.token,
        )
        assert added.exit_code == 0 and served.token not in added.stdout
        shown = checkout("--json", "profiles", "show", "team")
        assert json.loads(shown.stdout)["token"] == "(set)"
        via_profile = checkout(
            "--profile", "team", "--json", "status", chk, env={"CHECKOUT_TOKEN": None}
        )
        assert via_profile.exit_code == 0 and via_profile.json()["checkout_token"] == chk

    requests = proxy.requests
    assert len(requests) >= 12
    for request in requests:
        auth = [v for k, v in request.headers.items() if k.lower() == "authorization"]
        assert auth == [f"Bearer {served.token}"], request.path
        others = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        assert served.token not in request.path
        assert served.token not in json.dumps(others)
        assert served.token.encode() not in request.body
        assert request.method == "POST" and request.path.startswith(
            f"/iapi/project/{served.project}/"
        )


def test_vault_set_over_remote_is_refused_without_sending_anything(served):
    with StandIn.proxy(served.url) as proxy:
        remote = ["--remote", proxy.url, "--project", served.project]
        result = checkout(
            *remote, "vault", "set", "stripe_secret_key", input=SECRET + "\n", env=served.cli_env()
        )
        assert result.exit_code == 7, result.stderr
        assert "only on the server's own machine" in result.stderr
        as_json = checkout(
            *remote, "--json", "vault", "set", "smtp_password", input=SECRET, env=served.cli_env()
        )
        error = json.loads(as_json.stderr)["error_object"]
        assert (as_json.exit_code, error["code"]) == (7, "local_only")
        assert proxy.requests == []
        # what is there to see goes over the wire, but never a value
        listed = checkout(*remote, "--json", "vault", "list", env=served.cli_env())
        assert listed.exit_code == 0
    assert all(SECRET.encode() not in r.body and SECRET not in r.path for r in proxy.requests)
    stored = {s["name"]: s["set"] for s in json.loads(listed.stdout)["secrets"]}
    assert stored["stripe_secret_key"] is False and stored["smtp_password"] is False


def test_remote_backend_refuses_set_vault_before_any_request(served):
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    remote = RemoteBackend(
        served.url, served.project, served.token, transport=httpx.MockTransport(record)
    )
    with pytest.raises(ForbiddenError) as caught:
        remote.call("checkout-admin", "set-vault", {"name": "mollie_api_key", "value": SECRET})
    assert caught.value.code == "local_only" and SECRET not in caught.value.message
    assert sent == []
    remote.close()


def test_a_token_never_shows_in_settings_repr(served):
    from checkout_cli.config import resolve

    settings = resolve(
        db=None, profile=None, remote=served.url, project="p", env={"CHECKOUT_TOKEN": served.token}
    )
    assert settings.token == served.token and served.token not in repr(settings)


def test_the_client_goes_through_the_proxy_the_environment_names(served, monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    get_product = served.endpoint_url("product-catalog", "get-product")
    with StandIn.proxy(served.url) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        via_proxy = served.remote()
        assert via_proxy.call("product-catalog", "get-product", {"sku": "GIFT-CARD-25"})["sku"]
        via_proxy.close()
        assert [r.path for r in proxy.requests] == [get_product]  # absolute form: a proxy's
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = served.remote()
        assert direct.call("product-catalog", "get-product", {"sku": "GIFT-CARD-25"})["sku"]
        direct.close()
        assert len(proxy.requests) == 1  # NO_PROXY names the host: straight to the server
