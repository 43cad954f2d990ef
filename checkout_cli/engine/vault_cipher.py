"""The vault's ciphertexts: AES-256-GCM, each bound to its store and its vault name.

A stored value is ``v1:<key id>:<base64url of nonce + ciphertext>``. The associated data is
the store's id and the entry's name, so a value copied to another row or another store does
not decrypt. ``cryptography`` is imported here, on first use, never at start-up.
"""

from __future__ import annotations

import base64
import os

from checkout_cli.engine.vault_keys import Key, Keyring, expected_at
from checkout_cli.errors import ConflictError

VERSION = "v1"
NONCE_BYTES = 12


def _associated_data(store_id: str, name: str) -> bytes:
    return f"checkout-cli vault {VERSION}\0{store_id}\0{name}".encode()


def seal(key: Key, store_id: str, name: str, value: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.material).encrypt(nonce, value.encode(), _associated_data(store_id, name))
    return f"{VERSION}:{key.id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def key_id_of(stored: str) -> str | None:
    """The id of the key a stored value needs (no key, no decryption)."""
    parts = stored.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == VERSION else None


def unseal(keyring: Keyring | None, store_id: str, name: str, stored: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id = key_id_of(stored)
    if keyring is None:
        raise ConflictError(
            "vault_key_missing",
            f"the vault of store {store_id} is encrypted, and its key is not here: "
            f"expected in {expected_at(store_id)}",
            recovery="restore the key file from your copy, or set CHECKOUT_VAULT_KEY; if the "
            "key is lost, `checkout vault delete` each secret and set it again",
        )
    key = keyring.find(key_id) if key_id else None
    if key_id is not None and key is None:
        held = ", ".join(k.id for k in keyring.keys)
        raise ConflictError(
            "vault_key_wrong",
            f"{name} is encrypted with key {key_id}, which {keyring.where} does not hold "
            f"(it holds {held})",
            recovery=f"give this store's own key in {expected_at(store_id)}",
        )
    try:
        if key is None:
            raise ValueError("not a sealed value")
        raw = base64.urlsafe_b64decode(stored.split(":")[2])
        plain = AESGCM(key.material).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(store_id, name)
        )
        return plain.decode()
    except (InvalidTag, ValueError):  # ValueError: also bad base64 and bad UTF-8
        raise ConflictError(
            "vault_value_unreadable",
            f"{name} in the vault does not decrypt: it was altered, or copied from another "
            "store or vault entry",
            recovery=f"set it again: `checkout vault set {name}`",
        ) from None
