"""checkout-admin settings endpoints (the table of settings lives in ``settings``)."""

from __future__ import annotations

from typing import Any

from checkout_cli.engine import settings
from checkout_cli.engine.core import Engine
from checkout_cli.errors import ForbiddenError


def get_store(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    with engine.read() as conn:
        return {
            "project_id": settings.read(conn, "project_id"),
            "store_id": engine.store_id,
            "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
        }


def get_settings(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    return {"settings": settings.read_all(engine.conn)}


def set_setting(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    setting = settings.SETTINGS.get(body["key"])
    if setting is not None and setting.local_only and engine.remote_caller:
        raise ForbiddenError(
            "setting_local_only",
            f"{body['key']} decides where a secret is sent; it cannot be changed over the API",
            field="key",
            recovery=f"on the server's own machine: checkout settings set {body['key']} VALUE",
        )
    with engine.write() as conn:
        value = settings.write(conn, body["key"], body["value"])
    return {"key": body["key"], "value": value}
