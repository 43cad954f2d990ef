"""Order-number counters on both stores: gap-free from the ``counters`` row on SQLite, from a
sequence on PostgreSQL that starts after the row a copied store brought along, and there no
hot row that completions of unrelated checkouts would wait on."""

from __future__ import annotations

import threading

from checkout_cli.engine import counters
from checkout_cli.engine.store import WriteConflict
from checkout_cli.engine.stores import open_store
from tests.engine_helpers import cart_with, complete, initiate, invoice, set_customer


def take(store, name: str) -> int:
    """One counter value in its own write transaction, run again on a conflict as the
    backends do."""
    for _ in range(5):
        try:
            with store.write() as conn:
                return counters.next_value(conn, name)
        except WriteConflict:
            continue
    raise AssertionError("no value after 5 attempts")


def test_counter_continues_from_the_stored_row(store):
    opened = open_store(store)
    try:
        with opened.write() as conn:
            conn.execute("INSERT INTO counters (name, value) VALUES ('order_number:2031', 41)")
        assert [take(opened, "order_number:2031") for _ in range(3)] == [42, 43, 44]
        assert take(opened, "order_number:2032") == 1  # each year its own counter
        with opened.read() as conn:
            values = counters.current_values(conn)
        assert values["order_number:2031"] == 44 and values["order_number:2032"] == 1
    finally:
        opened.close()


def test_orders_are_numbered_in_sequence(backend):
    tokens = []
    for _ in range(2):
        token = initiate(backend, cart_with(backend, [("LENS-DAILY-30", 1)]))["checkout_token"]
        set_customer(backend, token)
        invoice(backend, token)
        tokens.append(token)
    numbers = [complete(backend, token)["order"]["order_number"] for token in tokens]
    year, n = numbers[0].split("-")
    assert numbers[1] == f"{year}-{int(n) + 1:06d}"


def test_two_open_transactions_take_numbers_without_waiting(pg_url):
    """On PostgreSQL a transaction holding a number does not hold up another that takes one:
    B takes its number and commits while A is still open (a counter row would make B wait
    for A's row lock, and then abort it)."""
    first, second = open_store(pg_url), open_store(pg_url)
    try:
        take(first, "order_number:2031")  # the sequence exists from here on
        done: list[int] = []
        with first.write() as conn:
            a = counters.next_value(conn, "order_number:2031")

            def other() -> None:
                done.append(take(second, "order_number:2031"))

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(timeout=60)
            assert done, "the second transaction waited for the first"
        assert sorted([a, *done]) == [2, 3]
    finally:
        first.close()
        second.close()
