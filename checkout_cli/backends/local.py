"""LocalBackend: the registry's endpoints run in-process by the embedded engine."""

from __future__ import annotations

import importlib
import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkout_cli.config import StoreTarget, is_pg_url
from checkout_cli.endpoints import Endpoint, get_endpoint
from checkout_cli.engine.store import WriteConflict, is_read_only, read_only_error
from checkout_cli.engine.stores import describe
from checkout_cli.errors import NotFoundError, UnavailableError
from checkout_cli.schema import validate

if TYPE_CHECKING:
    from checkout_cli.engine.core import Engine


# Set (to 1) by the test suite: every handler's answer is checked against its endpoint's
# result model, so a published result schema cannot drift from what the engine answers.
CHECK_RESULTS = "CHECKOUT_CHECK_RESULTS"


def check_result(endpoint: Endpoint, result: Any) -> None:
    """Refuse, loudly, an answer its endpoint's result model does not describe."""
    from pydantic import ValidationError as PydanticError

    try:
        endpoint.result_model.model_validate(json.loads(json.dumps(result)))
    except (PydanticError, TypeError, ValueError) as exc:
        raise AssertionError(
            f"{endpoint.service}/{endpoint.name} answered what {endpoint.result_model.__name__} "
            f"does not describe: {exc}"
        ) from exc


# A PostgreSQL transaction aborted for a concurrent one runs again, this many times at most.
WRITE_CONFLICT_ATTEMPTS = 20


def _run(engine: Engine, handler: Any, request: Any) -> dict[str, Any]:
    """The handler, run again from its start when PostgreSQL aborted one of its transactions
    for a concurrent one (``WriteConflict``): its bodies touch only the database, and a call
    whose earlier transactions committed resumes from them, as after a crash. Inside an
    atomic server request the conflict goes up: the whole request runs again there."""
    for attempt in range(WRITE_CONFLICT_ATTEMPTS):
        try:
            result: dict[str, Any] = handler(engine, request)
            return result
        except WriteConflict:
            if engine.store.in_request_transaction:
                raise
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
    raise too_busy()


def too_busy() -> UnavailableError:
    return UnavailableError(
        "database_busy",
        f"the store aborted this call {WRITE_CONFLICT_ATTEMPTS} times for concurrent writes",
        recovery="try again",
    )


class LocalBackend:
    def __init__(
        self,
        db_path: StoreTarget,
        *,
        actor: str = "operator",
        create: bool = True,
        pooled: bool = False,
    ) -> None:
        self.db_path: StoreTarget = db_path if is_pg_url(db_path) else Path(db_path)
        self.actor = actor
        self.create = create
        self.pooled = pooled
        self.description = f"local store {describe(self.db_path)}"
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:  # opened on first use
        if self._engine is None:
            from checkout_cli.engine.core import Engine

            if is_pg_url(self.db_path):
                self._engine = Engine(self.db_path, actor=self.actor, pooled=self.pooled)
                return self._engine
            assert isinstance(self.db_path, Path)
            if not self.create and not self.db_path.exists():
                raise NotFoundError(
                    "store_not_found",
                    f"no store at {self.db_path}",
                    recovery=f"create it with `checkout --db {self.db_path} init`, or check "
                    "the path (--db, CHECKOUT_DB or the profile)",
                )
            if self.db_path.is_dir():
                raise UnavailableError(
                    "not_a_store",
                    f"{self.db_path} is a directory, not a checkout store file",
                    recovery=f"give the store's file, e.g. --db {self.db_path / 'shop.db'}",
                )

            self._engine = Engine(self.db_path, actor=self.actor)
        return self._engine

    def call(self, service: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        endpoint = get_endpoint(service, name)
        request = validate(endpoint.request, body if body is not None else {})
        module_name, function_name = endpoint.handler.split(":")
        handler = getattr(
            importlib.import_module(f"checkout_cli.engine.{module_name}"), function_name
        )
        try:
            engine = self.engine
            if engine.store.read_only and endpoint.writes_store:
                raise read_only_error(self.db_path)  # before it calls out or half-does anything
            result: dict[str, Any] = _run(engine, handler, request)
        except sqlite3.OperationalError as exc:
            if is_read_only(exc):
                raise read_only_error(self.db_path) from None
            if "locked" in str(exc) or "busy" in str(exc):
                raise UnavailableError(
                    "database_busy", f"the store is busy: {exc}", recovery="try again"
                ) from exc
            raise
        except sqlite3.DatabaseError as exc:
            # The base class itself is what SQLite raises for a damaged file ("database disk
            # image is malformed", "file is not a database"); its subclasses are our own bugs.
            if type(exc) is not sqlite3.DatabaseError:
                raise
            raise self._damaged(exc) from None
        if os.environ.get(CHECK_RESULTS) == "1":
            check_result(endpoint, result)
        return result

    def _damaged(self, exc: sqlite3.DatabaseError) -> UnavailableError:
        if not isinstance(self.db_path, Path):
            return UnavailableError("store_damaged", f"the store {describe(self.db_path)}: {exc}")
        if "not a database" in str(exc):
            return UnavailableError(
                "not_a_store",
                f"{self.db_path} is not a checkout store (not an SQLite database file)",
                recovery="check the path given to --db (or CHECKOUT_DB, or the profile)",
            )
        return UnavailableError(
            "store_damaged",
            f"the store {self.db_path} is damaged: {exc}",
            recovery="restore it from a backup; `checkout doctor` names the damage "
            "while the file still opens",
        )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
