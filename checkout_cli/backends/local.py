"""LocalBackend: the registry's endpoints run in-process by the embedded engine."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkout_cli.endpoints import get_endpoint
from checkout_cli.errors import UnavailableError

if TYPE_CHECKING:
    from checkout_cli.engine.core import Engine


class LocalBackend:
    def __init__(self, db_path: Path, *, actor: str = "operator") -> None:
        self.db_path = Path(db_path)
        self.actor = actor
        self.description = f"local store {self.db_path}"
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:  # opened on first use
        if self._engine is None:
            from checkout_cli.engine.core import Engine

            self._engine = Engine(self.db_path, actor=self.actor)
        return self._engine

    def call(self, service: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        endpoint = get_endpoint(service, name)
        request = endpoint.request.check(body if body is not None else {}, "")
        module_name, function_name = endpoint.handler.split(":")
        handler = getattr(
            importlib.import_module(f"checkout_cli.engine.{module_name}"), function_name
        )
        try:
            return handler(self.engine, request)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise UnavailableError(
                    "database_busy", f"the store is busy: {exc}", recovery="try again"
                ) from exc
            raise

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
