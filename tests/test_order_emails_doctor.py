"""Every email of an order's life is named by the event that queued it: doctor reports one
missing from the outbox (invariant 11), and a switched-off email is expected of nobody."""

from __future__ import annotations

import pytest

from checkout_cli.engine.invariants import check_invariants
from tests.conftest import ready_checkout
from tests.engine_helpers import ORDERS, complete, invoice, setting
from tests.store_rows import query


def _order_with_its_life(backend) -> str:
    token = ready_checkout(backend)
    invoice(backend, token)
    number = complete(backend, token)["order"]["order_number"]
    total = backend.call(ORDERS, "get-order", {"order_id": number})["balance_due_cents"]
    backend.call(
        ORDERS,
        "record-payment",
        {"order_id": number, "amount_cents": total, "method": "bank_transfer", "reference": "B-1"},
    )
    backend.call(ORDERS, "refund-order", {"order_id": number, "amount_cents": 100})
    return number


def _emails_named(db_path) -> dict[str, str]:
    return dict(
        query(
            db_path,
            "SELECT kind, json_extract(detail, '$.email') FROM events "
            "WHERE json_extract(detail, '$.email') IS NOT NULL ORDER BY id",
        )
    )


def test_each_event_names_its_email_and_doctor_finds_one_missing(backend):
    number = _order_with_its_life(backend)
    named = _emails_named(backend.db_path)
    assert set(named) == {"order_payment_recorded", "order_refund_emailed"}
    conn = backend.engine.conn
    assert check_invariants(conn) == []
    for kind in named.values():
        query(backend.db_path, "DELETE FROM outbox WHERE kind = ?", (kind,))
    found = [v for v in check_invariants(conn) if v.invariant == 11]
    assert sorted(v.records["email"] for v in found) == sorted(named.values())
    assert all(number in v.message for v in found)


def test_a_cancellation_names_its_email(backend):
    token = ready_checkout(backend)
    invoice(backend, token)
    number = complete(backend, token)["order"]["order_number"]
    backend.call(ORDERS, "cancel-order", {"order_id": number})
    assert "order_cancelled" in _emails_named(backend.db_path)
    assert check_invariants(backend.engine.conn) == []


def test_switched_off_emails_are_expected_of_nobody(backend):
    for key in ("email_payment_received", "email_refund", "email_cancellation"):
        setting(backend, key, False)
    _order_with_its_life(backend)
    assert _emails_named(backend.db_path) == {}
    assert check_invariants(backend.engine.conn) == []


def _outbox_kinds(db_path, number: str) -> list[str]:
    return [
        kind.split(":")[0]
        for (kind,) in query(
            db_path,
            "SELECT x.kind FROM outbox x JOIN orders o ON o.id = x.order_id "
            "WHERE o.order_number = ? ORDER BY x.id",
            (number,),
        )
    ]


def _paid_refunded_cancelled(backend) -> str:
    """An invoice order paid by bank transfer, part-refunded, then cancelled with the rest."""
    number = _order_with_its_life(backend)
    backend.call(ORDERS, "cancel-order", {"order_id": number, "refund": True})
    return number


ORDER_LIFE = ["order_confirmation", "payment_received", "refund", "refund", "cancellation"]


def test_every_email_of_an_order_s_life_is_queued_once(backend):
    number = _paid_refunded_cancelled(backend)
    # One per event: the payment, each of the two refunds (by amount, then the rest on
    # cancelling) and the cancellation.
    assert _outbox_kinds(backend.db_path, number) == ORDER_LIFE
    assert check_invariants(backend.engine.conn) == []


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("email_payment_received", "payment_received"),
        ("email_refund", "refund"),
        ("email_cancellation", "cancellation"),
    ],
)
def test_each_email_is_switched_off_alone(backend, key, kind):
    setting(backend, key, False)
    number = _paid_refunded_cancelled(backend)
    # Only that email is not queued; the others are, once each.
    assert _outbox_kinds(backend.db_path, number) == [k for k in ORDER_LIFE if k != kind]
    assert check_invariants(backend.engine.conn) == []
