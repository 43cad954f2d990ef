"""Smoke runs: the rows `checkout smoke` makes are marked with its run id, and removed after.

A run starts with its own product (``SMOKE-<run>``, stock 1) and an empty cart, both marked
``test_run``; the checkout made from that cart is marked too (engine/checkouts.py), and
everything else the run makes belongs to that product or checkout. Marked rows take no order
number from the shop's sequence, never send an email, and are left out of every list and
picker. A marked cart holds only its own run's product, and a real cart never holds a marked
one, so no real sale can be hidden in a run.

The run ends by removing every row it made (open checkouts are cancelled first, which closes
a provider payment); a run killed before that is removed by the next run once it is stale.
A run whose checkout holds a paid payment is never removed: that is money, and it stays for
an operator to look at (`checkout doctor` names it).
"""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from datetime import timedelta
from typing import Any

from checkout_cli import requests
from checkout_cli.endpoints import OPEN_CHECKOUT_STATES, SMOKE_KEY_PREFIX
from checkout_cli.engine import settings
from checkout_cli.engine.catalog import move_stock
from checkout_cli.engine.core import Engine, iso, new_token
from checkout_cli.errors import CheckoutError, ConflictError

SKU_PREFIX = "SMOKE-"
# A run takes seconds (a provider's timeouts at most a few minutes): older is a killed one.
STALE_AFTER = timedelta(minutes=10)

_CHECKOUTS = "SELECT id FROM checkouts WHERE test_run = :run"
_ORDERS = f"SELECT id FROM orders WHERE checkout_id IN ({_CHECKOUTS})"
_PAYMENTS = f"SELECT id FROM payments WHERE checkout_id IN ({_CHECKOUTS})"
_CARTS = "SELECT id FROM carts WHERE test_run = :run"
_SKUS = "SELECT sku FROM products WHERE test_run = :run"
# Children before parents (foreign keys are enforced).
_REMOVE = (
    f"DELETE FROM events WHERE checkout_id IN ({_CHECKOUTS})",
    f"DELETE FROM outbox WHERE checkout_id IN ({_CHECKOUTS}) OR order_id IN ({_ORDERS})",
    f"DELETE FROM refund_lines WHERE order_id IN ({_ORDERS})",
    f"DELETE FROM refunds WHERE checkout_id IN ({_CHECKOUTS})",
    f"DELETE FROM fulfilment_lines WHERE order_id IN ({_ORDERS})",
    f"DELETE FROM fulfilments WHERE order_id IN ({_ORDERS})",
    f"DELETE FROM order_payments WHERE order_id IN ({_ORDERS})",
    f"DELETE FROM order_lines WHERE order_id IN ({_ORDERS})",
    f"DELETE FROM orders WHERE checkout_id IN ({_CHECKOUTS})",
    f"DELETE FROM stock_reservations WHERE checkout_id IN ({_CHECKOUTS}) OR sku IN ({_SKUS})",
    f"DELETE FROM payments WHERE id IN ({_PAYMENTS})",
    f"DELETE FROM checkout_lines WHERE checkout_id IN ({_CHECKOUTS})",
    "DELETE FROM checkouts WHERE test_run = :run",
    f"DELETE FROM cart_items WHERE cart_id IN ({_CARTS})",
    "DELETE FROM carts WHERE test_run = :run",
    f"DELETE FROM stock_movements WHERE sku IN ({_SKUS})",
    "DELETE FROM products WHERE test_run = :run",
)


def start_smoke(engine: Engine, body: requests.SmokeRun) -> dict[str, Any]:
    """checkout-admin/start-smoke: the run's product and empty cart (stale runs removed)."""
    run = body.run_id
    for stale in _stale_runs(engine):
        try:
            _finish(engine, stale)
        except CheckoutError:  # kept (a paid payment): `checkout doctor` names it
            continue
    sku = f"{SKU_PREFIX}{run}"
    with engine.write() as conn:
        if conn.execute(
            "SELECT 1 FROM products WHERE sku = ? OR test_run = ?", (sku, run)
        ).fetchone():
            raise ConflictError(
                "smoke_run_exists",
                f"smoke run {run} already exists",
                field="run_id",
                recovery="start a run with a new id",
            )
        currency = settings.read(conn, "currency")
        now = engine.now()
        conn.execute(
            "INSERT INTO products (sku, name, price_cents, currency, stock, status, created_at, "
            "updated_at, test_run) VALUES (?, ?, 100, ?, 1, 'active', ?, ?, ?)",
            (sku, "Smoke test product (not for sale)", currency, now, now, run),
        )
        move_stock(engine, conn, sku, 1, "initial", None)
        cart_token = new_token("cart")
        conn.execute(
            "INSERT INTO carts (token, status, currency, created_at, updated_at, test_run) "
            "VALUES (?, 'active', ?, ?, ?, ?)",
            (cart_token, currency, now, now, run),
        )
    return {"run_id": run, "product_sku": sku, "cart_token": cart_token}


def finish_smoke(engine: Engine, body: requests.SmokeRun) -> dict[str, Any]:
    """checkout-admin/finish-smoke: cancel the run's open checkouts and remove its rows."""
    return {"run_id": body.run_id, "removed": _finish(engine, body.run_id)}


def _finish(engine: Engine, run: str) -> dict[str, int]:
    from checkout_cli.engine import checkouts, provider_payments

    # First, with no lock held, what the run has open at a provider is closed: a payment
    # left being created by a killed run, and the open checkout's payment (by cancelling
    # it). Refused (expired meanwhile, or paid): the removal below decides.
    for co in engine.conn.execute(
        "SELECT id, token, status FROM checkouts WHERE test_run = ?", (run,)
    ).fetchall():
        with suppress(CheckoutError):
            provider_payments.settle_attempts(engine, co["id"])
        if co["status"] in OPEN_CHECKOUT_STATES:
            with suppress(CheckoutError):
                checkouts.cancel_checkout(
                    engine,
                    requests.CancelCheckout(checkout_token=co["token"], reason="smoke test"),
                )
    with engine.write() as conn:
        _refuse_if_paid(conn, run)
        removed: dict[str, int] = {}
        for sql in _REMOVE:
            table = sql.split()[2]
            removed[table] = removed.get(table, 0) + conn.execute(sql, {"run": run}).rowcount
        removed["remembered_answers"] = _forget_answers(conn, run)
    return {table: n for table, n in removed.items() if n}


def _refuse_if_paid(conn: sqlite3.Connection, run: str) -> None:
    paid = conn.execute(
        f"SELECT c.token FROM payments p JOIN checkouts c ON c.id = p.checkout_id "
        f"WHERE p.id IN ({_PAYMENTS}) AND p.status = 'paid' LIMIT 1",
        {"run": run},
    ).fetchone()
    if paid is not None:
        raise ConflictError(
            "smoke_run_paid",
            f"smoke run {run} has a paid payment (checkout {paid[0]}); it is kept",
            recovery=f"look at it with `checkout inspect {paid[0]}` and refund it",
        )


def _forget_answers(conn: sqlite3.Connection, run: str) -> int:
    """The server's remembered answers to the run's requests (this one's included)."""
    marker = f":{SMOKE_KEY_PREFIX}{run}-"  # keys are scoped to their caller: ``name:key``
    return conn.execute(
        "DELETE FROM idempotent_requests WHERE instr(key, ?) > 0", (marker,)
    ).rowcount


def _stale_runs(engine: Engine) -> list[str]:
    cutoff = iso(engine.clock() - STALE_AFTER)
    rows = engine.conn.execute(
        "SELECT test_run FROM products WHERE test_run IS NOT NULL AND created_at < ?", (cutoff,)
    ).fetchall()
    return [r[0] for r in rows]


def leftover_runs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Runs still in the store (for `doctor`): live, killed, or kept for a paid payment."""
    rows = conn.execute(
        "SELECT test_run, sku, created_at, EXISTS (SELECT 1 FROM payments p JOIN checkouts c "
        "ON c.id = p.checkout_id WHERE c.test_run = products.test_run AND p.status = 'paid') "
        "FROM products WHERE test_run IS NOT NULL ORDER BY created_at"
    ).fetchall()
    return [
        {"run_id": r[0], "product_sku": r[1], "started_at": r[2], "paid": bool(r[3])} for r in rows
    ]
