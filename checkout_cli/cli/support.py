"""Support commands: checkouts list (--stuck), inspect, doctor."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from checkout_cli.cli import completion, listing, references
from checkout_cli.cli.endpoint_command import Fields, endpoint_command
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.references import CheckoutArgument, Last
from checkout_cli.cli.state import State, merge_body
from checkout_cli.endpoints import CHECKOUT_ADMIN
from checkout_cli.errors import UsageError

checkouts_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Find checkouts, stuck ones first of all.\n\nExample: checkout checkouts list --stuck",
    no_args_is_help=True,
)


@checkouts_app.callback()
def checkouts() -> None:
    """Find checkouts, stuck ones first of all."""


_UNITS = {"m": 1, "h": 60, "d": 1440}


def parse_minutes(text: str) -> int:
    """``30m``, ``2h``, ``1d`` (or a bare number of minutes)."""
    match = re.fullmatch(r"\s*([0-9]{1,7})\s*([mhd]?)\s*", text)
    if not match:
        raise UsageError(
            "invalid_duration", f"{text!r} is not a duration", recovery="use e.g. 30m, 2h or 1d"
        )
    return int(match.group(1)) * _UNITS[match.group(2) or "m"]


def _list_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output
    from checkout_cli.money import format_money

    t = output.table(
        "Checkout", "Status", "Customer", "Total", "Payment", "Order", "Updated", "Stuck because"
    )
    # The token is what support copies into `checkout inspect`: never cut short, however narrow.
    t.columns[0].no_wrap = True
    t.columns[0].min_width = max(len(c["checkout_token"]) for c in result["checkouts"])
    for c in result["checkouts"]:
        payment = f"{c['payment_provider']}: {c['payment_status']}" if c["payment_provider"] else ""
        t.add_row(
            c["checkout_token"],
            c["status"],
            c["customer_email"] or "",
            format_money(c["total_cents"], c["currency"]),
            payment,
            c["order_number"] or "",
            c["updated_at"],
            ", ".join(c["stuck_reasons"]),
        )
    output.out().print(t)


CHECKOUTS = listing.Listing(
    rows="checkouts",
    id_of=lambda c: c["checkout_token"],
    columns=(
        ("checkout_token", lambda c: c["checkout_token"]),
        ("status", lambda c: c["status"]),
        ("customer_email", lambda c: c["customer_email"]),
        ("total_cents", lambda c: c["total_cents"]),
        ("currency", lambda c: c["currency"]),
        ("payment_provider", lambda c: c["payment_provider"]),
        ("payment_status", lambda c: c["payment_status"]),
        ("order_number", lambda c: c["order_number"]),
        ("updated_at", lambda c: c["updated_at"]),
        ("stuck_reasons", lambda c: " ".join(c["stuck_reasons"])),
    ),
    table=_list_table,
)


@checkouts_app.command("list")
@endpoint_command(CHECKOUT_ADMIN, "list-checkouts", ("status",))
def list_(
    ctx: typer.Context,
    *,
    fields: Fields,
    stuck: Annotated[bool, typer.Option("--stuck", help="only stuck checkouts")] = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="untouched for at least this long, e.g. 30m, 2h (with --stuck: what counts as too "
            "long; default 30m)"
        ),
    ] = None,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Checkouts by latest activity. Stuck: payment pending too long, completable but not
    completed, paid but not completed, email not delivered, not enough stock, or a payment
    paid without an order (stray_paid_payment: refund it with `checkout refund-payment`);
    and after the order: a refund pending longer than refund_pending_days
    (refund_pending_too_long), a refund the provider refused (refund_failed), or an order
    paid but not shipped after ship_within_days (paid_not_shipped).

    Example: checkout checkouts list --stuck --older-than 30m
    """
    state: State = ctx.obj
    body = merge_body(
        None,
        **fields,
        stuck=stuck or None,
        older_than_minutes=parse_minutes(older_than) if older_than else None,
        **listing.page(limit, offset),
    )
    listing.run(state, CHECKOUT_ADMIN, "list-checkouts", body, CHECKOUTS, fmt, quiet)


def inspect(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    live: Annotated[
        bool, typer.Option("--live/--no-live", help="ask the payment provider for its status")
    ] = True,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="what counts as too long untouched, e.g. 30m, 2h (default 30m, the same as "
            "`checkouts list --stuck`)"
        ),
    ] = None,
) -> None:
    """Everything support needs about one checkout: the status view, its timeline, the
    provider's live status, and a diagnosis with the exact command that fixes it. An order
    number names its checkout; a completed one shows its order's payments, refunds and
    shipments too. It calls
    a checkout stuck exactly when `checkouts list --stuck` with the same --older-than does.

    Example: checkout inspect 2026-000042 --older-than 10m
    """
    from rich.text import Text

    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        output.checkout_view(result["checkout"])
        if result.get("order"):
            output.order_life(result["order"])
        output.out().print(output.timeline_table(result["timeline"]))
        live_status = result["provider_live"]
        if live_status:
            shown = (
                live_status["error"]
                or f"{live_status['status']} ({live_status['provider_status']})"
            )
            output.out().print(Text(f"Live at {live_status['provider']}: {shown}"))
        output.out().print(Text("Diagnosis", style="bold"))
        for item in result["diagnosis"]:
            output.out().print(Text(f"  • {item['problem']}"))
            if item["fix"]:
                output.out().print(Text(f"    fix: {item['fix']}", style="green"))
            for step in item.get("then", []):
                output.out().print(Text(f"    then: {step}", style="green"))

    state: State = ctx.obj
    minutes = parse_minutes(older_than) if older_than else None
    with references.checkout(state, checkout_token, last=last) as reference:
        body = merge_body(
            None, checkout_token=reference.token, live=live, older_than_minutes=minutes
        )
        state.run(CHECKOUT_ADMIN, "inspect-checkout", body, render)


def doctor(ctx: typer.Context) -> None:
    """Check the store's invariants (one order per checkout, stock = ledger, one email per
    order, totals add up, meta copied unchanged, no paid payment without an order or a
    refund, order payment status = its payment row) and list every violation by name, and
    every email left half-sent. Exit 4 if any invariant is violated.

    Example: checkout doctor
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        for email in result.get("emails_sending", []):
            output.say(
                f"email {email['id']} to {email['recipient']} is stuck in sending since "
                f"{email['claimed_at']}: see `checkout outbox send --retry-stuck`"
            )
        for run in result.get("smoke_runs", []):
            where = f"smoke run {run['run_id']} (since {run['started_at']}) is still in the store"
            output.say(
                f"{where}: it has a paid payment, so it is kept; see `checkout inspect`"
                if run["paid"]
                else f"{where}: the next `checkout smoke` removes it once 10 minutes old"
            )
        if not result["violations"]:
            output.say("no violations: the store's invariants hold", "green")
            return
        t = output.table("Invariant", "Problem", "Records")
        for v in result["violations"]:
            t.add_row(
                f"{v['invariant']} {v['name']}",
                v["message"],
                ", ".join(f"{k}={val}" for k, val in v["records"].items()),
            )
        output.out().print(t)

    state: State = ctx.obj
    result = state.run(CHECKOUT_ADMIN, "check-invariants", {}, render)
    if result["violations"]:
        raise typer.Exit(4)  # the store conflicts with its invariants; 1 stays for bugs


def refund_payment(
    ctx: typer.Context,
    checkout_token: Annotated[
        str,
        typer.Argument(
            metavar="CHECKOUT",
            help="checkout token (chk_…) or order number (2026-000042)",
            show_default=False,
            autocompletion=completion.checkout_tokens,
        ),
    ],
    provider_payment_id: Annotated[
        str, typer.Argument(help="the Stripe or Mollie payment id (cs_…, tr_…)", show_default=False)
    ],
    reason: Annotated[str | None, typer.Option(help="why, for the timeline")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Refund in full a stray payment: paid at Stripe or Mollie, but no order accounts for it
    (its checkout is cancelled, expired or completed by another payment, or it was replaced).
    `reconcile`, `inspect` and `doctor` print this command for every stray they find. The
    payment of an order, or of an open checkout, is refused. A retry never refunds twice.

    Example: checkout refund-payment chk_XXXX tr_WDqYK6vllg --yes
    """
    from checkout_cli.cli import output
    from checkout_cli.cli.prompts import can_prompt, missing_input, prompter

    state: State = ctx.obj
    reference = references.resolve(state, checkout_token, last=False)
    if not yes:
        if not can_prompt(state.settings):
            raise missing_input(["--yes (confirm the refund)"])
        if not prompter().confirm(
            f"Refund payment {provider_payment_id} of {reference.label} in full?", default=False
        ):
            output.say("not refunded")
            return

    def render(result: dict[str, Any]) -> None:
        from checkout_cli.money import format_money

        refund = result["refund"]
        again = " (already refunded earlier)" if result["already_refunded"] else ""
        output.say(
            f"{result['provider']} payment {result['provider_payment_id']}: refunded "
            f"{format_money(refund['amount_cents'], refund['currency'])}, "
            f"{refund['status']} ({refund['provider_refund_id']}){again}",
            "green",
        )

    body = merge_body(
        None,
        checkout_token=reference.token,
        provider_payment_id=provider_payment_id,
        reason=reason,
    )
    # Not made the --last checkout: a refunded stray's checkout is closed, not being worked on.
    with references.using(state, reference, remember=False):
        state.run(CHECKOUT_ADMIN, "refund-payment", body, render)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
    app.command("doctor")(doctor)
    app.command("refund-payment")(refund_payment)
