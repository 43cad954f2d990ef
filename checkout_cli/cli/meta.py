"""checkout meta …, checkout set-line-meta, checkout orders line-meta: typed line meta."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli import completion, listing, references
from checkout_cli.cli.flow import show_checkout
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.references import Last
from checkout_cli.cli.state import (
    Body,
    State,
    merge_body,
    read_items_file,
    read_json_file,
    upsert_all,
    with_arguments,
)
from checkout_cli.endpoints import (
    CHECKOUT_FLOW,
    ENDPOINTS,
    ORDER_MANAGEMENT,
    PRODUCT_CATALOG,
)
from checkout_cli.errors import CheckoutError, UsageError

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Line meta definitions: typed fields such as a lens prescription.\n\n"
    "Example: checkout meta show lens_prescription",
    no_args_is_help=True,
)


def _definitions_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    t = output.table("Key", "Version", "Title", "Fields")
    for d in result["definitions"]:
        t.add_row(
            d["def_key"], str(d["version"]), d["title"], ", ".join(f["name"] for f in d["fields"])
        )
    output.out().print(t)


def _definition_view(definition: dict[str, Any]) -> None:
    from checkout_cli.cli import output
    from checkout_cli.metadefs import describe

    output.out().print(f"{definition['def_key']} v{definition['version']}: {definition['title']}")
    t = output.table("Field", "Type", "Required", "Allowed", "Source")
    for f in definition["fields"]:
        required = (
            "yes"
            if f.get("required")
            else (f"if {f['required_if']} set" if f.get("required_if") else "no")
        )
        allowed = describe(f) if f["type"] != "enum" or "values" in f else "from source"
        t.add_row(f["name"], f["type"], required, allowed, f.get("source", ""))
    output.out().print(t)


def import_definitions(state: State, definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from checkout_cli.metadefs import check_definition

    return upsert_all(
        state,
        PRODUCT_CATALOG,
        "upsert-meta-definition",
        definitions,
        "definition",
        check=check_definition,
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON file of definitions", show_default=False)],
) -> None:
    """Create or update meta definitions; a changed definition gets a new version.

    Example: checkout meta import fixtures/meta_definitions.json
    """
    state: State = ctx.obj
    imported = import_definitions(state, read_items_file(file, "definitions"))
    state.show({"definitions": imported}, _definitions_table)


DEFINITIONS = listing.Listing(
    rows="definitions",
    noun="meta definitions",
    id_of=lambda d: d["def_key"],
    columns=(
        ("def_key", lambda d: d["def_key"]),
        ("version", lambda d: d["version"]),
        ("title", lambda d: d["title"]),
        ("fields", lambda d: " ".join(f["name"] for f in d["fields"])),
    ),
    table=_definitions_table,
)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Every meta definition at its current version.

    Example: checkout meta list
    """
    state: State = ctx.obj
    body = listing.page(limit, offset)
    listing.run(state, PRODUCT_CATALOG, "list-meta-definitions", body, DEFINITIONS, fmt, quiet)


@app.command("show")
def show(
    ctx: typer.Context,
    def_key: Annotated[str, typer.Argument(help="definition key", show_default=False)],
    product: Annotated[
        str | None,
        typer.Option(
            "--product",
            help="resolve config sources with this product's config",
            autocompletion=completion.skus,
        ),
    ] = None,
) -> None:
    """A definition's fields, types, ranges and config sources.

    Example: checkout meta show lens_prescription --product LENS-TORIC-6
    """
    state: State = ctx.obj
    state.run(
        PRODUCT_CATALOG,
        "get-meta-definition",
        merge_body(None, def_key=def_key, product_sku=product),
        _definition_view,
    )


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(
                "invalid_value_pair",
                f"{item!r} is not FIELD=VALUE",
                recovery="e.g. right_sphere=-1.25",
            )
        pairs[name.strip()] = value
    return pairs


def set_line_meta(
    ctx: typer.Context,
    checkout_token: Annotated[
        str | None,
        typer.Argument(
            metavar="CHECKOUT",
            help="checkout token (chk_…) or order number (2026-000042); left out with --last "
            "or when --body gives checkout_token",
            show_default=False,
            autocompletion=completion.checkout_tokens,
        ),
    ] = None,
    product_sku: Annotated[
        str | None,
        typer.Argument(
            metavar="PRODUCT_SKU",
            help="the line's product SKU (or product_sku in --body)",
            show_default=False,
            autocompletion=completion.skus,
        ),
    ] = None,
    values: Annotated[
        list[str] | None,
        typer.Argument(metavar="FIELD=VALUE", help="the field values", show_default=False),
    ] = None,
    def_key: Annotated[
        str | None,
        typer.Option("--def", help="meta definition key (default: the product's only one)"),
    ] = None,
    values_file: Annotated[Path | None, typer.Option(help="JSON object of field values")] = None,
    line_id: Annotated[
        int | None, typer.Option(help="line number, when the SKU is on several lines")
    ] = None,
    last: Last = False,
    body: Body = None,
) -> None:
    from checkout_cli.cli.prompts import can_prompt, missing_input

    state: State = ctx.obj
    # The words typed, in order: FIELD=VALUE pairs (no token or SKU holds "="), and before
    # them the checkout (unless --last) and the SKU, each left out when --body gives it.
    words = [w for w in (checkout_token, product_sku, *(values or [])) if w is not None]
    plain = [w for w in words if "=" not in w]
    pairs = [w for w in words if "=" in w]
    given: dict[str, Any] = {}
    if values_file is not None:
        given.update(read_values_file(values_file))
    given.update(_pairs(pairs))
    request = merge_body(body, def_key=def_key, line_id=line_id, values=given or None)
    fields = [("product_sku", "PRODUCT_SKU")]
    if not last:
        fields.insert(0, ("checkout_token", "CHECKOUT"))
    if len(plain) > len(fields):
        raise UsageError(
            "invalid_value_pair",
            f"{plain[len(fields)]!r} is not FIELD=VALUE",
            recovery="e.g. right_sphere=-1.25",
        )
    padded = [*plain, *[None] * (len(fields) - len(plain))]
    request = with_arguments(
        request,
        *((field, metavar, value) for (field, metavar), value in zip(fields, padded, strict=True)),
    )
    product_sku = request["product_sku"]
    if not request.get("def_key"):
        request["def_key"] = _only_definition(state, product_sku)
    if not request.get("values"):
        if not can_prompt(state.settings):
            raise missing_input(["FIELD=VALUE pairs or --values-file"])
        request["values"] = ask_values(state, request["def_key"], product_sku)
    with references.checkout(
        state, request.get("checkout_token"), last=last, remember=True
    ) as reference:
        request["checkout_token"] = reference.token
        state.run(CHECKOUT_FLOW, "set-line-meta", request, show_checkout)


def read_values_file(path: Path) -> dict[str, Any]:
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise UsageError("invalid_json", f"{path} must hold a JSON object of field values")
    return data


def _only_definition(state: State, sku: str) -> str:
    product = state.call(PRODUCT_CATALOG, "get-product", {"sku": sku})
    keys = [d["def_key"] for d in product["meta_defs"]]
    if len(keys) != 1:
        raise UsageError(
            "missing_input",
            f"{sku} takes {len(keys)} meta definitions: give --def",
            recovery="one of: " + (", ".join(keys) or "none"),
        )
    return keys[0]


def ask_values(state: State, def_key: str, sku: str) -> dict[str, Any]:
    """Ask field by field: allowed values as choices, ranges shown, each checked as typed."""
    from checkout_cli.cli import output
    from checkout_cli.cli.prompts import prompter
    from checkout_cli.metadefs import check_value, describe, is_set

    definition = state.call(
        PRODUCT_CATALOG, "get-meta-definition", {"def_key": def_key, "product_sku": sku}
    )
    ask = prompter()
    today = datetime.now(UTC).date()  # the engine's "today" (its clock is UTC)
    output.say(f"{definition['title']} for {sku} (leave optional fields empty)")
    answers: dict[str, Any] = {}
    for spec in definition["fields"]:
        label = spec.get("label", spec["name"])
        # required_if names an earlier field here: it is asked before this one.
        needed = bool(spec.get("required")) or (
            "required_if" in spec and is_set(answers.get(spec["required_if"]))
        )
        if spec["type"] == "enum":
            choices = [(v, v) for v in spec.get("values", [])]
            if not needed:
                choices.insert(0, ("", "(none)"))
            value: Any = ask.choice(label, choices)
        elif spec["type"] == "boolean":
            value = ask.confirm(label, default=False)
        else:

            def validate(
                text: str, spec: dict[str, Any] = spec, needed: bool = needed
            ) -> str | None:
                if not text.strip():
                    if not needed:
                        return None
                    return "required" + (
                        "" if spec.get("required") else f" when {spec['required_if']} is set"
                    )
                try:
                    check_value(spec, text, today)
                except CheckoutError as exc:
                    return exc.message.split(": ", 1)[-1]
                return None

            value = ask.text(f"{label} [{describe(spec)}]", validate=validate)
        if value not in ("", None):
            answers[spec["name"]] = value
    return answers


def line_meta(
    ctx: typer.Context,
    order: Annotated[str, typer.Argument(help="order number or id", show_default=False)],
    def_key: Annotated[str | None, typer.Option("--def", help="only this definition")] = None,
) -> None:
    """The meta on an order's lines, exactly as stored at completion.

    Example: checkout orders line-meta 2026-000042 --def lens_prescription
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        t = output.table("Line", "SKU", "Definition", "Values")
        for line in result["lines"]:
            for key, fields in line["meta"].items():
                t.add_row(
                    str(line["line_id"]),
                    line["product_sku"],
                    key,
                    ", ".join(f"{k}={v}" for k, v in fields.items()),
                )
        output.out().print(t)

    state: State = ctx.obj
    state.run(
        ORDER_MANAGEMENT, "get-line-meta", merge_body(None, order_id=order, def_key=def_key), render
    )


def register(root: typer.Typer) -> None:
    endpoint = ENDPOINTS[(CHECKOUT_FLOW, "set-line-meta")]
    root.command(
        "set-line-meta",
        help=f"{endpoint.summary}\n\nValues as FIELD=VALUE pairs or --values-file; "
        "on a terminal with none given, each field is asked for with its allowed "
        f"values.\n\nExample: {endpoint.example}",
    )(set_line_meta)
