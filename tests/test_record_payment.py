"""record-payment: money received for an order outside a provider, once per reference."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.errors import ConflictError, ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import (
    ORDERS,
    assert_invariants,
    complete,
    invoice,
    query,
    refused,
    scalar,
    setting,
)

RECORD = "record-payment"


def invoice_order(backend: Any) -> dict[str, Any]:
    token = ready_checkout(backend)
    invoice(backend, token)
    order = complete(backend, token)["order"]
    return backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})


def pay(backend: Any, order: str, amount: int, reference: str, **extra: Any) -> dict[str, Any]:
    body = {
        "order_id": order,
        "amount_cents": amount,
        "method": "bank_transfer",
        "reference": reference,
        **extra,
    }
    return backend.call(ORDERS, RECORD, body)


def emails(db: Path, order_number: str) -> list[str]:
    return [
        r[0]
        for r in query(
            db,
            "SELECT x.kind FROM outbox x JOIN orders o ON o.id = x.order_id "
            "WHERE o.order_number = ? AND x.kind LIKE 'payment_received:%' ORDER BY x.id",
            (order_number,),
        )
    ]


def test_part_payments_add_up_to_paid(backend):
    order = invoice_order(backend)
    number, total = order["order_number"], order["totals"]["total_cents"]
    assert (order["payment_status"], order["balance_due_cents"]) == ("unpaid", total)
    first = pay(backend, number, 1000, "BANK-1", paid_on="2026-01-15", note="first half")
    assert first["already_recorded"] is False
    assert first["payment"]["amount_cents"] == 1000
    assert first["payment"]["paid_on"] == "2026-01-15"
    assert first["payment"]["forced"] is False
    assert first["order"]["payment_status"] == "partially_paid"
    assert first["order"]["status"] == "pending"
    assert first["order"]["balance_due_cents"] == total - 1000
    second = pay(backend, number, total - 1000, "BANK-2")
    assert second["order"]["payment_status"] == "paid"
    assert second["order"]["status"] == "paid"
    assert second["order"]["balance_due_cents"] == 0
    assert second["order"]["amount_paid_cents"] == total
    assert [p["reference"] for p in second["order"]["payments"]] == ["BANK-1", "BANK-2"]
    kinds = [e["kind"] for e in second["order"]["timeline"]]
    assert kinds.count("order_payment_recorded") == 2
    assert "order_payment_status_changed" in kinds
    assert_invariants(backend.db_path)


def test_more_than_the_balance_is_refused_unless_forced(backend):
    order = invoice_order(backend)
    number, total = order["order_number"], order["totals"]["total_cents"]
    error = refused(
        backend,
        ORDERS,
        RECORD,
        _body(number, total + 1, "BANK-X"),
        ConflictError,
        "payment_exceeds_balance",
        "amount_cents",
    )
    assert "--force" in (error.recovery or "")
    forced = pay(backend, number, total + 500, "BANK-X", force=True)
    assert forced["payment"]["forced"] is True
    assert forced["order"]["payment_status"] == "paid"
    assert forced["order"]["amount_paid_cents"] == total + 500
    # Paid in full: any more is more than the balance.
    refused(
        backend,
        ORDERS,
        RECORD,
        _body(number, 1, "BANK-Y"),
        ConflictError,
        "payment_exceeds_balance",
    )
    # --force within the balance records a plain payment.
    other = invoice_order(backend)
    plain = pay(backend, other["order_number"], 100, "BANK-Z", force=True)
    assert plain["payment"]["forced"] is False
    assert_invariants(backend.db_path)


def _body(order: str, amount: int, reference: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order,
        "amount_cents": amount,
        "method": "bank_transfer",
        "reference": reference,
        **extra,
    }


def test_same_reference_again_answers_the_recorded_payment(backend):
    order = invoice_order(backend)
    number = order["order_number"]
    first = pay(backend, number, 700, "NL-TX-42")
    again = pay(backend, order["order_id"], 700, "NL-TX-42", method="cash")
    assert again["already_recorded"] is True
    assert again["payment"]["payment_id"] == first["payment"]["payment_id"]
    assert again["order"]["amount_paid_cents"] == 700
    assert (
        scalar(
            backend.db_path,
            "SELECT COUNT(*) FROM order_payments WHERE reference = ?",
            ("NL-TX-42",),
        )
        == 1
    )
    # Another amount, or another order, with the same reference: a conflict, nothing written.
    refused(
        backend,
        ORDERS,
        RECORD,
        _body(number, 701, "NL-TX-42"),
        ConflictError,
        "reference_conflict",
        "reference",
    )
    other = invoice_order(backend)
    error = refused(
        backend,
        ORDERS,
        RECORD,
        _body(other["order_number"], 700, "NL-TX-42"),
        ConflictError,
        "reference_conflict",
        "reference",
    )
    assert number in error.message


def test_the_payment_received_email_is_queued_once(backend):
    order = invoice_order(backend)
    number = order["order_number"]
    first = pay(backend, number, 700, "MAIL-1")
    pay(backend, number, 700, "MAIL-1")
    assert emails(backend.db_path, number) == [
        f"payment_received:{first['payment']['payment_id'].removeprefix('opay_')}"
    ]
    pay(backend, number, 300, "MAIL-2")
    assert len(emails(backend.db_path, number)) == 2
    body = scalar(
        backend.db_path,
        "SELECT body_text FROM outbox WHERE kind = ?",
        (emails(backend.db_path, number)[0],),
    )
    assert number in body and "7.00" in body


def test_the_payment_received_email_can_be_switched_off(backend):
    setting(backend, "email_payment_received", False)
    order = invoice_order(backend)
    pay(backend, order["order_number"], 700, "QUIET-1")
    assert emails(backend.db_path, order["order_number"]) == []


def test_another_currency_is_refused(backend):
    order = invoice_order(backend)
    refused(
        backend,
        ORDERS,
        RECORD,
        _body(order["order_number"], 100, "USD-1", currency="USD"),
        ConflictError,
        "currency_mismatch",
        "currency",
    )
    same = pay(backend, order["order_number"], 100, "EUR-1", currency="EUR")
    assert same["payment"]["currency"] == "EUR"


def test_a_cancelled_order_is_refused(backend):
    order = invoice_order(backend)
    # Cancelling is another endpoint's; the store's columns are what record-payment reads.
    conn = backend.engine.conn
    with backend.engine.write():
        conn.execute(
            "UPDATE orders SET cancelled_at = ?, status = 'cancelled' WHERE order_number = ?",
            ("2026-12-01T00:00:00Z", order["order_number"]),
        )
    refused(
        backend,
        ORDERS,
        RECORD,
        _body(order["order_number"], 100, "C-1"),
        ConflictError,
        "order_cancelled",
        "order_id",
    )


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"amount_cents": 0}, "invalid_amount", "amount_cents"),
        ({"amount_cents": -5}, "invalid_amount", "amount_cents"),
        ({"amount_cents": "12.50"}, "invalid_type", "amount_cents"),
        ({"method": "wire"}, "invalid_method", "method"),
        ({"reference": ""}, "missing_field", "reference"),
        ({"reference": "has space"}, "invalid_reference", "reference"),
        ({"paid_on": "03-12-2026"}, "invalid_date", "paid_on"),
        ({"paid_on": "2026-02-30"}, "invalid_date", "paid_on"),
        ({"currency": "XXQ"}, None, "currency"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(backend, change, code, field):
    order = invoice_order(backend)
    body = {**_body(order["order_number"], 100, "BAD-1"), **change}
    error = refused(
        backend, ORDERS, RECORD, body, ValidationError, code or _code(backend, body), field
    )
    assert error.exit_code == 4


def _code(backend: Any, body: dict[str, Any]) -> str:
    from checkout_cli.errors import CheckoutError

    try:
        backend.call(ORDERS, RECORD, body)
    except CheckoutError as exc:
        return exc.code
    raise AssertionError("accepted")


def test_a_day_in_the_future_is_refused(backend):
    order = invoice_order(backend)
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    error = refused(
        backend,
        ORDERS,
        RECORD,
        _body(order["order_number"], 100, "F-1", paid_on=tomorrow),
        ValidationError,
        "invalid_date",
        "paid_on",
    )
    assert "future" in error.message


def test_an_unknown_order_is_not_found(backend):
    from checkout_cli.errors import NotFoundError

    refused(
        backend,
        ORDERS,
        RECORD,
        _body("2026-999999", 100, "N-1"),
        NotFoundError,
        "order_not_found",
        "order_id",
    )


def test_list_orders_finds_the_order_a_reference_was_recorded_for(backend):
    order = invoice_order(backend)
    invoice_order(backend)
    pay(backend, order["order_number"], 100, "FIND-ME")
    found = backend.call(ORDERS, "list-orders", {"payment_reference": "FIND-ME"})["orders"]
    assert [o["order_number"] for o in found] == [order["order_number"]]
    assert backend.call(ORDERS, "list-orders", {"payment_reference": "NOPE"})["orders"] == []


def test_orders_list_payment_reference_flag(backend, cli):
    order = invoice_order(backend)
    invoice_order(backend)
    pay(backend, order["order_number"], 100, "NL-TX-77")
    run = cli("orders", "list", "--payment-reference", "NL-TX-77", "--quiet")
    assert run.exit_code == 0, run.stderr
    assert run.stdout.split() == [order["order_number"]]


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_records_and_says_so(cli, backend):
    order = invoice_order(backend)
    number = order["order_number"]
    args = (
        "orders",
        "record-payment",
        number,
        "--amount-cents",
        "1000",
        "--method",
        "bank_transfer",
        "--reference",
        "CLI-1",
        "--paid-on",
        "2026-11-30",
    )
    shown = cli(*args)
    assert shown.exit_code == 0, shown.stderr
    assert (
        "recorded" in shown.stdout and number in shown.stdout and "partially_paid" in shown.stdout
    )
    again = cli("--json", *args)
    assert again.exit_code == 0
    assert again.json()["already_recorded"] is True


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [
        (("--amount-cents", "99999999", "--method", "bank_transfer", "--reference", "X-1"), 4),
        (("--amount-cents", "100", "--method", "wire", "--reference", "X-1"), 2),
        (("--amount-cents", "ten", "--method", "cash", "--reference", "X-1"), 2),
        (
            (
                "--amount-cents",
                "100",
                "--method",
                "cash",
                "--reference",
                "X-1",
                "--paid-on",
                "tomorrow",
            ),
            4,
        ),
        (
            (
                "--amount-cents",
                "100",
                "--method",
                "cash",
                "--reference",
                "X-1",
                "--currency",
                "USD",
            ),
            4,
        ),
    ],
)
def test_cli_bad_input_exit_codes_write_nothing(cli, backend, args, exit_code):
    from tests.conftest import dump

    order = invoice_order(backend)
    before = dump(backend.db_path)
    result = cli("orders", "record-payment", order["order_number"], *args)
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert dump(backend.db_path) == before
