"""checkout cart …: the shopping-cart endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from checkout_cli.cli import completion
from checkout_cli.cli.state import Body, State, merge_body, with_arguments
from checkout_cli.endpoints import ENDPOINTS, SHOPPING_CART

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Build a cart: add, update, remove items.\n\nExample: checkout cart add "
    "LENS-30 --quantity 2",
    no_args_is_help=True,
)

# Each may be left out when --body gives its field (cart_token, product_sku).
CartToken = Annotated[
    str | None,
    typer.Argument(metavar="CART", help="cart token (cart_…)", show_default=False),
]
Sku = Annotated[
    str | None,
    typer.Argument(
        metavar="SKU", help="product SKU", show_default=False, autocompletion=completion.skus
    ),
]
_CART, _SKU = ("cart_token", "CART"), ("product_sku", "SKU")


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
    sku: Sku = None,
    quantity: Annotated[
        int | None, typer.Option("--quantity", "-q", help="how many [default: 1]")
    ] = None,
    cart: Annotated[
        str | None, typer.Option("--cart", help="cart token; default: a new cart")
    ] = None,
    body: Body = None,
) -> None:
    # No flag default: it would override a quantity given in --body.
    request = merge_body(body, cart_token=cart, quantity=quantity)
    request = with_arguments(request, (*_SKU, sku))
    request.setdefault("quantity", 1)
    _run(ctx, "add-item", request)


@app.command("update", help=_help("update-item"))
def update(
    ctx: typer.Context,
    cart_token: CartToken = None,
    sku: Sku = None,
    quantity: Annotated[
        int | None, typer.Option("--quantity", "-q", help="new quantity; 0 removes")
    ] = None,
    body: Body = None,
) -> None:
    request = merge_body(body, quantity=quantity)
    request = with_arguments(request, (*_CART, cart_token), (*_SKU, sku))
    if request.get("quantity") is None:
        from checkout_cli.cli.prompts import missing_input

        raise missing_input(["--quantity"])
    _run(ctx, "update-item", request)


@app.command("remove", help=_help("remove-item"))
def remove(
    ctx: typer.Context, cart_token: CartToken = None, sku: Sku = None, body: Body = None
) -> None:
    request = with_arguments(merge_body(body), (*_CART, cart_token), (*_SKU, sku))
    _run(ctx, "remove-item", request)


@app.command("show", help=_help("get-cart"))
def show(
    ctx: typer.Context,
    cart_token: CartToken = None,
    visitor: Annotated[
        str | None, typer.Option("--visitor", help="the visitor's active cart, not a token")
    ] = None,
    body: Body = None,
) -> None:
    request = merge_body(body, visitor_id=visitor)
    if request.get("visitor_id") is None:
        request = with_arguments(request, (*_CART, cart_token))
    elif cart_token is not None:
        request["cart_token"] = cart_token  # both given: the engine refuses it in one line
    _run(ctx, "get-cart", request)


@app.command("clear", help=_help("clear-cart"))
def clear(ctx: typer.Context, cart_token: CartToken = None, body: Body = None) -> None:
    _run(ctx, "clear-cart", with_arguments(merge_body(body), (*_CART, cart_token)))


@app.command("merge", help=_help("merge-cart"))
def merge(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Argument(metavar="SOURCE", help="cart whose items move", show_default=False),
    ] = None,
    target: Annotated[
        str | None,
        typer.Argument(metavar="TARGET", help="cart they are added to", show_default=False),
    ] = None,
    body: Body = None,
) -> None:
    request = with_arguments(
        merge_body(body),
        ("source_cart_token", "SOURCE", source),
        ("target_cart_token", "TARGET", target),
    )
    _run(ctx, "merge-cart", request)


@app.command("link-visitor", help=_help("link-visitor"))
def link_visitor(
    ctx: typer.Context,
    cart_token: CartToken = None,
    visitor_id: Annotated[
        str | None,
        typer.Argument(metavar="VISITOR_ID", help="the visitor's id", show_default=False),
    ] = None,
    body: Body = None,
) -> None:
    request = with_arguments(
        merge_body(body), (*_CART, cart_token), ("visitor_id", "VISITOR_ID", visitor_id)
    )
    _run(ctx, "link-visitor", request)
