"""Money in integer minor units: ISO 4217 exponents, rounding, formatting, provider formats.

This is the one place where amounts are converted or rounded. Floats never appear.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

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


def is_currency(code: str) -> bool:
    """An active ISO 4217 code (pycountry's table, loaded on first use)."""
    import pycountry

    return len(code) == 3 and pycountry.currencies.get(alpha_3=code.upper()) is not None


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


def to_provider_string(amount_cents: int, currency: str) -> str:
    """The ``"12.34"`` string Mollie expects, with the currency's own number of decimals."""
    return str(to_decimal(amount_cents, currency))


def to_stripe_amount(amount_cents: int, currency: str) -> int:
    """Stripe takes minor units as integers (JPY: yen). For three-decimal currencies it
    requires a multiple of 10 (the last decimal must be 0)."""
    if exponent(currency) == 3 and amount_cents % 10:
        from checkout_cli.errors import ValidationError

        raise ValidationError(
            "amount_not_supported",
            f"Stripe accepts {currency} amounts only in steps of 0.010, got "
            f"{to_provider_string(amount_cents, currency)}",
            recovery="use another provider or round the prices",
        )
    return amount_cents


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


def parse_amount(text: str, currency: str) -> int:
    """Major units typed by a person (``12.5``) to minor units; refuses excess decimals."""
    value = Decimal(text.strip())
    exp = exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency} has {exp} decimals at most")
    return int(scaled)
