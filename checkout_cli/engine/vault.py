"""Write-only secrets (provider keys, SMTP password), encrypted at rest. Values go in; only
names come out.

Each value is sealed with AES-GCM under this store's key, bound to the store and its name
(``vault_cipher``); the key is kept outside the store (``vault_keys``). ``secret()`` is for
the engine's own use (a provider module, the SMTP transport); no endpoint returns a value,
and nothing here logs one. Names and when they were set need no key, so ``list-vault`` and
``delete-vault`` work without it. Writes run with ``scrub``: overwritten values are zeroed in
the file and the WAL is emptied, so no older value (or ciphertext under a retired key) stays.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import vault_cipher, vault_keys, vault_rows
from checkout_cli.engine.core import Engine
from checkout_cli.errors import NotFoundError, UsageError, ValidationError

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


def _row(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT value FROM vault WHERE name = ?", (name,)).fetchone()


def _holds_key_of(keyring: vault_keys.Keyring | None, stored: str) -> bool:
    key_id = vault_cipher.key_id_of(stored)
    return keyring is not None and key_id is not None and keyring.find(key_id) is not None


def secret(conn: sqlite3.Connection, name: str) -> str | None:
    """The plaintext of one secret, or None if it is not set."""
    store_id, path = vault_rows.store_id(conn), vault_rows.store_path(conn)
    row = _row(conn, name)
    if row is None:
        return None
    keyring = vault_keys.load(store_id, path)
    if keyring is not None and not _holds_key_of(keyring, row["value"]):
        # A rotation may have resealed the value and retired its key between the two reads.
        row, keyring = _row(conn, name), vault_keys.load(store_id, path)
        if row is None:
            return None
    return vault_cipher.unseal(keyring, store_id, name, row["value"])


def _check_keys_at_hand(
    conn: sqlite3.Connection, keyring: vault_keys.Keyring | None, replacing: str | None
) -> None:
    """Refuse to write while a value (other than the one replaced) is sealed under a key not
    at hand: sealing under a new key would strand it."""
    store_id = vault_rows.store_id(conn)
    for row in conn.execute("SELECT name, value FROM vault WHERE name IS NOT ?", (replacing,)):
        if not _holds_key_of(keyring, row["value"]):
            vault_cipher.unseal(keyring, store_id, row["name"], row["value"])  # raises why


def _writing_keyring(
    conn: sqlite3.Connection, replacing: str | None
) -> tuple[vault_keys.Keyring, bool]:
    """The keys a write seals with, and whether the key file was made just now (the first
    write makes it)."""
    store_id, path = vault_rows.store_id(conn), vault_rows.store_path(conn)
    keyring = vault_keys.load(store_id, path)
    _check_keys_at_hand(conn, keyring, replacing)
    if keyring is not None:
        return keyring, False
    return vault_keys.create(store_id, path), True


def list_vault(engine: Engine, body: requests.NoFields) -> dict[str, Any]:
    stored = {r["name"]: r for r in engine.conn.execute("SELECT name, value, set_at FROM vault")}
    return {
        "secrets": [
            {
                "name": name,
                "description": text,
                "set": name in stored,
                "set_at": stored[name]["set_at"] if name in stored else None,
                "key_id": vault_cipher.key_id_of(stored[name]["value"]) if name in stored else None,
            }
            for name, text in VAULT_NAMES.items()
        ]
    }


def set_vault(engine: Engine, body: requests.SetVault) -> dict[str, Any]:
    name = body.name
    _check_name(name)
    with engine.write(scrub=True) as conn:
        keyring, made = _writing_keyring(conn, name)
        sealed = vault_cipher.seal(keyring.current, vault_rows.store_id(conn), name, body.value)
        conn.execute(
            "INSERT INTO vault (name, value, set_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
            (name, sealed, engine.now()),
        )
    # A new key file is news: the operator must keep a copy of it apart from the store.
    return {
        "name": name,
        "set": True,
        "key_id": keyring.current.id,
        "new_key_file": str(keyring.path) if made else None,
    }


def delete_vault(engine: Engine, body: requests.VaultName) -> dict[str, Any]:
    _check_name(body.name)
    with engine.write(scrub=True) as conn:
        if conn.execute("DELETE FROM vault WHERE name = ?", (body.name,)).rowcount == 0:
            raise NotFoundError("secret_not_found", f"{body.name} is not set", field="name")
    return {"name": body.name, "set": False}


def _reseal_all(engine: Engine, keyring: vault_keys.Keyring) -> int:
    """Every value opened with any key of ``keyring`` and sealed under its first, in one
    transaction: a failure changes nothing."""
    with engine.write(scrub=True) as conn:
        store_id = vault_rows.store_id(conn)
        rows = conn.execute("SELECT name, value FROM vault").fetchall()
        for row in rows:
            plain = vault_cipher.unseal(keyring, store_id, row["name"], row["value"])
            conn.execute(
                "UPDATE vault SET value = ? WHERE name = ?",
                (vault_cipher.seal(keyring.current, store_id, row["name"], plain), row["name"]),
            )
    return len(rows)


def rotate_key(engine: Engine) -> dict[str, Any]:
    """A new key for this store's vault; every value resealed under it; the old key retired.

    With a key file, in three steps, each safe to be cut off after: (1) the new key is
    written first in the key file, beside the old; (2) every value is resealed under it in one
    transaction; (3) the key file is rewritten with the new key alone. Until (3) the file holds
    every key a value may need; running the command again finishes the job. With
    ``CHECKOUT_VAULT_KEY`` the environment is the operator's: its first key is the new one,
    and the operator drops the others from it afterwards.
    """
    conn = engine.conn
    store_id, path = vault_rows.store_id(conn), vault_rows.store_path(conn)
    keyring = vault_keys.load(store_id, path)
    if keyring is None:  # no key yet: the first one, unless values need a key not at hand
        made, _ = _writing_keyring(conn, None)
        return {"key_id": made.current.id, "key_source": made.where, "resealed": 0, "retired": []}
    _check_keys_at_hand(conn, keyring, None)
    if keyring.path is None:
        values = [r[0] for r in conn.execute("SELECT value FROM vault")]
        if len(keyring.keys) == 1 and all(
            vault_cipher.key_id_of(v) == keyring.current.id for v in values
        ):
            raise UsageError(
                "vault_key_not_new",
                f"{vault_keys.KEY_ENV} holds only the key the vault already uses",
                recovery=f"put a new key first: {vault_keys.KEY_ENV}=NEW,OLD (make one with "
                "`openssl rand -base64 32`), run this again, then drop OLD",
            )
        new, retired = keyring.current, keyring.keys[1:]
        resealed = _reseal_all(engine, keyring)
    else:
        new, retired = vault_keys.generate(), keyring.keys
        staged = vault_keys.save(store_id, keyring.path, (new, *retired))  # (1)
        resealed = _reseal_all(engine, staged)  # (2)
        vault_keys.save(store_id, keyring.path, (new,))  # (3)
    return {
        "key_id": new.id,
        "key_source": keyring.where,
        "resealed": resealed,
        "retired": [k.id for k in retired],
    }
