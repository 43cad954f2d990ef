"""The amount of a payment made elsewhere, typed the currency's way: 45.90 EUR, 4590 JPY."""

from __future__ import annotations

import pytest

from checkout_cli.money import amount_problem, decimals_rule, parse_amount
from tests.terminal import DOWN
from tests.test_phone_order import Q, operator, orders, status  # noqa: F401  (fixture)


@pytest.mark.parametrize(
    ("typed", "currency", "minor"),
    [
        ("4590", "JPY", 4590),
        ("4,590", "JPY", 4590),  # a thousands comma: JPY has no decimal comma
        ("45.90", "JPY", None),  # yen have no decimals
        ("4.590", "JPY", None),  # ambiguous: refused, never read as 4590 or 4
        ("45.90", "EUR", 4590),
        ("45,90", "EUR", 4590),
        ("1,234.50", "EUR", 123450),
        ("45.905", "EUR", None),
        ("1.500", "KWD", 1500),
        ("-1", "EUR", None),
    ],
)
def test_amounts_are_parsed_with_the_currency_exponent(typed, currency, minor):
    assert parse_amount(typed, currency) == minor


def test_the_amount_prompt_says_the_rule_and_an_example_in_the_currency_s_own_form():
    assert decimals_rule("JPY") == "no decimals"
    assert decimals_rule("EUR") == "up to 2 decimals"
    assert amount_problem("45.90", "JPY", 4590) == "an amount in JPY with no decimals, e.g. 4590"
    assert amount_problem("x", "EUR", 4590) == "an amount in EUR with up to 2 decimals, e.g. 45.90"
    assert amount_problem("x", "KWD", 1500) == "an amount in KWD with up to 3 decimals, e.g. 1.500"
    assert amount_problem("4590", "JPY", 4590) is None


def test_a_yen_shop_takes_a_payment_elsewhere_in_whole_yen(backend, operator):  # noqa: F811
    backend.call("checkout-admin", "set-setting", {"key": "currency", "value": "JPY"})
    backend.call(
        "product-catalog",
        "upsert-product",
        {"sku": "MATCHA-40", "name": "Matcha tea 40 g", "price_cents": 4590, "currency": "JPY"},
    )
    op = operator()
    op.search("matcha", "Matcha tea 40 g")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(Q + r"Payment", DOWN * 3 + "\r")  # already paid elsewhere
    op.at(r"Paid via", "\r")
    op.at(r"Payment reference", "POS-9\r")
    op.at(r"Amount received \(JPY, no decimals\)")
    op.retype("45.90", "an amount in JPY with no decimals, e.g.", "4,590")
    op.at(r"is not the total .*Record it anyway\?", "n")
    op.at(r"not recorded")
    op.at(Q + r"Payment", DOWN * 3 + "\r")
    op.at(r"Paid via", "\r")
    op.at(r"Payment reference", "POS-9\r")
    op.at(r"Amount received \(JPY, no decimals\)", "\r")  # the total, in whole yen
    op.at("Read this out")
    assert op.finish() == 0, op.text

    [order] = orders(backend)
    co = status(backend, order["checkout_token"])
    total = co["totals"]["total_cents"]
    assert co["currency"] == "JPY" and total > 4590
    assert co["payment"]["amount_cents"] == total
    assert f"Total     ¥ {total:,}" in op.text
    assert f"e.g. {total}" in op.text  # the example is the total, written without decimals
