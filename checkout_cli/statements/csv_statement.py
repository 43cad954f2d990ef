"""A bank's CSV export: one transaction a row, its columns named by the caller.

The columns are the statement's own header names, mapped onto the fields a payment needs
(``Options.columns``: field → header). The delimiter is read from the header line (``,``,
``;`` or tab) unless given; amounts are signed (``-12,50`` or ``12,50-``) or carry their
direction in a column of its own (``C``/``D``, ``CRDT``/``DBIT``, ``credit``/``debit``,
``Bij``/``Af``). Rows are read one at a time, never the whole file.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from checkout_cli.errors import UsageError, ValidationError
from checkout_cli.statements import (
    Item,
    LineProblem,
    StatementLine,
    check_bank_id,
    check_currency,
    parse_bank_amount,
)

# The fields of a statement line, and the header each is found under by default.
FIELDS = ("date", "amount", "currency", "counterparty", "description", "bank_id", "direction")
DEFAULT_COLUMNS = {f: f for f in FIELDS}
REQUIRED = ("amount", "bank_id")
CREDIT_WORDS = frozenset({"c", "cr", "crdt", "credit", "bij", "+", "in", "haben", "h"})
DEBIT_WORDS = frozenset({"d", "dr", "dbit", "debit", "af", "-", "out", "soll", "s"})


@dataclass(frozen=True)
class Options:
    columns: dict[str, str] = field(default_factory=dict)  # field -> header (over defaults)
    delimiter: str | None = None
    decimal: str | None = None  # "." or ","; None: read from each amount
    currency: str | None = None  # when there is no currency column
    date_format: str | None = None  # strptime format; None: ISO 8601 (YYYY-MM-DD)

    def header_of(self, name: str) -> str:
        return self.columns.get(name, DEFAULT_COLUMNS[name])


def parse_column_map(pairs: list[str]) -> dict[str, str]:
    """``FIELD=HEADER`` pairs (``--column amount=Bedrag``) as a column map."""
    columns: dict[str, str] = {}
    for pair in pairs:
        name, sep, header = pair.partition("=")
        name = name.strip()
        if not sep or not header.strip() or name not in FIELDS:
            raise UsageError(
                "invalid_column_map",
                f"--column {pair!r}: expected FIELD=HEADER with FIELD one of {', '.join(FIELDS)}",
                field="column",
            )
        columns[name] = header.strip()
    return columns


def read(path: Path, options: Options) -> Iterator[Item]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError("file_unreadable", f"cannot read {path}: {exc.strerror}") from None
    try:
        with handle:
            header = handle.readline()
            handle.seek(0)
            delimiter = options.delimiter or max((",", ";", "\t"), key=header.count)
            reader = csv.DictReader(handle, delimiter=delimiter)
            at = _columns(path, list(reader.fieldnames or []), options)
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                yield _line(reader.line_num, row, at, options)
    except UnicodeDecodeError:
        raise UsageError(
            "invalid_utf8",
            f"{path}: not UTF-8 text",
            recovery="save the statement as UTF-8 (most banks offer it; else convert it)",
        ) from None


def _columns(path: Path, names: list[str], options: Options) -> dict[str, str]:
    """Field -> header of the columns the file has; a missing required one refuses the file."""
    present = set(names)
    at = {f: options.header_of(f) for f in FIELDS if options.header_of(f) in present}
    missing = [f for f in REQUIRED if f not in at]
    if "currency" not in at and options.currency is None:
        missing.append("currency")
    for name in options.columns:
        if name not in at:  # named on the command line, not in the file: say so
            missing.append(name)
    if missing:
        wanted = ", ".join(f"{f} (column {options.header_of(f)!r})" for f in dict.fromkeys(missing))
        raise ValidationError(
            "invalid_header",
            f"{path}:1: header: no column for {wanted}; the header has "
            + ", ".join(repr(n) for n in names),
            field="header",
            recovery="name the columns with --column FIELD=HEADER (e.g. --column "
            "amount=Bedrag), or give --currency when there is no currency column",
        )
    return at


def _line(number: int, row: dict[str, str | None], at: dict[str, str], o: Options) -> Item:
    def value(name: str) -> str | None:
        text = row.get(at[name]) if name in at else None
        return text.strip() if isinstance(text, str) and text.strip() else None

    raw_id = value("bank_id")
    try:
        bank_id = check_bank_id(raw_id)
    except ValueError as exc:
        return LineProblem(number, "bank_id", str(exc), raw_id)
    try:
        currency = check_currency(value("currency") or o.currency)
    except ValueError as exc:
        return LineProblem(number, "currency", str(exc), bank_id)
    try:
        signed = parse_bank_amount(value("amount") or "", currency, o.decimal)
    except ValueError as exc:
        return LineProblem(number, "amount", str(exc), bank_id)
    credit = signed >= 0
    if (direction := value("direction")) is not None:
        word = direction.lower()
        if word in DEBIT_WORDS:
            credit = False
        elif word not in CREDIT_WORDS:
            return LineProblem(
                number, "direction", f"{direction!r} is neither credit nor debit", bank_id
            )
    booked = value("date")
    if booked is not None:
        try:
            day = (
                dt.datetime.strptime(booked, o.date_format).date()
                if o.date_format
                else dt.date.fromisoformat(booked[:10])
            )
        except ValueError:
            shape = o.date_format or "YYYY-MM-DD"
            return LineProblem(number, "date", f"{booked!r} is not a date ({shape})", bank_id)
        booked = day.isoformat()
    return StatementLine(
        line=number,
        bank_id=bank_id,
        amount_cents=abs(signed),
        currency=currency,
        credit=credit,
        booked_on=booked,
        counterparty=value("counterparty"),
        description=value("description") or "",
    )
