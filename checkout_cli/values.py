"""One parser per kind of value typed or sent by a person or a script: whole numbers, decimals
and JSON documents. Requests, settings, batch files, CLI flags and prompts all read through
these, so a value accepted in one place is accepted in every other, and a hostile one (``"²"``,
``1e-50000000``, a 5,000-digit number, JSON nested 5,000 deep, a lone surrogate) is a refusal,
never a crash.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

# ASCII digits only: str.isdigit() and int() also take "²" or "٣", which no one means.
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}")
# Plain decimal notation: an exponent ("1e-50000000") is not how anyone writes an amount or a
# rate, and an unbounded one makes every later computation with it fail or stall.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})")
MAX_JSON_DEPTH = 64
MAX_JSON_INT_DIGITS = 30
MAX_JSON_EXPONENT = 30  # a JSON number's magnitude: 1e-30 to 1e30, as 30 digits bound its integers


def parse_int(text: str) -> int | None:
    """``"42"``, ``" -7 "`` → int; anything else (``"²"``, ``"4.0"``, 19+ digits) → None."""
    text = text.strip()
    return int(text) if _WHOLE.fullmatch(text) else None


def parse_decimal(text: str) -> Decimal | None:
    """``"21"``, ``"9.5"``, ``".5"`` → Decimal; exponents, NaN, infinities and 19+ digits on
    either side of the point → None."""
    text = text.strip()
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def _number(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"a number of {len(text)} digits is too long")
    return int(text)


def _finite(text: str) -> float:
    """A JSON number with a point or an exponent, as its float, unless that float is a whole
    number other than the one written: ``1e-50000000`` is not 0, ``0.99999999999999999999`` not
    1 and ``9007199254740993.0`` not ...992, so each is refused, not read as a count it is not."""
    number = Decimal(text)
    if number and abs(number.adjusted()) > MAX_JSON_EXPONENT:
        raise ValueError(f"number out of range: {shown(text)}")
    value = float(number)
    if value.is_integer() and Decimal(value) != number:
        raise ValueError(f"number {shown(text)} has more digits than a JSON number keeps exactly")
    return value


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


class JSONRefused(ValueError):
    """A document that is not valid JSON; the message is one short line."""


def load_json(text: str | bytes) -> Any:
    """Parse JSON as RFC 8259 means it, within bounds: no NaN/Infinity, no overflowing or
    30+-digit numbers, at most 64 levels deep, valid UTF-8 and no lone surrogates in any string
    (``"\\ud800"`` is valid JSON but no text: it cannot be stored, printed or sent on)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JSONRefused(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_int=_number, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise JSONRefused(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:
        raise JSONRefused(str(exc)) from None
    problem = text_problem(value)
    if problem:
        raise JSONRefused(problem)
    return value


def text_problem(value: Any) -> str | None:
    """Why a decoded document is no acceptable data (too deep, a lone surrogate), or None.
    Walked without recursion, so a deep document cannot exhaust the stack here either."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str) and not is_text(item):
            return "a string holds a lone surrogate (e.g. \\ud800), which is not text"
    return None


def is_text(value: str) -> bool:
    """True unless the string holds a lone surrogate (it would not survive UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


SHOWN_CHARACTERS = 60


def shown(value: Any) -> str:
    """``value`` as an error message quotes it: its repr, cut to a short line (a 100 kB value
    is named by its length, not echoed whole)."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} long"
    return f"{text[: SHOWN_CHARACTERS - 1]}… ({size})"
