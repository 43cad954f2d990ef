"""Webhook signatures, as Stripe signs its webhooks.

Each subscription has its own secret (``whsec_`` + 32 random bytes, hex), sealed in the
vault under ``webhook_secret:<subscription public id>``. A delivery carries
``Checkout-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``; a receiver
recomputes the HMAC over the raw body and refuses a timestamp older than its tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time

from checkout_cli.engine import vault, vault_cipher, vault_rows

SIGNATURE_HEADER = "Checkout-Signature"
EVENT_ID_HEADER = "Checkout-Event-Id"
DELIVERY_ID_HEADER = "Checkout-Delivery-Id"
SECRET_PREFIX = "whsec_"


def vault_name(subscription_public_id: str) -> str:
    return f"webhook_secret:{subscription_public_id}"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def store_secret(conn: sqlite3.Connection, name: str, value: str, now: str) -> None:
    """Seal a subscription's secret into the vault (inside the caller's scrubbing write)."""
    keyring, _made = vault._writing_keyring(conn, name)
    sealed = vault_cipher.seal(keyring.current, vault_rows.store_id(conn), name, value)
    conn.execute(
        "INSERT INTO vault (name, value, set_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
        (name, sealed, now),
    )


def load_secret(conn: sqlite3.Connection, name: str) -> str | None:
    return vault.secret(conn, name)


def signature(secret: str, timestamp: int, body: str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, body: str, timestamp: int | None = None) -> str:
    """The ``Checkout-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: str, header: str, body: str | bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    text = body.decode() if isinstance(body, bytes) else body
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts.get("t", [""])[0])
    except ValueError:
        return False
    moment = time.time() if now is None else now
    if tolerance and abs(moment - t) > tolerance:
        return False
    expected = signature(secret, t, text)
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
