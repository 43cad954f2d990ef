"""The PostgreSQL store: the same interface as the SQLite ``Store``, for a team server.

Handlers see a connection that behaves as ``sqlite3.Connection`` does for them: ``execute``
with ``?`` placeholders (translated by ``pg_sql``), rows readable by name and position,
``lastrowid`` after an insert, integrity failures raised as ``sqlite3.IntegrityError``, and the
few PRAGMAs the engine asks answered as SQLite would answer for a healthy store.

Concurrency (see ARCHITECTURE.md): every write transaction is SERIALIZABLE. There is no lock
across the shop; PostgreSQL lets unrelated checkouts commit side by side and aborts one of two
transactions whose reads and writes could not have run one after the other. That abort is
raised as ``WriteConflict``, and the whole call (or, for an atomic server request, the whole
request) runs again from its start (``backends/local.py``, ``server/app.py``): transaction
bodies touch only the database, so running one again is safe.

A lost connection is ``database_unavailable`` (HTTP 503, exit 6); the next use connects again
(from the pool, in ``checkout serve``).
"""

from __future__ import annotations

import re
import select
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from checkout_cli.engine import pg_sql
from checkout_cli.engine.store import RequestWrites, WriteConflict
from checkout_cli.engine.table_shapes import TableShape
from checkout_cli.errors import UnavailableError, UsageError

CONNECT_TIMEOUT_SECONDS = 10
POOL_MAX = 12  # connections a server process keeps (a worker's loop and its call-out threads)


def missing_driver() -> UsageError:
    return UsageError(
        "postgres_driver_missing",
        "a postgresql:// store needs the psycopg driver, which is not installed",
        recovery="pip install 'checkout-cli[postgres]'",
    )


def describe(url: str) -> str:
    """The URL without its password: user@host:port/dbname."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{user}{parts.hostname or 'localhost'}{port}{parts.path}"


def read_schema_version(url: str) -> int:
    """The schema version of the store at ``url`` (0: never set up), read on a connection of
    its own without changing or making anything."""
    try:
        import psycopg
    except ImportError:
        raise missing_driver() from None
    from checkout_cli.engine import pg_schema

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS) as raw:
            return pg_schema.current_version(raw)
    except psycopg.Error as exc:
        raise unavailable(describe(url), exc) from None


class Row:
    """A row as ``sqlite3.Row`` reads: by column name or position, ``keys()``, ``dict(row)``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values, self._index = tuple(values), index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    # The names straight from the result: ``cursor.description`` builds a Column per field.
    result = cursor.pgresult
    fields = range(result.nfields) if result is not None else ()
    index = {result.fname(i).decode(): i for i in fields}
    return lambda values: Row(values, index)


class Cursor:
    """What a handler does with the result of ``execute``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._cursor: Any = None
        self._rows: list[Row] | None = None
        self.lastrowid: int | None = None
        self.rowcount = -1
        self.row_factory: Any = None  # accepted and ignored: rows are always ``Row``

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Cursor:
        self._connection._run(self, sql, params)
        return self

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> Cursor:
        self._connection._run_many(self, sql, seq)
        return self

    def fetchone(self) -> Row | None:
        if self._rows is not None:
            return self._rows.pop(0) if self._rows else None
        if self._cursor is None or self._cursor.description is None:
            return None
        row: Row | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[Row]:
        if self._rows is not None:
            rows, self._rows = self._rows, []
            return rows
        if self._cursor is None or self._cursor.description is None:
            return []
        return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()


def _bound(params: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any] | None:
    """sqlite3's parameters as psycopg takes them: a mapping for ``:name``, else a tuple."""
    if not params:
        return None
    return params if isinstance(params, Mapping) else tuple(params)


class Connection:
    """The store's connection as handlers use it (a ``sqlite3.Connection`` look-alike)."""

    def __init__(self, store: PgStore) -> None:
        self._store = store
        self.row_factory: Any = None

    @property
    def in_transaction(self) -> bool:
        from psycopg import pq

        raw = self._store.raw
        return raw.info.transaction_status != pq.TransactionStatus.IDLE

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Cursor:
        return Cursor(self).execute(sql, params)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> Cursor:
        return Cursor(self).executemany(sql, seq)

    def next_in_sequence(self, name: str) -> int:
        """The counter ``name``'s next value from its sequence (engine/counters.py says why),
        made in this transaction on the counter's first use. ``nextval`` of a missing sequence
        would abort the transaction; ``to_regclass`` gives NULL instead."""
        sequence = _sequence_name(name)
        take = "SELECT nextval(to_regclass(?)) AS value"
        row = self.execute(take, (sequence,)).fetchone()
        if row is None or row["value"] is None:
            self._store.make_sequence(sequence, name)
            row = self.execute(take, (sequence,)).fetchone()
        assert row is not None and row["value"] is not None
        return int(row["value"])

    def sequence_values(self) -> dict[str, int]:
        """Each counter's last value given out by its sequence (none yet: absent)."""
        rows = self.execute(
            "SELECT obj_description(c.oid, 'pg_class'), s.last_value FROM pg_sequences s "
            "JOIN pg_namespace n ON n.nspname = s.schemaname "
            "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename "
            "WHERE s.schemaname = current_schema() AND starts_with(s.sequencename, ?)",
            (_SEQUENCE_PREFIX,),
        ).fetchall()
        return {row[0]: int(row[1]) for row in rows if row[0] and row[1] is not None}

    def commit(self) -> None:  # sqlite3's API; transactions are the store's
        pass

    def close(self) -> None:
        self._store.close()

    def _run(self, cursor: Cursor, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> None:
        pragma = self._pragma(sql)
        if pragma is not None:
            cursor._rows = pragma
            return
        text = pg_sql.translate(sql)
        table = pg_sql.inserted_table(sql)
        returns_id = table in self._store.identity_tables and "RETURNING" not in text.upper()
        if returns_id:
            text += " RETURNING id"
        with self._store.errors_translated():
            raw = self._store.raw.cursor(row_factory=_row_factory)
            raw.execute(text, _bound(params))
        cursor._cursor, cursor.rowcount = raw, raw.rowcount
        if returns_id:
            found = raw.fetchone()
            cursor.lastrowid = found[0] if found is not None else None
            cursor._rows = []

    def _run_many(self, cursor: Cursor, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        with self._store.errors_translated():
            raw = self._store.raw.cursor(row_factory=_row_factory)
            raw.executemany(pg_sql.translate(sql), [tuple(p) for p in seq])
        cursor._cursor, cursor.rowcount = raw, raw.rowcount

    def _pragma(self, sql: str) -> list[Row] | None:
        """The PRAGMAs the engine asks, as SQLite answers them for a healthy store."""
        words = sql.strip().split(None, 1)
        if not words or words[0].upper() != "PRAGMA":
            return None
        name = words[1].split("(")[0].split("=")[0].strip().lower() if len(words) > 1 else ""
        if name == "user_version":
            return [Row((self._store.schema_version(),), {"user_version": 0})]
        if name == "integrity_check":  # PostgreSQL checks its own pages
            return [Row(("ok",), {"integrity_check": 0})]
        if name == "database_list":
            index = {"seq": 0, "name": 1, "file": 2}
            return [Row((0, "main", self._store.pseudo_path()), index)]
        return []  # journal, sync and busy settings: PostgreSQL's own


class PgStore:
    """One PostgreSQL database as a checkout store (one connection, used by one thread)."""

    read_only = False

    def __init__(self, url: str, *, pool: Any = None) -> None:
        self.url = url
        self.description = describe(url)
        self._pool = pool
        self._raw: Any = None
        self._raw_is_pooled = False
        self.conn = Connection(self)
        self._open = False
        self._request: RequestWrites | None = None
        self.identity_tables: frozenset[str] = frozenset()
        self._prepare()

    # --- connections ---------------------------------------------------------------------

    @property
    def raw(self) -> Any:
        """The psycopg connection, made (or taken from the pool) again after one was lost."""
        if self._raw is None or self._raw.closed or self._raw.broken or self._hung_up():
            self._discard()
            self._raw = self._connect()
        return self._raw

    def _hung_up(self) -> bool:
        """The server closed the connection kept between calls (it was restarted): an idle
        connection has nothing to read unless the server said goodbye. Checked without a
        round trip, so a call after an outage gets a new connection instead of a 503."""
        from psycopg import pq

        raw = self._raw
        if self._open or raw.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        return bool(select.select([raw.fileno()], [], [], 0)[0])

    def _connect(self) -> Any:
        import psycopg

        self._raw_is_pooled = False
        try:
            if self._pool is not None:
                try:
                    raw = self._pool.getconn(timeout=CONNECT_TIMEOUT_SECONDS)
                    self._raw_is_pooled = True
                    return raw
                except Exception:
                    # After a long outage the pool waits up to minutes between its attempts
                    # (exponential backoff); a database that is back answers this one now.
                    pass
            raw = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
            )
            configure(raw)
        except Exception as exc:
            raise unavailable(self.description, exc) from None
        return raw

    def _discard(self) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        if self._raw_is_pooled:
            self._pool.putconn(raw)  # the pool checks it, and replaces a broken one
        else:
            raw.close()

    @contextmanager
    def errors_translated(self) -> Iterator[None]:
        """psycopg's errors as the engine knows them (see the module's docstring)."""
        import psycopg
        from psycopg import errors

        try:
            yield
        except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
            raise WriteConflict(str(exc)) from exc
        except psycopg.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc).splitlines()[0]) from exc
        except psycopg.OperationalError as exc:
            if self._raw is not None and (self._raw.broken or self._raw.closed):
                self._open = False
                raise unavailable(self.description, exc) from None
            raise

    def _prepare(self) -> None:
        from checkout_cli.engine import pg_schema
        from checkout_cli.engine.schema import SCHEMA_VERSION

        with self.errors_translated():
            found = pg_schema.current_version(self.raw)
            if found != SCHEMA_VERSION:
                # READ COMMITTED: a process that waited on another's migration lock then sees
                # the tables it made (a SERIALIZABLE snapshot, taken before the wait, would not).
                with self.raw.transaction():
                    pg_schema.migrate(self.raw)
            self.identity_tables = frozenset(
                row[0]
                for row in self.raw.execute(
                    "SELECT table_name FROM information_schema.columns WHERE column_name = 'id' "
                    "AND is_identity = 'YES' AND table_schema = current_schema()"
                )
            )

    def make_sequence(self, sequence: str, name: str) -> None:
        """Makes counter ``name``'s sequence in the open transaction, starting after the value
        its ``counters`` row holds (a store copied from SQLite brings one along). Two first
        uses at once: the second waits for the first to commit, then runs again."""
        from psycopg import errors, sql

        row = self.conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        start = (row["value"] if row else 0) + 1
        with self.errors_translated():
            try:
                self.raw.execute(
                    sql.SQL("CREATE SEQUENCE {} START WITH {}").format(
                        sql.Identifier(sequence), sql.Literal(start)
                    )
                )
                self.raw.execute(
                    sql.SQL("COMMENT ON SEQUENCE {} IS {}").format(
                        sql.Identifier(sequence), sql.Literal(name)
                    )
                )
            except (errors.DuplicateTable, errors.UniqueViolation) as exc:
                raise WriteConflict(f"counter {name}'s sequence was made meanwhile") from exc

    def schema_version(self) -> int:
        from checkout_cli.engine import pg_schema

        return pg_schema.current_version(self.raw)

    def pseudo_path(self) -> str:
        """What stands for the store's file where the engine names one (never a real file)."""
        return f"/postgresql/{urlsplit(self.url).hostname or 'localhost'}{urlsplit(self.url).path}"

    @property
    def data_dir(self) -> Path:
        """Where files made for this store go (email files, batch journals)."""
        from checkout_cli.config import data_dir

        parts = urlsplit(self.url)
        name = f"{parts.hostname or 'localhost'}-{parts.port or 5432}-{parts.path.strip('/')}"
        return data_dir() / "postgresql" / name

    # --- transactions --------------------------------------------------------------------

    @contextmanager
    def write(self, *, durable: bool = True, scrub: bool = False) -> Iterator[Connection]:
        """One SERIALIZABLE write transaction (``durable``/``scrub`` are SQLite's concerns:
        PostgreSQL syncs every commit, and keeps no deleted page for a reader of the file).

        Inside an open one (an atomic ``request``) the block is a savepoint of it."""
        if self._open:
            with self._savepoint():
                yield self.conn
            return
        with self.errors_translated():
            self.raw.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        self._open = True
        request = self._request
        try:
            if request is not None:
                request.on_write(self.conn)  # type: ignore[arg-type]
            yield self.conn
        except BaseException:
            self._finish(commit=False)
            raise
        if request is not None and request.atomic:
            return  # held open: ``request`` commits it when the request ends
        self._finish(commit=True)

    def _finish(self, *, commit: bool) -> None:
        try:
            with self.errors_translated():
                if not self._raw_alive():
                    return
                self.raw.execute("COMMIT" if commit else "ROLLBACK")
            if commit and self._request is not None:
                self._request.committed = True
        finally:
            self._open = False

    def _raw_alive(self) -> bool:
        return self._raw is not None and not self._raw.closed and not self._raw.broken

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        with self.errors_translated():
            self.raw.execute("SAVEPOINT nested")
        try:
            yield
        except BaseException:
            if self._raw_alive():
                with self.errors_translated():
                    self.raw.execute("ROLLBACK TO nested")
                    self.raw.execute("RELEASE nested")
            raise
        with self.errors_translated():
            self.raw.execute("RELEASE nested")

    @contextmanager
    def request(self, on_write: Callable[[Any], None], *, atomic: bool) -> Iterator[RequestWrites]:
        """As ``Store.request``: the server request's writes, atomic or claimed."""
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
        finally:
            self._request = None

    @property
    def in_request_transaction(self) -> bool:
        """An atomic request's transaction is open: a conflict reruns the whole request."""
        return self._open

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One snapshot for several reads (inside a write: that one)."""
        if self._open:
            yield self.conn
            return
        with self.errors_translated():
            self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield self.conn
        finally:
            if self._raw_alive():
                self.raw.execute("COMMIT")

    # --- a copy of the store (engine/store_copy.py) --------------------------------------

    def table_shapes(self) -> list[TableShape]:
        """The store's tables (not ``schema_migrations``, PostgreSQL's own bookkeeping)."""
        with self.errors_translated():
            names = [
                row[0]
                for row in self.raw.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                    "AND table_name <> 'schema_migrations' ORDER BY table_name"
                )
            ]
            columns: dict[str, list[str]] = {name: [] for name in names}
            for table, column in self.raw.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            ):
                columns.get(table, []).append(column)
            keys: dict[str, list[str]] = {name: [] for name in names}
            references: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
            for table, kind, column, parent in self.raw.execute(
                "SELECT t.relname, c.contype, a.attname, p.relname FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
                "LEFT JOIN pg_class p ON p.oid = c.confrelid "
                "WHERE c.connamespace = current_schema()::regnamespace "
                "AND c.contype IN ('p', 'f') "
                "ORDER BY t.relname, c.conname, array_position(c.conkey, a.attnum)"
            ):
                if table not in keys:
                    continue
                if kind == "p":
                    keys[table].append(column)
                else:
                    references[table].append((column, parent))
        return [
            TableShape(name, tuple(columns[name]), tuple(keys[name]), tuple(references[name]))
            for name in names
        ]

    def session_mark(self) -> tuple[int, Any]:
        """This connection's server process and its start: what another connection sees in
        ``pg_stat_activity`` only if it is in the same database of the same server."""
        with self.errors_translated():
            row = self.raw.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).fetchone()
        return (int(row[0]), row[1])

    def sees_session(self, mark: tuple[int, Any]) -> bool:
        """Whether the session ``mark`` names is connected to this very database."""
        with self.errors_translated():
            row = self.raw.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND backend_start = %s "
                "AND datname = current_database()",
                mark,
            ).fetchone()
        return row is not None

    def forget_counters(self) -> None:
        """Drops every counter's sequence in the open transaction: each is made again from
        the copied ``counters`` row on its next use (``make_sequence``)."""
        from psycopg import sql

        with self.errors_translated():
            found = self.raw.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() "
                "AND starts_with(sequencename, %s)",
                (_SEQUENCE_PREFIX,),
            ).fetchall()
            for (sequence,) in found:
                self.raw.execute(sql.SQL("DROP SEQUENCE {}").format(sql.Identifier(sequence)))

    def after_copy_in(self) -> None:
        """Each identity key gives out values after the largest copied id (rows came in
        with their ids, which moves no identity sequence on)."""
        from psycopg import sql

        with self.errors_translated():
            for table in sorted(self.identity_tables):
                self.raw.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({}, 'id'), "
                        "COALESCE(max(id), 0) + 1, false) FROM {}"
                    ).format(sql.Literal(table), sql.Identifier(table))
                )

    def empty_wal(self) -> None:
        """SQLite's concern; nothing to do here."""

    def close(self) -> None:
        self._discard()


@contextmanager
def connection(url: str) -> Iterator[Any]:
    """One short-lived psycopg connection to ``url`` (for a look before a store is opened)."""
    try:
        import psycopg
    except ImportError:
        raise missing_driver() from None
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as exc:
        raise unavailable(describe(url), exc) from None
    try:
        configure(raw)
        yield raw
    finally:
        raw.close()


_SEQUENCE_PREFIX = "counter_"


def _sequence_name(name: str) -> str:
    """``order_number:2026`` → ``counter_order_number_2026``."""
    if not re.fullmatch(r"[a-z0-9_:]{1,50}", name):
        raise ValueError(f"not a counter name: {name!r}")
    return _SEQUENCE_PREFIX + name.replace(":", "_")


def configure(raw: Any) -> None:
    """Types as SQLite hands them to the engine: whole numbers as int (PostgreSQL sums
    integers as numeric), truth values as 0/1 both ways."""
    from psycopg.adapt import Dumper, Loader
    from psycopg.postgres import types

    class WholeNumberLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            return int(text) if "." not in text else float(text)

    class TruthLoader(Loader):
        def load(self, data: Any) -> int:
            return 1 if bytes(data) == b"t" else 0

    class TruthDumper(Dumper):
        oid = types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    raw.adapters.register_loader("numeric", WholeNumberLoader)
    raw.adapters.register_loader("bool", TruthLoader)
    raw.adapters.register_dumper(bool, TruthDumper)


def unavailable(where: str, exc: BaseException) -> UnavailableError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UnavailableError(
        "database_unavailable",
        f"the database {where} cannot be reached: {_without_password(reason)}",
        recovery=_recovery(reason),
    )


def _recovery(reason: str) -> str:
    """What to check, from libpq's reason: the password, the certificate, or the server."""
    lowered = reason.lower()
    if "password" in lowered or "authentication failed" in lowered:
        return "check the user and password (in the URL, PGPASSWORD, PGPASSFILE or ~/.pgpass)"
    if "certificate" in lowered or "ssl" in lowered:
        return "check sslmode and sslrootcert against the server's certificate"
    if "database" in lowered and "does not exist" in lowered:
        return "create the database first (createdb, or the platform's console), or check the URL"
    return "check that PostgreSQL is running and reachable; the next call connects again"


def _without_password(text: str) -> str:
    return text if "password=" not in text else text.split("password=")[0] + "password=…"


_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()


def shared_pool(url: str) -> Any:
    """This process's connection pool for ``url`` (``checkout serve``): connections are kept
    and checked, and a broken one is replaced when it is handed back."""
    from psycopg_pool import ConnectionPool

    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=POOL_MAX,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                configure=configure,
                check=ConnectionPool.check_connection,
                open=True,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
            _pools[url] = pool
        return pool
