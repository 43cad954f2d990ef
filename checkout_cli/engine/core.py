"""The engine object handlers receive: the store, the clock, who is acting, and small helpers."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from checkout_cli.engine.stores import StoreTarget, open_store

REMOTE_ACTOR_PREFIX = "api:"  # the actor of a call over HTTP: api:TOKEN-NAME


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_token(prefix: str) -> str:
    """``chk_…``/``cart_…``: 20 random base32-ish characters, unguessable and copy-safe."""
    return f"{prefix}_{secrets.token_urlsafe(15).replace('-', 'x').replace('_', 'y')}"


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class Engine:
    """One open store plus the context of the caller (actor, clock, where files go)."""

    def __init__(
        self,
        target: StoreTarget,
        *,
        actor: str = "operator",
        clock: Callable[[], datetime] = utc_now,
        pooled: bool = False,
    ) -> None:
        self.store = open_store(target, pooled=pooled)
        self.actor = actor
        self.clock = clock
        # The Idempotency-Key of the HTTP request being served (scoped to its caller), if any.
        self.request_key: str | None = None

    @property
    def store_id(self) -> str:
        """This store's identity (made with it, kept in backups, new for a new store)."""
        row = self.conn.execute("SELECT value FROM store_info WHERE key = 'store_id'").fetchone()
        return row["value"]

    @property
    def conn(self) -> sqlite3.Connection:
        # A PostgreSQL store's connection answers the engine as sqlite3's does (pg_store.py).
        return cast("sqlite3.Connection", self.store.conn)

    @property
    def data_dir(self) -> Path:
        return self.store.data_dir

    def now(self) -> str:
        return iso(self.clock())

    def write(self, *, durable: bool = True, scrub: bool = False):  # -> ContextManager[Connection]
        return self.store.write(durable=durable, scrub=scrub)

    def read(self):
        return self.store.read()

    def close(self) -> None:
        self.store.close()
