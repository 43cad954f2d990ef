"""The store's file and connection settings, and ``check_invariants`` (``checkout doctor``):
it passes on every real store and finds each of the six kinds of violation when one is planted
with raw SQL in a copy of a store."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from checkout_cli.config import is_pg_url
from checkout_cli.engine.core import Engine
from checkout_cli.engine.invariants import Violation, check_invariants
from checkout_cli.engine.schema import SCHEMA_VERSION
from checkout_cli.engine.stores import open_store
from checkout_cli.errors import ConflictError
from tests.conftest import dump, ready_checkout
from tests.engine_helpers import (
    ADMIN,
    CATALOG,
    FLOW,
    assert_invariants,
    cart_with,
    complete,
    initiate,
    invoice,
    scalar,
    set_customer,
)

# ---- the store -------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_store_file_and_pragmas(backend):
    path = backend.db_path
    conn = backend.engine.conn
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert stat.S_IMODE(name.stat().st_mode) == 0o600, name  # customer data in each
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: write() flushes
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    other = sqlite3.connect(path)  # WAL is a property of the file, not of one connection
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    other.close()


def test_reopening_a_store_keeps_it(tmp_path):
    path = tmp_path / "deep" / "dir" / "shop.db"
    first = Engine(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first.close()
    before = dump(path)
    Engine(path).close()
    assert dump(path) == before


def test_a_store_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "shop.db"
    Engine(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConflictError) as info:
        Engine(path)
    assert info.value.code == "store_too_new"


# ---- passing -------------------------------------------------------------------------------


def test_no_violations_on_an_empty_store(tmp_path):
    engine = Engine(tmp_path / "shop.db")
    assert check_invariants(engine.conn) == []
    engine.close()


@pytest.mark.sqlite_only
def test_check_reads_only_on_any_connection(backend):
    rich_store(backend)
    before = dump(backend.db_path)
    conn = sqlite3.connect(backend.db_path)  # default isolation level, tuples for rows
    assert check_invariants(conn) == []
    assert not conn.in_transaction
    conn.close()
    assert check_invariants(backend.engine.conn) == []
    assert not backend.engine.conn.in_transaction
    assert dump(backend.db_path) == before


def test_orders_from_before_stock_was_tracked_are_fine(backend):
    token = ready_checkout(backend, [("GIFT-CARD-25", 3)])
    invoice(backend, token)
    complete(backend, token)
    backend.call(CATALOG, "set-stock", {"sku": "GIFT-CARD-25", "stock": 10})
    token = ready_checkout(backend, [("GIFT-CARD-25", 2)])
    invoice(backend, token)
    complete(backend, token)
    assert backend.call(CATALOG, "get-product", {"sku": "GIFT-CARD-25"})["stock"] == 8
    # Tracked, untracked, tracked again: the ledger restarts, older orders are not counted.
    backend.call(CATALOG, "set-stock", {"sku": "GIFT-CARD-25", "untracked": True})
    backend.call(CATALOG, "set-stock", {"sku": "GIFT-CARD-25", "stock": 4})
    assert_invariants(backend.db_path)


# ---- planted violations ----------------------------------------------------------------------


def rich_store(backend) -> dict[str, str]:
    """A store with a bit of everything; returns the interesting tokens and numbers."""
    done = ready_checkout(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    backend.call(
        FLOW,
        "set-line-meta",
        {
            "checkout_token": done,
            "product_sku": "CASE-TRAVEL",
            "def_key": "engraving",
            "values": {"text": "Anna", "font": "serif"},
        },
    )
    invoice(backend, done)
    order = complete(backend, done)["order"]["order_number"]
    cart = cart_with(backend, [("LENS-MONTH-6", 3), ("GIFT-CARD-25", 1)])
    cancelled = initiate(backend, cart)["checkout_token"]
    backend.call(FLOW, "cancel-checkout", {"checkout_token": cancelled})
    open_ = initiate(backend, cart)["checkout_token"]
    set_customer(backend, open_)
    assert_invariants(backend.db_path)
    return {"done": done, "order": order, "cancelled": cancelled, "open": open_, "cart": cart}


@pytest.fixture
def planted(backend, tmp_path):
    """``plant(sql, ...)`` runs raw SQL on a copy of a rich store and returns its violations."""
    names = rich_store(backend)

    def plant(*statements: str) -> list[Violation]:
        if is_pg_url(backend.db_path):
            return _planted_in_a_transaction(
                backend.db_path, [sql.format(**names) for sql in statements]
            )
        copy = tmp_path / f"copy-{len(list(tmp_path.glob('copy-*')))}.db"
        target = sqlite3.connect(copy)
        source = sqlite3.connect(backend.db_path)
        source.backup(target)
        source.close()
        for sql in statements:
            target.execute(sql.format(**names))
        target.commit()
        try:
            return check_invariants(target)
        finally:
            target.close()

    plant.names = names
    return plant


def _planted_in_a_transaction(url: str, statements: list[str]) -> list[Violation]:
    """PostgreSQL: the statements and the check in one transaction, rolled back after."""
    store = open_store(url)
    try:
        store.conn.execute("BEGIN")
        for sql in statements:
            store.conn.execute(sql)
        found = check_invariants(store.conn)
        store.conn.execute("ROLLBACK")
        return found
    finally:
        store.close()


def kinds(violations: list[Violation]) -> list[int]:
    return [v.invariant for v in violations]


def test_violation_shape():
    v = Violation(3, "product X: stock is 1 but its stock movements add up to 2", {"sku": "X"})
    assert v.as_dict() == {
        "invariant": 3,
        "name": "stock_matches_ledger",
        "message": "product X: stock is 1 but its stock movements add up to 2",
        "records": {"sku": "X"},
    }
    with pytest.raises(AttributeError):
        v.invariant = 4  # type: ignore[misc]


def test_1_completed_checkout_without_order(planted):
    found = planted("UPDATE checkouts SET status = 'completed' WHERE token = '{open}'")
    assert kinds(found) == [1]
    assert found[0].records["checkout_token"] == planted.names["open"]
    assert "no order" in found[0].message and planted.names["open"] in found[0].message


def test_1_order_on_a_checkout_that_is_not_completed(planted):
    found = planted("UPDATE checkouts SET status = 'cancelled' WHERE token = '{done}'")
    assert kinds(found) == [1]
    assert found[0].records == {
        "checkout_token": planted.names["done"],
        "status": "cancelled",
        "order_numbers": planted.names["order"],
    }


def test_1_two_orders_for_one_checkout(planted):
    found = planted(
        "DROP INDEX idx_orders_checkout_id",
        "INSERT INTO orders (order_id, order_number, checkout_id, status, payment_status, "
        "currency, subtotal_cents, shipping_cents, tax_cents, total_cents, created_at) "
        "SELECT 'ord_twin', '2000-000001', checkout_id, 'paid', 'paid', currency, "
        "0, 0, 0, 0, created_at FROM orders",  # a free order: paid as it is
        "INSERT INTO outbox (order_id, kind, recipient, status) "
        "SELECT id, 'order_confirmation', 'x@example.com', 'sent' FROM orders "
        "WHERE order_id = 'ord_twin'",
    )
    assert kinds(found) == [1, 6, 6]  # and the twin lacks the checkout's two lines
    assert "2 orders" in found[0].message and "2000-000001" in found[0].message


def test_2_two_open_checkouts_for_one_cart(planted):
    found = planted(
        "DROP INDEX one_open_checkout_per_cart",
        "UPDATE checkouts SET status = 'active' WHERE token = '{cancelled}'",
    )
    assert kinds(found) == [2]
    assert found[0].records["cart_token"] == planted.names["cart"]
    assert planted.names["cancelled"] in found[0].message
    assert planted.names["open"] in found[0].message


def test_3_stock_differs_from_its_ledger(planted):
    found = planted("UPDATE products SET stock = stock - 1 WHERE sku = 'LENS-MONTH-6'")
    assert kinds(found) == [3]
    assert found[0].records == {"sku": "LENS-MONTH-6", "stock": 39, "ledger_sum": 40}
    assert "LENS-MONTH-6" in found[0].message


def test_3_stock_below_zero_without_backorder(planted):
    found = planted(
        "UPDATE products SET stock = -1 WHERE sku = 'LENS-MONTH-6'",
        "INSERT INTO stock_movements (sku, delta, reason, at) "
        "VALUES ('LENS-MONTH-6', -41, 'adjustment', '2026-01-01T00:00:00Z')",
    )
    assert kinds(found) == [3]
    assert found[0].records == {"sku": "LENS-MONTH-6", "stock": -1}
    assert "below zero" in found[0].message


def test_3_backorder_below_zero_is_fine(planted):
    assert (
        planted(
            "UPDATE products SET stock = -5 WHERE sku = 'CASE-TRAVEL'",
            "INSERT INTO stock_movements (sku, delta, reason, at) "
            "VALUES ('CASE-TRAVEL', -6, 'adjustment', '2026-01-01T00:00:00Z')",
        )
        == []
    )


def test_3_order_movement_does_not_match_the_order(planted):
    found = planted(
        "UPDATE stock_movements SET delta = -1 WHERE reason = 'order' AND sku = 'LENS-DAILY-30'",
        "UPDATE products SET stock = stock + 1 WHERE sku = 'LENS-DAILY-30'",
    )
    assert kinds(found) == [3]
    assert found[0].records == {
        "sku": "LENS-DAILY-30",
        "order_number": planted.names["order"],
        "ordered": 2,
        "moved": 1,
    }


def test_3_order_without_a_stock_movement(planted):
    found = planted(
        "DELETE FROM stock_movements WHERE reason = 'order' AND sku = 'LENS-DAILY-30'",
        "UPDATE products SET stock = stock + 2 WHERE sku = 'LENS-DAILY-30'",
    )
    assert kinds(found) == [3]
    assert found[0].records["moved"] == 0
    assert planted.names["order"] in found[0].message


def test_4_order_without_confirmation(planted):
    found = planted("DELETE FROM outbox WHERE kind = 'order_confirmation'")
    assert kinds(found) == [4]
    assert found[0].records == {
        "order_number": planted.names["order"],
        "checkout_token": planted.names["done"],
        "emails": 0,
    }


def test_4_two_confirmations_for_one_order(planted):
    found = planted(
        "DROP INDEX idx_outbox_order_id_kind",
        "INSERT INTO outbox (order_id, kind, recipient, status) "
        "SELECT order_id, kind, recipient, 'queued' FROM outbox",
    )
    assert kinds(found) == [4]
    assert found[0].records["emails"] == 2
    assert "2 confirmation emails" in found[0].message


def test_5_order_total_does_not_add_up(planted):
    found = planted("UPDATE orders SET total_cents = total_cents + 1")
    assert kinds(found) == [5]
    assert found[0].records["order_number"] == planted.names["order"]
    assert "total" in found[0].message


def test_5_checkout_line_total_is_not_price_times_quantity(planted):
    found = planted(
        "UPDATE checkout_lines SET line_total_cents = line_total_cents + 10 "
        "WHERE product_sku = 'LENS-MONTH-6' AND checkout_id = "
        "(SELECT id FROM checkouts WHERE token = '{open}')"
    )
    assert kinds(found) == [5, 5]  # the subtotal no longer adds up, and the line is wrong
    subtotal, line = found
    assert subtotal.records["checkout_token"] == planted.names["open"]
    assert "subtotal" in subtotal.message
    assert line.records == {
        "checkout_token": planted.names["open"],
        "line_no": 1,
        "sku": "LENS-MONTH-6",
        "line_total_cents": 3 * 3995 + 10,
        "expected": 3 * 3995,
    }


def test_5_line_tax_does_not_add_up(planted):
    found = planted("UPDATE order_lines SET tax_cents = tax_cents + 1 WHERE line_no = 1")
    assert kinds(found) == [5]
    assert "tax" in found[0].message and found[0].records["order_number"] == planted.names["order"]


def test_5_subtotal_of_a_checkout(planted):
    found = planted(
        "UPDATE checkouts SET subtotal_cents = subtotal_cents - 1, total_cents = total_cents - 1 "
        "WHERE token = '{open}'"
    )
    assert kinds(found) == [5]
    assert found[0].records["checkout_token"] == planted.names["open"]


def test_6_order_line_meta_differs(planted):
    found = planted("UPDATE order_lines SET meta = '{{}}' WHERE product_sku = 'CASE-TRAVEL'")
    assert kinds(found) == [6]
    assert found[0].records == {
        "order_number": planted.names["order"],
        "checkout_token": planted.names["done"],
        "line_no": 2,
        "sku": "CASE-TRAVEL",
    }
    assert "engraving" in found[0].message


def test_6_meta_must_be_byte_for_byte(planted):
    found = planted(
        "UPDATE order_lines SET meta = replace(meta, '\": \"', '\":\"') "
        "WHERE product_sku = 'CASE-TRAVEL'"
    )
    assert kinds(found) == [6]


STRAY = (
    "INSERT INTO payments (checkout_id, provider, provider_payment_id, status, amount_cents, "
    "currency) SELECT id, 'mollie', 'tr_plantedStray', 'paid', total_cents, currency "
    "FROM checkouts WHERE token = '{cancelled}'"
)


def test_7_paid_provider_payment_of_a_cancelled_checkout(planted):
    [violation] = planted(STRAY)
    assert violation.invariant == 7
    assert violation.records["provider_payment_id"] == "tr_plantedStray"
    assert f"checkout refund-payment {planted.names['cancelled']} tr_plantedStray" in (
        violation.message
    )


@pytest.mark.parametrize(
    ("refund", "reported"),
    [("succeeded", False), ("pending", False), ("failed", True), ("creating", True)],
)
def test_7_only_a_refund_the_provider_accepted_accounts_for_it(planted, refund, reported):
    violations = planted(
        STRAY,
        "INSERT INTO refunds (payment_id, checkout_id, provider, status, amount_cents, currency) "
        f"SELECT id, checkout_id, provider, '{refund}', amount_cents, currency FROM payments "
        "WHERE provider_payment_id = 'tr_plantedStray'",
    )
    assert kinds(violations) == ([7] if reported else [])


def test_7_the_paid_payment_of_an_open_checkout_is_not_a_stray(planted):
    assert planted(STRAY.replace("{cancelled}", "{open}")) == []


def test_8_order_payment_status_disagrees_with_its_payments(planted):
    [violation] = planted(
        "UPDATE orders SET payment_status = 'paid' WHERE order_number = '{order}'"
    )
    assert violation.invariant == 8
    assert violation.records == {
        "order_number": planted.names["order"],
        "payment_status": "paid",
        "expected": "unpaid",
    }


def test_8_order_counts_a_payment_that_is_not_paid(planted):
    found = planted(
        "INSERT INTO order_payments (order_id, payment_id, method, amount_cents, currency, "
        "created_at) SELECT id, payment_id, 'invoice', total_cents, currency, created_at "
        "FROM orders WHERE order_number = '{order}'",
        "UPDATE orders SET amount_paid_cents = total_cents, payment_status = 'paid', "
        "status = 'paid' WHERE order_number = '{order}'",
    )
    assert kinds(found) == [8]
    assert found[0].records == {
        "order_number": planted.names["order"],
        "provider": "invoice",
        "payment_status": "unpaid",
    }


@pytest.mark.sqlite_only
def test_every_kind_at_once_through_the_endpoint(planted, backend):
    names = planted.names
    with sqlite3.connect(backend.db_path) as conn:
        for sql in (
            "UPDATE checkouts SET status = 'cancelled' WHERE token = '{done}'",
            "DROP INDEX one_open_checkout_per_cart",
            "UPDATE checkouts SET status = 'active' WHERE token = '{cancelled}'",
            "UPDATE products SET stock = 0 WHERE sku = 'LENS-MONTH-6'",
            "DELETE FROM outbox",
            "UPDATE orders SET shipping_cents = 0",
            "UPDATE order_lines SET meta = NULL",
        ):
            conn.execute(sql.format(**names))
    result = backend.call(ADMIN, "check-invariants", {})
    assert result["ok"] is False
    assert sorted({v["invariant"] for v in result["violations"]}) == [1, 2, 3, 4, 5, 6]
    assert scalar(backend.db_path, "SELECT COUNT(*) FROM outbox") == 0  # still only read
