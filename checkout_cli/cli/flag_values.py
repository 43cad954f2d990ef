"""Flag values read with the one parser of their kind (``countries.parse_country``, …)."""

from __future__ import annotations

from typing import Any

import typer
from typer import _click as click

from checkout_cli.values import parse_int, shown


def whole_number(ctx: click.Context, param: Any, value: Any) -> Any:
    """A whole-number parameter's text read by ``values.parse_int`` (ASCII digits), as
    requests, settings and batch files read one: typer's own reading takes ``1_0`` for 10."""
    if not isinstance(value, str):
        return value
    number = parse_int(value)
    if number is None:
        raise typer.BadParameter(
            f"expected a whole number (digits 0-9), got {shown(value)}", ctx=ctx, param=param
        )
    return number


def country_flag(value: str | None) -> str | None:
    """``--country nl`` / ``--country Netherlands`` → ``NL``. Anything else is passed on as
    given, for the request to refuse with the field's own error (``invalid_country``)."""
    from checkout_cli.countries import parse_country

    if value is None:
        return None
    return parse_country(value) or value
