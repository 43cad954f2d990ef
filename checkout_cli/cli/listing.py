"""What every list command shares: paging, a total, and table, CSV, JSON or ids-only output.

A command declares its options with the ``Limit``, ``Offset``, ``Format`` and ``Quiet`` types
below and hands the result to ``show``, with a ``Listing`` that says which rows, which id and
which CSV columns. Paging happens in the endpoint (SQL LIMIT/OFFSET and COUNT(*)), so the
total is right over ``--remote`` too.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from checkout_cli.cli.state import State, print_json
from checkout_cli.errors import UsageError
from checkout_cli.requests import MAX_LIST_LIMIT
from checkout_cli.workflows.report_file import defused

DEFAULT_LIMIT = 100  # every list command's page unless --limit says otherwise


class ListFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


Limit = Annotated[
    int,
    typer.Option(
        "--limit",
        min=1,
        max=MAX_LIST_LIMIT,
        help=f"at most this many rows (1 to {MAX_LIST_LIMIT:,})",
    ),
]
Offset = Annotated[
    int, typer.Option("--offset", min=0, max=10**9, help="skip this many rows first")
]
Format = Annotated[
    ListFormat | None,
    typer.Option(
        "--format",
        case_sensitive=False,
        help="table (default), csv (RFC 4180, with a header) or json (the same as --json)",
        show_default=False,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", help="print only the ids, one per line")]

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], Any]]  # CSV: header, value


def fields(*names: str) -> tuple[Column, ...]:
    """CSV columns that are the rows' own fields, by name."""
    from operator import itemgetter

    return tuple((name, itemgetter(name)) for name in names)


@dataclass(frozen=True)
class Listing:
    """How one list prints: its rows' key in the result, their id, its CSV columns, its table."""

    rows: str  # the result's key holding the rows, e.g. "products"
    id_of: Callable[[Row], Any]
    columns: tuple[Column, ...]
    table: Callable[[dict[str, Any]], None]
    noun: str = ""  # what the rows are called in talk ("no meta definitions"); default: rows


def page(limit: int, offset: int) -> dict[str, int]:
    """The request fields of a page (an offset of 0 is left out, as before paging)."""
    return {"limit": limit, **({"offset": offset} if offset else {})}


def run(
    state: State,
    service: str,
    name: str,
    body: dict[str, Any],
    listing: Listing,
    fmt: ListFormat | None,
    quiet: bool,
) -> dict[str, Any]:
    """Call a list endpoint and print its result as the options ask."""
    chosen = output_format(state, fmt)  # a conflict is refused before the call
    result = state.call(service, name, body)
    show(result, listing, chosen, quiet)
    return result


def output_format(state: State, fmt: ListFormat | None) -> ListFormat:
    if state.settings.json and fmt not in (None, ListFormat.json):
        raise UsageError(
            "bad_usage",
            f"--json and --format {fmt.value if fmt else ''} disagree",
            field="format",
            recovery="give one of them",
        )
    return ListFormat.json if state.settings.json else fmt or ListFormat.table


def show(result: dict[str, Any], listing: Listing, fmt: ListFormat, quiet: bool) -> None:
    rows: list[Row] = result[listing.rows]
    if quiet:  # ids for scripts, whatever the format
        sys.stdout.write("".join(f"{listing.id_of(row)}\n" for row in rows))
    elif fmt is ListFormat.json:
        print_json(result)
    elif fmt is ListFormat.csv:
        write_csv(rows, listing.columns)
    elif not rows:  # no table, not even its header: stdout stays empty, stderr says so
        _footer(result, listing.rows, listing.noun, empty=True)
    else:
        listing.table(result)
        _footer(result, listing.rows, listing.noun)
    sys.stdout.flush()  # a reader gone (`| head`) is reported here, not at exit


def write_csv(rows: list[Row], columns: tuple[Column, ...]) -> None:
    """RFC 4180 (CRLF, quoted where needed) with a header row; full values, money as integer
    minor units beside its currency, and text a spreadsheet would run as a formula defused."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(header for header, _ in columns)
    for row in rows:
        writer.writerow(csv_cell(value(row)) for _, value in columns)


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)  # numbers stay numbers; a negative amount is not a formula
    return defused(str(value))


def _footer(result: dict[str, Any], key: str, noun: str = "", *, empty: bool = False) -> None:
    """Where this page stands, on stderr, when it is not the whole list ("no orders" when
    there is none)."""
    from checkout_cli.cli import output

    noun = noun or key
    total, offset = result.get("total"), result.get("offset", 0)
    if empty and not (offset and total):
        output.say(f"no {noun}")
        return
    if total is None:  # a server from before paging
        return
    shown = len(result[key])
    if shown == 0 and offset > 0:
        output.say(f"no {noun} from offset {offset:,}: there are {total:,}")
        return
    if offset == 0 and shown >= total:
        return
    span = f"{shown:,}" if offset == 0 else f"{offset + 1:,}–{offset + shown:,}"
    more = f" — use --offset {offset + shown} for more" if offset + shown < total else ""
    output.say(f"{span} of {total:,} {noun}{more}")
