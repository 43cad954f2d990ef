"""checkout products …: the product-catalog endpoints and catalog import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli import completion, listing
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import (
    Body,
    State,
    merge_body,
    read_items_file,
    upsert_all,
    with_arguments,
)
from checkout_cli.endpoints import ENDPOINTS, PRODUCT_CATALOG

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="The catalog: list, show, upsert, set stock, import.\n\nExample: checkout products list",
    no_args_is_help=True,
)

# Left out when --body gives the sku.
Sku = Annotated[
    str | None,
    typer.Argument(
        metavar="SKU", help="product SKU", show_default=False, autocompletion=completion.skus
    ),
]


def _help(name: str) -> str:
    e = ENDPOINTS[(PRODUCT_CATALOG, name)]
    return f"{e.summary} (endpoint {name})\n\nExample: {e.example}"


def _one(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    output.products_view([result])


def _products_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    output.products_view(result["products"])


def _meta_defs(product: dict[str, Any]) -> str:
    return " ".join(d["def_key"] + ("*" if d.get("required") else "") for d in product["meta_defs"])


PRODUCTS = listing.Listing(
    rows="products",
    id_of=lambda p: p["sku"],
    columns=(
        ("sku", lambda p: p["sku"]),
        ("name", lambda p: p["name"]),
        ("price_cents", lambda p: p["price_cents"]),
        ("currency", lambda p: p["currency"]),
        ("stock", lambda p: p["stock"]),
        ("allow_backorder", lambda p: p["allow_backorder"]),
        ("status", lambda p: p["status"]),
        ("meta_defs", _meta_defs),
    ),
    table=_products_table,
)


@app.command("list", help=_help("list-products"))
def list_(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Option("--query", "-s", help="text in SKU or name")] = None,
    include_archived: Annotated[
        bool | None, typer.Option("--all", help="include archived products")
    ] = None,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    body_ = merge_body(
        body, query=query, include_archived=include_archived, **listing.page(limit, offset)
    )
    listing.run(state, PRODUCT_CATALOG, "list-products", body_, PRODUCTS, fmt, quiet)


@app.command("show", help=_help("get-product"))
def show(ctx: typer.Context, sku: Sku = None, body: Body = None) -> None:
    state: State = ctx.obj
    request = with_arguments(merge_body(body), ("sku", "SKU", sku))
    state.run(PRODUCT_CATALOG, "get-product", request, _one)


@app.command("upsert", help=_help("upsert-product"))
def upsert(
    ctx: typer.Context,
    sku: Sku = None,
    name: Annotated[str | None, typer.Option(help="product name")] = None,
    price_cents: Annotated[int | None, typer.Option(help="unit price in minor units")] = None,
    stock: Annotated[int | None, typer.Option(help="units in stock (omit: untracked)")] = None,
    allow_backorder: Annotated[
        bool | None, typer.Option("--allow-backorder/--no-backorder", help="sell beyond stock")
    ] = None,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    state.run(
        PRODUCT_CATALOG,
        "upsert-product",
        with_arguments(
            merge_body(
                body,
                name=name,
                price_cents=price_cents,
                stock=stock,
                allow_backorder=allow_backorder,
            ),
            ("sku", "SKU", sku),
        ),
        _one,
    )


@app.command("set-stock", help=_help("set-stock"))
def set_stock(
    ctx: typer.Context,
    sku: Sku = None,
    stock: Annotated[int | None, typer.Argument(help="units in stock", show_default=False)] = None,
    untracked: Annotated[
        bool | None, typer.Option("--untracked", help="stop tracking stock")
    ] = None,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    state.run(
        PRODUCT_CATALOG,
        "set-stock",
        with_arguments(merge_body(body, stock=stock, untracked=untracked), ("sku", "SKU", sku)),
        _one,
    )


def import_catalog(state: State, products: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return upsert_all(state, PRODUCT_CATALOG, "upsert-product", products, "product")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON file: a list of products", show_default=False)],
) -> None:
    """Create or update every product in a catalog file; all are checked before any is written.

    Example: checkout products import fixtures/catalog.json
    """
    from checkout_cli.cli import output

    state: State = ctx.obj
    imported = import_catalog(state, read_items_file(file, "products"))
    state.show({"products": imported}, lambda r: output.products_view(r["products"]))
