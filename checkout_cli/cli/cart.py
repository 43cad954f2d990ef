"""checkout cart …: the shopping-cart endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from checkout_cli.cli import completion
from checkout_cli.cli.flow import Body
from checkout_cli.cli.state import State, merge_body
from checkout_cli.endpoints import ENDPOINTS, SHOPPING_CART

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Build a cart: add, update, remove items.\n\nExample: checkout cart add "
    "LENS-30 --quantity 2",
    no_args_is_help=True,
)

CartToken = Annotated[str, typer.Argument(help="cart token (cart_…)", show_default=False)]
Sku = Annotated[
    str,
    typer.Argument(help="product SKU", show_default=False, autocompletion=completion.skus),
]


def _render(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    output.cart_view(result)


def _run(ctx: typer.Context, name: str, body: dict[str, Any]) -> None:
    state: State = ctx.obj
    state.run(SHOPPING_CART, name, body, _render)


def _help(name: str) -> str:
    e = ENDPOINTS[(SHOPPING_CART, name)]
    return f"{e.summary} (endpoint {name})\n\nExample: {e.example}"


@app.command("add", help=_help("add-item"))
def add(
    ctx: typer.Context,
    sku: Sku,
    quantity: Annotated[
        int | None, typer.Option("--quantity", "-q", help="how many [default: 1]")
    ] = None,
    cart: Annotated[
        str | None, typer.Option("--cart", help="cart token; default: a new cart")
    ] = None,
    body: Body = None,
) -> None:
    # No flag default: it would override a quantity given in --body.
    request = merge_body(body, cart_token=cart, product_sku=sku, quantity=quantity)
    request.setdefault("quantity", 1)
    _run(ctx, "add-item", request)


@app.command("update", help=_help("update-item"))
def update(
    ctx: typer.Context,
    cart_token: CartToken,
    sku: Sku,
    quantity: Annotated[int, typer.Option("--quantity", "-q", help="new quantity; 0 removes")],
    body: Body = None,
) -> None:
    _run(
        ctx,
        "update-item",
        merge_body(body, cart_token=cart_token, product_sku=sku, quantity=quantity),
    )


@app.command("remove", help=_help("remove-item"))
def remove(ctx: typer.Context, cart_token: CartToken, sku: Sku, body: Body = None) -> None:
    _run(ctx, "remove-item", merge_body(body, cart_token=cart_token, product_sku=sku))


@app.command("show", help=_help("get-cart"))
def show(ctx: typer.Context, cart_token: CartToken, body: Body = None) -> None:
    _run(ctx, "get-cart", merge_body(body, cart_token=cart_token))


@app.command("clear", help=_help("clear-cart"))
def clear(ctx: typer.Context, cart_token: CartToken, body: Body = None) -> None:
    _run(ctx, "clear-cart", merge_body(body, cart_token=cart_token))
