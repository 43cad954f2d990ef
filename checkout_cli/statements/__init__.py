"""Bank statements read one line at a time: a CSV export with configurable columns
(``csv_statement``) and ISO 20022 CAMT.053 XML (``camt053``).

Each parser yields ``StatementLine``s (or ``LineProblem``s for lines that cannot be read),
streaming: a statement of any length is never held in memory. Amounts are integer minor
units in the line's currency (``money.exponent``); debits are lines too (``credit`` False),
so a caller can count what it skips.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from checkout_cli.errors import UsageError
from checkout_cli.money import MAX_AMOUNT_CENTS, exponent, is_currency


@dataclass(frozen=True)
class StatementLine:
    line: int  # the file's line number (CSV) or the entry's place in the statement (CAMT)
    bank_id: str  # the bank's own id of the transaction: what makes it one payment
    amount_cents: int  # never negative; ``credit`` says which way it went
    currency: str
    credit: bool
    booked_on: str | None = None  # YYYY-MM-DD
    counterparty: str | None = None
    description: str = ""
    booked: bool = True  # a CAMT entry may be pending (not yet money on the account)


@dataclass(frozen=True)
class LineProblem:
    line: int
    field: str
    message: str
    bank_id: str | None = None


Item = StatementLine | LineProblem

FORMATS = ("csv", "camt053")


def detect_format(path: Path) -> str:
    """``csv`` or ``camt053``, by the file's name (``.csv``, ``.xml``/``.camt``/``.053``)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".xml", ".camt", ".053"):
        return "camt053"
    raise UsageError(
        "unknown_statement_format",
        f"{path}: expected a .csv or a CAMT.053 .xml statement",
        field="file",
        recovery="pass --format csv or --format camt053",
    )


_SIGNED = re.compile(r"([+-]?)([0-9][0-9., '\u00a0\u202f]*)([+-]?)")


def parse_bank_amount(text: str, currency: str, decimal: str | None = None) -> int:
    """A statement's signed amount in major units (``1.234,56``, ``-1234.56``, ``12,50-``) as
    signed minor units of ``currency``; ValueError with the reason when it is not one.

    ``decimal`` is the decimal separator (``.`` or ``,``); None reads it from the text: with
    both present the last is the decimal one, with one present it is that one. A thousands
    separator is a space, an apostrophe or the other of ``.``/``,``. More decimals than the
    currency has are refused, never rounded.
    """
    match = _SIGNED.fullmatch(text.strip())
    if match is None or (match.group(1) and match.group(3)):
        raise ValueError(f"{text!r} is not an amount")
    digits = re.sub(r"[ '\u00a0\u202f]", "", match.group(2))
    sep = decimal
    if sep is None:
        places = [i for i, c in enumerate(digits) if c in ".,"]
        sep = digits[places[-1]] if places else "."
    group = "," if sep == "." else "."
    whole, _, fraction = digits.rpartition(sep) if sep in digits else (digits, "", "")
    if sep in whole or (fraction and not fraction.isdigit()):
        raise ValueError(f"{text!r} is not an amount")
    if group in whole and not re.fullmatch(rf"[0-9]{{1,3}}(\{group}[0-9]{{3}})+", whole):
        raise ValueError(f"{text!r} is not an amount (is the decimal separator right?)")
    whole = whole.replace(group, "")
    if not whole.isdigit() and not (whole == "" and fraction):
        raise ValueError(f"{text!r} is not an amount")
    exp = exponent(currency)
    if len(fraction) > exp:
        raise ValueError(
            f"{text!r} has more decimals than {currency} has ({exp})"
            + ("; is the decimal separator right?" if group in digits or len(fraction) == 3 else "")
        )
    try:
        value = Decimal(f"{whole or '0'}.{fraction or '0'}").scaleb(exp)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    minor = int(value)
    if minor > MAX_AMOUNT_CENTS:
        raise ValueError(f"{text!r} is more than any amount the store takes")
    return -minor if "-" in (match.group(1), match.group(3)) else minor


def check_currency(text: str | None) -> str:
    code = (text or "").strip().upper()
    if not is_currency(code):
        raise ValueError(f"{text!r} is not an ISO 4217 currency code")
    return code


# A bank transaction id as record-payment takes it as a payment's reference.
BANK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+\-]{0,199}")


def check_bank_id(text: str | None) -> str:
    value = (text or "").strip()
    if not value:
        raise ValueError("no bank transaction id (it makes the payment one: re-runs use it)")
    if not BANK_ID.fullmatch(value):
        raise ValueError(
            f"bank transaction id {value!r} is not usable as a reference (letters, digits and "
            "._:/+- only, at most 200)"
        )
    return value


def read_statement(path: Path, fmt: str, csv_options: object | None = None) -> Iterator[Item]:
    """Every line of the statement at ``path``, in order, one at a time."""
    if fmt == "camt053":
        from checkout_cli.statements import camt053

        return camt053.read(path)
    from checkout_cli.statements import csv_statement

    options = csv_options if isinstance(csv_options, csv_statement.Options) else None
    return csv_statement.read(path, options or csv_statement.Options())
