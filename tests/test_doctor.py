"""checkout doctor: a clean store after real flows has no violation; each invariant violated
with raw SQL in a copy of the store is found, with its number and the records involved."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from checkout_cli.engine.invariants import NAMES
from tests.conftest import WATCH, Result, ready_checkout

FLOW = "checkout-flow"
PRESCRIPTION = {
    "right_sphere": "-1.25",
    "left_sphere": "-1.50",
    "right_base_curve": "8.6",
    "prescribed_on": "2026-01-15",
}


def doctor(db: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, ["--db", str(db), *args, "doctor"])
    WATCH.seen("checkout doctor", result.stdout + result.stderr)
    return Result(result.exit_code, result.stdout, result.stderr)


def complete(backend, items: list[tuple[str, int]], meta: dict | None = None) -> dict[str, Any]:
    token = ready_checkout(backend, items)
    if meta:
        backend.call(
            FLOW,
            "set-line-meta",
            {
                "checkout_token": token,
                "product_sku": "LENS-DAILY-30",
                "def_key": "lens_prescription",
                "values": meta,
            },
        )
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    return backend.call(FLOW, "complete-checkout", {"checkout_token": token})


@pytest.fixture
def shop(backend) -> dict[str, Any]:
    """A store after real flows: orders (one with meta), an open, a cancelled checkout."""
    with_meta = complete(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)], PRESCRIPTION)
    gift = complete(backend, [("GIFT-CARD-25", 2)])
    complete(backend, [("LENS-MONTH-6", 3)])
    backend.call(FLOW, "complete-checkout", {"checkout_token": gift["checkout_token"]})  # again
    open_token = ready_checkout(backend, [("LENS-MONTH-6", 1), ("GIFT-CARD-25", 1)])
    cancelled = ready_checkout(backend, [("SOLUTION-360", 1)])
    backend.call(FLOW, "cancel-checkout", {"checkout_token": cancelled})
    backend.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 50})
    return {
        "meta_order": with_meta["order"]["order_number"],
        "meta_checkout": with_meta["checkout_token"],
        "gift_order": gift["order"]["order_number"],
        "gift_checkout": gift["checkout_token"],
        "open_checkout": open_token,
    }


def test_a_clean_store_after_flows_has_no_violations(shop, db_path):
    result = doctor(db_path)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "no violations" in result.stderr
    as_json = doctor(db_path, "--json")
    assert as_json.exit_code == 0
    assert as_json.json()["violations"] == []


def copy_of(db_path: Path, target: Path) -> Path:
    source, copy = sqlite3.connect(db_path), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return target


def drop_unique_index(
    conn: sqlite3.Connection, table: str, columns: list[str], *, dropped_ok: bool = False
) -> None:
    for _, name, unique, *_ in conn.execute(f"PRAGMA index_list({table})").fetchall():
        cols = [r[2] for r in conn.execute(f"PRAGMA index_info({name})")]
        if unique and cols == columns:
            conn.execute(f"DROP INDEX [{name}]")
            return
    if dropped_ok:  # by another plant of the same copy
        return
    raise AssertionError(f"no unique index on {table}{columns}")


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "id"]


def duplicate(conn: sqlite3.Connection, table: str, where: str, **changes: str) -> int:
    """Insert a copy of the row ``where`` picks, with ``changes`` as SQL expressions."""
    cols = columns(conn, table)
    select = ", ".join(changes.get(c, c) for c in cols)
    return conn.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table} WHERE {where}"
    ).lastrowid


def second_order_for_a_checkout(conn: sqlite3.Connection, shop: dict) -> dict:
    drop_unique_index(conn, "orders", ["checkout_id"])
    number = shop["gift_order"]
    new = duplicate(
        conn,
        "orders",
        f"order_number = '{number}'",
        order_id="order_id || '-again'",
        order_number="order_number || '-again'",
    )
    old = conn.execute("SELECT id FROM orders WHERE order_number = ?", (number,)).fetchone()[0]
    duplicate(conn, "order_lines", f"order_id = {old}", order_id=str(new))
    duplicate(conn, "outbox", f"order_id = {old}", order_id=str(new))
    return {"checkout_token": shop["gift_checkout"], "status": "completed"}


def second_open_checkout_for_a_cart(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute("DROP INDEX one_open_checkout_per_cart")
    token = shop["open_checkout"]
    old = conn.execute("SELECT id FROM checkouts WHERE token = ?", (token,)).fetchone()[0]
    new = duplicate(conn, "checkouts", f"id = {old}", token="'chk_plantedSecondOpen0'")
    duplicate(conn, "checkout_lines", f"checkout_id = {old}", checkout_id=str(new))
    cart = conn.execute(
        "SELECT k.token FROM carts k JOIN checkouts c ON c.cart_id = k.id WHERE c.id = ?", (old,)
    ).fetchone()[0]
    return {"cart_token": cart}


def stock_off_its_ledger(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute("UPDATE products SET stock = stock + 7 WHERE sku = 'LENS-DAILY-30'")
    return {"sku": "LENS-DAILY-30", "stock": 105, "ledger_sum": 98}


def second_confirmation_email(conn: sqlite3.Connection, shop: dict) -> dict:
    drop_unique_index(conn, "outbox", ["order_id", "kind"])
    duplicate(
        conn,
        "outbox",
        "order_id = (SELECT id FROM orders WHERE order_number = "
        f"'{shop['meta_order']}') AND kind = 'order_confirmation'",
    )
    return {"order_number": shop["meta_order"], "emails": 2}


def totals_not_adding_up(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "UPDATE orders SET total_cents = total_cents + 100 WHERE order_number = ?",
        (shop["gift_order"],),
    )
    return {"order_number": shop["gift_order"]}


def checkout_subtotal_not_its_lines(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "UPDATE checkouts SET subtotal_cents = subtotal_cents - 1, total_cents = total_cents - 1 "
        "WHERE token = ?",
        (shop["open_checkout"],),
    )
    return {"checkout_token": shop["open_checkout"]}


def order_meta_changed(conn: sqlite3.Connection, shop: dict) -> dict:
    changed = conn.execute(
        "UPDATE order_lines SET meta = json_set(meta, '$.lens_prescription.right_sphere', "
        "'-9.75') WHERE product_sku = 'LENS-DAILY-30' AND order_id = "
        "(SELECT id FROM orders WHERE order_number = ?)",
        (shop["meta_order"],),
    ).rowcount
    assert changed == 1
    return {"order_number": shop["meta_order"], "sku": "LENS-DAILY-30", "line_no": 1}


def _paid_stripe_payment(conn: sqlite3.Connection, checkout: str, session: str) -> None:
    conn.execute(
        "INSERT INTO payments (checkout_id, provider, provider_payment_id, status, amount_cents, "
        "currency, created_at, updated_at) SELECT id, 'stripe', ?, 'paid', total_cents, currency, "
        "updated_at, updated_at FROM checkouts WHERE token = ?",
        (session, checkout),
    )


def paid_payment_of_a_cancelled_checkout(conn: sqlite3.Connection, shop: dict) -> dict:
    token = conn.execute("SELECT token FROM checkouts WHERE status = 'cancelled'").fetchone()[0]
    _paid_stripe_payment(conn, token, "cs_test_plantedPaidAfterCancel")
    return {"checkout_token": token, "provider_payment_id": "cs_test_plantedPaidAfterCancel"}


def second_paid_payment_of_a_completed_checkout(conn: sqlite3.Connection, shop: dict) -> dict:
    # The order was completed by its invoice: this later paid session is money kept besides.
    _paid_stripe_payment(conn, shop["gift_checkout"], "cs_test_plantedSecondPayment")
    return {
        "checkout_token": shop["gift_checkout"],
        "checkout_status": "completed",
        "provider_payment_id": "cs_test_plantedSecondPayment",
    }


def order_paid_but_no_payment_says_so(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "UPDATE orders SET payment_status = 'paid', status = 'paid' WHERE order_number = ?",
        (shop["meta_order"],),
    )
    return {"order_number": shop["meta_order"], "payment_status": "paid", "expected": "unpaid"}


def amount_paid_off_its_payments(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "UPDATE orders SET amount_paid_cents = 100 WHERE order_number = ?", (shop["gift_order"],)
    )
    return {"order_number": shop["gift_order"], "amount_paid_cents": 100, "sum": 0}


def amount_refunded_off_its_refunds(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "UPDATE orders SET amount_refunded_cents = 100 WHERE order_number = ?",
        (shop["gift_order"],),
    )
    return {"order_number": shop["gift_order"], "amount_refunded_cents": 100, "sum": 0}


def restock_without_its_stock(conn: sqlite3.Connection, shop: dict) -> dict:
    # A refund's or cancel's restock recorded in the ledger, the units never put back.
    conn.execute(
        "INSERT INTO stock_movements (sku, delta, reason, ref, at) SELECT 'LENS-DAILY-30', 1, "
        "'restock', order_id, created_at FROM orders WHERE order_number = ?",
        (shop["meta_order"],),
    )
    return {"sku": "LENS-DAILY-30", "stock": 98, "ledger_sum": 99}


def refunded_more_than_paid(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "INSERT INTO refunds (payment_id, checkout_id, order_id, provider, kind, status, "
        "amount_cents, currency, created_at) SELECT payment_id, checkout_id, id, 'invoice', "
        "'credit', 'pending', 500, currency, created_at FROM orders WHERE order_number = ?",
        (shop["gift_order"],),
    )
    return {"order_number": shop["gift_order"], "paid": 0, "refunded": 500}


def shipped_more_than_ordered(conn: sqlite3.Connection, shop: dict) -> dict:
    conn.execute(
        "INSERT INTO fulfilments (order_id, created_at) SELECT id, created_at FROM orders "
        "WHERE order_number = ?",
        (shop["gift_order"],),
    )
    conn.execute(
        "INSERT INTO fulfilment_lines (fulfilment_id, order_id, line_no, quantity) "
        "SELECT f.id, l.order_id, l.line_no, l.quantity + 1 FROM fulfilments f "
        "JOIN order_lines l ON l.order_id = f.order_id"
    )
    # What the order says follows its (planted) shipments: only the quantity is wrong.
    conn.execute(
        "UPDATE orders SET fulfilment_status = 'fulfilled' WHERE order_number = ?",
        (shop["gift_order"],),
    )
    return {"order_number": shop["gift_order"], "line_no": 1}


def event_email_missing(conn: sqlite3.Connection, shop: dict) -> dict:
    # A refund's event says it queued the customer's email; the outbox has none.
    conn.execute(
        "INSERT INTO events (checkout_id, order_id, at, actor, kind, detail) SELECT checkout_id, "
        "id, created_at, 'test', 'order_refund_emailed', json_object('email', 'refund:9') "
        "FROM orders WHERE order_number = ?",
        (shop["gift_order"],),
    )
    return {"order_number": shop["gift_order"], "email": "refund:9"}


def shipped_email_twice(conn: sqlite3.Connection, shop: dict) -> dict:
    drop_unique_index(conn, "outbox", ["order_id", "kind"], dropped_ok=True)
    where = (
        "order_id = (SELECT id FROM orders WHERE order_number = "
        f"'{shop['gift_order']}') AND kind = 'order_confirmation'"
    )
    for _ in range(2):
        duplicate(conn, "outbox", where, kind="'shipped:1'")
    return {"order_number": shop["gift_order"], "email": "shipped:1", "emails": 2}


PLANTS: list[tuple[int, Callable[[sqlite3.Connection, dict], dict]]] = [
    (1, second_order_for_a_checkout),
    (2, second_open_checkout_for_a_cart),
    (3, stock_off_its_ledger),
    (3, restock_without_its_stock),
    (4, second_confirmation_email),
    (5, totals_not_adding_up),
    (5, checkout_subtotal_not_its_lines),
    (6, order_meta_changed),
    (7, paid_payment_of_a_cancelled_checkout),
    (7, second_paid_payment_of_a_completed_checkout),
    (8, order_paid_but_no_payment_says_so),
    (8, amount_paid_off_its_payments),
    (8, amount_refunded_off_its_refunds),
    (9, refunded_more_than_paid),
    (10, shipped_more_than_ordered),
    (11, event_email_missing),
    (11, shipped_email_twice),
]


@pytest.mark.parametrize(
    ("invariant", "plant"), PLANTS, ids=[plant.__name__ for _, plant in PLANTS]
)
def test_doctor_finds_each_planted_violation(shop, db_path, tmp_path, invariant, plant):
    copy = copy_of(db_path, tmp_path / "copy.db")
    conn = sqlite3.connect(copy)
    try:
        with conn:
            expected = plant(conn, shop)
    finally:
        conn.close()
    result = doctor(copy, "--json")
    assert result.exit_code == 4, result.stderr  # 1 is for bugs
    violations = result.json()["violations"]
    assert {v["name"] for v in violations} == {NAMES[invariant]}
    # Only the planted invariant is reported: the rest of the copy is as clean as the store.
    assert {v["invariant"] for v in violations} == {invariant}, violations
    assert any(expected.items() <= v["records"].items() for v in violations), (
        expected,
        violations,
    )
    assert all(v["message"] for v in violations)
    text = doctor(copy)
    assert text.exit_code == 4
    # Piped: one violation per line, the invariant's number and name in the first field.
    assert any(line.startswith(str(invariant)) for line in text.stdout.splitlines())
    # The store the copy was made from is untouched and still clean.
    assert doctor(db_path).exit_code == 0


def test_doctor_lists_every_violation_at_once(shop, db_path, tmp_path):
    copy = copy_of(db_path, tmp_path / "copy.db")
    conn = sqlite3.connect(copy)
    try:
        with conn:
            for _, plant in PLANTS:
                plant(conn, shop)
    finally:
        conn.close()
    result = doctor(copy, "--json")
    assert result.exit_code == 4
    assert {v["invariant"] for v in result.json()["violations"]} == set(range(1, 12))
    json.dumps(result.json())  # plain JSON all the way down


def test_doctor_reports_an_email_stuck_in_sending(shop, db_path, tmp_path):
    copy = copy_of(db_path, tmp_path / "copy.db")
    conn = sqlite3.connect(copy)
    try:
        with conn:
            conn.execute(
                "UPDATE outbox SET status = 'sending', claimed_at = '2000-01-01T00:00:00Z'"
            )
    finally:
        conn.close()
    result = doctor(copy, "--json")
    assert result.exit_code == 0, result.stderr  # no invariant is broken, but it is reported
    assert [e["claimed_at"] for e in result.json()["emails_sending"]][:1] == [
        "2000-01-01T00:00:00Z"
    ]
    assert "stuck in sending" in doctor(copy).stdout + doctor(copy).stderr
