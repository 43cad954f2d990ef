"""The checkout-flow commands through the CLI: every command's `--json` output is the engine's
checkout object, each documented refusal is one `error:` line (or one `error_object` with
`--json`) and its exit code, `--body` merges under the flags, and data prints as typed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import CUSTOMER, Result, dump, ready_checkout

FLOW = "checkout-flow"

# The customer flags that make a whole `set-customer` (the same values as CUSTOMER).
CUSTOMER_FLAGS = (
    "--email",
    "anna@example.com",
    "--name",
    "Anna de Vries",
    "--line1",
    "Prinsengracht 263",
    "--postal-code",
    "1016 GV",
    "--city",
    "Amsterdam",
    "--country",
    "NL",
)

# Keys only a write's answer carries, beside the checkout object.
EXTRA_KEYS = ("reused", "already_completed", "warnings")


# -- helpers shared by the other test_cli_* files ----------------------------------------------


def status_of(backend: Any, token: str) -> dict[str, Any]:
    return backend.call(FLOW, "get-checkout-status", {"checkout_token": token})


def checkout_only(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in EXTRA_KEYS}


def new_cart(backend: Any, items: list[tuple[str, int]] | None = None) -> str:
    cart = None
    for sku, quantity in items or [("LENS-DAILY-30", 2)]:
        cart = backend.call(
            "shopping-cart",
            "add-item",
            {"cart_token": cart, "product_sku": sku, "quantity": quantity},
        )["cart_token"]
    return cart


def ok(result: Result) -> Any:
    """A successful `--json` command: exit 0, nothing on stderr, its parsed stdout."""
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.json()


def error_line(result: Result, exit_code: int) -> str:
    """A refused command without `--json`: the exit code and one `error:` line on stderr."""
    assert "Traceback" not in result.stderr
    assert result.exit_code == exit_code, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def error_object(result: Result, exit_code: int) -> dict[str, Any]:
    """A refused `--json` command: the exit code, empty stdout, one `error_object` on stderr."""
    assert "Traceback" not in result.stderr
    assert result.exit_code == exit_code, (result.exit_code, result.stderr)
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return json.loads(lines[0])["error_object"]


def refused(
    cli: Any,
    *args: str,
    exit_code: int,
    type: str,
    code: str | None = None,
    field: str | None = None,
    input: str | None = None,
) -> dict[str, Any]:
    """Run ``args`` twice, as people and as scripts see it, and check both refusals; returns
    the error object. ``code`` None: any code (usage errors from the argument parser)."""
    error_line(cli(*args, input=input), exit_code)
    error = error_object(cli("--json", *args, input=input), exit_code)
    assert error["type"] == type, error
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error


# -- happy paths: the same object the engine returns --------------------------------------------


def test_initiate_checkout_returns_the_checkout_and_reuses_it(backend, cli):
    cart = new_cart(backend)
    first = ok(cli("--json", "initiate-checkout", cart))
    assert first["cart_token"] == cart
    assert first["status"] == "active"
    assert first["checkout_token"].startswith("chk_")
    assert checkout_only(first) == status_of(backend, first["checkout_token"])
    assert not first.get("reused")
    [item] = first["items"]
    assert (item["product_sku"], item["quantity"], item["line_total_cents"]) == (
        "LENS-DAILY-30",
        2,
        4990,
    )

    again = ok(cli("--json", "initiate-checkout", cart))
    assert again["reused"] is True
    assert checkout_only(again) == checkout_only(first)

    table = cli("initiate-checkout", cart)
    assert table.exit_code == 0
    assert first["checkout_token"] in table.stdout
    assert "reused" in table.stderr  # talk goes to stderr


def test_set_customer_from_flags(backend, cli):
    token = ready_checkout(backend)
    result = ok(
        cli(
            "--json",
            "set-customer",
            token,
            *CUSTOMER_FLAGS,
            "--phone",
            "+31 20 555 0142",
            "--company",
            "Lens BV",
            "--shipping-cents",
            "700",
            "--tax-cents",
            "1000",
        )
    )
    assert result == status_of(backend, token)
    assert result["customer"] == {
        "email": "anna@example.com",
        "name": "Anna de Vries",
        "phone": "+31 20 555 0142",
        "company": "Lens BV",
    }
    shipping = result["shipping_address"]
    assert shipping == {
        "line1": "Prinsengracht 263",
        "line2": None,
        "postal_code": "1016 GV",
        "city": "Amsterdam",
        "region": None,
        "country": "NL",
    }
    assert result["billing_address"] == shipping  # default: the shipping address
    assert result["totals"] == {
        "subtotal_cents": 4990,
        "shipping_cents": 700,
        "tax_cents": 1000,
        "total_cents": 6690,
    }


def test_set_customer_with_a_billing_address_and_computed_tax(backend, cli):
    token = ready_checkout(backend)
    result = ok(
        cli(
            "--json",
            "set-customer",
            token,
            *CUSTOMER_FLAGS,
            "--billing-line1",
            "Unter den Linden 1",
            "--billing-postal-code",
            "10117",
            "--billing-city",
            "Berlin",
            "--billing-country",
            "DE",
        )
    )
    assert result == status_of(backend, token)
    assert result["billing_address"]["city"] == "Berlin"
    assert result["billing_address"]["country"] == "DE"
    assert result["shipping_address"]["country"] == "NL"
    # Defaults from the fixture settings: 4.95 shipping, 21% NL tax on 49.90 per line.
    assert result["totals"]["shipping_cents"] == 495
    assert result["totals"]["tax_cents"] == 1048
    assert result["totals"]["total_cents"] == 4990 + 495 + 1048


def test_create_payment_invoice(backend, cli):
    token = ready_checkout(backend)
    result = ok(cli("--json", "create-payment", token, "--provider", "invoice"))
    assert result == status_of(backend, token)
    assert result["status"] == "completable"
    assert result["payment"]["provider"] == "invoice"


def test_set_payment_links_a_paid_payment(backend, cli):
    token = ready_checkout(backend)
    total = status_of(backend, token)["totals"]["total_cents"]
    result = ok(
        cli(
            "--json",
            "set-payment",
            token,
            "--provider",
            "bank",
            "--reference",
            "NL12-TRANSFER-7",
            "--status",
            "paid",
            "--amount-cents",
            str(total),
        )
    )
    assert result == status_of(backend, token)
    assert result["status"] == "completable"
    payment = result["payment"]
    assert (payment["provider"], payment["reference"], payment["status"]) == (
        "bank",
        "NL12-TRANSFER-7",
        "paid",
    )
    assert payment["amount_cents"] == total


@pytest.mark.parametrize("command", ["get-checkout-status", "status"])
def test_status_and_its_alias(backend, cli, command):
    token = ready_checkout(backend)
    assert ok(cli("--json", command, token)) == status_of(backend, token)
    # The flag may also come after the command.
    assert ok(cli(command, token, "--json")) == status_of(backend, token)
    table = cli(command, token)
    assert table.exit_code == 0, table.stderr
    assert table.stderr == ""
    for shown in (token, "LENS-DAILY-30", "Anna de Vries", "anna@example.com", "€ 65.33"):
        assert shown in table.stdout


def test_status_shows_an_expiry_only_while_the_checkout_can_expire(backend, cli):
    token = ready_checkout(backend)
    assert "expires" in cli("status", token).stdout
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    backend.call(FLOW, "complete-checkout", {"checkout_token": token})
    shown = cli("status", token)
    assert shown.exit_code == 0 and "completed" in shown.stdout
    assert "expires" not in shown.stdout


def test_complete_checkout_twice_gives_the_same_order(backend, cli):
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    first = ok(cli("--json", "complete-checkout", token))
    assert checkout_only(first) == status_of(backend, token)
    assert first["status"] == "completed"
    order = first["order"]
    assert (order["status"], order["payment_status"]) == ("pending", "unpaid")
    assert not first.get("already_completed")

    again = ok(cli("--json", "complete-checkout", token))
    assert again["already_completed"] is True
    assert again["order"] == order
    assert backend.call("product-catalog", "get-product", {"sku": "LENS-DAILY-30"})["stock"] == 98

    table = cli("complete-checkout", token)
    assert table.exit_code == 0
    assert order["order_number"] in table.stdout
    assert "already completed" in table.stderr


def test_cancel_checkout_with_yes(backend, cli):
    token = ready_checkout(backend)
    cart = status_of(backend, token)["cart_token"]
    result = ok(cli("--json", "cancel-checkout", token, "--yes", "--reason", "customer called"))
    assert result == status_of(backend, token)
    assert result["status"] == "cancelled"
    # The cart stays active, and a new checkout can start from it.
    assert ok(cli("--json", "cart", "show", cart))["status"] == "active"
    fresh = ok(cli("--json", "initiate-checkout", cart))
    assert fresh["checkout_token"] != token
    assert not fresh.get("reused")
    # -y is the short form.
    token2 = fresh["checkout_token"]
    assert ok(cli("--json", "cancel-checkout", token2, "-y"))["status"] == "cancelled"


# -- the documented refusals ----------------------------------------------------------------------


def test_initiate_checkout_refusals(backend, cli, db_path):
    cart = new_cart(backend)
    backend.call("shopping-cart", "clear-cart", {"cart_token": cart})
    before = dump(db_path)
    refused(
        cli,
        "initiate-checkout",
        "cart_unknown",
        exit_code=3,
        type="not_found",
        code="cart_not_found",
        field="cart_token",
    )
    refused(
        cli,
        "initiate-checkout",
        cart,
        exit_code=4,
        type="conflict",
        code="cart_empty",
        field="cart_token",
    )
    refused(
        cli,
        "initiate-checkout",
        exit_code=4,
        type="validation",
        code="missing_field",
        field="cart_token",
    )
    assert dump(db_path) == before


def test_set_customer_refusals(backend, cli, db_path):
    token = ready_checkout(backend)
    before = dump(db_path)
    for args, exit_code, type_, code, field in [
        (("chk_unknown", *CUSTOMER_FLAGS), 3, "not_found", "checkout_not_found", None),
        ((token, *CUSTOMER_FLAGS, "--email", "anna@"), 4, "validation", "invalid_email", None),
        ((token, *CUSTOMER_FLAGS, "--country", "XX"), 4, "validation", "invalid_country", None),
        ((token, *CUSTOMER_FLAGS, "--tax-cents", "-1"), 4, "validation", None, "tax_cents"),
    ]:
        refused(cli, "set-customer", *args, exit_code=exit_code, type=type_, code=code, field=field)
    assert dump(db_path) == before


def test_create_payment_refusals(backend, cli, db_path):
    token = ready_checkout(backend)
    before = dump(db_path)
    # A provider the flag does not offer is a usage error naming the ones it does.
    error = refused(cli, "create-payment", token, "--provider", "paypal", exit_code=2, type="usage")
    assert error["field"] == "provider"
    assert "'stripe', 'mollie', 'invoice'" in error["message"], error
    # In a body it is the request that refuses it.
    refused(
        cli,
        "create-payment",
        token,
        "--body",
        '{"provider": "paypal"}',
        exit_code=4,
        type="validation",
        field="provider",
    )
    # No key in the vault: says what to configure.
    error = refused(
        cli,
        "create-payment",
        token,
        "--provider",
        "stripe",
        exit_code=4,
        type="conflict",
        code="provider_not_configured",
    )
    assert "vault" in error["recovery"]
    refused(
        cli,
        "create-payment",
        "chk_unknown",
        "--provider",
        "invoice",
        exit_code=3,
        type="not_found",
        code="checkout_not_found",
    )
    assert dump(db_path) == before

    backend.call("checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": False})
    before = dump(db_path)
    error = refused(
        cli,
        "create-payment",
        token,
        "--provider",
        "invoice",
        exit_code=7,
        type="forbidden",
        code="invoice_checkout_not_allowed",
        field="provider",
    )
    assert "allow_invoice_checkout" in error["recovery"]
    assert dump(db_path) == before


def test_set_payment_refusals(backend, cli, db_path):
    token = ready_checkout(backend)
    before = dump(db_path)
    args = ("set-payment", token, "--provider", "bank", "--reference", "r-1")
    refused(
        cli,
        *args,
        "--status",
        "paid",
        "--amount-cents",
        "1",
        exit_code=4,
        type="conflict",
        code="amount_mismatch",
    )
    error = refused(cli, *args, "--status", "refunded", exit_code=2, type="usage")
    assert "'paid', 'pending'" in error["message"], error
    refused(
        cli,
        *args,
        "--body",
        '{"status": "refunded"}',
        exit_code=4,
        type="validation",
        field="status",
    )
    refused(
        cli,
        "set-payment",
        "chk_unknown",
        "--provider",
        "bank",
        "--reference",
        "r-1",
        "--status",
        "paid",
        exit_code=3,
        type="not_found",
        code="checkout_not_found",
    )
    assert dump(db_path) == before


def test_complete_checkout_refusals(backend, cli, db_path):
    token = ready_checkout(backend)
    before = dump(db_path)
    refused(cli, "complete-checkout", token, exit_code=4, type="conflict")  # no payment yet
    refused(
        cli,
        "complete-checkout",
        "chk_unknown",
        exit_code=3,
        type="not_found",
        code="checkout_not_found",
    )
    assert dump(db_path) == before

    # A pending payment is a payment error: exit 5.
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "r-1", "status": "pending"},
    )
    before = dump(db_path)
    refused(
        cli,
        "complete-checkout",
        token,
        exit_code=5,
        type="payment",
        code="payment_not_paid",
    )
    assert dump(db_path) == before


def test_cancel_checkout_refusals(backend, cli, db_path):
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    backend.call(FLOW, "complete-checkout", {"checkout_token": token})
    before = dump(db_path)
    refused(
        cli,
        "cancel-checkout",
        token,
        "--yes",
        exit_code=4,
        type="conflict",
        code="checkout_not_active",
    )
    refused(
        cli,
        "cancel-checkout",
        "chk_unknown",
        "--yes",
        exit_code=3,
        type="not_found",
        code="checkout_not_found",
    )
    assert dump(db_path) == before


def test_get_checkout_status_refusals(cli, backend, db_path):
    before = dump(db_path)
    for command in ("get-checkout-status", "status"):
        refused(
            cli,
            command,
            "chk_unknown",
            exit_code=3,
            type="not_found",
            code="checkout_not_found",
        )
        # The token argument is required.
        refused(cli, command, exit_code=2, type="usage")
    assert dump(db_path) == before


def test_parser_errors_are_one_line_usage_errors(backend, cli):
    token = ready_checkout(backend)
    error = refused(cli, "status", token, "--bogus", exit_code=2, type="usage")
    assert "--bogus" in error["message"]
    error = refused(cli, "no-such-command", exit_code=2, type="usage")
    assert "no-such-command" in error["message"]
    error = refused(cli, "--no-such-global", "status", token, exit_code=2, type="usage")
    assert "--no-such-global" in error["message"]
    error = refused(
        cli, "set-customer", token, "--shipping-cents", "lots", exit_code=2, type="usage"
    )
    assert error["field"] == "shipping_cents"
    assert "--shipping-cents" in error["message"]


# -- --body: merged under the flags, from a string, a file or stdin ------------------------------


def test_body_fields_are_used_and_flags_win(backend, cli):
    token = ready_checkout(backend)
    body = {
        "customer": {"email": "body@example.com", "name": "From Body", "phone": "+31 6 1"},
        "shipping_address": {
            "line1": "Damrak 1",
            "postal_code": "1012 LG",
            "city": "Amsterdam",
            "country": "NL",
        },
        "shipping_cents": 100,
        "tax_cents": 200,
    }
    result = ok(
        cli(
            "--json",
            "set-customer",
            token,
            "--body",
            json.dumps(body),
            "--name",
            "From Flag",
            "--city",
            "Utrecht",
            "--shipping-cents",
            "300",
        )
    )
    # Nested objects merge one level: the flag replaces its field, the body keeps the rest.
    assert result["customer"] == {
        "email": "body@example.com",
        "name": "From Flag",
        "phone": "+31 6 1",
        "company": None,
    }
    assert result["shipping_address"]["line1"] == "Damrak 1"
    assert result["shipping_address"]["city"] == "Utrecht"
    assert result["totals"]["shipping_cents"] == 300
    assert result["totals"]["tax_cents"] == 200
    assert result == status_of(backend, token)


def test_the_token_argument_wins_over_the_body(backend, cli):
    token = ready_checkout(backend)
    body = json.dumps({"checkout_token": "chk_other"})
    assert ok(cli("--json", "status", token, "--body", body))["checkout_token"] == token


def test_body_from_a_file(backend, cli, tmp_path):
    token = ready_checkout(backend)
    path = tmp_path / "payment.json"
    path.write_text(json.dumps({"provider": "bank", "reference": "FILE-1", "status": "paid"}))
    result = ok(cli("--json", "set-payment", token, "--body", f"@{path}"))
    assert result["payment"]["reference"] == "FILE-1"
    assert result["payment"]["provider"] == "bank"
    assert result == status_of(backend, token)


def test_body_from_stdin(backend, cli):
    token = ready_checkout(backend)
    body = json.dumps({"provider": "bank", "reference": "STDIN-1", "status": "paid"})
    result = ok(cli("--json", "set-payment", token, "--body", "@-", input=body))
    assert result["payment"]["reference"] == "STDIN-1"
    # A flag still wins over what came from stdin.
    token2 = ready_checkout(backend, [("GIFT-CARD-25", 1)])
    result = ok(
        cli("--json", "set-payment", token2, "--reference", "FLAG-2", "--body", "@-", input=body)
    )
    assert result["payment"]["reference"] == "FLAG-2"


def test_set_customer_entirely_from_body(backend, cli):
    token = ready_checkout(backend)
    result = ok(cli("--json", "set-customer", token, "--body", json.dumps(CUSTOMER)))
    assert result["customer"]["email"] == CUSTOMER["customer"]["email"]
    assert result["shipping_address"]["country"] == "NL"


def test_create_payment_provider_from_body(backend, cli):
    token = ready_checkout(backend)
    result = ok(cli("--json", "create-payment", token, "--body", '{"provider": "invoice"}'))
    assert result["payment"]["provider"] == "invoice"


# -- data prints as typed -------------------------------------------------------------------------


def test_markup_in_data_prints_literally(backend, cli):
    token = ready_checkout(backend)
    backend.call(
        FLOW,
        "set-customer",
        {
            "checkout_token": token,
            **CUSTOMER,
            "customer": {"email": "x@example.com", "name": "[red]x", "company": "[bold]Co[/bold]"},
            "shipping_address": {**CUSTOMER["shipping_address"], "line1": "[link=x]Street 1"},
        },
    )
    table = cli("status", token)
    assert table.exit_code == 0, table.stderr
    assert "[red]x" in table.stdout
    assert "[bold]Co[/bold]" in table.stdout
    assert "[link=x]Street 1" in table.stdout
    assert "\x1b[" not in table.stdout  # no colour off a terminal
