"""Money in integer minor units: ISO 4217 exponents, rounding, formatting.

Amounts are stored and shown with ISO 4217 exponents; this is the one place they are rounded.
A provider's own units (Stripe's, Mollie's strings) are converted in that provider's module
(``payments/``), both ways. Floats never appear.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

# ISO 4217 minor-unit exponents that differ from the usual 2.
_EXPONENT_EXCEPTIONS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}

# No amount (a price, a line, a cart, a total) above this: 10,000,000,000.00 in a two-decimal
# currency, far above any checkout, and far below what SQLite's 64-bit integers hold.
MAX_AMOUNT_CENTS = 10**12


@cache
def currency_codes() -> frozenset[str]:
    """The active ISO 4217 codes (pycountry's table, loaded on first use)."""
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies)


def is_currency(code: str) -> bool:
    """``code`` is an ISO 4217 code, in any case."""
    return isinstance(code, str) and code.upper() in currency_codes()


def exponent(currency: str) -> int:
    """Number of decimals of the currency's minor unit (EUR 2, JPY 0, KWD 3)."""
    return _EXPONENT_EXCEPTIONS.get(currency.upper(), 2)


def round_half_up(value: Decimal) -> int:
    """Round a fractional amount of minor units to a whole one, halves away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent_of(amount_cents: int, rate_percent: str | Decimal) -> int:
    """``rate_percent`` % of an amount, rounded half-up once."""
    return round_half_up(Decimal(amount_cents) * Decimal(rate_percent) / Decimal(100))


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` over ``weights`` proportionally; the parts add up to ``total`` exactly.

    Largest remainder method: floor every share, then hand the leftover units to the shares
    with the largest remainders (earlier lines first on ties).
    """
    if not weights:
        return []
    weight_sum = sum(weights)
    if weight_sum == 0:
        shares = [0] * len(weights)
        shares[0] = total
        return shares
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:leftover]:
        floors[index] += 1
    return floors


def to_decimal(amount_cents: int, currency: str) -> Decimal:
    """Minor units to a major-unit Decimal with the currency's exponent (1234 EUR -> 12.34)."""
    exp = exponent(currency)
    return Decimal(amount_cents).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def format_money(amount_cents: int | None, currency: str) -> str:
    """For people: ``€ 12.34``, ``¥ 1,200``, ``KWD 1.500``."""
    if amount_cents is None:
        return "—"
    value = to_decimal(amount_cents, currency)
    exp = exponent(currency)
    text = f"{abs(value):,.{exp}f}"
    sign = "-" if amount_cents < 0 else ""
    symbol = _SYMBOLS.get(currency.upper(), currency.upper())
    return f"{sign}{symbol} {text}"


def decimals_rule(currency: str) -> str:
    """How many decimals an amount in ``currency`` has, in words: ``no decimals`` for JPY."""
    exp = exponent(currency)
    return "no decimals" if exp == 0 else f"up to {exp} decimals"


def amount_problem(text: str, currency: str, example: int) -> str | None:
    """Why ``text`` is not an amount in ``currency`` (with ``example`` minor units written the
    currency's way: ``45.90`` EUR, ``4590`` JPY), or None when it is one."""
    if parse_amount(text, currency) is not None:
        return None
    return f"an amount in {currency} with {decimals_rule(currency)}, e.g. " + str(
        to_decimal(example, currency)
    )


def parse_amount(text: str, currency: str) -> int | None:
    """An amount typed by a person in major units (``45.90``, ``45,90``, ``1,234.50``, ``4,590``
    for JPY) to minor units.

    None when it is not a non-negative amount with at most the currency's decimals. A comma
    before three digits groups thousands only where it cannot be a decimal comma: with a
    decimal point after it, or in a currency without decimals.
    """
    import re

    from checkout_cli.values import parse_decimal

    cleaned = text.strip().replace(" ", "")
    grouped = re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?", cleaned)
    if grouped and ("." in cleaned or exponent(currency) == 0):
        cleaned = cleaned.replace(",", "")
    elif "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    value = parse_decimal(cleaned)
    if value is None or value < 0:
        return None
    minor = value.scaleb(exponent(currency))
    return int(minor) if minor == minor.to_integral_value() else None
