"""Hostile and careless after-order requests: money a provider cannot take, a payer's text in a
report, a bank id that repeats, a refused cancel or pay-link that must change nothing."""

from __future__ import annotations

import csv

import pytest

from checkout_cli.errors import PaymentError, ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import ADMIN, CATALOG, FLOW, ORDERS, assert_invariants, complete, refused


def kwd_stripe_order(backend, stripe_fake) -> dict:
    backend.call(ADMIN, "set-setting", {"key": "currency", "value": "KWD"})
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "KW-1", "name": "Lens", "price_cents": 1000, "currency": "KWD", "stock": 9},
    )
    backend.call(ADMIN, "set-setting", {"key": "default_shipping_cents", "value": 0})
    backend.call(ADMIN, "set-setting", {"key": "tax_rates", "value": {}})
    token = ready_checkout(backend, [("KW-1", 2)])
    co = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "stripe"})
    stripe_fake.mark_paid(co["payment"]["provider_payment_id"])
    return complete(backend, token)["order"]


def test_a_refund_off_stripes_steps_is_refused_before_anything_is_written(backend, stripe_fake):
    order = kwd_stripe_order(backend, stripe_fake)
    # No refund left `creating`, holding the money, retried by reconcile for ever.
    refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"], "amount_cents": 1005},
        ValidationError,
        "amount_not_supported",
    )
    done = backend.call(
        ORDERS, "refund-order", {"order_id": order["order_number"], "amount_cents": 1010}
    )
    assert done["amount_cents"] == 1010
    assert done["order"]["amount_refunded_cents"] == 1010
    assert_invariants(backend.db_path)


def test_a_payers_name_is_no_formula_in_the_csv_report(cli, backend, tmp_path):
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    order = backend.call(
        ORDERS, "get-order", {"order_id": complete(backend, token)["order"]["order_number"]}
    )
    whole, part = divmod(order["balance_due_cents"], 100)
    file = tmp_path / "st.csv"
    file.write_text(
        "date;amount;currency;counterparty;description;bank_id\n"
        f'2026-12-01;{whole},{part:02d};EUR;"=HYPERLINK(""http://x.example"",""pay"")";'
        f"Order {order['order_number']};TX-1\n"
        '2026-12-01;5,00;EUR;@SUM(A1);"-2+3";TX-2\n',
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"
    run = cli("--json", "batch", "payments", str(file), "--report", str(report))
    assert run.exit_code == 0, run.stderr
    with report.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["counterparty"] == '\'=HYPERLINK("http://x.example","pay")'
    assert rows[1]["counterparty"] == "'@SUM(A1)"
    assert rows[0]["outcome"] == "matched" and rows[0]["amount_cents"] == str(
        order["balance_due_cents"]
    )


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_bank_id_again_with_other_money_is_refused_not_taken_as_recorded(
    cli, backend, tmp_path, dry_run
):
    """A bank_id column that is no transaction id (a name, a date) repeats: each repeat with
    another amount is a payment of its own, never silently counted as recorded earlier."""
    numbers = []
    for _ in range(2):
        token = ready_checkout(backend)
        backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
        numbers.append(complete(backend, token)["order"]["order_number"])
    first, second = numbers
    file = tmp_path / "st.csv"
    file.write_text(
        "date;amount;currency;counterparty;description;bank_id\n"
        f"2026-12-01;10,00;EUR;Anna;Order {first};Anna\n"
        f"2026-12-01;7,00;EUR;Anna;Order {second};Anna\n",
        encoding="utf-8",
    )
    args = ["--dry-run"] if dry_run else []
    run = cli("--json", "batch", "payments", str(file), *args)
    assert run.exit_code == 4, (run.stdout, run.stderr)
    counts = run.json()["counts"]
    assert (counts["failed"], counts["already_recorded"]) == (1, 0)
    paid = backend.call(ORDERS, "get-order", {"order_id": second})["amount_paid_cents"]
    assert paid == 0
    if not dry_run:  # the statement again: the first line is recorded, the second refused
        again = cli("--json", "batch", "payments", str(file))
        assert again.exit_code == 4
        assert again.json()["counts"]["already_recorded"] == 1
        assert again.json()["counts"]["failed"] == 1
    assert_invariants(backend.db_path)


def test_a_negative_refund_amount_names_the_least_there_is(cli, backend):
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    number = complete(backend, token)["order"]["order_number"]
    run = cli("orders", "refund", number, "--amount-cents", "-5", "--yes")
    assert run.exit_code == 4
    assert run.stderr.strip() == "error: amount_cents: must be at least 1, got -5"


def test_a_link_the_other_provider_cannot_make_leaves_the_open_one_open(
    backend, stripe_fake, mollie_fake
):
    """Mollie takes no KWD: asking it for a link is refused before the customer's open Stripe
    link is closed to make room for it."""
    backend.call(ADMIN, "set-setting", {"key": "currency", "value": "KWD"})
    backend.call(
        CATALOG,
        "upsert-product",
        {"sku": "KW-1", "name": "Lens", "price_cents": 1000, "currency": "KWD", "stock": 9},
    )
    backend.call(ADMIN, "set-setting", {"key": "default_shipping_cents", "value": 0})
    token = ready_checkout(backend, [("KW-1", 1)])
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    number = complete(backend, token)["order"]["order_number"]
    link = backend.call(ORDERS, "create-payment-link", {"order_id": number, "provider": "stripe"})
    exc = refused(
        backend,
        ORDERS,
        "create-payment-link",
        {"order_id": number, "provider": "mollie"},
        ValidationError,
        "currency_not_supported",
    )
    assert exc.recovery is not None and "--provider invoice" not in exc.recovery
    assert f"checkout orders pay-link {number} --provider stripe" in exc.recovery
    again = backend.call(ORDERS, "create-payment-link", {"order_id": number, "provider": "stripe"})
    assert again["provider_payment_id"] == link["provider_payment_id"]
    assert again["status"] == "open"
    assert_invariants(backend.db_path)


def test_a_part_paid_order_refused_a_cancel_keeps_its_open_payment_link(backend, stripe_fake):
    """Cancelling a part-paid order without refund is refused; the link the customer was sent
    for the balance is not closed on the way."""
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    number = complete(backend, token)["order"]["order_number"]
    backend.call(
        ORDERS,
        "record-payment",
        {"order_id": number, "amount_cents": 100, "method": "cash", "reference": "TILL-1"},
    )
    link = backend.call(ORDERS, "create-payment-link", {"order_id": number, "provider": "stripe"})
    refused(
        backend,
        ORDERS,
        "cancel-order",
        {"order_id": number},
        PaymentError,
        "payment_already_paid",
    )
    again = backend.call(ORDERS, "create-payment-link", {"order_id": number, "provider": "stripe"})
    assert (again["provider_payment_id"], again["status"]) == (link["provider_payment_id"], "open")
    assert_invariants(backend.db_path)
