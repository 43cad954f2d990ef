"""Operator commands on the checkout-admin service: settings, outbox, vault, and init."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli import completion, listing
from checkout_cli.cli.endpoint_command import Fields, endpoint_command
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import Body, State, merge_body, print_json, read_json_file
from checkout_cli.endpoints import CHECKOUT_ADMIN

settings_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Shop settings.\n\nExample: checkout settings set allow_invoice_checkout true",
    no_args_is_help=True,
)
outbox_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Confirmation emails: list and (re)send.\n\nExample: checkout outbox send",
    no_args_is_help=True,
)
vault_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Write-only secrets: provider keys, SMTP password; encrypted at rest with a key kept "
    "outside the store (CHECKOUT_VAULT_KEY, or a key file in the config dir).\n\n"
    "Example: checkout vault set smtp_password",
    no_args_is_help=True,
)


def _settings_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    t = output.table("Setting", "Value")
    for row in result["settings"]:
        t.add_row(row["key"], _shown(row["value"]))
    output.out().print(t)


@settings_app.command("show")
def settings_show(ctx: typer.Context, fmt: Format = None, quiet: Quiet = False) -> None:
    """Every setting and its value (all of them: a fixed list, never paged).

    Example: checkout settings show --format csv
    """
    state: State = ctx.obj
    chosen = listing.output_format(state, fmt)
    result = state.call(CHECKOUT_ADMIN, "get-settings", {})
    if chosen is listing.ListFormat.json and not quiet:
        print_json(result)  # the result object as it always was: key → value
        return
    rows = [{"key": key, "value": value} for key, value in result["settings"].items()]
    listing.show({"settings": rows}, SETTINGS_LIST, chosen, quiet)


def _shown(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


SETTINGS_LIST = listing.Listing(
    rows="settings",
    id_of=lambda s: s["key"],
    columns=(("key", lambda s: s["key"]), ("value", lambda s: _shown(s["value"]))),
    table=_settings_table,
)


@settings_app.command("set")
def settings_set(
    ctx: typer.Context,
    key: Annotated[
        str,
        typer.Argument(
            help="setting name (see `settings show`)",
            show_default=False,
            autocompletion=completion.setting_keys,
        ),
    ],
    value: Annotated[
        str,
        typer.Argument(
            help="new value; JSON for tax_rates and lists",
            show_default=False,
            autocompletion=completion.setting_values,
        ),
    ],
) -> None:
    """Change one setting; the value is checked against the setting's type.

    Example: checkout settings set tax_rates '{"NL": "21", "DE": "19"}'
    """
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(
        CHECKOUT_ADMIN,
        "set-setting",
        {"key": key, "value": value},
        lambda r: output.say(f"{r['key']} = {_shown(r['value'])}"),
    )


@settings_app.command("import")
def settings_import(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="JSON object of setting → value", show_default=False)
    ],
) -> None:
    """Change every setting in a JSON file at once: all keys and values are checked first and
    every bad one is named; then all are written, or none is.

    Example: checkout settings import fixtures/settings.json
    """
    from checkout_cli.cli import output
    from checkout_cli.errors import UsageError

    values = read_json_file(file)
    if not isinstance(values, dict):
        raise UsageError(
            "invalid_file",
            f"{file}: expected a JSON object of setting → value",
            recovery='e.g. {"shop_name": "Lens Shop", "allow_invoice_checkout": true}',
        )

    def render(result: dict[str, Any]) -> None:
        for key, value in result["settings"].items():
            output.say(f"{key} = {_shown(value)}")
        output.say(f"imported {len(result['settings'])} settings from {file}")

    state: State = ctx.obj
    state.run(CHECKOUT_ADMIN, "import-settings", {"settings": values}, render)


@settings_app.command("unset")
def settings_unset(
    ctx: typer.Context,
    key: Annotated[
        str,
        typer.Argument(
            help="setting name", show_default=False, autocompletion=completion.setting_keys
        ),
    ],
) -> None:
    """Return a setting to its default.

    Example: checkout settings unset payment_redirect_url
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        note = "" if result["was_set"] else " (it was not set)"
        output.say(f"{result['key']} = {_shown(result['value'])}, its default{note}")

    state: State = ctx.obj
    state.run(CHECKOUT_ADMIN, "unset-setting", {"key": key}, render)


def _outbox_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    t = output.table("Id", "Order", "To", "Status", "Attempts", "Last error", "Sent")
    for e in result["emails"]:
        t.add_row(
            str(e["id"]),
            e["order_number"],
            e["recipient"],
            e["status"],
            str(e["attempts"]),
            e["last_error"] or "",
            e["sent_at"] or "",
        )
    output.out().print(t)


OUTBOX = listing.Listing(
    rows="emails",
    id_of=lambda e: e["id"],
    columns=listing.fields(
        "id",
        "order_number",
        "checkout_token",
        "kind",
        "recipient",
        "subject",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    ),
    table=_outbox_table,
)


@outbox_app.command("list")
@endpoint_command(CHECKOUT_ADMIN, "list-outbox", ("status",))
def outbox_list(
    ctx: typer.Context,
    *,
    fields: Fields,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
    body: Body = None,
) -> None:
    """Emails in the outbox, newest first.

    Example: checkout outbox list --status failed
    """
    state: State = ctx.obj
    body_ = merge_body(body, **fields, **listing.page(limit, offset))
    listing.run(state, CHECKOUT_ADMIN, "list-outbox", body_, OUTBOX, fmt, quiet)


@outbox_app.command("send")
def outbox_send(
    ctx: typer.Context,
    retry_stuck: Annotated[
        bool | None,
        typer.Option(
            "--retry-stuck",
            help="also retry emails a killed process left half-sent (over 10 minutes ago); "
            "the customer may get those twice",
        ),
    ] = None,
    body: Body = None,
) -> None:
    """Deliver every queued or failed email now.

    Example: checkout outbox send
    """
    from checkout_cli.cli import output

    def render(r: dict[str, Any]) -> None:
        output.say(
            f"sent {r['sent']}, failed {r['failed']}"
            + (f" ({r['released']} half-sent retried)" if r["released"] else "")
        )
        for email in r.get("waiting", []):
            output.say(
                f"email {email['id']} to {email['recipient']} is half-sent and may still be "
                f"going out: --retry-stuck may retry it in {email['retry_in_minutes']} minutes "
                f"(from {email['retry_after']})"
            )

    state: State = ctx.obj
    result = state.run(
        CHECKOUT_ADMIN, "send-outbox", merge_body(body, retry_stuck=retry_stuck), render
    )
    if result["failed"]:
        raise typer.Exit(6)


@vault_app.command("set")
def vault_set(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="stripe_secret_key, stripe_webhook_secret, mollie_api_key or smtp_password",
            show_default=False,
        ),
    ],
) -> None:
    """Store a secret, read from a hidden prompt or from stdin when piped; never shown again.

    Example: printenv SMTP_PASSWORD | checkout vault set smtp_password
    """
    from checkout_cli.cli import output
    from checkout_cli.cli.prompts import can_prompt, missing_input, prompter

    state: State = ctx.obj
    if not sys.stdin.isatty():
        value = sys.stdin.read().strip()
    elif can_prompt(state.settings):
        value = prompter().secret(f"Value for {name}")
    else:
        raise missing_input([f"the value of {name} on stdin"])

    def render(result: dict[str, Any]) -> None:
        output.say(f"{name} stored")
        if result["new_key_file"]:
            output.say(
                f"made the vault key file {result['new_key_file']}: keep a copy apart from "
                "the store's backups (without it the vault cannot be read)"
            )

    state.run(CHECKOUT_ADMIN, "set-vault", {"name": name, "value": value}, render)


@vault_app.command("list")
def vault_list(ctx: typer.Context) -> None:
    """Names of the secrets and when they were set (values are never shown).

    Example: checkout vault list
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        t = output.table("Name", "Set", "Set at", "What")
        for s in result["secrets"]:
            t.add_row(s["name"], "yes" if s["set"] else "no", s["set_at"] or "", s["description"])
        output.out().print(t)

    state: State = ctx.obj
    state.run(CHECKOUT_ADMIN, "list-vault", {}, render)


@vault_app.command("delete")
def vault_delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(show_default=False)]
) -> None:
    """Delete a secret.

    Example: checkout vault delete smtp_password
    """
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(
        CHECKOUT_ADMIN, "delete-vault", {"name": name}, lambda r: output.say(f"{name} deleted")
    )


@vault_app.command("rotate-key")
def vault_rotate_key(ctx: typer.Context) -> None:
    """Make a new vault key, reseal every secret under it, and retire the old key.

    With a key file, the old key is deleted from it. With CHECKOUT_VAULT_KEY, put the new key
    first (CHECKOUT_VAULT_KEY=NEW,OLD; `openssl rand -base64 32` makes one), run this, then
    drop OLD. On the store's own machine only. If it is cut off, no secret is left unreadable:
    run it again.

    Example: checkout vault rotate-key
    """
    from checkout_cli.backends.local import LocalBackend
    from checkout_cli.cli import output
    from checkout_cli.engine.vault import rotate_key
    from checkout_cli.errors import ForbiddenError

    def local_only() -> ForbiddenError:
        return ForbiddenError(
            "local_only",
            "the vault's key lives on the store's own machine",
            recovery="run `checkout vault rotate-key` there, without --remote",
        )

    state: State = ctx.obj
    if state.settings.remote:
        raise local_only()
    backend = state.backend
    if not isinstance(backend, LocalBackend):  # only a local store has an engine to reseal
        raise local_only()

    def render(result: dict[str, Any]) -> None:
        retired = ", ".join(result["retired"]) or "none"
        output.say(
            f"vault key {result['key_id']} ({result['key_source']}) now seals "
            f"{result['resealed']} secret(s); retired: {retired}"
        )
        if result["retired"] and result["key_source"] == "CHECKOUT_VAULT_KEY":
            output.say("now drop the retired keys from CHECKOUT_VAULT_KEY")

    state.show(rotate_key(backend.engine), render)


def init(
    ctx: typer.Context,
    project_id: Annotated[
        str | None, typer.Option(help="project id this store serves (default: local)")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="change the project id of a store that has another one"),
    ] = False,
) -> None:
    """Create the store (if needed) and print where it is. An existing store keeps its
    project id unless --force: clients of its server address it by that id.

    Example: checkout --db shop.db init --project-id shop-nl
    """
    from checkout_cli.cli import output
    from checkout_cli.engine.stores import describe, store_exists

    state: State = ctx.obj
    state.creates_store = True
    existed = store_exists(state.settings.db)
    if project_id:
        if existed and not force:
            _refuse_another_project_id(state, project_id)
        state.call(CHECKOUT_ADMIN, "set-setting", {"key": "project_id", "value": project_id})
    settings = state.call(CHECKOUT_ADMIN, "get-settings")["settings"]
    result = {
        "db": describe(state.settings.db),
        "created": not existed,
        "project_id": settings["project_id"],
    }
    state.show(
        result,
        lambda r: output.say(
            f"{'created' if r['created'] else 'using'} store {r['db']} (project {r['project_id']})"
        ),
    )


def _refuse_another_project_id(state: State, project_id: str) -> None:
    from checkout_cli.engine.stores import describe
    from checkout_cli.errors import ConflictError

    current = state.call(CHECKOUT_ADMIN, "get-settings")["settings"]["project_id"]
    if current != project_id.strip():  # as the setting will store it
        raise ConflictError(
            "project_id_differs",
            f"store {describe(state.settings.db)} serves project {current}; "
            f"--project-id {project_id} "
            f"would change that, and every client of its server would then need "
            f"--project {project_id}",
            field="project_id",
            recovery="add --force to change it",
        )


def reconcile(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would change")] = False,
) -> None:
    """Ask Stripe and Mollie about every pending payment: complete the paid ones (with
    auto_complete_paid), release the failed, cancelled and expired ones, and expire checkouts
    past their TTL. Open payments no checkout waits for (cancelled, expired, replaced) are
    closed at the provider, pending refunds are followed up, and every payment paid without an
    order is reported with the command that refunds it. Prints what changed.

    Example: checkout reconcile --dry-run
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        from rich.text import Text

        title = "Would change" if result["dry_run"] else "Changed"
        for finding in result["findings"]:  # money kept without an order: first, and loud
            output.out().print(Text(f"stray payment: {finding['message']}", "red"), soft_wrap=True)
            output.out().print(Text(f"  fix: {finding['fix']}", "green"), soft_wrap=True)
        if not result["changes"]:
            output.say("nothing to reconcile")
            return
        t = output.table(
            "Checkout", "Provider", "Provider status", "From", "To", "Action", title=title
        )
        for c in result["changes"]:
            t.add_row(
                c["checkout_token"],
                c["provider"] or "",
                c["provider_status"] or "",
                c["from_status"],
                c["to_status"],
                c["action"],
            )
        output.out().print(t)

    state: State = ctx.obj
    state.run(CHECKOUT_ADMIN, "reconcile", {"dry_run": dry_run}, render)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("reconcile")(reconcile)
