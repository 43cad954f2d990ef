"""The SQLite store: connection settings, the versioned schema, and write transactions.

One file, WAL mode, foreign keys on, a generous ``busy_timeout`` so a second writer waits
instead of failing. Every write endpoint runs inside one ``BEGIN IMMEDIATE`` transaction
(``Store.write``), taken before any read, so two processes can never interleave halves of an
operation.

A durable write is on disk when ``write()`` returns, but the flush happens after the writer
lock is released (group commit): SQLite commits without syncing (``synchronous=NORMAL``, which
never corrupts the file), then ``write()`` fdatasyncs the WAL. The next writer works while the
disk flushes, and one flush covers every commit before it. A commit is visible to readers for
the moment before its flush; no caller is told it succeeded until it is on disk.

A store this process cannot write (the file read-only to it, or its folder, where SQLite
keeps the WAL beside it) is opened read-only: reads work, every write is refused before it
starts (``read_only_error``), and nothing is made beside the file (no WAL, no lock file).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from checkout_cli.engine.table_shapes import TableShape
from checkout_cli.errors import UnavailableError

BUSY_TIMEOUT_MS = 30_000


class WriteConflict(Exception):
    """A write transaction PostgreSQL aborted because a concurrent one could not be ordered
    with it (``pg_store``); the call that ran it runs again. SQLite's writers queue instead."""


@dataclass
class RequestWrites:
    """The writes of one server request (``Store.request``)."""

    on_write: Callable[[sqlite3.Connection], None]
    atomic: bool
    committed: bool = False  # whether one of its write transactions has committed


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Beside the real file, as SQLite keeps its WAL: a symlinked path is the same store.
        real = os.path.realpath(self.path)
        self.read_only = _cannot_write(real)
        self.conn = connect_read_only(real) if self.read_only else self._connect()
        self._writer_lock = (
            None
            if self.read_only
            else os.open(f"{real}-writer.lock", os.O_CREAT | os.O_RDWR, 0o600)
        )
        wal = self.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # Where WAL is unavailable (some network filesystems), SQLite syncs each commit itself.
        self._wal_path = f"{real}-wal" if wal else None
        self.conn.execute("PRAGMA synchronous = NORMAL" if wal else "PRAGMA synchronous = FULL")
        self._open = False  # a write transaction is open on this connection
        self._wants_flush = False  # a write in it asked to be durable
        self._wants_scrub = False  # a write in it overwrote or deleted a secret
        self._request: RequestWrites | None = None
        from checkout_cli.engine.schema import SCHEMA_VERSION, after_upgrade, migrate, too_new_error

        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:  # refused before anything is written, read-only or not
            self.close()
            raise too_new_error(version)
        if version != SCHEMA_VERSION and self.read_only:
            self.close()
            raise _needs_upgrade(self.path, version, SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            with self.write(scrub=True):
                found = migrate(self.conn)
            if found < SCHEMA_VERSION and after_upgrade(self.conn, found):
                self.empty_wal()

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Created 0600: the store holds customer data and write-only secrets.
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
                os.close(fd)
            except FileExistsError:
                pass  # another process made it just now
            except OSError as exc:
                raise UnavailableError(
                    "store_not_created",
                    f"cannot create the store at {self.path}: {exc.strerror}",
                    recovery="choose a folder this user may write in (--db), or make it writable",
                ) from None
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def write(self, *, durable: bool = True, scrub: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception.

        Durable by default: the WAL is flushed before this returns. ``durable=False`` is for
        bookkeeping (email claims, idempotency keys): no flush of its own. The WAL is
        append-only, so the next durable write flushes it too; a killed process loses nothing,
        a power cut at worst the last such commits.

        ``scrub=True`` is for writes that overwrite or delete secrets: what they delete is
        zeroed in its page (``secure_delete``, whatever SQLite's build default) and the WAL is
        emptied after the commit, so no earlier copy of the page stays in either file.

        Inside a transaction already open on this connection (an atomic ``request``), the block
        is a savepoint of it instead: rolled back alone on an exception, committed with it.
        """
        if self.read_only:
            raise read_only_error(self.path)
        with self._secure_delete(scrub):
            if self._open:
                self._wants_flush |= durable
                self._wants_scrub |= scrub
                with self._savepoint():
                    yield self.conn
                return
            self._wants_flush = durable
            self._wants_scrub = scrub
            with self._transaction() as conn:
                yield conn
        if not self._open:  # still open: its request commits it
            self._after_commit()

    @property
    def in_request_transaction(self) -> bool:
        """An atomic request's transaction is open on this connection."""
        return self._open

    @property
    def data_dir(self) -> Path:
        """Where files made for this store go: beside it."""
        return self.path.parent

    def _after_commit(self) -> None:
        if self._wants_flush:
            self._flush()
        if self._wants_scrub:
            self.empty_wal()

    @contextmanager
    def _secure_delete(self, on: bool) -> Iterator[None]:
        if not on:
            yield
            return
        previous = self.conn.execute("PRAGMA secure_delete").fetchone()[0]
        self.conn.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA secure_delete = {previous}")

    def empty_wal(self) -> None:
        """Copy the WAL into the store and truncate it to nothing. Best effort: it waits at
        most 2 s for readers of older snapshots (another process's open read)."""
        if self._wal_path is None or self.read_only:
            return
        self.conn.execute("PRAGMA busy_timeout = 2000")
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    @contextmanager
    def request(
        self, on_write: Callable[[sqlite3.Connection], None], *, atomic: bool
    ) -> Iterator[RequestWrites]:
        """One server request's writes: ``on_write`` runs first in each of its write
        transactions (the server claims an Idempotency-Key so, in the request's own writes).

        ``atomic``: the first write transaction stays open when its block ends, later writes
        nest in it as savepoints, and it commits when this block ends; if the block raises,
        none of the request's writes is kept. Only for requests that never wait on the network
        (the writer lock is held from their first write to their end).
        """
        writes = RequestWrites(on_write, atomic)
        self._request = writes
        try:
            yield writes
        except BaseException:
            if self._open:
                self._finish(commit=False)
            raise
        else:
            if self._open:
                self._finish(commit=True)
                self._after_commit()
        finally:
            self._request = None

    def _flush(self) -> None:
        if self._wal_path is None or self.read_only:
            return
        # The WAL exists while this connection is open: SQLite removes it only after the
        # last connection's closing checkpoint.
        fd = os.open(self._wal_path, os.O_RDONLY)
        try:
            _datasync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        lock = self._writer_lock
        assert lock is not None  # a read-only store refuses writes before this
        # Writers queue on a file lock first: the kernel wakes the next one the moment the
        # lock is free, where SQLite's own busy wait sleeps and polls.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            fcntl.flock(lock, fcntl.LOCK_UN)
            raise self._refused(exc) from exc
        self._open = True
        request = self._request
        try:
            if request is not None:
                request.on_write(self.conn)
            yield self.conn
        except BaseException:
            self._finish(commit=False)
            raise
        if request is not None and request.atomic:
            return  # held open: ``request`` commits it when the request ends
        self._finish(commit=True)

    def _finish(self, *, commit: bool) -> None:
        """COMMIT (or ROLLBACK) the open transaction and release the writer lock."""
        try:
            if commit:
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    self.conn.execute("ROLLBACK")
                    raise self._refused(exc) from exc
                if self._request is not None:
                    self._request.committed = True
            else:
                self.conn.execute("ROLLBACK")
        finally:
            self._open = False
            if self._writer_lock is not None:
                fcntl.flock(self._writer_lock, fcntl.LOCK_UN)

    def _refused(self, exc: sqlite3.OperationalError) -> UnavailableError:
        """Why SQLite refused to begin or commit a write: read-only after all, or busy."""
        return read_only_error(self.path) if is_read_only(exc) else _busy(exc)

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self.conn.execute("SAVEPOINT nested")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO nested")
            self.conn.execute("RELEASE nested")
            raise
        self.conn.execute("RELEASE nested")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for multi-statement reads (inside a write: that one)."""
        if self._open:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def table_shapes(self) -> list[TableShape]:
        """The store's own tables (none of SQLite's), in the order they were made."""
        names = [
            row[0]
            for row in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
            )
        ]
        shapes = []
        for name in names:
            info = self.conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            keyed = sorted((row for row in info if row["pk"]), key=lambda row: row["pk"])
            references = self.conn.execute(f'PRAGMA foreign_key_list("{name}")').fetchall()
            shapes.append(
                TableShape(
                    name,
                    tuple(row["name"] for row in info),
                    tuple(row["name"] for row in keyed),
                    tuple((row["from"], row["table"]) for row in references),
                )
            )
        return shapes

    def forget_counters(self) -> None:
        """A counter is a ``counters`` row here: a copy replaces those with the other rows."""

    def after_copy_in(self) -> None:
        """Nothing to do: SQLite gives out rowids after the largest in the table."""

    def close(self) -> None:
        self.conn.close()
        if self._writer_lock is not None:
            os.close(self._writer_lock)
            self._writer_lock = None


_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _cannot_write(real: str) -> bool:
    """An existing store this process may not write: the file, or the folder SQLite makes
    the WAL and its index in. ``os.access`` asks the kernel, so it also knows a read-only
    mount and an immutable file (which even root may not write)."""
    if not os.path.exists(real):
        return False  # made by ``_connect``, where the folder's own error is named
    folder = os.path.dirname(real) or "."
    return not os.access(real, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK)


def connect_read_only(real: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A read-only connection that makes nothing beside the file (``real``: its resolved path).

    Without a WAL (a store closed cleanly: everything is in the file) it opens ``immutable``:
    SQLite then needs no WAL index (``-shm``), which a read-only folder could not hold and
    which a plain ``mode=ro`` open would leave behind in a writable one. With a WAL (a
    writer has it open, or was killed) the WAL holds commits the file lacks, so it opens
    ``mode=ro``, reading them through the WAL index that is there. ``immutable`` assumes no
    one writes the file meanwhile: a writer that opens it during a long read is not seen.
    """
    wal = f"{real}-wal"
    # A WAL emptied by a writer that still has the store open is read the same way: its index
    # is there, and a connection that follows the WAL's locks sees that writer's next commits.
    has_wal = os.path.exists(wal) and (os.path.getsize(wal) > 0 or os.path.exists(f"{real}-shm"))
    uri = Path(real).as_uri() + ("?mode=ro" if has_wal else "?mode=ro&immutable=1")
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # opens the file and its WAL now
    except sqlite3.Error as exc:
        conn.close()
        if has_wal and getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_CANTOPEN:
            raise UnavailableError(
                "store_read_only",
                f"the store at {real} is read-only and its write-ahead log cannot be read "
                "without its index (-shm), which its folder cannot hold",
                recovery=f"make it writable (chmod u+w {_unwritable(real)}) and open it "
                "once, or copy the file with its -wal to a writable folder",
            ) from None
        raise
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def is_read_only(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because the store cannot be written (``SQLITE_READONLY``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_READONLY


def read_only_error(path: Path | str) -> UnavailableError:
    return UnavailableError(
        "store_read_only",
        f"the store at {path} is read-only: this command would change it",
        recovery=f"make it writable (chmod u+w {_unwritable(path)}), or copy it to a writable "
        "folder and use the copy",
    )


def _unwritable(path: Path | str) -> str:
    """What stops this process writing the store: the file, its WAL or WAL index (left by
    another user's process, say), its folder."""
    real = os.path.realpath(path)
    folder = os.path.dirname(real) or "."
    files = [f for f in (real, f"{real}-wal", f"{real}-shm") if os.path.exists(f)]
    found = [f for f in files if not os.access(f, os.W_OK)]
    if not os.access(folder, os.W_OK | os.X_OK):
        found.append(folder)
    return " ".join(found) if found else f"{path} and its folder"


def _needs_upgrade(path: Path, found: int, wanted: int) -> UnavailableError:
    what = "was never set up" if found == 0 else f"has schema version {found}, not {wanted}"
    return UnavailableError(
        "store_read_only",
        f"the store at {path} is read-only and {what}; it cannot be upgraded while read-only",
        recovery=f"make it writable (chmod u+w {path} and its folder) and run any command "
        "once, or use the checkout version that wrote it",
    )


def _busy(exc: sqlite3.OperationalError) -> UnavailableError:
    return UnavailableError(
        "database_busy",
        f"the store is busy: {exc}",
        recovery="another process holds the write lock for too long; try again",
    )
