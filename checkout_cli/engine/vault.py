"""Write-only secrets (provider keys, SMTP password). Values go in; only names come out.

``secret()`` is for the engine's own use (a provider module, the SMTP transport); no endpoint
returns a value, and nothing here logs one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli.engine.core import Engine
from checkout_cli.errors import NotFoundError, ValidationError

VAULT_NAMES: dict[str, str] = {
    "stripe_secret_key": "Stripe secret API key (sk_…)",
    "stripe_webhook_secret": "Stripe webhook signing secret (whsec_…)",
    "mollie_api_key": "Mollie API key (live_… or test_…)",
    "smtp_password": "password of the SMTP user",
}


def _check_name(name: str) -> None:
    if name not in VAULT_NAMES:
        raise ValidationError(
            "unknown_secret",
            f"no vault entry named {name!r}",
            field="name",
            recovery="names: " + ", ".join(VAULT_NAMES),
        )


def secret(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM vault WHERE name = ?", (name,)).fetchone()
    return row["value"] if row else None


def list_vault(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    stored = {r["name"]: r["set_at"] for r in engine.conn.execute("SELECT name, set_at FROM vault")}
    return {
        "secrets": [
            {"name": name, "description": text, "set": name in stored, "set_at": stored.get(name)}
            for name, text in VAULT_NAMES.items()
        ]
    }


def set_vault(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    _check_name(body["name"])
    with engine.write() as conn:
        conn.execute(
            "INSERT INTO vault (name, value, set_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
            (body["name"], body["value"], engine.now()),
        )
    return {"name": body["name"], "set": True}


def delete_vault(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    _check_name(body["name"])
    with engine.write() as conn:
        if conn.execute("DELETE FROM vault WHERE name = ?", (body["name"],)).rowcount == 0:
            raise NotFoundError("secret_not_found", f"{body['name']} is not set", field="name")
    return {"name": body["name"], "set": False}
