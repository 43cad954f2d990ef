"""One page of a list: LIMIT/OFFSET in SQL and the total the filter matches (COUNT(*)).

Every list endpoint answers with its rows plus ``total``, ``limit`` and ``offset``, so a
caller over any backend can say "100 of 9,995" without loading the other rows.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli.requests import Page


def limits(body: Page, default_limit: int) -> tuple[int, int]:
    """The page asked for: ``limit`` (the endpoint's default when left out) and ``offset``."""
    return (
        default_limit if body.limit is None else body.limit,
        0 if body.offset is None else body.offset,
    )


def page(
    conn: sqlite3.Connection,
    sql: str,
    params: list[Any],
    order_by: str,
    body: Page,
    default_limit: int,
) -> tuple[list[sqlite3.Row], dict[str, int]]:
    """The rows of ``sql`` (a SELECT with its WHERE) on the page ``body`` asks for, and the
    paging fields of the answer: ``total`` rows match, this page starts at ``offset``."""
    limit, offset = limits(body, default_limit)
    total = conn.execute(f"SELECT COUNT(*) FROM ({sql}) AS page", params).fetchone()[0]
    rows = conn.execute(f"{sql} ORDER BY {order_by} LIMIT ? OFFSET ?", [*params, limit, offset])
    return rows.fetchall(), {"total": total, "limit": limit, "offset": offset}
