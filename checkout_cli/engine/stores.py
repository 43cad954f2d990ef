"""The store a target names (``config.is_pg_url``): a ``postgresql://`` URL opens a PostgreSQL
database, anything else the SQLite file at that path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from checkout_cli.config import StoreTarget, is_pg_url

if TYPE_CHECKING:
    from checkout_cli.engine.pg_store import PgStore
    from checkout_cli.engine.store import Store


def open_store(target: StoreTarget, *, pooled: bool = False) -> Store | PgStore:
    """The store behind ``target`` (``pooled``: connections from this process's pool, as
    ``checkout serve`` keeps them)."""
    if is_pg_url(target):
        assert isinstance(target, str)
        from checkout_cli.engine import pg_store

        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise pg_store.missing_driver() from None
        pool = pg_store.shared_pool(target) if pooled else None
        return pg_store.PgStore(target, pool=pool)
    from checkout_cli.engine.store import Store

    return Store(Path(target))


def describe(target: StoreTarget) -> str:
    """The target as shown to an operator: a URL never with its password."""
    if is_pg_url(target):
        from checkout_cli.engine.pg_store import describe as describe_url

        return describe_url(str(target))
    return str(target)


def store_exists(target: StoreTarget) -> bool:
    """Whether ``target`` already holds a store (an SQLite file; a database with our schema)."""
    if is_pg_url(target):
        from checkout_cli.engine import pg_schema, pg_store

        with pg_store.connection(str(target)) as raw:
            return pg_schema.current_version(raw) > 0
    return Path(target).exists()
