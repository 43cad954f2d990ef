"""checkout serve and checkout tokens: the store shared by a team over HTTP."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli import completion, listing
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import State, present
from checkout_cli.endpoints import CHECKOUT_ADMIN
from checkout_cli.errors import UsageError

tokens_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="API tokens for `checkout serve`, each with a scope (read, operate, admin).\n\n"
    "Example: checkout tokens create --name front-desk --scope operate",
    no_args_is_help=True,
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="address to bind; anything but loopback must be given explicitly")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8787,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="worker processes sharing the store",
        ),
    ] = 4,
) -> None:
    """Serve this store's API over HTTP for a team (bearer tokens, /openapi.json, webhooks).

    Example: checkout --db shop.db serve --port 8787 --workers 4
    """
    import uvicorn

    from checkout_cli.engine.stores import describe

    state: State = ctx.obj
    db = state.settings.db
    if isinstance(db, Path) and not db.exists():
        raise UsageError(
            "store_missing",
            f"no store at {db}",
            recovery="create one with `checkout init` (or point --db at it)",
        )
    settings = state.call(CHECKOUT_ADMIN, "get-settings")["settings"]  # also migrates
    if not state.call(CHECKOUT_ADMIN, "list-tokens")["tokens"]:
        print(
            "warning: no API tokens yet; create one with `checkout tokens create --name NAME`",
            file=sys.stderr,
        )
    if not _is_loopback(host):
        print(f"warning: serving on {host}, reachable from other machines", file=sys.stderr)
    state.close()
    os.environ["CHECKOUT_SERVE_DB"] = str(db)
    print(
        f"serving project {settings['project_id']} from {describe(db)} on http://{host}:{port}",
        file=sys.stderr,
    )
    uvicorn.run(
        "checkout_cli.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="checkout_cli.server.protocol:NoDelayHTTPProtocol",  # TCP_NODELAY with workers
        access_log=False,  # ours (server.app.AccessLog) never logs a query string
        proxy_headers=False,  # nothing here reads the client address
        server_header=False,
        log_level="warning",
    )


def _tokens_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    t = output.table("Name", "Scope", "Created", "Revoked")
    for token in result["tokens"]:
        t.add_row(token["name"], token["scope"], token["created_at"], token["revoked_at"] or "")
    output.out().print(t)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="who or what uses it")],
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            help="read: get-*/list-* only; operate (default): carts, checkouts, orders; "
            "admin: also catalog, settings, outbox, reconcile",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a token; it is shown once, only its hash is kept. Vault, tokens and the
    settings that route secrets are never reachable over HTTP, whatever the scope.

    Example: checkout tokens create --name front-desk --scope operate
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        output.out().print(result["token"])
        output.say(
            f"token {result['name']!r} ({result['scope']}) created; it will not be shown again"
        )

    state: State = ctx.obj
    state.run(CHECKOUT_ADMIN, "create-token", present(name=name, scope=scope), render)


TOKENS = listing.Listing(
    rows="tokens",
    noun="API tokens",
    id_of=lambda t: t["name"],
    columns=listing.fields("name", "scope", "created_at", "revoked_at"),
    table=_tokens_table,
)


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Tokens by name and scope (never the tokens themselves).

    Example: checkout tokens list --quiet
    """
    state: State = ctx.obj
    body = listing.page(limit, offset)
    listing.run(state, CHECKOUT_ADMIN, "list-tokens", body, TOKENS, fmt, quiet)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="the token's name", show_default=False, autocompletion=completion.api_token_names
        ),
    ],
) -> None:
    """Revoke a token; requests with it get 401 from then on.

    Example: checkout tokens revoke front-desk
    """
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(
        CHECKOUT_ADMIN,
        "revoke-token",
        {"name": name},
        lambda r: output.say(f"token {name!r} revoked"),
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
