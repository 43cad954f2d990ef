"""Named counters (``order_number:2026``): the next value, and every counter's current value.

On SQLite a counter is a row in ``counters``, bumped in the caller's transaction (there is one
writer at a time, so numbers have no gaps). On PostgreSQL that row would be one hot row every
completion in the shop writes: concurrent completions of unrelated checkouts would wait on its
lock and then abort each other under SERIALIZABLE. There a counter is a sequence instead
(``PgStore`` makes it on first use, starting after the ``counters`` row a copied store brought
along): no lock, no conflict, at the price of gaps where a transaction that took a number
rolled back or was run again.
"""

from __future__ import annotations

from typing import Any


def next_value(conn: Any, name: str) -> int:
    """The counter's next value, taken in the caller's transaction."""
    in_sequence = getattr(conn, "next_in_sequence", None)
    if in_sequence is not None:
        return int(in_sequence(name))
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
        (name,),
    )
    return int(conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])


def current_values(conn: Any) -> dict[str, int]:
    """Every counter's last value given out (what a copy of the store must carry along)."""
    values = {row[0]: int(row[1]) for row in conn.execute("SELECT name, value FROM counters")}
    in_sequences = getattr(conn, "sequence_values", None)
    if in_sequences is not None:
        for name, value in in_sequences().items():
            values[name] = max(value, values.get(name, 0))
    return values
