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
    allow_refunds: Annotated[
        bool,
        typer.Option(
            "--allow-refunds",
            help="also let the assistant send money back: the refund-order tool, and "
            "cancel-order with refund (over --remote the token's scope still decides)",
        ),
    ] = False,
) -> None:
    """Run an MCP server over stdio: one tool per endpoint, on the local store or --remote.

    Money back out is a person's decision unless the operator opts in with --allow-refunds.

    Example: checkout --db shop.db mcp --tools 'checkout-flow_*'

    Example: checkout --db shop.db mcp --allow-refunds
    """
    from checkout_cli.endpoints import REFUNDS
    from checkout_cli.errors import UsageError
    from checkout_cli.mcp.server import exposed_endpoints, run_stdio

    if read_only and allow_refunds:
        raise UsageError(
            "bad_usage",
            "--read-only and --allow-refunds contradict each other: a refund writes",
            recovery="pass one of them",
        )
    opt_ins = frozenset({REFUNDS} if allow_refunds else ())
    state: State = ctx.obj
    tools_exposed = exposed_endpoints(read_only=read_only, pattern=tools, opt_ins=opt_ins)
    run_stdio(state.backend, tools_exposed, opt_ins)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
