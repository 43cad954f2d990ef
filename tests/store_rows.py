"""Reading a test's store behind the engine's back: an SQLite file or a PostgreSQL database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from checkout_cli.config import StoreTarget, is_pg_url
from checkout_cli.engine.pg_sql import translate


def query(target: StoreTarget, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """The rows of one statement in SQLite's dialect, as tuples, on either store."""
    if is_pg_url(target):
        import psycopg

        with psycopg.connect(str(target), autocommit=True) as conn:
            cursor = conn.execute(translate(sql), params or None)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    conn = sqlite3.connect(Path(target))
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()  # a statement that writes is planted for good, as on PostgreSQL
        return rows
    finally:
        conn.close()


def dump(target: StoreTarget) -> list[str]:
    """The store's whole content, to compare before and after a refused command."""
    if not is_pg_url(target):
        conn = sqlite3.connect(Path(target))
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    tables = query(
        target,
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
    )
    lines = []
    for (table,) in tables:
        lines += sorted(f"{table} {row!r}" for row in query(target, f'SELECT * FROM "{table}"'))
    return lines
