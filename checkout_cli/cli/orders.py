"""checkout orders …: the order-management endpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from checkout_cli.cli.flow import Body
from checkout_cli.cli.state import State, merge_body
from checkout_cli.endpoints import ENDPOINTS, ORDER_MANAGEMENT

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Orders made by completed checkouts.\n\nExample: checkout orders list",
    no_args_is_help=True,
)


def _help(name: str) -> str:
    e = ENDPOINTS[(ORDER_MANAGEMENT, name)]
    return f"{e.summary} (endpoint {name})\n\nExample: {e.example}"


@app.command("list", help=_help("list-orders"))
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, paid…")] = None,
    email: Annotated[str | None, typer.Option(help="customer's email")] = None,
    reference: Annotated[
        str | None, typer.Option(help="the batch reference the order was made for")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many")] = None,
    body: Body = None,
) -> None:
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(
        ORDER_MANAGEMENT,
        "list-orders",
        merge_body(body, status=status, email=email, reference=reference, limit=limit),
        lambda r: output.orders_view(r["orders"]),
    )


@app.command("show", help=_help("get-order"))
def show(
    ctx: typer.Context,
    order: Annotated[
        str, typer.Argument(help="order number (2026-000042) or order id", show_default=False)
    ],
    body: Body = None,
) -> None:
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(ORDER_MANAGEMENT, "get-order", merge_body(body, order_id=order), output.order_view)


def _line_meta_command() -> None:
    from checkout_cli.cli.meta import line_meta

    app.command("line-meta")(line_meta)


_line_meta_command()
