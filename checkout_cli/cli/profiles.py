"""checkout profiles …: named sets of db / remote / project / token in config.toml."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from checkout_cli.cli.state import State

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Profiles in config.toml: switch between stores and team servers.\n\n"
    "Example: checkout --profile team status chk_XXXX",
    no_args_is_help=True,
)


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """A profile for display: the token is never shown, only whether it is set, and a
    database URL never with a password (one written into config.toml by hand)."""
    from checkout_cli.config import is_pg_url
    from checkout_cli.engine.stores import describe

    def shown(key: str, value: Any) -> Any:
        if key == "token":
            return "(set)"
        if key == "db" and is_pg_url(value):
            return describe(value)
        return value

    return {k: shown(k, v) for k, v in values.items()}


def _refuse_password(db: str | None) -> None:
    """config.toml is plain text: a profile keeps no database password (libpq finds it)."""
    from urllib.parse import parse_qs, urlsplit

    from checkout_cli.config import is_pg_url
    from checkout_cli.errors import UsageError

    if db is None or not is_pg_url(db):
        return
    parts = urlsplit(db)
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise UsageError(
            "password_in_profile",
            "a profile is kept in plain text in config.toml, so its database URL may not "
            "hold a password; nothing was saved",
            recovery="leave the password out of the URL and set PGPASSWORD, or put it in "
            "~/.pgpass (or the file PGPASSFILE names)",
        )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every profile, with the default marked.

    Example: checkout profiles list
    """
    from checkout_cli.cli import output
    from checkout_cli.config import load_config_file

    config = load_config_file()
    default = config.get("default_profile")
    rows = [
        {"name": name, "default": name == default, **_shown(values)}
        for name, values in config.get("profiles", {}).items()
    ]

    def render(result: dict[str, Any]) -> None:
        t = output.table("Profile", "Default", "Store", "Remote", "Project", "Token")
        for p in result["profiles"]:
            t.add_row(
                p["name"],
                "*" if p["default"] else "",
                p.get("db", ""),
                p.get("remote", ""),
                p.get("project", ""),
                p.get("token", ""),
            )
        output.out().print(t)

    state: State = ctx.obj
    state.show({"profiles": rows}, render)


@app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(show_default=False)]) -> None:
    """One profile's settings (the token only as "(set)").

    Example: checkout profiles show team
    """
    from checkout_cli.cli import output
    from checkout_cli.config import config_file, load_config_file
    from checkout_cli.errors import UsageError

    profiles = load_config_file().get("profiles", {})
    if name not in profiles:
        raise UsageError(
            "unknown_profile",
            f"no profile named {name!r} in {config_file()}",
            recovery="profiles: " + (", ".join(profiles) or "none"),
        )
    state: State = ctx.obj
    state.show(
        {"name": name, **_shown(profiles[name])},
        lambda r: output.out().print("\n".join(f"{k} = {v}" for k, v in r.items())),
    )


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(show_default=False)],
    db: Annotated[
        str | None, typer.Option(help="the store: a SQLite file path or a postgresql:// URL")
    ] = None,
    remote: Annotated[str | None, typer.Option(help="server URL")] = None,
    project: Annotated[str | None, typer.Option(help="project id on the server")] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="read the server's token from stdin")
    ] = False,
    default: Annotated[bool, typer.Option("--default", help="make it the default profile")] = False,
) -> None:
    """Add or replace a profile. The token is read from stdin, never from a flag.

    Example: printenv TEAM_TOKEN | checkout profiles add team --remote http://10.0.0.5:8787 \\
    --project shop-nl --token-stdin
    """
    from checkout_cli.cli import output
    from checkout_cli.config import save_profile
    from checkout_cli.errors import UsageError

    _refuse_password(db)
    values = {k: v for k, v in {"db": db, "remote": remote, "project": project}.items() if v}
    if token_stdin:
        token = sys.stdin.read().strip()
        if not token:
            raise UsageError("missing_input", "no token on stdin")
        values["token"] = token
    if not values:
        raise UsageError("missing_input", "give --db, or --remote with --project")
    path = save_profile(name, values, make_default=default)
    state: State = ctx.obj
    state.show(
        {"name": name, "path": str(path), **_shown(values)},
        lambda r: output.say(f"profile {name!r} saved in {path}"),
    )
