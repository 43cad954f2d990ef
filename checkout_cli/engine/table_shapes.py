"""A store's tables as a copy of the store needs them: columns, key and foreign keys.

Each store reads its own catalogue (``Store.table_shapes``, ``PgStore.table_shapes``); the
copy (engine/store_copy.py) orders the tables so every row's parents are there before it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableShape:
    name: str
    columns: tuple[str, ...]  # in the table's own order
    key: tuple[str, ...]  # the primary key's columns (empty: none)
    references: tuple[tuple[str, str], ...]  # (column, parent table), one per foreign key
