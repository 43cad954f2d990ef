"""Store administration: `checkout db backup`, `db status`, `db migrate`.

Each function takes the store's target (a path, or a ``postgresql://`` URL) and answers a
plain dict; nothing here prints. ``status`` and ``migrate`` work on both stores; ``backup`` is
SQLite-only (a PostgreSQL database is backed up with pg_dump or the platform's own backups).

Backup uses SQLite's online backup API from a connection of its own, a few pages per step, so
a serving process keeps writing meanwhile (a write restarts the copy at its next step; after a
few restarts it copies the rest in one step, which in WAL mode holds a read snapshot only and
still blocks no writer). The copy is written to a temporary file beside DEST, checked
(``integrity_check``, schema version), flushed, then linked into place: DEST appears whole or
not at all, 0600, and an existing DEST is replaced only when forced.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from checkout_cli.engine.schema import SCHEMA_VERSION, too_new_error
from checkout_cli.engine.store import connect_read_only
from checkout_cli.errors import ConflictError, NotFoundError, UnavailableError, UsageError

STEP_PAGES = 256
RESTARTS_BEFORE_ONE_STEP = 3
COUNTED = ("orders", "checkouts")


def pg_url(target: Path | str) -> str | None:
    """The PostgreSQL URL ``target`` names, or None for a SQLite path. A URL that went through
    ``Path`` has lost one slash (``postgresql:/u@h/db``); it is given back."""
    text = str(target)
    for scheme in ("postgresql", "postgres"):
        if text.startswith(f"{scheme}://"):
            return text
        if text.startswith(f"{scheme}:/"):
            return f"{scheme}://{text[len(scheme) + 2 :]}"
    return None


def describe_url(url: str) -> dict[str, Any]:
    """Which PostgreSQL store a URL names: host, port, database, user; never the password."""
    parts = urlsplit(url)
    return {
        "kind": "postgresql",
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "database": unquote(parts.path.lstrip("/")) or None,
        "user": unquote(parts.username) if parts.username else None,
    }


def _where(store: dict[str, Any]) -> str:
    if store["kind"] == "sqlite":
        return str(store["path"])
    user = f"{store['user']}@" if store["user"] else ""
    return f"postgresql://{user}{store['host']}:{store['port']}/{store['database'] or ''}"


def _missing(path: Path) -> NotFoundError:
    return NotFoundError(
        "store_not_found",
        f"no store at {path}",
        recovery=f"create it with `checkout --db {path} init`, or check the path "
        "(--db, CHECKOUT_DB or the profile)",
    )


def _existing_store(path: Path) -> str:
    """The resolved path of an existing store file, or the usual refusal."""
    if not path.exists():
        raise _missing(path)
    if path.is_dir():
        raise UnavailableError(
            "not_a_store",
            f"{path} is a directory, not a checkout store file",
            recovery=f"give the store's file, e.g. --db {path / 'shop.db'}",
        )
    return os.path.realpath(path)


def _read_version(real: str) -> int:
    """The store's schema version, read without changing or creating anything."""
    try:
        conn = connect_read_only(real, busy_timeout_ms=5000)
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(real, exc) from None
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(real, exc) from None
    finally:
        conn.close()


def _not_a_store(real: str, exc: sqlite3.DatabaseError) -> UnavailableError:
    return UnavailableError(
        "not_a_store",
        f"{real} is not a checkout store ({exc})",
        recovery="check the path given to --db (or CHECKOUT_DB, or the profile)",
    )


def _state(found: int) -> str:
    if found > SCHEMA_VERSION:
        raise too_new_error(found)
    return "current" if found == SCHEMA_VERSION else "older"


# ---- status --------------------------------------------------------------------------------


def status(target: Path | str) -> dict[str, Any]:
    """Which store, its schema version, the version this release expects, and whether it is
    current or older (needs ``migrate``). A newer store is refused like everywhere else.
    Opens the store read-only: nothing is made or changed."""
    url = pg_url(target)
    if url is not None:
        return _pg_status(url)
    path = Path(target)
    real = _existing_store(path)
    found = _read_version(real)
    return {
        "store": {"kind": "sqlite", "path": str(path)},
        "schema_version": found,
        "expected_version": SCHEMA_VERSION,
        "state": _state(found),
    }


def _pg_status(url: str) -> dict[str, Any]:
    found = _pg_existing_version(url)
    return {
        "store": describe_url(url),
        "schema_version": found,
        "expected_version": SCHEMA_VERSION,
        "state": _state(found),
    }


def _pg_existing_version(url: str) -> int:
    """The schema version of the PostgreSQL store at ``url``; a database that was never set
    up as a store is refused as a missing store file is."""
    from checkout_cli.engine import pg_store

    found = pg_store.read_schema_version(url)
    if found == 0:
        where = pg_store.describe(url)
        raise NotFoundError(
            "store_not_found",
            f"no store in {where}",
            recovery=f"create it with `checkout --db {where} init`, or check the URL "
            "(--db, CHECKOUT_DB or the profile)",
        )
    return found


# ---- migrate -------------------------------------------------------------------------------


def migrate(target: Path | str) -> dict[str, Any]:
    """Apply pending migrations: ``from_version`` → ``to_version`` (equal: nothing to do).
    A missing store is not made; a newer one is refused before anything is written."""
    url = pg_url(target)
    if url is not None:
        return _pg_migrate(url)
    path = Path(target)
    real = _existing_store(path)
    found = _read_version(real)
    _state(found)
    if found < SCHEMA_VERSION:
        from checkout_cli.engine.store import Store

        Store(path).close()  # the store migrates itself when opened, in one transaction
    return {
        "store": {"kind": "sqlite", "path": str(path)},
        "from_version": found,
        "to_version": _read_version(real),
    }


def _pg_migrate(url: str) -> dict[str, Any]:
    found = _pg_existing_version(url)
    _state(found)
    if found < SCHEMA_VERSION:
        from checkout_cli.engine.pg_store import PgStore

        PgStore(url).close()  # the store migrates itself when opened, in one transaction
    return {
        "store": describe_url(url),
        "from_version": found,
        "to_version": _pg_existing_version(url),
    }


# ---- backup --------------------------------------------------------------------------------


@dataclass
class _Progress:
    """Counts the backup's restarts: a write by another connection starts it over."""

    last_remaining: int | None = None
    restarts: int = 0

    def __call__(self, status: int, remaining: int, total: int) -> None:
        if self.last_remaining is not None and remaining > self.last_remaining:
            self.restarts += 1
            if self.restarts >= RESTARTS_BEFORE_ONE_STEP:
                raise _Restarting
        self.last_remaining = remaining


class _Restarting(Exception):
    pass


def backup(
    target: Path | str, dest: Path, *, force: bool = False, step_pages: int = STEP_PAGES
) -> dict[str, Any]:
    """Copy the SQLite store to ``dest`` while it may be in use; check and describe the copy."""
    url = pg_url(target)
    if url is not None:
        raise UsageError(
            "backup_sqlite_only",
            f"`checkout db backup` copies a SQLite store; for {_where(describe_url(url))} "
            "use pg_dump",
        )
    path = Path(target)
    real = _existing_store(path)
    _state(_read_version(real))
    dest = Path(dest)
    _check_dest(real, dest, force=force)
    folder = dest.parent if str(dest.parent) else Path(".")
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{dest.name}.", suffix=".partial")  # 0600
    os.close(fd)
    try:
        _copy(real, temp, step_pages)
        found = _check_copy(temp, dest)
        counts = _counts(temp)
        _sync(temp)
        _place(temp, dest, force=force)
    finally:
        for leftover in (temp, f"{temp}-wal", f"{temp}-shm", f"{temp}-journal"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    _sync_folder(folder)
    return {
        "store": {"kind": "sqlite", "path": str(path)},
        "backup": str(dest),
        "bytes": dest.stat().st_size,
        "schema_version": found,
        "integrity": "ok",
        "counts": counts,
    }


# Files SQLite (and the store's writer lock) keep beside a store: part of it, never a copy's
# destination (a copy named SHOP.db-wal is taken for a stale WAL and thrown away).
SIDE_FILES = ("-wal", "-shm", "-journal", "-writer.lock")


def part_of_store(real_store: str, path: Path) -> bool:
    """Whether ``path`` is the store at ``real_store`` (by path, symlink or hard link) or one
    of the files SQLite keeps beside it."""
    real = os.path.realpath(path)
    if real == real_store or any(real == real_store + side for side in SIDE_FILES):
        return True
    return path.exists() and os.path.samefile(path, real_store)


def is_special_file(path: Path) -> bool:
    """A device, pipe or socket: never a store file to write (replacing /dev/null is not a
    backup)."""
    return path.exists() and not path.is_file() and not path.is_dir()


def _check_dest(real: str, dest: Path, *, force: bool) -> None:
    if part_of_store(real, dest):
        raise UsageError(
            "backup_is_store",
            f"{dest} is the store itself; a backup must go to another file",
            recovery="give a new file name for the backup",
        )
    if is_special_file(dest):
        raise UsageError(
            "backup_not_a_file",
            f"{dest} is not a regular file (a device, a pipe or a socket); nothing was written",
            recovery="give a new file name for the backup",
        )
    if dest.is_dir():
        raise UsageError(
            "backup_is_folder",
            f"{dest} is a folder; give the backup's file name",
            recovery=f"e.g. {dest / 'shop-backup.db'}",
        )
    if not (dest.parent if str(dest.parent) else Path(".")).is_dir():
        raise UsageError(
            "backup_folder_missing",
            f"there is no folder {dest.parent} to write the backup in",
            recovery="create the folder first, or choose another",
        )
    if (dest.exists() or dest.is_symlink()) and not force:
        raise ConflictError(
            "backup_exists",
            f"{dest} already exists; nothing was written",
            recovery="choose a new file name, or pass --force to replace it",
        )


def _source(real: str) -> sqlite3.Connection:
    """A connection to read the store from that never makes it: read-write (it may share
    the store's WAL index, as a serving process does) if this user may write it, else
    read-only."""
    folder = os.path.dirname(real) or "."
    if not (os.access(real, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
        return connect_read_only(real)
    conn = sqlite3.connect(
        Path(real).as_uri() + "?mode=rw", uri=True, isolation_level=None, timeout=30
    )
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _copy(real: str, temp: str, step_pages: int) -> None:
    source = _source(real)
    copy = sqlite3.connect(temp, isolation_level=None)
    try:
        try:
            source.backup(copy, pages=step_pages, progress=_Progress(), sleep=0)
        except _Restarting:
            # Writers keep restarting the stepped copy: one step under one read snapshot.
            source.backup(copy, pages=-1)
        # One self-contained file: nothing beside it to lose when it is moved or copied.
        copy.execute("PRAGMA journal_mode = DELETE")
    finally:
        copy.close()
        source.close()


def _check_copy(temp: str, dest: Path) -> int:
    conn = sqlite3.connect(Path(temp).as_uri() + "?mode=ro", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    if problems != ["ok"]:
        raise UnavailableError(
            "backup_damaged",
            f"the copy failed its integrity check ({problems[0]}); {dest} was not written",
            recovery="run `checkout doctor` on the store, and try again",
        )
    return found


def _counts(temp: str) -> dict[str, int]:
    conn = sqlite3.connect(Path(temp).as_uri() + "?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) if t in tables else 0
            for t in COUNTED
        }
    finally:
        conn.close()


def _place(temp: str, dest: Path, *, force: bool) -> None:
    if force:
        os.replace(temp, dest)
        return
    try:
        os.link(temp, dest)  # fails if DEST appeared meanwhile: never clobbered
    except FileExistsError:
        raise ConflictError(
            "backup_exists",
            f"{dest} already exists; nothing was written",
            recovery="choose a new file name, or pass --force to replace it",
        ) from None
    os.unlink(temp)


def _sync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
