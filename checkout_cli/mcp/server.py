"""An MCP server over stdio (the official ``mcp`` SDK) with one tool per registry endpoint.

Tool ``{service}_{endpoint with - as _}`` takes the endpoint's request object (its JSON
Schema from the registry) and returns the endpoint's result object. A failure is a tool
error whose structured content is the ``error_object`` (type, code, message, field,
recovery), so an assistant can correct its call. Which endpoints are tools is the registry's
``faces`` (``checkout_cli.access``): no vault, token or settings-writing tool, ever; what an
endpoint's ``mcp_opt_in`` names only when the operator passed its ``--allow-NAME``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Collection
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from checkout_cli import __version__, access
from checkout_cli.backends.base import Backend
from checkout_cli.endpoints import ADMIN, ENDPOINTS, MCP, READ, Endpoint
from checkout_cli.errors import CheckoutError, InternalError
from checkout_cli.mcp.calls import ToolCalls
from checkout_cli.schema import inline_schema


def exposed_endpoints(
    *, read_only: bool = False, pattern: str | None = None, opt_ins: Collection[str] = ()
) -> dict[str, Endpoint]:
    """The tools: endpoints the registry lets MCP call (``--read-only``: as a read token could;
    ``opt_ins``: the operator's ``--allow-NAME`` flags)."""
    scope = READ if read_only else ADMIN
    tools = {}
    for endpoint in ENDPOINTS.values():
        if not access.allowed(endpoint, MCP, scope, opt_ins):
            continue
        if pattern and not fnmatch.fnmatchcase(endpoint.tool_name, pattern):
            continue
        tools[endpoint.tool_name] = endpoint
    return tools


def tool_annotations(endpoint: Endpoint) -> types.ToolAnnotations:
    """The registry's declaration, as MCP's hints: a read changes nothing; a write says whether
    it may remove or overwrite and whether repeating it changes more; a call out to a payment
    provider or mail server reaches beyond the store."""
    reads = not endpoint.writes_store  # a get/list, or one declared to leave the store as it was
    return types.ToolAnnotations(
        read_only_hint=reads,
        destructive_hint=False if reads else endpoint.destructive,
        idempotent_hint=True if reads else endpoint.idempotent,
        open_world_hint=endpoint.calls_out,
    )


def build_server(
    calls: ToolCalls, tools: dict[str, Endpoint], opt_ins: Collection[str] = ()
) -> Server:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=name,
                    description=endpoint.summary,
                    input_schema=inline_schema(endpoint.request),
                    annotations=tool_annotations(endpoint),
                )
                for name, endpoint in tools.items()
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        endpoint = tools.get(params.name)
        try:
            if endpoint is None:
                from checkout_cli.errors import NotFoundError

                raise NotFoundError("tool_not_found", f"no tool named {params.name!r}")
            access.check_body(endpoint, MCP, params.arguments or {}, opt_ins)
            result = await calls.call(endpoint.service, endpoint.name, params.arguments or {})
        except CheckoutError as exc:
            return _error(exc)
        except Exception as exc:  # a bug: still an answer the assistant can read
            return _error(InternalError("internal_error", f"{type(exc).__name__}: {exc}"))
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(result, ensure_ascii=False))],
            structured_content=result,
        )

    return Server(
        "checkout-cli",
        version=__version__,
        instructions="Run a shop's checkout flow: carts, checkouts, payments, orders. "
        "Amounts are integer minor units in *_cents fields.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _error(exc: CheckoutError) -> types.CallToolResult:
    error_object = exc.to_error_object()
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps({"error_object": error_object}))],
        structured_content={"error_object": error_object},
        is_error=True,
    )


def run_stdio(backend: Backend, tools: dict[str, Endpoint], opt_ins: Collection[str] = ()) -> None:
    calls = ToolCalls(backend)
    server = build_server(calls, tools, opt_ins)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    try:
        anyio.run(main)
    finally:
        calls.close()
