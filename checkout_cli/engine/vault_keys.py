"""Where the vault's keys live: ``CHECKOUT_VAULT_KEY``, or one key file per store.

A key is 32 random bytes written as base64. A keyring is a list of keys: the first encrypts,
the others only decrypt (there are several only while a key rotation is under way). Each key
has a short public id, a hash of the key, that each ciphertext carries, so a value names the
key it needs without revealing it.

``CHECKOUT_VAULT_KEY`` (a server's secret manager sets it) holds one or more keys separated
by commas or whitespace; while it is set no key file is read or made. Otherwise each store
has its own key file, ``vault-keys/<store_id>.key`` in the config dir: 0600 in a 0700
directory, never in the store's own directory (a copy of the store must not carry its key),
made by the first ``vault set``. One file per store, so rotating one store's key can never
strand another store's values. A key file others may read is refused, as ssh refuses such a
private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from checkout_cli.errors import ConflictError

KEY_ENV = "CHECKOUT_VAULT_KEY"
KEY_BYTES = 32
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Key:
    id: str
    material: bytes = field(repr=False)


def key_of(material: bytes) -> Key:
    digest = hashlib.sha256(b"checkout-cli vault key id\0" + material).hexdigest()
    return Key(f"k{digest[:12]}", material)


def generate() -> Key:
    return key_of(secrets.token_bytes(KEY_BYTES))


@dataclass(frozen=True)
class Keyring:
    keys: tuple[Key, ...]
    where: str  # for messages: the env var or the key file's path
    path: Path | None = None  # the key file; None when the keys come from the environment

    @property
    def current(self) -> Key:
        return self.keys[0]

    def find(self, key_id: str) -> Key | None:
        return next((k for k in self.keys if k.id == key_id), None)


def key_file(store_id: str) -> Path:
    from checkout_cli.config import config_dir

    return config_dir() / "vault-keys" / f"{store_id}.key"


def expected_at(store_id: str) -> str:
    """Where a key is looked for, for an error message."""
    return f"{KEY_ENV} or the key file {key_file(store_id)}"


def load(store_id: str, store_path: Path) -> Keyring | None:
    """This store's keys, or None when there are none yet (no env key, no key file)."""
    text = os.environ.get(KEY_ENV, "").strip()
    if text:
        return Keyring(_parse(text, KEY_ENV), KEY_ENV)
    path = key_file(store_id)
    _check_apart_from_store(path, store_path)
    try:
        with path.open() as handle:
            mode = os.fstat(handle.fileno()).st_mode & 0o777
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if mode & 0o077:
        raise ConflictError(
            "vault_key_insecure",
            f"the vault key file {path} may be read by others (mode {mode:04o})",
            recovery=f"chmod 600 {path}, and make a new key if others may have read it "
            "(`checkout vault rotate-key`)",
        )
    return Keyring(_parse(text, str(path)), str(path), path)


def create(store_id: str, store_path: Path) -> Keyring:
    """A new key file for this store; if another process made one first, that one."""
    path = key_file(store_id)
    _check_apart_from_store(path, store_path)
    key = generate()
    try:
        _write_new(path, _file_text(store_id, (key,)))
    except FileExistsError:  # another process made it first: use that one
        return load(store_id, store_path) or create(store_id, store_path)
    return Keyring((key,), str(path), path)


def save(store_id: str, path: Path, keys: tuple[Key, ...]) -> Keyring:
    """Replace a key file at once: a reader sees the old keys or the new, never a mixture."""
    _write_new(path, _file_text(store_id, keys), replace=True)
    return Keyring(keys, str(path), path)


def _file_text(store_id: str, keys: tuple[Key, ...]) -> str:
    lines = [
        f"# checkout-cli: the vault key of {store_id}.",
        "# Keep a copy apart from the store's backups: without it the vault cannot be read.",
        "# The first key encrypts; any others only decrypt (a rotation under way).",
        *(base64.b64encode(k.material).decode() for k in keys),
    ]
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str, *, replace: bool = False) -> None:
    """Write a 0600 file whole (temp file, fsync, then link or rename into place)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file exists: two first `vault set`s make one key
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the new name is on disk, not only the new content
    finally:
        os.close(dir_fd)


def _parse(text: str, where: str) -> tuple[Key, ...]:
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    words = [w for w in _SEPARATORS.split(" ".join(lines)) if w]
    keys = []
    for word in words:
        try:
            padded = word.replace("-", "+").replace("_", "/") + "=" * (-len(word) % 4)
            material = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            material = b""
        if len(material) != KEY_BYTES:
            raise ConflictError(
                "vault_key_invalid",
                f"{where} does not hold vault keys: each must be {KEY_BYTES} bytes in base64",
                recovery="make one with `openssl rand -base64 32`; a key file is made by the "
                "first `checkout vault set`",
            )
        keys.append(key_of(material))
    if not keys:
        raise ConflictError(
            "vault_key_invalid", f"{where} holds no vault key", recovery="restore it from a copy"
        )
    return tuple(keys)


def _check_apart_from_store(path: Path, store_path: Path) -> None:
    if os.path.realpath(path.parent) == os.path.realpath(Path(store_path).parent):
        raise ConflictError(
            "vault_key_beside_store",
            f"the vault key would be kept beside the store, in {path.parent}",
            recovery=f"keep the store elsewhere, or give the key in {KEY_ENV}",
        )


def _unreadable(path: Path, exc: OSError) -> ConflictError:
    return ConflictError(
        "vault_key_unreadable",
        f"cannot read the vault key file {path}: {exc.strerror}",
        recovery=f"check the file's owner and permissions, or give the key in {KEY_ENV}",
    )
