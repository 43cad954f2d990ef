"""One way of naming a value in help: an upper-case metavar (``EMAIL``, ``CENTS``, ``SKU``,
``N``, ``TEXT``), never typer's ``<str>``/``<int>``, and a choice's values listed.

``uniform`` is applied to every command as it is built (``app.CheckoutGroup``): a parameter
that names its metavar keeps it, the others get one from their name and type, and an
argument shows only its name (typer would add its type after it: ``CHECKOUT <str>``). A
whole-number parameter is read by the one parser of whole numbers (``flag_values``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer import _click as click
from typer.core import TyperArgument, TyperOption

from checkout_cli.cli.flag_values import whole_number

# A request field's kind (``schema.Checks.kind``) as a metavar; a choice is named by its field.
KIND_METAVARS = {
    "text": "TEXT",
    "whole": "N",
    "cents": "CENTS",
    "email": "EMAIL",
    "sku": "SKU",
    "checkout": "CHECKOUT",
    "cart": "CART",
    "url": "URL",
    "country": "COUNTRY",
    "currency": "CURRENCY",
    "phone": "PHONE",
    "date": "DATE",
    "object": "JSON",
    "value": "JSON",
}

# Text options named for what they hold.
_NAMED = {
    "email": "EMAIL",
    "sku": "SKU",
    "product": "SKU",
    "product_sku": "SKU",
    "checkout": "CHECKOUT",
    "checkout_token": "CHECKOUT",
    "resume": "CHECKOUT",
    "cart": "CART",
    "cart_token": "CART",
}


def kind_metavar(kind: str, name: str) -> str:
    return name.upper() if kind == "choice" else KIND_METAVARS.get(kind, "TEXT")


class _NamedArgument(TyperArgument):
    """An argument shown by its metavar alone in the help's argument list."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None


class _WholeArgument(_NamedArgument):
    def process_value(self, ctx: click.Context, value: Any) -> Any:
        return super().process_value(ctx, whole_number(ctx, self, value))


class _WholeOption(TyperOption):
    def process_value(self, ctx: click.Context, value: Any) -> Any:
        return super().process_value(ctx, whole_number(ctx, self, value))


def metavar_for(param: TyperArgument | TyperOption) -> str:
    """The metavar a parameter that names none gets, from its name and its type."""
    described = param.type_descriptor
    if isinstance(param, TyperArgument):
        return (param.name or "value").upper()
    # An option is named by its flag (``--format``), not by its parameter (``fmt``).
    longest = max(param.opts, key=len, default=param.name or "value")
    name = longest.lstrip("-").replace("-", "_")
    if described.is_choice:
        return name.upper()
    if described.annotation is int:
        return "CENTS" if name.endswith("cents") else "N"
    if described.annotation is float:
        return "NUMBER"
    if described.is_path or described.annotation is Path:
        return "PATH"
    return _NAMED.get(name, "TEXT")


def uniform(command: click.Command) -> click.Command:
    """``command`` (and, for a group, every command in it) with uniform metavars."""
    if getattr(command, "_uniform_metavars", False):
        return command
    setattr(command, "_uniform_metavars", True)  # noqa: B010 - a mark, not a declared field
    for param in command.params:
        if not isinstance(param, TyperArgument | TyperOption):
            continue
        if isinstance(param, TyperOption) and (param.is_flag or param.count):
            continue
        if param.metavar is None:
            param.metavar = metavar_for(param)
        described = param.type_descriptor
        whole = described.annotation is int and param.nargs == 1 and not param.multiple
        if isinstance(param, TyperArgument):
            param.__class__ = _WholeArgument if whole else _NamedArgument
        elif whole:
            param.__class__ = _WholeOption
        if isinstance(param, TyperOption) and described.is_choice and described.choices:
            values = ", ".join(str(getattr(c, "value", c)) for c in described.choices)
            listed = f"[choices: {values}]"
            param.help = f"{param.help}  {listed}" if param.help else listed
    for sub in getattr(command, "commands", {}).values():
        uniform(sub)
    return command
