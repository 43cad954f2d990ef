"""On PostgreSQL, unrelated checkouts never wait for each other: checkout A's completion is
parked inside its transaction (a trigger makes it wait on an advisory lock this test holds,
after it has taken its product's stock), and meanwhile checkout B gets a new customer and is
completed, both committed; then A is let go and commits.

Synchronisation is by the database alone: A is known to be parked when pg_stat_activity shows
it waiting on the advisory lock, and B is watched with ``pg_blocking_pids`` so that a wait on
any lock A holds fails the test (naming the lock) instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from checkout_cli.engine.invariants import check_invariants
from checkout_cli.engine.stores import open_store
from tests.conftest import CUSTOMER, WatchedBackend, load_fixtures

pytestmark = pytest.mark.usefixtures("pg_cluster")

FLOW = "checkout-flow"
LOCK_KEY = 4242
A_SKU, B_SKU = "LENS-MONTH-6", "LENS-DAILY-30"  # both tracked: each completion takes stock


def ready(backend: WatchedBackend, sku: str) -> str:
    cart = backend.call("shopping-cart", "add-item", {"product_sku": sku, "quantity": 1})
    token = backend.call(FLOW, "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    backend.call(FLOW, "set-customer", {"checkout_token": token, **CUSTOMER})
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    return token


def park_on_stock_of(conn: psycopg.Connection, sku: str) -> None:
    """A trigger: a transaction taking ``sku``'s stock then waits for LOCK_KEY."""
    conn.execute(
        "CREATE FUNCTION park() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_advisory_xact_lock({LOCK_KEY}); RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER park AFTER INSERT ON stock_movements FOR EACH ROW "
        f"WHEN (NEW.sku = '{sku}') EXECUTE FUNCTION park()"
    )


def backend_state(conn: psycopg.Connection, name: str) -> tuple[Any, ...] | None:
    """(wait_event_type, wait_event, blocking pids, query) of the backend named ``name``."""
    return conn.execute(
        "SELECT wait_event_type, wait_event, pg_blocking_pids(pid), query "
        "FROM pg_stat_activity WHERE application_name = %s",
        (name,),
    ).fetchone()


def poll(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds (read from the database: a wait on it, not on the clock)."""
    while not condition():
        time.sleep(0.01)


def run(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_checkout_b_commits_while_checkout_a_holds_its_locks(pg_url: str, tmp_path) -> None:
    setup = WatchedBackend(pg_url, actor="test")
    load_fixtures(setup, tmp_path / "outbox")
    setup.call("checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": True})
    a_token, b_token = ready(setup, A_SKU), ready(setup, B_SKU)
    setup.close()

    holder = psycopg.connect(pg_url, autocommit=True)
    watcher = psycopg.connect(pg_url, autocommit=True)
    park_on_stock_of(holder, A_SKU)
    holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    holder_pid = holder.info.backend_pid
    a = WatchedBackend(f"{pg_url}?application_name=checkout_a", actor="test")
    b = WatchedBackend(f"{pg_url}?application_name=checkout_b", actor="test")
    released = False
    try:
        a_thread, a_outcome = run(
            lambda: a.call(FLOW, "complete-checkout", {"checkout_token": a_token})
        )

        def a_parked() -> bool:
            state = backend_state(watcher, "checkout_a")
            assert a_thread.is_alive(), a_outcome
            return state is not None and state[1] == "advisory" and holder_pid in state[2]

        poll(a_parked)
        # A has taken its stock (row locked, uncommitted) and waits inside its transaction.
        taken = watcher.execute("SELECT stock FROM products WHERE sku = %s", (A_SKU,)).fetchone()
        assert taken == (40,)  # its decrement is not visible: not committed

        def b_work() -> dict[str, Any]:
            other = {**CUSTOMER, "customer": {"email": "bram@example.com", "name": "Bram"}}
            b.call(FLOW, "set-customer", {"checkout_token": b_token, **other})
            return b.call(FLOW, "complete-checkout", {"checkout_token": b_token})

        b_thread, b_outcome = run(b_work)
        while b_thread.is_alive():
            state = backend_state(watcher, "checkout_b")
            blockers = state[2] if state else []
            assert not blockers, f"checkout B waits on {blockers} (A: {a_pid(watcher)}): {state}"
            time.sleep(0.01)
        assert "error" not in b_outcome, b_outcome
        b_done = b_outcome["result"]
        assert b_done["status"] == "completed" and not b_done["already_completed"]
        assert b_done["customer"]["email"] == "bram@example.com"
        assert a_thread.is_alive() and backend_state(watcher, "checkout_a")[1] == "advisory"
        committed = watcher.execute(
            "SELECT o.order_number FROM orders o JOIN checkouts c ON c.id = o.checkout_id "
            "WHERE c.token = %s",
            (b_token,),
        ).fetchall()
        assert committed == [(b_done["order"]["order_number"],)]

        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        released = True
        a_thread.join()
        assert "error" not in a_outcome, a_outcome
        a_done = a_outcome["result"]
        assert a_done["status"] == "completed" and not a_done["already_completed"]
        assert a_done["order"]["order_number"] != b_done["order"]["order_number"]

        again = a.call(FLOW, "complete-checkout", {"checkout_token": a_token})
        assert again["already_completed"] is True
        assert again["order"]["order_number"] == a_done["order"]["order_number"]
    finally:
        if not released:
            holder.execute("SELECT pg_advisory_unlock_all()")
        a.close()
        b.close()
        holder.execute("DROP TRIGGER IF EXISTS park ON stock_movements")
        holder.close()
        watcher.close()

    store = open_store(pg_url)
    try:
        assert check_invariants(store.conn) == []  # type: ignore[arg-type]
        stock = store.conn.execute(
            "SELECT sku, stock FROM products WHERE sku IN (?, ?) ORDER BY sku", (A_SKU, B_SKU)
        ).fetchall()
        assert [tuple(r) for r in stock] == [(B_SKU, 99), (A_SKU, 39)]
        orders = store.conn.execute("SELECT count(*) FROM orders").fetchone()
        assert orders[0] == 2
    finally:
        store.close()


def a_pid(conn: psycopg.Connection) -> Any:
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'checkout_a'"
    ).fetchone()
    return row[0] if row else None
