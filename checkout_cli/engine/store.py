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
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from checkout_cli.errors import UnavailableError

BUSY_TIMEOUT_MS = 30_000


@dataclass
class RequestWrites:
    """The writes of one server request (``Store.request``)."""

    on_write: Callable[[sqlite3.Connection], None]
    atomic: bool
    committed: bool = False  # whether one of its write transactions has committed


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.conn = self._connect()
        # Beside the real file, as SQLite keeps its WAL: a symlinked path is the same store.
        real = os.path.realpath(self.path)
        self._writer_lock = os.open(f"{real}-writer.lock", os.O_CREAT | os.O_RDWR, 0o600)
        wal = self.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # Where WAL is unavailable (some network filesystems), SQLite syncs each commit itself.
        self._wal_path = f"{real}-wal" if wal else None
        self.conn.execute("PRAGMA synchronous = NORMAL" if wal else "PRAGMA synchronous = FULL")
        self._open = False  # a write transaction is open on this connection
        self._wants_flush = False  # a write in it asked to be durable
        self._wants_scrub = False  # a write in it overwrote or deleted a secret
        self._request: RequestWrites | None = None
        from checkout_cli.engine.schema import SCHEMA_VERSION, after_upgrade, migrate

        if self.conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            with self.write(scrub=True):
                found = migrate(self.conn)
            if found < SCHEMA_VERSION and after_upgrade(self.conn, found):
                self.empty_wal()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Created 0600: the store holds customer data and write-only secrets.
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
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
        if self._wal_path is None:
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
        if self._wal_path is None:
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
        # Writers queue on a file lock first: the kernel wakes the next one the moment the
        # lock is free, where SQLite's own busy wait sleeps and polls.
        fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)
            raise _busy(exc) from exc
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
                    raise _busy(exc) from exc
                if self._request is not None:
                    self._request.committed = True
            else:
                self.conn.execute("ROLLBACK")
        finally:
            self._open = False
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)

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

    def close(self) -> None:
        self.conn.close()
        os.close(self._writer_lock)


_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _busy(exc: sqlite3.OperationalError) -> UnavailableError:
    return UnavailableError(
        "database_busy",
        f"the store is busy: {exc}",
        recovery="another process holds the write lock for too long; try again",
    )
