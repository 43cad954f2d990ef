"""What PostgreSQL is sent for the engine's SQLite dialect (the statements run in the PG suite)."""

from __future__ import annotations

import pytest

from checkout_cli.engine.pg_sql import inserted_table, translate


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        (
            "UPDATE p SET s = s - :q WHERE sku = :s AND x != :c",
            "UPDATE p SET s = s - %(q)s WHERE sku = %(s)s AND x != %(c)s",
        ),
        ("SELECT v::jsonb FROM t WHERE a = :a", "SELECT v::jsonb FROM t WHERE a = %(a)s"),
        (
            "SELECT name FROM vault WHERE name IS NOT ?",
            "SELECT name FROM vault WHERE name IS DISTINCT FROM %s",
        ),
        ("SELECT 1 WHERE a IS ?", "SELECT 1 WHERE a IS NOT DISTINCT FROM %s"),
        ("SELECT 1 WHERE a.x IS NOT b.y", "SELECT 1 WHERE a.x IS DISTINCT FROM b.y"),
        ("SELECT 1 WHERE id IS NOT (SELECT 2)", "SELECT 1 WHERE id IS DISTINCT FROM (SELECT 2)"),
        (
            "SELECT 1 WHERE a IS NULL AND b IS NOT NULL",
            "SELECT 1 WHERE a IS NULL AND b IS NOT NULL",
        ),
        ("SELECT 1 WHERE a IS NOT DISTINCT FROM b", "SELECT 1 WHERE a IS NOT DISTINCT FROM b"),
        ("SELECT 'a:b ? 5%' WHERE x LIKE ?", "SELECT 'a:b ? 5%%' WHERE x ILIKE %s"),
        ("SELECT GROUP_CONCAT(sku, ',') FROM t", "SELECT string_agg(sku, ',') FROM t"),
        (
            "SELECT json_extract(meta, '$.a.b') FROM t",
            "SELECT (meta::jsonb #>> '{a,b}') FROM t",
        ),
        ("BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
    ],
)
def test_translate(sqlite: str, postgres: str) -> None:
    assert translate(sqlite) == postgres


def test_inserted_table() -> None:
    assert inserted_table("  insert into orders (a) VALUES (?)") == "orders"
    assert inserted_table("UPDATE orders SET a = 1") is None
