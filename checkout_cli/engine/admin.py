"""checkout-admin settings endpoints (the table of settings lives in ``settings``)."""

from __future__ import annotations

from typing import Any

from checkout_cli import requests
from checkout_cli.engine import settings
from checkout_cli.engine.core import Engine


def get_store(engine: Engine, body: requests.NoFields) -> dict[str, Any]:
    with engine.read() as conn:
        return {
            "project_id": settings.read(conn, "project_id"),
            "store_id": engine.store_id,
            "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
        }


def get_settings(engine: Engine, body: requests.NoFields) -> dict[str, Any]:
    return {"settings": settings.read_all(engine.conn)}


def set_setting(engine: Engine, body: requests.SetSetting) -> dict[str, Any]:
    # Local-only settings (`Setting.local_only`) never get here over HTTP or MCP: those faces
    # refuse them first (`checkout_cli.access`).
    with engine.write() as conn:
        value = settings.write(conn, body.key, body.value)
    return {"key": body.key, "value": value}


def import_settings(engine: Engine, body: requests.ImportSettings) -> dict[str, Any]:
    """All or nothing: every key and value is checked before the one write transaction."""
    checked = settings.check_all(body.settings)
    with engine.write() as conn:
        for key, value in checked.items():
            settings.store(conn, key, value)
    return {"settings": checked}


def unset_setting(engine: Engine, body: requests.SettingKey) -> dict[str, Any]:
    """The setting back at its default (its row removed: a later default change applies)."""
    key = body.key
    setting = settings.SETTINGS.get(key)
    if setting is None:
        raise settings.unknown(key)
    with engine.write() as conn:
        was_set = conn.execute("DELETE FROM settings WHERE key = ?", (key,)).rowcount > 0
    return {"key": key, "value": setting.default, "was_set": was_set}
