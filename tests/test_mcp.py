"""`checkout mcp`: a real MCP client session (the SDK's own stdio client) against the server
subprocess, on the local store and on a remote (`checkout serve`)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from checkout_cli.endpoints import ENDPOINTS
from checkout_cli.schema import inline_schema
from tests.conftest import CUSTOMER, WATCH, dump

pytestmark = pytest.mark.anyio

FLOW_TOOLS = [
    "checkout-flow_initiate_checkout",
    "checkout-flow_set_customer",
    "checkout-flow_create_payment",
    "checkout-flow_set_payment",
    "checkout-flow_get_checkout_status",
    "checkout-flow_set_line_meta",
    "checkout-flow_complete_checkout",
    "checkout-flow_cancel_checkout",
]
CART_TOOLS = [
    "shopping-cart_add_item",
    "shopping-cart_update_item",
    "shopping-cart_remove_item",
    "shopping-cart_get_cart",
    "shopping-cart_clear_cart",
    "shopping-cart_merge_cart",
    "shopping-cart_link_visitor",
]
# Secrets, tokens and the settings that decide where secrets are sent are never tools.
SECRET_TOOLS = {
    "checkout-admin_set_setting",
    "checkout-admin_import_settings",
    "checkout-admin_unset_setting",
    "checkout-admin_set_vault",
    "checkout-admin_delete_vault",
    "checkout-admin_list_vault",
    "checkout-admin_create_token",
    "checkout-admin_revoke_token",
    "checkout-admin_list_tokens",
    "checkout-admin_refund_payment",  # sends a customer's money back: never an assistant's call
}
# Not tools either (NO_MCP), though no secret: a CI smoke run's, not an assistant's.
NOT_TOOLS = SECRET_TOOLS | {"checkout-admin_start_smoke", "checkout-admin_finish_smoke"}
NOT_TOOLS |= {"order-management_refund_order"}  # money back out, as refund-payment
NOT_TOOLS |= {"order-events_subscribe"}  # its answer holds the subscription's signing secret
READ_ONLY_TOOLS = {
    "checkout-flow_get_checkout_status",
    "shopping-cart_get_cart",
    "product-catalog_list_products",
    "product-catalog_get_product",
    "product-catalog_search_products",
    "product-catalog_list_meta_definitions",
    "product-catalog_get_meta_definition",
    "order-management_list_orders",
    "order-management_get_order",
    "order-management_get_line_meta",
    "checkout-admin_list_outbox",
    "checkout-admin_list_checkouts",
    "checkout-admin_get_settings",
    "checkout-admin_get_store",
    "order-events_list_subscriptions",
    "order-events_list_deliveries",
}
BY_TOOL_NAME = {endpoint.tool_name: endpoint for endpoint in ENDPOINTS.values()}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}
    env.pop("CI", None)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env.update(extra)
    return env


@asynccontextmanager
async def mcp_session(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """``python -m checkout_cli ARGS`` as an MCP server, with an initialized client session."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "checkout_cli", *args],
        env=env or _env(tmp_path),
    )
    log_path = tmp_path / f"mcp-stderr-{time.monotonic_ns()}.log"
    with log_path.open("w") as errlog:
        try:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, read_timeout_seconds=30) as session,
            ):
                await session.initialize()
                yield session
        finally:
            errlog.flush()
            WATCH.seen("checkout mcp stderr", log_path.read_text())


def local(db_path: Path, *args: str) -> list[str]:
    return ["--db", str(db_path), "mcp", *args]


async def tool_names(session: ClientSession) -> list[str]:
    return [tool.name for tool in (await session.list_tools()).tools]


async def ok(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.structured_content)
    WATCH.seen(f"mcp {tool}", json.dumps(result.structured_content))
    # The text content is the same object, for clients that read only text.
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def error(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    WATCH.seen(f"mcp {tool} error", json.dumps(result.structured_content))
    error_object = result.structured_content["error_object"]
    assert {"type", "code", "message"} <= error_object.keys()
    assert json.loads(result.content[0].text) == {"error_object": error_object}
    return error_object


async def whole_checkout(session: ClientSession) -> dict[str, Any]:
    """add_item -> initiate -> set_customer -> create_payment (invoice) -> complete."""
    cart = await ok(
        session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 2}
    )
    assert cart["subtotal_cents"] == 4990
    co = await ok(session, "checkout-flow_initiate_checkout", {"cart_token": cart["cart_token"]})
    token = co["checkout_token"]
    assert token.startswith("chk_") and co["status"] == "active" and co["customer"] is None
    co = await ok(session, "checkout-flow_set_customer", {"checkout_token": token, **CUSTOMER})
    assert co["customer"]["email"] == "anna@example.com"
    co = await ok(
        session, "checkout-flow_create_payment", {"checkout_token": token, "provider": "invoice"}
    )
    assert co["status"] == "completable"
    done = await ok(session, "checkout-flow_complete_checkout", {"checkout_token": token})
    assert done["status"] == "completed"
    assert done["order"]["order_number"]
    assert done["order"]["payment_status"] == "unpaid"
    again = await ok(session, "checkout-flow_complete_checkout", {"checkout_token": token})
    assert again["already_completed"] is True
    assert again["order"] == done["order"]
    return done


# -- the tools --------------------------------------------------------------------------------


async def test_list_tools_names_descriptions_and_schemas(backend, db_path, tmp_path):
    async with mcp_session(tmp_path, *local(db_path)) as session:
        tools = (await session.list_tools()).tools
    names = [tool.name for tool in tools]
    assert [n for n in names if n.startswith("checkout-flow_")] == FLOW_TOOLS
    assert [n for n in names if n.startswith("shopping-cart_")] == CART_TOOLS
    assert {"product-catalog_get_product", "order-management_get_order"} <= set(names)
    assert len(names) == len(set(names))
    # Secrets are out of reach: no vault, API-token or set-setting tool.
    assert not SECRET_TOOLS & set(names)
    assert not [n for n in names if "vault" in n or "token" in n or "set_setting" in n]
    # Every other registry endpoint is a tool, with its summary and its registry schema.
    expected = {name for name in BY_TOOL_NAME if name not in NOT_TOOLS}
    assert set(names) == expected
    for tool in tools:
        endpoint = BY_TOOL_NAME[tool.name]
        assert tool.description == endpoint.summary
        # The request model's own schema, inline: some MCP clients resolve no $ref.
        assert tool.input_schema == json.loads(json.dumps(inline_schema(endpoint.request)))
        assert "$ref" not in json.dumps(tool.input_schema)
        # The registry's declaration of what a call does, as MCP's hints.
        hints = tool.annotations
        assert hints is not None and hints.read_only_hint == (not endpoint.writes_store)
        assert hints.open_world_hint == endpoint.calls_out
        if endpoint.writes_store:
            assert hints.destructive_hint == endpoint.destructive
            assert hints.idempotent_hint == endpoint.idempotent
    add_item = next(tool for tool in tools if tool.name == "shopping-cart_add_item")
    assert add_item.input_schema["required"] == ["product_sku", "quantity"]
    assert add_item.input_schema["properties"]["quantity"]["minimum"] == 1
    set_customer = next(tool for tool in tools if tool.name == "checkout-flow_set_customer")
    customer = set_customer.input_schema["properties"]["customer"]
    assert customer["properties"]["email"]["format"] == "email"  # inlined, not a $ref
    by_name = {tool.name: tool.annotations for tool in tools}
    assert by_name["checkout-flow_get_checkout_status"].read_only_hint
    # Named for what they do, not get-/list-, yet they change nothing: read-only too.
    assert by_name["checkout-admin_check_invariants"].read_only_hint
    assert by_name["checkout-admin_inspect_checkout"].read_only_hint
    assert by_name["shopping-cart_clear_cart"].destructive_hint
    assert not by_name["shopping-cart_add_item"].idempotent_hint  # the same SKU adds up
    assert by_name["checkout-flow_complete_checkout"].idempotent_hint  # an order, exactly once
    assert by_name["checkout-flow_create_payment"].open_world_hint  # Stripe, Mollie


async def test_a_whole_checkout_by_tool_calls_ends_with_an_order(backend, db_path, tmp_path):
    async with mcp_session(tmp_path, *local(db_path)) as session:
        done = await whole_checkout(session)
        token = done["checkout_token"]
        status = await ok(session, "checkout-flow_get_checkout_status", {"checkout_token": token})
        assert status["order"] == done["order"]
        order = await ok(
            session, "order-management_get_order", {"order_id": done["order"]["order_number"]}
        )
    assert order["checkout_token"] == token
    # The tool's result is the endpoint's result: the same object the backend gives.
    same = backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    assert {k: v for k, v in done.items() if k != "already_completed"} == {
        k: v for k, v in same.items() if k != "already_completed"
    }
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT order_number FROM orders").fetchall()
    finally:
        conn.close()
    assert rows == [(done["order"]["order_number"],)]
    stock = backend.call("product-catalog", "get-product", {"sku": "LENS-DAILY-30"})["stock"]
    assert stock == 98


async def test_bad_arguments_are_tool_errors_with_code_and_field(backend, db_path, tmp_path):
    before = backend.call("checkout-admin", "list-checkouts", {})
    async with mcp_session(tmp_path, *local(db_path)) as session:
        err = await error(
            session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 0}
        )
        assert (err["type"], err["code"], err["field"]) == (
            "validation",
            "invalid_quantity",
            "quantity",
        )

        err = await error(
            session,
            "shopping-cart_add_item",
            {"product_sku": "LENS-DAILY-30", "quantity": 1, "colour": "red"},
        )
        assert (err["code"], err["field"]) == ("unknown_field", "colour")
        assert "product_sku" in err["recovery"]  # says what is known, so the call can be fixed

        cart = await ok(
            session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 1}
        )
        co = await ok(
            session, "checkout-flow_initiate_checkout", {"cart_token": cart["cart_token"]}
        )
        bad_email = {
            "checkout_token": co["checkout_token"],
            "customer": {"email": "anna-at-example", "name": "Anna de Vries"},
            "shipping_address": CUSTOMER["shipping_address"],
        }
        err = await error(session, "checkout-flow_set_customer", bad_email)
        assert (err["type"], err["code"], err["field"]) == (
            "validation",
            "invalid_email",
            "customer.email",
        )
        assert err["recovery"]

        err = await error(
            session, "checkout-flow_complete_checkout", {"checkout_token": "chk_doesnotexist"}
        )
        assert (err["type"], err["code"]) == ("not_found", "checkout_not_found")

        # Not completable yet: no customer, no payment.
        err = await error(
            session, "checkout-flow_complete_checkout", {"checkout_token": co["checkout_token"]}
        )
        assert err["type"] in ("conflict", "payment", "validation")

        # A tool that does not exist (the vault is never one) is an error, not a crash.
        err = await error(session, "checkout-admin_set_vault", {"name": "x", "value": "y"})
        assert err["code"] == "tool_not_found"

        # The session survives every error.
        status = await ok(
            session,
            "checkout-flow_get_checkout_status",
            {"checkout_token": co["checkout_token"]},
        )
    assert status["customer"] is None  # the refused set-customer wrote nothing
    after = backend.call("checkout-admin", "list-checkouts", {})
    assert len(after["checkouts"]) == len(before["checkouts"]) + 1
    assert not [s for s in backend.call("checkout-admin", "list-vault", {})["secrets"] if s["set"]]


async def test_read_only_exposes_only_get_and_list_tools(backend, db_path, tmp_path):
    async with mcp_session(tmp_path, *local(db_path, "--read-only")) as session:
        names = await tool_names(session)
        assert set(names) == READ_ONLY_TOOLS
        for name in names:
            assert name.split("_", 1)[1].startswith(("get_", "list_", "search_")), name
        assert "checkout-flow_initiate_checkout" not in names
        assert "checkout-admin_set_setting" not in names
        # A hidden writing tool cannot be called by name either.
        err = await error(
            session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 1}
        )
        assert err["code"] == "tool_not_found"
        products = await ok(session, "product-catalog_list_products", {})
        assert "LENS-DAILY-30" in [p["sku"] for p in products["products"]]
    assert backend.call("checkout-admin", "list-checkouts", {})["checkouts"] == []


async def test_tools_pattern_narrows_the_list(backend, db_path, tmp_path):
    async with mcp_session(tmp_path, *local(db_path, "--tools", "checkout-flow_*")) as session:
        assert await tool_names(session) == FLOW_TOOLS
        err = await error(
            session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 1}
        )
        assert err["code"] == "tool_not_found"
    both = local(db_path, "--read-only", "--tools", "checkout-flow_*")
    async with mcp_session(tmp_path, *both) as session:
        assert await tool_names(session) == ["checkout-flow_get_checkout_status"]


# -- over a remote ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(backend, db_path, tmp_path, cli):
    """The fixture store served by a `checkout serve` subprocess: (url, project id, token)."""
    # --force: the backend fixture made the store already, as project "local"
    assert cli("init", "--project-id", "shop-mcp", "--force").exit_code == 0
    created = cli("--json", "tokens", "create", "--name", "mcp")
    assert created.exit_code == 0, created.stderr
    token = created.json()["token"]  # shown once, by design; never anywhere else
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "checkout_cli", "--db", str(db_path), "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "checkout serve exited"
            assert time.monotonic() < deadline, "checkout serve did not start"
            time.sleep(0.1)
        yield url, "shop-mcp", token
    finally:
        server.terminate()
        _, log = server.communicate(timeout=10)
        WATCH.seen("checkout serve log", log)
        assert token not in log
        for mcp_log in tmp_path.glob("mcp-stderr-*.log"):
            assert token not in mcp_log.read_text()


async def test_over_a_remote_the_same_tools_and_calls(served, backend, db_path, tmp_path):
    url, project, token = served
    args = ["--remote", url, "--project", project, "mcp"]
    async with mcp_session(tmp_path, *args, env=_env(tmp_path, CHECKOUT_TOKEN=token)) as session:
        tools = (await session.list_tools()).tools
        names = [tool.name for tool in tools]
        assert [n for n in names if n.startswith("checkout-flow_")] == FLOW_TOOLS
        assert set(names) == {name for name in BY_TOOL_NAME if name not in NOT_TOOLS}
        for tool in tools:
            assert tool.description == BY_TOOL_NAME[tool.name].summary
        # The error object survives the HTTP hop unchanged.
        err = await error(
            session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 0}
        )
        assert (err["code"], err["field"]) == ("invalid_quantity", "quantity")
        done = await whole_checkout(session)
    # Served from the store behind the server.
    order = backend.call("order-management", "get-order", {"order_id": done["order"]["order_id"]})
    assert order["checkout_token"] == done["checkout_token"]
    assert order["customer"]["email"] == "anna@example.com"


async def test_over_a_remote_a_wrong_token_is_a_tool_error(served, tmp_path):
    url, project, _ = served
    args = ["--remote", url, "--project", project, "mcp", "--read-only"]
    env = _env(tmp_path, CHECKOUT_TOKEN="not-the-token")
    async with mcp_session(tmp_path, *args, env=env) as session:
        err = await error(session, "product-catalog_get_product", {"sku": "LENS-DAILY-30"})
    assert (err["type"], err["code"]) == ("auth", "invalid_token")


# -- secrets ----------------------------------------------------------------------------------


class _AuthRecorder:
    """A stand-in API on 127.0.0.1 that records the Authorization header of every request."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                seen.append(self.headers.get("Authorization") or "")
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> _AuthRecorder:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_no_tool_sequence_sends_a_vault_value_elsewhere(backend, db_path, tmp_path):
    from tests.conftest import ready_checkout

    key = WATCH.secret("sk_test_51Mcp0Vault0Key0abcdefghijklmnopqrstuv")
    backend.call("checkout-admin", "set-vault", {"name": "stripe_secret_key", "value": key})
    token = ready_checkout(backend)
    with _AuthRecorder() as configured, _AuthRecorder() as elsewhere:
        backend.call(
            "checkout-admin", "set-setting", {"key": "stripe_api_base", "value": configured.url}
        )
        async with mcp_session(tmp_path, *local(db_path)) as session:
            err = await error(
                session,
                "checkout-admin_set_setting",
                {"key": "stripe_api_base", "value": elsewhere.url},
            )
            assert err["code"] == "tool_not_found"
            await session.call_tool(
                "checkout-flow_create_payment",
                {
                    "checkout_token": token,
                    "provider": "stripe",
                    "redirect_url": "https://shop.example/thanks",
                },
            )
    assert not [header for header in elsewhere.seen if key in header]
    assert configured.seen  # the payment was attempted, at the configured address only


async def test_a_settings_tool_would_still_refuse_local_only_settings(backend, db_path):
    """set-setting is no tool (its faces leave MCP out); were it ever exposed, the policy
    would still refuse the settings that route secrets, before the backend is called."""
    import anyio
    from mcp.shared.memory import create_client_server_memory_streams

    from checkout_cli.mcp.calls import ToolCalls
    from checkout_cli.mcp.server import build_server, exposed_endpoints

    set_setting = ENDPOINTS[("checkout-admin", "set-setting")]
    assert set_setting.tool_name not in exposed_endpoints()
    calls = ToolCalls(backend)
    server = build_server(calls, {set_setting.tool_name: set_setting})
    before = dump(db_path)
    async with (
        create_client_server_memory_streams() as (client, server_streams),
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(server.run, *server_streams, server.create_initialization_options())
        async with ClientSession(*client, read_timeout_seconds=30) as session:
            await session.initialize()
            for key in ("smtp_host", " stripe_api_base "):
                err = await error(
                    session, set_setting.tool_name, {"key": key, "value": "127.0.0.1"}
                )
                assert (err["type"], err["code"]) == ("forbidden", "local_only")
                assert "never as an MCP tool" in err["message"]
            assert dump(db_path) == before
            await ok(session, set_setting.tool_name, {"key": "shop_name", "value": "MCP"})
        tasks.cancel_scope.cancel()
    calls.close()
    assert backend.call("checkout-admin", "get-settings")["settings"]["shop_name"] == "MCP"


async def test_an_assistant_cannot_cancel_with_a_refund(backend, db_path, tmp_path):
    """cancel_checkout with force refunds a paid payment: a person's decision, as
    refund-payment is; without force an assistant may cancel."""
    async with mcp_session(tmp_path, *local(db_path)) as session:
        cart = await ok(
            session, "shopping-cart_add_item", {"product_sku": "LENS-DAILY-30", "quantity": 1}
        )
        co = await ok(
            session, "checkout-flow_initiate_checkout", {"cart_token": cart["cart_token"]}
        )
        token = co["checkout_token"]
        err = await error(
            session, "checkout-flow_cancel_checkout", {"checkout_token": token, "force": True}
        )
        assert (err["type"], err["code"]) == ("forbidden", "forbidden_scope")
        assert "not for an assistant" in err["message"]
        assert (
            backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})[
                "status"
            ]
            == "active"
        )
        done = await ok(session, "checkout-flow_cancel_checkout", {"checkout_token": token})
    assert done["status"] == "cancelled"
