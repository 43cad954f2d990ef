"""Meta definition records: loading the current version of a definition and checking that
a product's references exist. Shared by the catalog and the line-meta handlers."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from checkout_cli.errors import NotFoundError


def definition_row(conn: sqlite3.Connection, def_key: str) -> sqlite3.Row:
    row = conn.execute(
        "SELECT * FROM meta_definitions WHERE def_key = ? ORDER BY version DESC LIMIT 1",
        (def_key,),
    ).fetchone()
    if row is None:
        raise NotFoundError(
            "meta_definition_not_found",
            f"no meta definition {def_key!r}",
            field="def_key",
            recovery="list them with `checkout meta list`, add one with "
            "`checkout meta import FILE`",
        )
    return row


def definition_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "def_key": row["def_key"],
        "version": row["version"],
        "title": row["title"],
        "fields": json.loads(row["fields"]),
    }


def load_definition(conn: sqlite3.Connection, def_key: str) -> dict[str, Any]:
    return definition_object(definition_row(conn, def_key))


def require_definitions(conn: sqlite3.Connection, meta_defs: list[dict[str, Any]]) -> None:
    """A product may only list definitions that exist."""
    for index, ref in enumerate(meta_defs):
        try:
            definition_row(conn, ref["def_key"])
        except NotFoundError as exc:
            exc.field = f"meta_defs[{index}].def_key"
            raise
