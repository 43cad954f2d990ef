"""checkout mcp: serve the checkout flow to AI assistants as MCP tools over stdio."""

from __future__ import annotations

from typing import Annotated

import typer

from checkout_cli.cli.state import State


def mcp(
    ctx: typer.Context,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="only the get-*/list-* tools")
    ] = False,
    tools: Annotated[
        str | None,
        typer.Option(
            "--tools",
            metavar="PATTERN",
            help="only tools whose name matches, e.g. 'checkout-flow_*'",
        ),
    ] = None,
) -> None:
    """Run an MCP server over stdio: one tool per endpoint, on the local store or --remote.

    Example: checkout --db shop.db mcp --tools 'checkout-flow_*'
    """
    from checkout_cli.mcp.server import exposed_endpoints, run_stdio

    state: State = ctx.obj
    run_stdio(state.backend, exposed_endpoints(read_only=read_only, pattern=tools))


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
