"""refund-order and cancel-order on a real store, Stripe and Mollie through their real SDKs
against the fake providers on 127.0.0.1; invariants (doctor) checked after each story."""

from __future__ import annotations

import sqlite3

import pytest

from checkout_cli.engine import order_payments
from checkout_cli.engine.invariants import check_invariants
from checkout_cli.errors import ConflictError, PaymentError, ValidationError
from tests.conftest import ready_checkout
from tests.engine_helpers import (
    ADMIN,
    FLOW,
    ORDERS,
    assert_invariants,
    complete,
    invoice,
    query,
    refused,
    scalar,
    stock,
)

ITEMS = [("LENS-DAILY-30", 3), ("CASE-TRAVEL", 1)]


@pytest.fixture(params=["stripe", "mollie"])
def provider(request, backend):
    return request.param, request.getfixturevalue(f"{request.param}_fake")


def provider_order(backend, name: str, fake) -> dict:
    token = ready_checkout(backend, ITEMS)
    co = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": name})
    fake.mark_paid(co["payment"]["provider_payment_id"])
    return shown(backend, complete(backend, token)["order"])


def bank_order(backend) -> dict:
    """Paid outside any provider: a bank transfer linked by hand."""
    token = ready_checkout(backend, ITEMS)
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-TX-1", "status": "paid"},
    )
    return shown(backend, complete(backend, token)["order"])


def shown(backend, order: dict) -> dict:
    return backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})


def invoice_order(backend, paid_cents: int | None = None) -> dict:
    """An invoice order; ``paid_cents`` received by bank transfer (record-payment)."""
    token = ready_checkout(backend, ITEMS)
    invoice(backend, token)
    order = complete(backend, token)["order"]
    if paid_cents:
        backend.call(
            ORDERS,
            "record-payment",
            {
                "order_id": order["order_number"],
                "amount_cents": paid_cents,
                "method": "bank_transfer",
                "reference": "TX-77",
            },
        )
    return backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})


def refund(backend, order: dict, **body) -> dict:
    return backend.call(ORDERS, "refund-order", {"order_id": order["order_number"], **body})


def cancel(backend, order: dict, **body) -> dict:
    return backend.call(ORDERS, "cancel-order", {"order_id": order["order_number"], **body})


def refunded_at(name: str, fake) -> list[int]:
    if name == "stripe":
        return [r["amount"] for r in fake.refunds.values()]
    return [round(float(r["amount"]["value"]) * 100) for r in fake.refunds.values()]


def emails(backend, order: dict) -> list[str]:
    return [
        row[0]
        for row in query(
            backend.db_path,
            "SELECT b.kind FROM outbox b JOIN orders o ON o.id = b.order_id "
            "WHERE o.order_id = ? ORDER BY b.id",
            (order["order_id"],),
        )
    ]


def line_share(line: dict, units: int) -> int:
    gross = line["line_total_cents"] + line["tax_cents"]
    return (2 * gross * units + line["quantity"]) // (2 * line["quantity"])


# ---- provider orders ---------------------------------------------------------------------------


def test_partial_then_line_then_full_refund_through_the_provider(provider, backend):
    name, fake = provider
    order = provider_order(backend, name, fake)
    total = order["totals"]["total_cents"]
    first = refund(backend, order, amount_cents=500, reason="late")
    assert first["amount_cents"] == 500 and first["resumed"] is False
    [made] = first["refunds"]
    assert (made["kind"], made["provider"], made["amount_cents"]) == ("provider", name, 500)
    assert made["status"] in ("pending", "succeeded")
    lens = order["items"][0]
    second = refund(backend, order, lines=[{"product_sku": "LENS-DAILY-30", "quantity": 1}])
    assert second["amount_cents"] == line_share(lens, 1)
    assert second["refunds"][0]["lines"] == [{"line_id": 1, "quantity": 1}]
    rest = refund(backend, order)
    assert rest["amount_cents"] == total - 500 - line_share(lens, 1)
    assert sorted(refunded_at(name, fake)) == sorted(
        [500, line_share(lens, 1), rest["amount_cents"]]
    )
    # The provider's own record: each call carried its refund's idempotency key.
    keys = [r[0] for r in query(backend.db_path, "SELECT idempotency_key FROM refunds ORDER BY id")]
    assert len(set(keys)) == 3
    if name == "mollie":  # Mollie refunds settle later: reconcile brings them in
        for refund_id in list(fake.refunds):
            fake.settle_refund(refund_id)
        backend.call(ADMIN, "reconcile", {})
    shown = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    assert shown["amount_refunded_cents"] == total
    assert shown["payment_status"] == "refunded"
    assert emails(backend, order).count("order_confirmation") == 1
    assert len([k for k in emails(backend, order) if k.startswith("refund:")]) == 3
    refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"]},
        ConflictError,
        "refund_exceeds_paid",
    )
    assert_invariants(backend.db_path)


def test_more_than_paid_is_refused_with_nothing_written(provider, backend):
    name, fake = provider
    order = provider_order(backend, name, fake)
    total = order["totals"]["total_cents"]
    error = refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"], "amount_cents": total + 1},
        ConflictError,
        "refund_exceeds_paid",
        "amount_cents",
    )
    assert f"--amount-cents {total}" in (error.recovery or "")
    refund(backend, order, amount_cents=total - 100)
    refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"], "amount_cents": 101},
        ConflictError,
        "refund_exceeds_paid",
    )
    assert refunded_at(name, fake) == [total - 100]
    assert_invariants(backend.db_path)


def test_a_refused_refund_is_recorded_failed_and_said_so(backend, stripe_fake):
    order = provider_order(backend, "stripe", stripe_fake)
    stripe_fake.fail_next(
        402,
        body={"error": {"type": "invalid_request_error", "message": "Charge has been disputed."}},
    )
    with pytest.raises(PaymentError) as caught:
        refund(backend, order, amount_cents=300)
    assert caught.value.code == "refund_failed" and caught.value.exit_code == 5
    assert scalar(backend.db_path, "SELECT status FROM refunds") == "failed"
    shown = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    assert shown["refunds"][0]["status"] == "failed" and shown["amount_refunded_cents"] == 0
    assert not [k for k in emails(backend, order) if k.startswith("refund:")]
    # What it held is free again: the whole amount can still be refunded.
    assert refund(backend, order)["amount_cents"] == order["totals"]["total_cents"]
    assert_invariants(backend.db_path)


def test_a_pending_refund_that_fails_later_frees_its_amount(backend, stripe_fake):
    stripe_fake.refund_status = "pending"
    order = provider_order(backend, "stripe", stripe_fake)
    made = refund(backend, order, amount_cents=700)["refunds"][0]
    assert made["status"] == "pending"
    [refund_id] = list(stripe_fake.refunds)
    stripe_fake.set_refund_status(refund_id, "failed")
    backend.call(ADMIN, "reconcile", {})
    shown = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    assert shown["refunds"][0]["status"] == "failed"
    assert shown["payment_status"] == "paid"
    assert_invariants(backend.db_path)


def test_restock_puts_the_refunded_units_back_once(provider, backend):
    name, fake = provider
    before = stock(backend, "LENS-DAILY-30")
    order = provider_order(backend, name, fake)
    assert stock(backend, "LENS-DAILY-30") == before - 3
    refund(backend, order, lines=[{"product_sku": "LENS-DAILY-30", "quantity": 2}], restock=True)
    assert stock(backend, "LENS-DAILY-30") == before - 1
    backend.call(ADMIN, "reconcile", {})  # a result landing again restocks nothing more
    assert stock(backend, "LENS-DAILY-30") == before - 1
    refused(
        backend,
        ORDERS,
        "refund-order",
        {
            "order_id": order["order_number"],
            "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 2}],
        },
        ConflictError,
        "refund_exceeds_ordered",
        "lines",
    )
    assert_invariants(backend.db_path)


def test_a_refund_over_a_provider_payment_and_a_bank_transfer_is_spread(backend, stripe_fake):
    order = provider_order(backend, "stripe", stripe_fake)
    total = order["totals"]["total_cents"]
    engine = backend.engine
    with engine.write() as conn:  # the customer paid 1000 more by bank transfer (forced)
        row = conn.execute(
            "SELECT * FROM orders WHERE order_id = ?", (order["order_id"],)
        ).fetchone()
        order_payments.add_payment(
            engine, conn, row, order_payments.Received("bank_transfer", 1000, "EUR", reference="X1")
        )
    done = refund(backend, order)
    assert done["amount_cents"] == total + 1000
    kinds = [(r["kind"], r["amount_cents"]) for r in done["refunds"]]
    assert kinds == [("provider", total), ("credit", 1000)]
    assert refunded_at("stripe", stripe_fake) == [total]
    assert_invariants(backend.db_path)


# ---- money paid outside a provider -------------------------------------------------------------


def test_a_bank_paid_order_is_refunded_as_a_credit_without_calling_anyone(backend, stripe_fake):
    order = bank_order(backend)
    requests_before = len(stripe_fake.requests)
    done = refund(
        backend, order, lines=[{"product_sku": "CASE-TRAVEL", "quantity": 1}], reason="broken"
    )
    [credit] = done["refunds"]
    assert (credit["kind"], credit["status"], credit["provider"]) == ("credit", "succeeded", "bank")
    assert credit["amount_cents"] == line_share(order["items"][1], 1)
    assert done["order"]["payment_status"] == "partially_refunded"
    assert len(stripe_fake.requests) == requests_before
    assert scalar(backend.db_path, "SELECT payment_id FROM refunds") is None
    assert_invariants(backend.db_path)


def test_an_invoice_order_part_paid_is_refunded_up_to_what_was_received(backend):
    order = invoice_order(backend, paid_cents=2000)
    refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"], "amount_cents": 2001},
        ConflictError,
        "refund_exceeds_paid",
    )
    done = refund(backend, order)
    assert done["amount_cents"] == 2000 and done["refunds"][0]["provider"] == "bank_transfer"
    assert done["order"]["amount_refunded_cents"] == 2000
    assert_invariants(backend.db_path)


def test_bad_refund_requests_are_refused_with_nothing_written(backend):
    order = bank_order(backend)
    number = order["order_number"]
    cases = [
        (
            {"amount_cents": 100, "lines": [{"product_sku": "CASE-TRAVEL", "quantity": 1}]},
            ValidationError,
            "amount_or_lines",
        ),
        ({"amount_cents": 0}, ValidationError, "invalid_amount"),
        ({"lines": []}, ValidationError, "invalid_lines"),
        ({"amount_cents": 100, "restock": True}, ValidationError, "restock_needs_lines"),
        (
            {"lines": [{"product_sku": "LENS-MONTH-6", "quantity": 1}]},
            ValidationError,
            "line_not_found",
        ),
        (
            {"lines": [{"product_sku": "CASE-TRAVEL", "quantity": 2}]},
            ConflictError,
            "refund_exceeds_ordered",
        ),
    ]
    for extra, cls, code in cases:
        refused(backend, ORDERS, "refund-order", {"order_id": number, **extra}, cls, code)


def test_an_unpaid_invoice_order_has_nothing_to_refund(backend):
    order = invoice_order(backend)
    refused(
        backend,
        ORDERS,
        "refund-order",
        {"order_id": order["order_number"]},
        ConflictError,
        "refund_exceeds_paid",
    )


# ---- cancel-order ------------------------------------------------------------------------------


def test_cancel_an_unpaid_order_gives_its_stock_back_and_emails_once(backend):
    before = (stock(backend, "LENS-DAILY-30"), stock(backend, "CASE-TRAVEL"))
    order = invoice_order(backend)
    done = cancel(backend, order, reason="customer changed their mind")
    assert done["already_cancelled"] is False
    assert done["restocked"] == [
        {"product_sku": "LENS-DAILY-30", "quantity": 3},
        {"product_sku": "CASE-TRAVEL", "quantity": 1},
    ]
    shown = done["order"]
    assert (shown["status"], shown["cancel_reason"], shown["balance_due_cents"]) == (
        "cancelled",
        "customer changed their mind",
        0,
    )
    assert shown["cancelled_at"]
    assert (stock(backend, "LENS-DAILY-30"), stock(backend, "CASE-TRAVEL")) == before
    again = cancel(backend, order)
    assert again["already_cancelled"] is True and again["restocked"] == []
    assert (stock(backend, "LENS-DAILY-30"), stock(backend, "CASE-TRAVEL")) == before
    assert emails(backend, order).count(f"cancellation:{order['order_id']}") == 1
    assert_invariants(backend.db_path)


def test_cancel_without_restock_leaves_the_stock(backend):
    order = invoice_order(backend)
    after_order = stock(backend, "LENS-DAILY-30")
    assert cancel(backend, order, no_restock=True)["restocked"] == []
    assert stock(backend, "LENS-DAILY-30") == after_order
    assert_invariants(backend.db_path)


def test_a_paid_order_is_cancelled_only_with_refund(provider, backend):
    name, fake = provider
    order = provider_order(backend, name, fake)
    error = refused(
        backend,
        ORDERS,
        "cancel-order",
        {"order_id": order["order_number"]},
        PaymentError,
        "payment_already_paid",
    )
    assert f"checkout orders cancel {order['order_number']} --refund" in (error.recovery or "")
    refund(backend, order, lines=[{"product_sku": "CASE-TRAVEL", "quantity": 1}], restock=True)
    done = cancel(backend, order, refund=True)
    assert done["order"]["status"] == "cancelled"
    total = order["totals"]["total_cents"]
    assert sum(refunded_at(name, fake)) == total
    assert [r["amount_cents"] for r in done["refunds"]] == [
        total - line_share(order["items"][1], 1)
    ]
    # The case came back with the refund; the cancel gives back the lenses only.
    assert done["restocked"] == [{"product_sku": "LENS-DAILY-30", "quantity": 3}]
    assert_invariants(backend.db_path)


@pytest.mark.sqlite_only
def test_a_shipped_order_cannot_be_cancelled(backend):
    order = invoice_order(backend)
    with sqlite3.connect(backend.db_path) as conn:  # one line shipped (as fulfil-order records)
        oid = conn.execute(
            "SELECT id FROM orders WHERE order_id = ?", (order["order_id"],)
        ).fetchone()[0]
        cur = conn.execute(
            "INSERT INTO fulfilments (order_id, created_at) VALUES (?, '2026-01-01T00:00:00Z')",
            (oid,),
        )
        conn.execute(
            "INSERT INTO fulfilment_lines (fulfilment_id, order_id, line_no, quantity) "
            "VALUES (?, ?, 2, 1)",
            (cur.lastrowid, oid),
        )
        conn.execute(
            "UPDATE orders SET fulfilment_status = 'partially_fulfilled' WHERE id = ?", (oid,)
        )
    error = refused(
        backend,
        ORDERS,
        "cancel-order",
        {"order_id": order["order_number"]},
        ConflictError,
        "order_shipped",
    )
    assert "checkout orders refund" in (error.recovery or "")


def _payment_link(backend, fake, order: dict) -> str:
    """An open Stripe payment made for the order's balance (as create-payment-link makes)."""
    import stripe

    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "https://shop.example/thanks",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": order["totals"]["total_cents"],
                        "product_data": {"name": "balance"},
                    },
                }
            ],
        }
    )
    [(oid, cid)] = query(
        backend.db_path,
        "SELECT id, checkout_id FROM orders WHERE order_id = ?",
        (order["order_id"],),
    )
    query(
        backend.db_path,
        "INSERT INTO payments (checkout_id, provider, provider_payment_id, status, "
        "amount_cents, currency, order_id, created_at) "
        "VALUES (?, 'stripe', ?, 'open', ?, 'EUR', ?, '2026-01-01T00:00:00Z')",
        (cid, session.id, order["totals"]["total_cents"], oid),
    )
    return session.id


def test_cancel_closes_an_open_payment_link_first(backend, stripe_fake):
    order = invoice_order(backend)
    link = _payment_link(backend, stripe_fake, order)
    assert cancel(backend, order)["order"]["status"] == "cancelled"
    assert stripe_fake.sessions[link]["status"] == "expired"
    assert (
        scalar(
            backend.db_path, "SELECT status FROM payments WHERE provider_payment_id = ?", (link,)
        )
        == "expired"
    )
    assert_invariants(backend.db_path)


def test_a_payment_link_paid_meanwhile_is_recorded_and_the_cancel_refused(backend, stripe_fake):
    order = invoice_order(backend)
    link = _payment_link(backend, stripe_fake, order)
    stripe_fake.mark_paid(link)
    with pytest.raises(PaymentError) as caught:
        cancel(backend, order)
    assert caught.value.code == "payment_already_paid"
    shown = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    assert shown["status"] == "paid" and shown["payments"][0]["provider_payment_id"] == link
    done = cancel(backend, order, refund=True)
    assert done["order"]["status"] == "cancelled"
    assert [r["amount"] for r in stripe_fake.refunds.values()] == [order["totals"]["total_cents"]]
    assert_invariants(backend.db_path)


# ---- invariant 3 with restocks -----------------------------------------------------------------


def test_doctor_finds_more_restocked_than_ordered(backend):
    order = invoice_order(backend)
    cancel(backend, order)  # 3 lenses back
    # one more, planted behind the engine's back
    query(backend.db_path, "UPDATE products SET stock = stock + 1 WHERE sku = 'LENS-DAILY-30'")
    query(
        backend.db_path,
        "INSERT INTO stock_movements (sku, delta, reason, ref, at) "
        "VALUES ('LENS-DAILY-30', 1, 'restock', ?, '2026-01-01T00:00:00Z')",
        (order["order_id"],),
    )
    violations = check_invariants(backend.engine.conn)
    assert [(v.invariant, v.records.get("restocked")) for v in violations] == [(3, 4)]
    assert "restocks give back 4" in violations[0].message


# ---- who may ------------------------------------------------------------------------------


def test_money_back_is_an_administrators_call_and_never_an_assistants():
    from checkout_cli import access
    from checkout_cli.endpoints import ENDPOINTS, MCP, ORDER_MANAGEMENT
    from checkout_cli.errors import ForbiddenError

    refund_order = ENDPOINTS[(ORDER_MANAGEMENT, "refund-order")]
    cancel_order = ENDPOINTS[(ORDER_MANAGEMENT, "cancel-order")]
    assert refund_order.scope == "admin" and MCP not in refund_order.faces
    assert access.needed_scope(cancel_order, {"order_id": "x"})[0] == "operate"
    assert access.needed_scope(cancel_order, {"order_id": "x", "refund": True})[0] == "admin"
    access.check_body(cancel_order, MCP, {"order_id": "x"})  # an unpaid order: an assistant may
    with pytest.raises(ForbiddenError):
        access.check_body(cancel_order, MCP, {"order_id": "x", "refund": True})


def test_mollies_payment_webhook_settles_the_orders_pending_refund(backend, mollie_fake):
    from checkout_cli.engine import payment_sync

    order = provider_order(backend, "mollie", mollie_fake)
    made = refund(backend, order)["refunds"][0]
    assert made["status"] == "pending"  # Mollie settles refunds later
    pending = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    assert pending["amount_refunded_cents"] == 0
    [refund_id] = list(mollie_fake.refunds)
    mollie_fake.settle_refund(refund_id)
    pid = scalar(backend.db_path, "SELECT provider_payment_id FROM payments")
    for _ in range(2):  # Mollie may post the same webhook again
        payment_sync.handle_webhook(backend.engine, "mollie", {}, f"id={pid}".encode())
    shown = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    assert shown["refunds"][0]["status"] == "succeeded"
    assert (shown["payment_status"], shown["amount_refunded_cents"]) == (
        "refunded",
        order["totals"]["total_cents"],
    )
    assert [k for k in emails(backend, order) if k.startswith("refund:")] == [
        f"refund:{made['refund_id'].removeprefix('ref_')}"
    ]
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds.count("refund_succeeded") == 1
    assert_invariants(backend.db_path)
