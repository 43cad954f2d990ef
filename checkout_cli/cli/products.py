"""checkout products …: the product-catalog endpoints and catalog import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli import completion, listing
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import Body, State, merge_body, read_items_file, with_arguments
from checkout_cli.endpoints import ENDPOINTS, PRODUCT_CATALOG

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="The catalog: list, search, add, update, delete, set stock, import."
    "\n\nExample: checkout products list",
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


def check_catalog(products: list[dict[str, Any]]) -> None:
    """Every item checked as upsert-product's body before anything is sent (the error names
    the first bad one; nothing is written)."""
    from checkout_cli.errors import CheckoutError, ValidationError
    from checkout_cli.requests import UpsertProduct
    from checkout_cli.schema import validate

    for index, item in enumerate(products):
        try:
            validate(UpsertProduct, item)
        except CheckoutError as exc:
            raise ValidationError(
                exc.code,
                f"product {index + 1}: {exc.message}",
                field=f"products[{index}].{exc.field}",
                recovery=exc.recovery,
            ) from None


def bulk_upsert(state: State, products: list[dict[str, Any]]) -> dict[str, Any]:
    """bulk-upsert-products in calls of at most BULK_UPSERT_LIMIT; one merged result (each
    item's index counted over the whole list)."""
    from collections import Counter

    from checkout_cli.requests import BULK_UPSERT_LIMIT

    items: list[dict[str, Any]] = []
    by_action: Counter[str] = Counter({"created": 0, "updated": 0, "failed": 0})
    by_error_type: Counter[str] = Counter()
    for start in range(0, len(products), BULK_UPSERT_LIMIT):
        chunk = products[start : start + BULK_UPSERT_LIMIT]
        result = state.call(PRODUCT_CATALOG, "bulk-upsert-products", {"products": chunk})
        items += [{**item, "index": item["index"] + start} for item in result["items"]]
        by_action.update(result["summary"]["by_action"])
        by_error_type.update(result["summary"]["by_error_type"])
    summary = {
        "total": len(items),
        "by_action": dict(by_action),
        "by_error_type": dict(by_error_type),
    }
    return {"items": items, "summary": summary}


def failed_items_error(result: dict[str, Any]) -> Exception | None:
    """Exit 4 naming every failed item (index and SKU), or None when all were written."""
    from checkout_cli.errors import ValidationError

    failed = [i for i in result["items"] if i["status"] == "failed"]
    if not failed:
        return None
    named = "; ".join(
        f"product {i['index'] + 1} ({i['sku'] or 'no SKU'}): {i['error']['message']}"
        for i in failed
    )
    first = failed[0]["error"]
    return ValidationError(
        first["code"],
        f"{len(failed)} of {len(result['items'])} products not written: {named}",
        field=f"products[{failed[0]['index']}].{first.get('field') or 'sku'}",
        recovery="fix those items and import the file again (the others were written)",
    )


def import_catalog(state: State, products: list[dict[str, Any]]) -> dict[str, Any]:
    """Check every product, then write them with bulk-upsert-products (500 a call). A failed
    item raises (exit 4) after the good ones were written."""
    check_catalog(products)
    result = bulk_upsert(state, products)
    error = failed_items_error(result)
    if error is not None:
        raise error
    return result


def _say_imported(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    actions = result["summary"]["by_action"]
    output.say(
        f"{actions.get('created', 0)} created, {actions.get('updated', 0)} updated, "
        f"{actions.get('failed', 0)} failed",
        "red" if actions.get("failed") else "green",
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON file: a list of products", show_default=False)],
) -> None:
    """Create or update every product in a catalog file with bulk-upsert-products (500 a
    call); all are checked before any is sent. An item the store refuses fails alone: the
    others are written, and the command exits 4 naming each failed one.

    Example: checkout products import fixtures/catalog.json
    """
    state: State = ctx.obj
    products = read_items_file(file, "products")
    check_catalog(products)
    result = bulk_upsert(state, products)
    state.show(result, _say_imported)
    error = failed_items_error(result)
    if error is not None:
        raise error


@app.command("add", help=_help("create-product"))
def add(
    ctx: typer.Context,
    sku: Sku = None,
    name: Annotated[str | None, typer.Option(help="product name")] = None,
    price_cents: Annotated[int | None, typer.Option(help="unit price in minor units")] = None,
    currency: Annotated[
        str | None, typer.Option(help="ISO currency (default: the store's)")
    ] = None,
    stock: Annotated[int | None, typer.Option(help="units in stock (omit: untracked)")] = None,
    allow_backorder: Annotated[
        bool | None, typer.Option("--allow-backorder/--no-backorder", help="sell beyond stock")
    ] = None,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    request = merge_body(
        body,
        name=name,
        price_cents=price_cents,
        currency=currency,
        stock=stock,
        allow_backorder=allow_backorder,
    )
    state.run(PRODUCT_CATALOG, "create-product", with_arguments(request, ("sku", "SKU", sku)), _one)


@app.command("update", help=_help("update-product"))
def update(
    ctx: typer.Context,
    sku: Sku = None,
    name: Annotated[str | None, typer.Option(help="new name")] = None,
    price_cents: Annotated[int | None, typer.Option(help="new unit price in minor units")] = None,
    currency: Annotated[str | None, typer.Option(help="new ISO currency")] = None,
    stock: Annotated[int | None, typer.Option(help="units in stock")] = None,
    allow_backorder: Annotated[
        bool | None, typer.Option("--allow-backorder/--no-backorder", help="sell beyond stock")
    ] = None,
    status: Annotated[str | None, typer.Option(help="active or archived")] = None,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    request = merge_body(
        body,
        name=name,
        price_cents=price_cents,
        currency=currency,
        stock=stock,
        allow_backorder=allow_backorder,
        status=status,
    )
    state.run(PRODUCT_CATALOG, "update-product", with_arguments(request, ("sku", "SKU", sku)), _one)


@app.command(
    "delete",
    help=_help("delete-product") + "\n\nAsks to confirm on a terminal unless --yes.",
)
def delete(
    ctx: typer.Context,
    sku: Sku = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    body: Body = None,
) -> None:
    from checkout_cli.cli import output

    state: State = ctx.obj
    request = with_arguments(merge_body(body), ("sku", "SKU", sku))
    if not yes:
        from checkout_cli.cli.prompts import can_prompt, missing_input, prompter

        if not can_prompt(state.settings):
            raise missing_input(["--yes (confirm the delete)"])
        question = (
            f"Delete product {request.get('sku')}? (Archived instead if orders, checkouts or "
            "carts refer to it.)"
        )
        if not prompter().confirm(question, default=False):
            output.say("not deleted")
            return

    def render(result: dict[str, Any]) -> None:
        if result["action"] == "deleted":
            output.say(f"product {result['sku']} deleted", "green")
        else:
            output.say(
                f"product {result['sku']} archived: orders, checkouts or carts refer to it",
                "yellow",
            )

    state.run(PRODUCT_CATALOG, "delete-product", request, render)


@app.command("search", help=_help("search-products"))
def search(
    ctx: typer.Context,
    text: Annotated[
        str | None, typer.Argument(metavar="TEXT", help="words to find", show_default=False)
    ] = None,
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
    body_ = with_arguments(
        merge_body(body, include_archived=include_archived, **listing.page(limit, offset)),
        ("query", "TEXT", text),
    )
    listing.run(state, PRODUCT_CATALOG, "search-products", body_, PRODUCTS, fmt, quiet)
