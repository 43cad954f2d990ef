"""The PostgreSQL schema is the SQLite one: tables, columns, keys, indexes, seeded rows.

A SQLite store made by engine/store.py and a PostgreSQL database migrated by
engine/pg_schema.py are read back from their catalogs and compared, so a migration added to
one store and not the other (or made differently) fails here.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from checkout_cli.engine import pg_schema  # noqa: E402
from checkout_cli.engine.schema import SCHEMA_VERSION  # noqa: E402
from checkout_cli.engine.store import Store  # noqa: E402
from checkout_cli.errors import ConflictError  # noqa: E402


@pytest.fixture
def pg_conn(pg_url: str) -> Iterator[Any]:
    """A connection to a new, empty database on the test cluster (dropped after the test)."""
    conn = psycopg.connect(pg_url)
    try:
        yield conn
    finally:
        conn.close()


def _migrate(conn: Any) -> int:
    with conn.transaction():
        return pg_schema.migrate(conn)


@dataclass
class Shape:
    """What the comparison reads of one store's catalog."""

    tables: dict[str, list[tuple[str, str, bool, str | None]]]  # name, kind, not null, default
    primary_keys: dict[str, tuple[str, ...]]
    identity: set[str]  # tables whose key is made by the store (rowid alias / identity)
    # table, columns in order, unique, the WHERE of a partial index
    indexes: dict[str, tuple[str, tuple[str, ...], bool, str | None]]
    foreign_keys: set[tuple[str, tuple[str, ...], str, tuple[str, ...]]]
    rows: dict[str, int]
    store_info_keys: set[str]


def _default(text: str | None) -> str | None:
    """A column default as its value: SQLite keeps `0`, `'0'` or `'active'`, PostgreSQL
    `'active'::text`; an INTEGER column's `'0'` is stored as the integer 0."""
    if text is None:
        return None
    text = re.sub(r"::[a-z ]+$", "", text)
    return text[1:-1] if text.startswith("'") and text.endswith("'") else text


def _predicate(text: str | None) -> str | None:
    """A partial index's WHERE in one spelling: PostgreSQL shows `x IN ('a', 'b')` as
    `(x = ANY (ARRAY['a'::text, 'b'::text]))`."""
    if text is None:
        return None
    text = text.replace("::text", "")
    text = re.sub(r"(\w+) IN \(([^)]*)\)", r"\1 = ANY (ARRAY[\2])", text)
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return text


def _sqlite_shape(path: Path) -> Shape:
    conn = sqlite3.connect(path)
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    tables: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    primary_keys: dict[str, tuple[str, ...]] = {}
    identity: set[str] = set()
    foreign_keys: set[tuple[str, tuple[str, ...], str, tuple[str, ...]]] = set()
    indexes: dict[str, tuple[str, tuple[str, ...], bool, str | None]] = {}
    for table in names:
        info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        # A key column holds no NULL in PostgreSQL; SQLite's rowid alias can't either.
        tables[table] = [
            (name, kind.upper(), bool(notnull) or pk > 0, _default(dflt))
            for _, name, kind, notnull, dflt, pk in info
        ]
        pk = tuple(name for *_, name in sorted((r[5], r[1]) for r in info if r[5] > 0))
        primary_keys[table] = pk
        if len(pk) == 1 and next(r[2] for r in info if r[1] == pk[0]).upper() == "INTEGER":
            identity.add(table)
        grouped: dict[int, list[tuple[str, str, str]]] = {}
        for fk in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
            grouped.setdefault(fk[0], []).append((fk[2], fk[3], fk[4]))
        for parts in grouped.values():
            target = parts[0][0]
            to = tuple(p[2] for p in parts)
            if None in to:  # REFERENCES t: its primary key
                to = primary_keys.get(target) or tuple(
                    r[1] for r in conn.execute(f'PRAGMA table_info("{target}")') if r[5] > 0
                )
            foreign_keys.add((table, tuple(p[1] for p in parts), target, to))
        for _, name, unique, origin, partial in conn.execute(f'PRAGMA index_list("{table}")'):
            if origin == "pk":
                continue
            columns = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{name}")'))
            where = None
            if partial:
                sql = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
                ).fetchone()[0]
                where = _predicate(sql.split(" WHERE ", 1)[1])
            indexes[name] = (table, columns, bool(unique), where)
    rows = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in names}
    keys = {r[0] for r in conn.execute("SELECT key FROM store_info")}
    conn.close()
    return Shape(tables, primary_keys, identity, indexes, foreign_keys, rows, keys)


def _pg_shape(conn: Any) -> Shape:
    def q(sql: str, *params: object) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    names = [
        r[0]
        for r in q(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name <> 'schema_migrations'"
        )
    ]
    tables: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    identity: set[str] = set()
    for table in names:
        columns = q(
            "SELECT column_name, data_type, is_nullable, column_default, is_identity, "
            "collation_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s ORDER BY ordinal_position",
            table,
        )
        kinds = {"bigint": "INTEGER", "text": "TEXT"}
        tables[table] = []
        for name, kind, nullable, dflt, is_identity, collation in columns:
            if kind == "text":
                assert collation == "C", f"{table}.{name} is not COLLATE C"
            if is_identity == "YES":
                identity.add(table)
            tables[table].append((name, kinds.get(kind, kind), nullable == "NO", _default(dflt)))
    primary_keys: dict[str, tuple[str, ...]] = {t: () for t in names}
    indexes: dict[str, tuple[str, tuple[str, ...], bool, str | None]] = {}
    for table, name, unique, primary, where, columns in q(
        "SELECT t.relname, i.relname, x.indisunique, x.indisprimary, "
        "pg_get_expr(x.indpred, x.indrelid), "
        "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace "
        "WHERE s.nspname = 'public' AND t.relname <> 'schema_migrations'"
    ):
        if primary:
            primary_keys[table] = tuple(columns)
        else:
            indexes[name] = (table, tuple(columns), unique, _predicate(where))
    foreign_keys = {
        (table, tuple(src), target, tuple(dst))
        for table, target, src, dst in q(
            "SELECT t.relname, r.relname, "
            "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), "
            "ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_class r ON r.oid = c.confrelid "
            "JOIN pg_namespace s ON s.oid = t.relnamespace "
            "WHERE c.contype = 'f' AND s.nspname = 'public'"
        )
    }
    rows = {t: q(f'SELECT COUNT(*) FROM "{t}"')[0][0] for t in names}
    keys = {r[0] for r in q("SELECT key FROM store_info")}
    return Shape(tables, primary_keys, identity, indexes, foreign_keys, rows, keys)


@pytest.fixture
def sqlite_shape(tmp_path: Path) -> Shape:
    path = tmp_path / "store.db"
    Store(path).close()
    return _sqlite_shape(path)


def test_a_new_postgresql_store_has_the_sqlite_stores_schema(
    pg_conn: Any, sqlite_shape: Shape
) -> None:
    assert pg_schema.current_version(pg_conn) == 0
    assert _migrate(pg_conn) == 0
    assert pg_schema.current_version(pg_conn) == SCHEMA_VERSION
    pg = _pg_shape(pg_conn)
    lite = sqlite_shape

    assert sorted(pg.tables) == sorted(lite.tables)
    assert lite.tables and lite.indexes and lite.foreign_keys  # the catalogs were read
    for table, columns in lite.tables.items():
        # Names in order, kind, NOT NULL and default, column by column.
        assert pg.tables[table] == columns, table
    assert pg.primary_keys == lite.primary_keys
    assert pg.identity == lite.identity
    assert pg.indexes == lite.indexes  # names, columns in order, unique, WHERE
    assert pg.foreign_keys == lite.foreign_keys
    assert pg.rows == lite.rows
    assert pg.store_info_keys == lite.store_info_keys == {"store_id"}


def test_the_postgresql_store_keeps_sqlites_behaviour(pg_conn: Any) -> None:
    """Keys made by the store, byte order for text, money past 2^31, partial uniqueness."""
    _migrate(pg_conn)
    with pg_conn.transaction():
        for sku in ("b", "B", "a", "_"):
            pg_conn.execute(
                "INSERT INTO products (sku, name, price_cents, currency) VALUES (%s, 'x', %s, "
                "'EUR')",
                (sku, 2**40),
            )
        assert [r[0] for r in pg_conn.execute("SELECT sku FROM products ORDER BY sku")] == [
            "B",
            "_",
            "a",
            "b",
        ]
        row = pg_conn.execute(
            "SELECT allow_backorder, status, meta_defs, config, price_cents FROM products "
            "WHERE sku = 'a'"
        ).fetchone()
        assert row == (0, "active", "[]", "{}", 2**40)
        ids = [
            pg_conn.execute(
                "INSERT INTO carts (token, status, currency) VALUES (%s, 'active', 'EUR') "
                "RETURNING id",
                (f"cart_{n}",),
            ).fetchone()[0]
            for n in range(2)
        ]
        assert ids == [1, 2]
        insert = (
            "INSERT INTO checkouts (token, cart_id, status, currency, subtotal_cents, "
            "shipping_cents, tax_cents, total_cents) VALUES (%s, 1, %s, 'EUR', 0, 0, 0, 0)"
        )
        pg_conn.execute(insert, ("co_1", "cancelled"))
        pg_conn.execute(insert, ("co_2", "active"))
    with pytest.raises(psycopg.errors.UniqueViolation, match="one_open_checkout_per_cart"):
        pg_conn.execute(insert, ("co_3", "payment_pending"))
    pg_conn.rollback()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pg_conn.execute(
            "INSERT INTO cart_items (cart_id, product_sku, quantity) VALUES (1, 'missing', 1)"
        )
    pg_conn.rollback()


def test_migrating_a_current_store_changes_nothing(pg_conn: Any) -> None:
    _migrate(pg_conn)
    before = pg_conn.execute("SELECT value FROM store_info WHERE key = 'store_id'").fetchone()
    assert before[0].startswith("store_")
    pg_conn.commit()
    assert _migrate(pg_conn) == SCHEMA_VERSION
    assert pg_conn.execute("SELECT value FROM store_info").fetchall() == [before]
    assert [r[0] for r in pg_conn.execute("SELECT version FROM schema_migrations")] == [
        SCHEMA_VERSION
    ]


def test_a_store_from_a_newer_release_is_refused(pg_conn: Any) -> None:
    _migrate(pg_conn)
    with pg_conn.transaction():
        pg_conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, 'later')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(ConflictError) as caught:
        _migrate(pg_conn)
    assert caught.value.code == "store_too_new"
    assert f"schema version {SCHEMA_VERSION + 1}" in caught.value.message
    assert pg_schema.current_version(pg_conn) == SCHEMA_VERSION + 1
