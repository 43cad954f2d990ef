"""Shell completion of values: SKUs, checkout tokens, API token names, setting keys and values.

Values come from the local store, read-only and cheaply (one indexed query, a short busy
wait). A completion never prints and never fails: with no store, a remote, or any error at
all, it offers nothing and the shell falls back to its own completion.
"""

from __future__ import annotations

from typing import Any

import typer

MAX_SUGGESTIONS = 200  # more than anyone scrolls through; keeps the query short
Suggestions = list[tuple[str, str]]  # value, help (zsh and fish show the help)


def _store_path(ctx: typer.Context) -> Any:
    """The local store the command line names (--db, --profile, env), or None for a remote."""
    from checkout_cli.config import resolve

    params = ctx.find_root().params
    settings = resolve(
        db=params.get("db"),
        profile=params.get("profile"),
        remote=params.get("remote"),
        project=params.get("project"),
        no_input=True,
    )
    return None if settings.remote else settings.db


# A value starts with :prefix when it sorts from :prefix up to :prefix followed by the
# highest code point: an exact, case-sensitive prefix (as the shell matches) on an index.
PREFIX = "BETWEEN :prefix AND :prefix || char(1114111)"


def _query(ctx: typer.Context, sql: str, incomplete: str) -> Suggestions:
    """Rows (value, help) of ``sql`` (which uses ``PREFIX`` and ``:limit``); [] on any trouble."""
    from checkout_cli.engine.store import connect_read_only

    try:
        db = _store_path(ctx)
        if db is None or not db.exists():
            return []
        # Leaves no WAL index beside a store nobody has open, and reads a read-only one.
        conn = connect_read_only(str(db.resolve()), busy_timeout_ms=200)
        try:
            params = {"prefix": incomplete, "limit": MAX_SUGGESTIONS}
            rows = conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except Exception:
        return []
    return [(str(value), str(help_ or "")) for value, help_ in rows]


def skus(ctx: typer.Context, incomplete: str) -> Suggestions:
    return _query(
        ctx,
        # Not a smoke run's product or checkout: they are hidden from every picker.
        f"SELECT sku, name FROM products WHERE status = 'active' AND test_run IS NULL "
        f"AND sku {PREFIX} "
        "ORDER BY sku LIMIT :limit",
        incomplete,
    )


def checkout_tokens(ctx: typer.Context, incomplete: str) -> Suggestions:
    """Checkout tokens, latest activity first (the one being worked on is usually first)."""
    return _query(
        ctx,
        f"SELECT token, status FROM checkouts WHERE test_run IS NULL AND token {PREFIX} "
        "ORDER BY updated_at DESC LIMIT :limit",
        incomplete,
    )


def api_token_names(ctx: typer.Context, incomplete: str) -> Suggestions:
    return _query(
        ctx,
        f"SELECT name, scope FROM api_tokens WHERE revoked_at IS NULL AND name {PREFIX} "
        "ORDER BY name LIMIT :limit",
        incomplete,
    )


def setting_keys(incomplete: str) -> Suggestions:
    from checkout_cli.engine.settings import SETTINGS

    return [(key, s.help) for key, s in SETTINGS.items() if key.startswith(incomplete)]


def setting_values(ctx: typer.Context, incomplete: str) -> list[str]:
    """The values a setting allows, where they are few: a choice's, or true/false."""
    from checkout_cli.engine.settings import SETTINGS

    setting = SETTINGS.get(str(ctx.params.get("key") or ""))
    if setting is None:
        return []
    allowed = setting.choices or (("true", "false") if setting.kind == "bool" else ())
    return [value for value in allowed if value.startswith(incomplete)]
