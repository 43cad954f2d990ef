"""checkout db backup / status / migrate: the store itself (engine: engine/store_admin.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli.state import State, print_json
from checkout_cli.errors import UsageError

db_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="The store itself: back it up, copy it, see its schema version, migrate it.\n\n"
    "Example: checkout db backup ~/backups/shop-2026-12-03.db",
    no_args_is_help=True,
)


def _target(state: State) -> Path | str:
    """The store `checkout db` works on: a SQLite path or a PostgreSQL URL, never a remote."""
    if state.settings.remote:
        raise UsageError(
            "db_needs_store",
            "`checkout db` works on a store (--db), not on a remote server",
            recovery="run it where the store is, with --db PATH or --db postgresql://… "
            "(and no --remote)",
        )
    return state.settings.db


def _sqlite_target(state: State) -> Path:
    target = _target(state)
    if not isinstance(target, Path):
        raise UsageError(
            "db_needs_sqlite",
            "`checkout db backup` copies an SQLite store file; a PostgreSQL store is backed up "
            "with its own tools",
            recovery="pg_dump the database, or use the platform's backups and point-in-time "
            "recovery",
        )
    return target


def _show(state: State, result: dict[str, Any], lines: list[str]) -> None:
    if state.settings.json:
        print_json(result)
        return
    from rich.text import Text

    from checkout_cli.cli import output

    for line in lines:
        output.out().print(Text(line), soft_wrap=True)


def _where(store: dict[str, Any]) -> str:
    if store["kind"] == "sqlite":
        return f"SQLite store {store['path']}"
    user = f" as {store['user']}" if store.get("user") else ""
    return f"PostgreSQL store {store['database']} on {store['host']}:{store['port']}{user}"


@db_app.command("backup")
def backup(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(metavar="DEST", help="the backup file to write")],
    force: Annotated[bool, typer.Option("--force", help="replace DEST if it exists")] = False,
) -> None:
    """Copy a SQLite store to DEST while it may be serving, then check the copy.

    The copy goes to a temporary file beside DEST (0600) and is renamed into place once
    SQLite's integrity check passes: DEST is whole or absent. An existing DEST is refused
    unless --force; DEST may not be the store itself. For PostgreSQL: pg_dump.

    Example: checkout db backup ~/backups/shop-2026-12-03.db
    """
    from checkout_cli.engine import store_admin

    state: State = ctx.obj
    result = store_admin.backup(_sqlite_target(state), dest, force=force)
    counts = ", ".join(f"{n} {table}" for table, n in result["counts"].items())
    _show(
        state,
        result,
        [
            f"wrote {result['backup']}: {result['bytes']} bytes, schema version "
            f"{result['schema_version']}, integrity ok, {counts}"
        ],
    )


@db_app.command("status")
def status(ctx: typer.Context) -> None:
    """Which store, its schema version, and whether this checkout-cli can use it as it is.

    Opens the store read-only: nothing is made or changed. A store a newer release wrote is
    refused, as every command refuses it.

    Example: checkout db status --json
    """
    from checkout_cli.engine import store_admin

    state: State = ctx.obj
    result = store_admin.status(_target(state))
    state_line = {
        "current": "up to date",
        "older": "older: run `checkout db migrate`",
    }[result["state"]]
    _show(
        state,
        result,
        [
            _where(result["store"]),
            f"schema version {result['schema_version']}, this checkout-cli expects "
            f"{result['expected_version']}: {state_line}",
        ],
    )


@db_app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Bring the store's schema up to this checkout-cli's version (forward only).

    Any command also does this when it opens an older store; this one does only that, and
    says what it did. A store a newer release wrote is refused.

    Example: checkout db migrate
    """
    from checkout_cli.engine import store_admin

    state: State = ctx.obj
    result = store_admin.migrate(_target(state))
    if result["from_version"] == result["to_version"]:
        line = f"already at schema version {result['to_version']}: nothing to do"
    else:
        line = f"migrated from schema version {result['from_version']} to {result['to_version']}"
    _show(state, result, [f"{_where(result['store'])}: {line}"])


@db_app.command("copy")
def copy(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(
            "--from", metavar="PATH_OR_URL", help="the store to copy: a SQLite file or a URL"
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="PATH_OR_URL",
            help="where the copy goes: a new SQLite file, or an existing PostgreSQL database",
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="replace everything a non-empty target holds")
    ] = False,
) -> None:
    """Copy a whole store into another: SQLite to PostgreSQL, and back. The one command that
    moves a shop.

    The source is read in one snapshot (it may keep serving); the target is written in one
    transaction and checked before it commits: the same rows in every table, the same order
    numbers to come, `doctor` clean, and the same `get-order` for every order. A target that
    already holds a shop is refused unless --force. Ids and the store id come along, so the
    vault key that opened the source's secrets opens the copy's.

    Example: checkout db copy --from ~/shop.db --to postgresql://shop@db.internal/shop
    """
    from checkout_cli.config import store_target
    from checkout_cli.engine import store_copy

    state: State = ctx.obj
    if state.settings.remote:
        _target(state)  # the usual refusal: a copy is between stores, never a remote
    for flag, given in (("--from", source), ("--to", target)):
        if not given.strip():
            raise UsageError(
                "missing_store", f"{flag} is empty", recovery=f"give {flag} a file path or a URL"
            )
    result = store_copy.copy_store(store_target(source), store_target(target), force=force)
    tables = result["tables"]
    found = result["doctor_findings"]
    doctor = (
        "doctor clean"
        if not found
        else f"doctor finds on both what it found on the source ({len(found)})"
    )
    _show(
        state,
        result,
        [
            f"copied {sum(tables.values())} rows in {len(tables)} tables from "
            f"{_where(result['from'])} to {_where(result['to'])}"
            + (" (replacing what it held)" if result["replaced"] else ""),
            f"verified: row counts per table, counters, {doctor}, get-order identical for "
            f"{result['orders_compared']} orders ({result['seconds']} s)",
        ],
    )
