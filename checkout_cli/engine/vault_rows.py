"""The vault's rows with only a connection (no Engine): the store's id and file, which key a
vault's values, and sealing older releases' plaintext values in place. The schema upgrade
that encrypts the vault runs here, below the engine."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from checkout_cli.engine import vault_cipher, vault_keys


def store_id(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT value FROM store_info WHERE key = 'store_id'").fetchone()[0]


def store_path(conn: sqlite3.Connection) -> Path:
    return Path(conn.execute("PRAGMA database_list").fetchone()["file"])


def seal_plaintext(conn: sqlite3.Connection) -> None:
    """The upgrade to an encrypted vault: older releases' plaintext values sealed in place,
    inside the migration's transaction (a key file is made if there is no key yet)."""
    rows = conn.execute("SELECT name, value FROM vault").fetchall()
    if not rows:
        return
    sid, path = store_id(conn), store_path(conn)
    key = (vault_keys.load(sid, path) or vault_keys.create(sid, path)).current
    for row in rows:
        conn.execute(
            "UPDATE vault SET value = ? WHERE name = ?",
            (vault_cipher.seal(key, sid, row["name"], row["value"]), row["name"]),
        )
