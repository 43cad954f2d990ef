"""Bad input through the CLI: each gets one `error:` line (one `error_object` with `--json`),
the documented exit code, no traceback, and leaves the store's content exactly as it was."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest

from tests.conftest import dump, ready_checkout
from tests.test_cli_flow import CUSTOMER_FLAGS, FLOW, refused


class Case(NamedTuple):
    args: tuple[str, ...]  # {checkout}, {cancelled}, {cart} and {tmp} are filled in
    exit_code: int
    type: str
    code: str | None = None
    field: str | None = None
    in_message: str | None = None  # text the message must contain
    setting: tuple[str, Any] | None = None  # changed before the "before" dump
    input: str | None = None


def customer(*extra: str) -> tuple[str, ...]:
    return ("set-customer", "{checkout}", *CUSTOMER_FLAGS, *extra)


CASES = {
    # unknown things: not found, exit 3
    "unknown SKU": Case(
        ("cart", "add", "NO-SUCH-SKU", "--cart", "{cart}"), 3, "not_found", "product_not_found"
    ),
    "unknown SKU in a new cart": Case(("cart", "add", "NO-SUCH-SKU"), 3, "not_found"),
    "unknown cart token": Case(("cart", "show", "cart_unknown"), 3, "not_found", "cart_not_found"),
    "unknown cart token to add to": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "cart_unknown"), 3, "not_found", "cart_not_found"
    ),
    "unknown cart token to initiate": Case(
        ("initiate-checkout", "cart_unknown"), 3, "not_found", "cart_not_found"
    ),
    "unknown checkout token": Case(("status", "chk_unknown"), 3, "not_found", "checkout_not_found"),
    "unknown checkout token to complete": Case(
        ("complete-checkout", "chk_unknown"), 3, "not_found", "checkout_not_found"
    ),
    "unknown checkout token to set-customer": Case(
        ("set-customer", "chk_unknown", *CUSTOMER_FLAGS), 3, "not_found", "checkout_not_found"
    ),
    # quantities: out of range is a validation error (4); not a number is a usage error (2)
    "quantity 0": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "-q", "0"),
        4,
        "validation",
        field="quantity",
    ),
    "quantity -1": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "--quantity", "-1"),
        4,
        "validation",
        field="quantity",
    ),
    "quantity 100000": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "-q", "100000"),
        4,
        "validation",
        field="quantity",
    ),
    "quantity abc": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "-q", "abc"),
        2,
        "usage",
        field="quantity",
        in_message="--quantity",
    ),
    "update quantity -1": Case(
        ("cart", "update", "{cart}", "LENS-DAILY-30", "-q", "-1"), 4, "validation", field="quantity"
    ),
    "update quantity 100000": Case(
        ("cart", "update", "{cart}", "LENS-DAILY-30", "-q", "100000"),
        4,
        "validation",
        field="quantity",
    ),
    "quantity 1.5 in --body": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "--body", '{"quantity": 1.5}'),
        4,
        "validation",
        field="quantity",
    ),
    # whole-number flags read by values.parse_int, as requests are: typer alone took 1_0 for 10
    "an underscore in --quantity": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "--quantity", "1_0"),
        2,
        "usage",
        "bad_usage",
        field="quantity",
        in_message="whole number",
    ),
    "an Arabic-Indic digit as --limit": Case(
        ("orders", "list", "--limit", "٣"), 2, "usage", "bad_usage", field="limit"
    ),
    "an underscore in a stock argument": Case(
        ("products", "set-stock", "GIFT-CARD-25", "1_0"), 2, "usage", "bad_usage", field="stock"
    ),
    "quantity 1e-50000000 in --body (0.0 as a float)": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "--body", '{"quantity": 1e-50000000}'),
        2,
        "usage",
        "invalid_json",
        in_message="out of range",
    ),
    "quantity 0.99999999999999999999 in --body (1.0 as a float)": Case(
        (
            "cart",
            "add",
            "GIFT-CARD-25",
            "--cart",
            "{cart}",
            "--body",
            '{"quantity": 0.99999999999999999999}',
        ),
        2,
        "usage",
        "invalid_json",
        in_message="more digits",
    ),
    # customer details
    "malformed email": Case(
        customer("--email", "anna.example.com"),
        4,
        "validation",
        "invalid_email",
        "customer.email",
    ),
    "email with spaces": Case(
        customer("--email", "anna de vries@example.com"), 4, "validation", "invalid_email"
    ),
    "unknown country": Case(
        customer("--country", "ZZ"),
        4,
        "validation",
        "invalid_country",
        "shipping_address.country",
    ),
    "country name that is none": Case(
        customer("--country", "Atlantis"), 4, "validation", "invalid_country"
    ),
    "unknown billing country": Case(
        customer(
            "--billing-line1",
            "Rue 1",
            "--billing-postal-code",
            "1000",
            "--billing-city",
            "Bruxelles",
            "--billing-country",
            "QQ",
        ),
        4,
        "validation",
        "invalid_country",
        "billing_address.country",
    ),
    # money: integer minor units, never negative
    "negative shipping cents": Case(
        customer("--shipping-cents", "-5"), 4, "validation", field="shipping_cents"
    ),
    "negative tax cents": Case(customer("--tax-cents", "-1"), 4, "validation", field="tax_cents"),
    "shipping cents 1.5 as a flag": Case(
        customer("--shipping-cents", "1.5"), 2, "usage", field="shipping_cents"
    ),
    "shipping cents 1.5 in --body": Case(
        customer("--body", '{"shipping_cents": 1.5}'), 4, "validation", field="shipping_cents"
    ),
    'shipping cents "12" in --body': Case(
        customer("--body", '{"shipping_cents": "12"}'), 4, "validation", field="shipping_cents"
    ),
    "shipping cents true in --body": Case(
        customer("--body", '{"shipping_cents": true}'), 4, "validation", field="shipping_cents"
    ),
    "amount 10.5 in set-payment --body": Case(
        (
            "set-payment",
            "{checkout}",
            "--provider",
            "bank",
            "--reference",
            "r",
            "--status",
            "paid",
            "--body",
            '{"amount_cents": 10.5}',
        ),
        4,
        "validation",
        field="amount_cents",
    ),
    # --body itself
    "invalid JSON in --body": Case(
        customer("--body", '{"shipping_cents": 5'), 2, "usage", "invalid_json", in_message="--body"
    ),
    "--body not an object": Case(customer("--body", "[1, 2]"), 2, "usage", "invalid_json"),
    "invalid JSON on stdin": Case(
        customer("--body", "@-"), 2, "usage", "invalid_json", input="{nope"
    ),
    "--body @missing-file": Case(
        customer("--body", "@{tmp}/missing.json"),
        2,
        "usage",
        "file_unreadable",
        in_message="missing.json",
    ),
    "--body @file with invalid JSON": Case(
        customer("--body", "@{tmp}/broken.json"), 2, "usage", "invalid_json"
    ),
    "unknown field in --body": Case(
        customer("--body", '{"discount_cents": 100}'),
        4,
        "validation",
        "unknown_field",
        "discount_cents",
    ),
    "unknown nested field in --body": Case(
        customer("--body", '{"customer": {"birthday": "1990-01-01"}}'),
        4,
        "validation",
        "unknown_field",
        "customer.birthday",
    ),
    "unknown field in cart --body": Case(
        ("cart", "show", "{cart}", "--body", '{"verbose": true}'),
        4,
        "validation",
        "unknown_field",
    ),
    # hostile values: refused with one short line, never "this is a bug"
    "JSON nested 5,000 deep in --body @file": Case(
        customer("--body", "@{tmp}/deep.json"), 2, "usage", "invalid_json", in_message="64 levels"
    ),
    "a 5,000-digit number in --body": Case(
        customer("--body", '{"shipping_cents": ' + "9" * 5000 + "}"),
        2,
        "usage",
        "invalid_json",
        in_message="5000 digits",
    ),
    "a lone surrogate in --body": Case(
        customer("--body", '{"customer": {"name": "\\ud800"}}'),
        2,
        "usage",
        "invalid_json",
        in_message="lone surrogate",
    ),
    "invalid UTF-8 in --body @file": Case(
        customer("--body", "@{tmp}/latin1.json"), 2, "usage", "invalid_json", in_message="UTF-8"
    ),
    "two dots in a row in an email": Case(
        ("set-customer", "{checkout}", *CUSTOMER_FLAGS[:1], "a..b@x.com", *CUSTOMER_FLAGS[2:]),
        4,
        "validation",
        "invalid_email",
        "customer.email",
        in_message="two periods",
    ),
    "a dot right after the @ in an email": Case(
        ("set-customer", "{checkout}", *CUSTOMER_FLAGS[:1], "a@.b.co", *CUSTOMER_FLAGS[2:]),
        4,
        "validation",
        "invalid_email",
        "customer.email",
    ),
    "superscript two as smtp_port": Case(
        ("settings", "set", "smtp_port", "²"), 4, "validation", "invalid_setting"
    ),
    "superscript two as checkout_ttl_minutes": Case(
        ("settings", "set", "checkout_ttl_minutes", "²"), 4, "validation", "invalid_setting"
    ),
    "a tax rate with a huge exponent": Case(
        ("settings", "set", "tax_rates", '{"NL": "1e-50000000"}'),
        4,
        "validation",
        "invalid_setting",
    ),
    "an Arabic-Indic digit as a duration": Case(
        ("inspect", "{checkout}", "--older-than", "٣m"), 2, "usage", "invalid_duration"
    ),
    "a cart subtotal above the amount bound": Case(
        ("cart", "add", "GIFT-CARD-25", "--cart", "{cart}", "--quantity", "2"),
        4,
        "validation",
        "amount_too_large",
        setting=("__price__", 10**12),
    ),
    # states and permissions
    "completing a cancelled checkout": Case(
        ("complete-checkout", "{cancelled}"), 4, "conflict", "checkout_cancelled"
    ),
    "paying a cancelled checkout": Case(
        ("create-payment", "{cancelled}", "--provider", "invoice"),
        4,
        "conflict",
        "checkout_cancelled",
    ),
    "invoice when not allowed": Case(
        ("create-payment", "{checkout}", "--provider", "invoice"),
        7,
        "forbidden",
        "invoice_checkout_not_allowed",
        setting=("allow_invoice_checkout", False),
    ),
    "unknown provider": Case(
        ("create-payment", "{checkout}", "--provider", "cash"),
        2,
        "usage",
        field="provider",
        in_message="'stripe', 'mollie', 'invoice'",
    ),
    # missing input without a terminal
    "set-customer without flags, --no-input": Case(
        ("--no-input", "set-customer", "{checkout}"),
        2,
        "usage",
        "missing_input",
        in_message="--email",
    ),
    "set-customer with some flags, --no-input": Case(
        ("--no-input", "set-customer", "{checkout}", "--email", "a@example.com", "--name", "A"),
        2,
        "usage",
        "missing_input",
        in_message="--line1, --postal-code, --city, --country",
    ),
    "set-customer without flags, no terminal": Case(
        ("set-customer", "{checkout}"), 2, "usage", "missing_input", in_message="--email"
    ),
    "cancel-checkout without --yes, no terminal": Case(
        ("cancel-checkout", "{checkout}"), 2, "usage", "missing_input", in_message="--yes"
    ),
    "cancel-checkout without --yes, --no-input": Case(
        ("--no-input", "cancel-checkout", "{checkout}"),
        2,
        "usage",
        "missing_input",
        in_message="--yes",
    ),
}


def fill(args: tuple[str, ...], shop: dict[str, str]) -> list[str]:
    """The case's arguments with ``{checkout}`` etc. replaced (JSON braces left alone)."""
    filled = []
    for arg in args:
        for key, value in shop.items():
            arg = arg.replace("{" + key + "}", value)
        filled.append(arg)
    return filled


@pytest.fixture
def shop(backend, tmp_path):
    """An open checkout with a customer, a cancelled one, and a cart with items."""
    checkout = ready_checkout(backend)
    cancelled = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    backend.call(FLOW, "cancel-checkout", {"checkout_token": cancelled})
    cart = backend.call(FLOW, "get-checkout-status", {"checkout_token": checkout})["cart_token"]
    (tmp_path / "broken.json").write_text('{"shipping_cents": ')
    (tmp_path / "deep.json").write_text('{"a": ' * 5000 + "1" + "}" * 5000)
    (tmp_path / "latin1.json").write_bytes('{"customer": {"name": "Jos\xe9"}}'.encode("latin-1"))
    return {"checkout": checkout, "cancelled": cancelled, "cart": cart, "tmp": str(tmp_path)}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_refused_and_changes_nothing(backend, cli, db_path, shop, case):
    if case.setting and case.setting[0] == "__price__":  # a product priced at the bound
        backend.call(
            "product-catalog",
            "upsert-product",
            {"sku": "GIFT-CARD-25", "name": "Gift card", "price_cents": case.setting[1]},
        )
    elif case.setting:
        key, value = case.setting
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    args = fill(case.args, shop)
    before = dump(db_path)
    error = refused(
        cli,
        *args,
        exit_code=case.exit_code,
        type=case.type,
        code=case.code,
        field=case.field,
        input=case.input,
    )
    assert len(error["message"]) > 10, error  # says what is wrong, not just "error"
    if case.in_message:
        assert case.in_message in error["message"], error
    assert dump(db_path) == before


@pytest.mark.parametrize("given", ["nl", " NL ", "netherlands", "Netherlands"])
def test_a_country_flag_takes_a_code_in_any_case_or_a_name(backend, cli, shop, given):
    result = cli("--json", *fill(customer("--country", given), shop))
    assert result.exit_code == 0, result.stderr
    status = backend.call(FLOW, "get-checkout-status", {"checkout_token": shop["checkout"]})
    assert status["shipping_address"]["country"] == "NL"


def test_a_100_kb_value_is_named_not_echoed(cli, shop):
    """A refused value is quoted short: one line a person can read, not 100 kB of it."""
    for args in (
        ("orders", "list", "--body", '{"status": "' + "x" * 100_000 + '"}'),
        ("settings", "set", "smtp_port", "9" * 100_000),
        ("settings", "set", "nope" * 25_000, "1"),
    ):
        result = cli(*args)
        assert result.exit_code in (2, 4), result.stderr
        assert len(result.stderr) < 1_000, (args[:3], len(result.stderr))


def test_an_unknown_order_status_is_refused_not_an_empty_list(cli, shop):
    """Regression: `orders list --status bogus` was exit 0 with an empty table."""
    flag = cli("orders", "list", "--status", "bogus")
    assert flag.exit_code == 2 and "'pending', 'paid'" in flag.stderr, flag.stderr
    body = cli("--json", "orders", "list", "--body", '{"status": "bogus"}')
    assert body.exit_code == 4
    assert json.loads(body.stderr)["error_object"]["code"] == "invalid_status"
    assert cli("orders", "list", "--status", "paid").exit_code == 0
