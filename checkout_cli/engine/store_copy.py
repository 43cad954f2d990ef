"""`checkout db copy`: a whole store into another, SQLite or PostgreSQL either way.

The source is read in one snapshot (SQLite: one read transaction, which in WAL mode holds up
no writer; PostgreSQL: REPEATABLE READ READ ONLY), so a store that is serving meanwhile is
copied as it was at one moment. The target is written in one transaction and checked inside it
before it commits: the same rows in every table, every counter's value, `doctor` finding what
it finds on the source (nothing, on a healthy store), and `get-order` the same for every order.
A copy that fails its check rolls back and leaves the target as it was.

Rows keep their ids. Tables go parents first; a foreign key in a cycle (payments ↔ orders) or
to its own table (a merged cart, a resent webhook delivery) is written NULL first and set once
every row is in, since neither store lets a copy switch its checks off. Counters go as values
(``counters.current_values``): on PostgreSQL a counter is a sequence, made again from the copied
row on its next use. The store id comes along, so the vault's key (``CHECKOUT_VAULT_KEY``, or
the key file named after the store id) opens the copied secrets as it opened the source's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from checkout_cli.config import StoreTarget, is_pg_url
from checkout_cli.engine import counters, invariants, orders, store_admin
from checkout_cli.engine.store import WriteConflict
from checkout_cli.engine.stores import describe, open_store, store_exists
from checkout_cli.engine.table_shapes import TableShape
from checkout_cli.errors import (
    ConflictError,
    InternalError,
    NotFoundError,
    UnavailableError,
    UsageError,
)

BATCH_ROWS = 500
# Made with every new store, so never a sign that a target holds a shop; copied over anyway.
MADE_WITH_STORE = frozenset({"store_info"})
COPIED_AS_VALUES = frozenset({"counters"})  # counters.current_values, not the table's rows


def copy_store(source: StoreTarget, target: StoreTarget, *, force: bool = False) -> dict[str, Any]:
    """Copy every row of ``source`` into ``target`` and verify the copy (see the module).
    ``target`` is made (SQLite) or set up (an existing PostgreSQL database) if it is new; one
    that already holds a shop is refused unless ``force``, which replaces what it holds."""
    _refuse_same(source, target)
    _require_source(source)
    _check_target(target)
    started = time.monotonic()
    source_store = open_store(source)
    try:
        target_store = open_store(target)
        try:
            copied = _copy(source_store, target_store, force=force, where=describe(target))
        finally:
            target_store.close()
    finally:
        source_store.close()
    return {
        "from": _described(source),
        "to": _described(target),
        **copied,
        "seconds": round(time.monotonic() - started, 3),
    }


# ---- before anything is opened -------------------------------------------------------------


def _described(target: StoreTarget) -> dict[str, Any]:
    if is_pg_url(target):
        return store_admin.describe_url(str(target))
    return {"kind": "sqlite", "path": str(target)}


def _identity(target: StoreTarget) -> tuple[Any, ...]:
    described = _described(target)
    if described["kind"] == "sqlite":
        return ("sqlite", os.path.realpath(Path(target)))
    return ("postgresql", described["host"], described["port"], described["database"])


def _refuse_same(source: StoreTarget, target: StoreTarget) -> None:
    same = _identity(source) == _identity(target)
    if not same and not is_pg_url(source) and not is_pg_url(target):
        source_path = Path(source)
        same = source_path.exists() and store_admin.part_of_store(
            os.path.realpath(source_path), Path(target)
        )
    if same:
        _same_store(source)


def _same_store(source: StoreTarget) -> None:
    raise UsageError(
        "copy_same_store",
        f"--from and --to name the same store ({describe(source)}); nothing was copied",
        recovery="give --to a new file or another database",
    )


def _require_source(source: StoreTarget) -> None:
    """The source must already be a store: a copy never makes the store it reads."""
    try:
        store_admin.status(source)  # not_a_store, store_too_new, database_unavailable
    except (NotFoundError, UnavailableError) as exc:
        if exc.code == "database_unavailable":
            raise
        raise type(exc)(
            exc.code, f"{exc.message}; nothing was copied", recovery="check the store --from names"
        ) from None


def _check_target(target: StoreTarget) -> None:
    """An existing SQLite target must be a store or an empty file; a PostgreSQL one must be
    reachable (the database itself is made by its administrator, not by us)."""
    if is_pg_url(target):
        store_exists(target)
        return
    path = Path(target)
    if store_admin.is_special_file(path):
        raise UsageError(
            "copy_target_not_a_file",
            f"{path} is not a regular file (a device, a pipe or a socket); nothing was copied",
            recovery="give --to a new file name",
        )
    if path.is_dir():
        raise UsageError(
            "copy_target_is_folder",
            f"{path} is a folder; give the new store's file name",
            recovery=f"e.g. --to {path / 'shop.db'}",
        )
    if path.exists() and path.stat().st_size > 0:
        try:
            store_admin.status(path)
        except UnavailableError as exc:  # not_a_store: some other file
            raise UnavailableError(
                exc.code,
                f"{exc.message}; nothing was copied",
                recovery="give --to a new file name, or a store to replace with --force",
            ) from None


# ---- the copy ------------------------------------------------------------------------------


def _copy(source: Any, target: Any, *, force: bool, where: str) -> dict[str, Any]:
    shapes = _ordered(target.table_shapes())
    mark = getattr(source, "session_mark", None)
    seen = getattr(target, "sees_session", None)
    if mark is not None and seen is not None and seen(mark()):
        _same_store(where)  # one database under two spellings (localhost, 127.0.0.1, ?port=)
    with source.read() as reading:
        _same_tables(shapes, source.table_shapes())
        # Read once, after the snapshot began: a PostgreSQL sequence is outside any snapshot
        # and moves on while the source serves, so its value then is at least every number
        # the copied rows hold (a gap at most, never a number given out twice).
        values = counters.current_values(reading)
        try:
            with target.write(scrub=True) as writing:
                held = _rows_held(writing, shapes)
                if held and not force:
                    raise ConflictError(
                        "copy_target_not_empty",
                        f"{where} already holds a shop ({_listed(held)}); nothing was copied",
                        recovery="copy into a new file or an empty database, or pass --force "
                        "to replace everything the target holds",
                    )
                _empty(writing, shapes)
                target.forget_counters()
                rows = _write_rows(reading, writing, shapes, values)
                target.after_copy_in()
                checked = _verify(reading, writing, shapes, rows, values)
        except WriteConflict:
            raise UnavailableError(
                "database_busy",
                f"{where} was written by another process during the copy; nothing was copied",
                recovery="stop what writes to the target, and copy again",
            ) from None
    return {"replaced": bool(held), "tables": rows, **checked}


def _ordered(shapes: list[TableShape]) -> list[TableShape]:
    """Parents before children; the order the stores made their tables where either will do."""
    by_name = {shape.name: shape for shape in shapes}
    placed: list[TableShape] = []
    seen: set[str] = set()

    def place(shape: TableShape) -> None:
        seen.add(shape.name)
        for _, parent in shape.references:
            if parent not in seen:
                place(by_name[parent])
        placed.append(shape)

    for shape in sorted(shapes, key=lambda s: s.name):
        if shape.name not in seen:
            place(shape)
    return placed


def _deferred(shape: TableShape, before: set[str]) -> tuple[str, ...]:
    """The columns naming a row that may not be in yet: of this table, or of a later one."""
    return tuple(
        column
        for column, parent in shape.references
        if parent == shape.name or parent not in before
    )


def _same_tables(shapes: list[TableShape], source_shapes: list[TableShape]) -> None:
    """Both stores are at this release's schema (opening them migrated an older one)."""
    theirs = {shape.name: set(shape.columns) for shape in source_shapes}
    ours = {shape.name: set(shape.columns) for shape in shapes}
    if theirs != ours:
        differ = sorted(
            name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name)
        )
        raise InternalError(
            "copy_schemas_differ",
            f"the two stores' tables differ ({', '.join(differ)}); nothing was copied",
            recovery="run `checkout db status` on both; report this with --debug output",
        )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _count(conn: Any, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()[0])


def _rows_held(conn: Any, shapes: list[TableShape]) -> dict[str, int]:
    held = {shape.name: _count(conn, shape.name) for shape in shapes}
    return {name: n for name, n in held.items() if n and name not in MADE_WITH_STORE}


def _listed(counts: dict[str, int]) -> str:
    shown = ", ".join(f"{n} {name}" for name, n in list(counts.items())[:3])
    return shown + (", …" if len(counts) > 3 else "")


def _empty(conn: Any, shapes: list[TableShape]) -> None:
    """Deletes every row, children first (a forced copy; a new target has none but its own
    store id). Links that cycle are cut first, as the copy writes them last."""
    before: set[str] = set()
    for shape in shapes:
        for column in _deferred(shape, before):
            conn.execute(f"UPDATE {_quoted(shape.name)} SET {_quoted(column)} = NULL")
        before.add(shape.name)
    for shape in reversed(shapes):
        conn.execute(f"DELETE FROM {_quoted(shape.name)}")


def _write_rows(
    reading: Any, writing: Any, shapes: list[TableShape], values: dict[str, int]
) -> dict[str, int]:
    """Every source row into the target, with the ids it had; returns the rows per table."""
    written: dict[str, int] = {}
    later: list[tuple[TableShape, tuple[str, ...], list[tuple[Any, ...]]]] = []
    before: set[str] = set()
    for shape in shapes:
        if shape.name in COPIED_AS_VALUES:
            writing.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?)", sorted(values.items())
            )
            written[shape.name] = len(values)
            before.add(shape.name)
            continue
        deferred = _deferred(shape, before)
        if deferred and not shape.key:
            raise InternalError(
                "copy_unkeyed_cycle",
                f"table {shape.name} links rows without a key to set them by",
            )
        columns = ", ".join(_quoted(c) for c in shape.columns)
        marks = ", ".join("?" for _ in shape.columns)
        insert = f"INSERT INTO {_quoted(shape.name)} ({columns}) VALUES ({marks})"
        order = ", ".join(_quoted(c) for c in shape.key) or "1"
        cut = [shape.columns.index(c) for c in deferred]
        kept = [shape.columns.index(c) for c in shape.key]
        links: list[tuple[Any, ...]] = []
        count = 0
        for batch in _batches(
            reading.execute(f"SELECT {columns} FROM {_quoted(shape.name)} ORDER BY {order}")
        ):
            rows = [list(row) for row in batch]
            for row in rows:
                if any(row[i] is not None for i in cut):
                    links.append(tuple(row[i] for i in cut) + tuple(row[i] for i in kept))
                for i in cut:
                    row[i] = None
            writing.executemany(insert, rows)
            count += len(rows)
        if links:
            later.append((shape, deferred, links))
        written[shape.name] = count
        before.add(shape.name)
    for shape, deferred, links in later:
        sets = ", ".join(f"{_quoted(c)} = ?" for c in deferred)
        where = " AND ".join(f"{_quoted(c)} = ?" for c in shape.key)
        for start in range(0, len(links), BATCH_ROWS):
            writing.executemany(
                f"UPDATE {_quoted(shape.name)} SET {sets} WHERE {where}",
                links[start : start + BATCH_ROWS],
            )
    return written


def _batches(cursor: Iterable[Any]) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for row in cursor:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


# ---- the check -----------------------------------------------------------------------------


def _verify(
    reading: Any,
    writing: Any,
    shapes: list[TableShape],
    rows: dict[str, int],
    values: dict[str, int],
) -> dict[str, Any]:
    """Inside the target's transaction: anything found here rolls the copy back."""
    for shape in shapes:
        if shape.name in COPIED_AS_VALUES:
            continue
        if _count(writing, shape.name) != rows[shape.name]:
            _differs(f"the row count of {shape.name}")
    if counters.current_values(writing) != values:
        _differs("the counters (order numbers)")
    found_there = _findings(reading)
    if _findings(writing) != found_there:
        _differs("what `checkout doctor` finds")
    compared = 0
    ours = writing.execute("SELECT * FROM orders ORDER BY id")
    for theirs_row, our_row in zip(
        reading.execute("SELECT * FROM orders ORDER BY id").fetchall(), ours.fetchall(), strict=True
    ):
        if orders.order_object(reading, theirs_row) != orders.order_object(writing, our_row):
            _differs(f"order {theirs_row['order_number']}")
        compared += 1
    return {"orders_compared": compared, "doctor_findings": found_there}


def _findings(conn: Any) -> list[str]:
    found = invariants.file_damage(conn) or invariants.check_invariants(conn)
    return sorted(violation.as_dict()["message"] for violation in found)


def _differs(what: str) -> None:
    raise InternalError(
        "copy_not_verified",
        f"the copy differs from the source in {what}; it was rolled back and the target "
        "is as it was",
        recovery="run with --debug and report it",
    )
