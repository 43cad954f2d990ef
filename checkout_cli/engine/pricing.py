"""Totals: line tax from the configured rate of the shipping country, shipping, and the sum.

Prices are tax-exclusive. Tax is computed per line and rounded once per line (half-up), so
the lines' tax adds up to the checkout's tax exactly. An explicit ``tax_cents`` is spread
over the lines in proportion to their totals, again adding up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkout_cli.errors import ValidationError
from checkout_cli.money import MAX_AMOUNT_CENTS, allocate, percent_of


@dataclass(frozen=True)
class Totals:
    line_tax: list[int]
    subtotal_cents: int
    shipping_cents: int
    tax_cents: int

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.shipping_cents + self.tax_cents

    def as_dict(self) -> dict[str, int]:
        return {
            "subtotal_cents": self.subtotal_cents,
            "shipping_cents": self.shipping_cents,
            "tax_cents": self.tax_cents,
            "total_cents": self.total_cents,
        }


def compute(
    line_totals: list[int],
    shipping_cents: int,
    *,
    tax_rate_percent: str | None = None,
    explicit_tax_cents: int | None = None,
) -> Totals:
    if explicit_tax_cents is not None:
        line_tax = allocate(explicit_tax_cents, line_totals)
    elif tax_rate_percent is not None:
        line_tax = [percent_of(amount, tax_rate_percent) for amount in line_totals]
    else:
        line_tax = [0] * len(line_totals)
    totals = Totals(line_tax, sum(line_totals), shipping_cents, sum(line_tax))
    check_amount(totals.total_cents, "the checkout's total")
    return totals


def check_amount(amount_cents: int, what: str) -> None:
    """Refuse an amount above the one bound every amount keeps (``MAX_AMOUNT_CENTS``)."""
    if amount_cents > MAX_AMOUNT_CENTS:
        raise ValidationError(
            "amount_too_large",
            f"{what} would be {amount_cents} minor units, over the limit of {MAX_AMOUNT_CENTS}",
            recovery="split it into smaller orders, or lower the quantity",
        )
