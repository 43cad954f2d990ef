"""The checkout-flow commands, one per endpoint and named exactly as the endpoint."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from checkout_cli.cli import references
from checkout_cli.cli.endpoint_command import Fields, Flag, endpoint_command
from checkout_cli.cli.flag_values import country_flag
from checkout_cli.cli.references import CheckoutArgument, Last
from checkout_cli.cli.state import Body, State, merge_body
from checkout_cli.endpoints import CHECKOUT_FLOW, ENDPOINTS
from checkout_cli.requests import Address, Customer
from checkout_cli.schema import field_type

# What every command on a checkout takes, said once (initiate-checkout takes a cart).
_REFERENCES = (
    "\n\nCHECKOUT is a token (chk_…) or an order number (2026-000042); --last is your "
    "most recent checkout. A mistyped token is refused with the close ones."
)


def _help(name: str, extra: str = "") -> str:
    endpoint = ENDPOINTS[(CHECKOUT_FLOW, name)]
    references = "" if name == "initiate-checkout" else _REFERENCES
    return f"{endpoint.summary}{extra}{references}\n\nExample: {endpoint.example}"


def show_checkout(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    output.checkout_view(result)
    for warning in result.get("warnings", []):
        output.say(f"warning: {warning['message']}", "yellow")
    if result.get("reused"):
        output.say("an open checkout already existed for this cart; it was reused")
    if result.get("already_completed"):
        output.say("already completed earlier; this is the same order")


def _run(ctx: typer.Context, name: str, body: dict[str, Any]) -> dict[str, Any]:
    state: State = ctx.obj
    return state.run(CHECKOUT_FLOW, name, body, show_checkout)


def _run_on(
    ctx: typer.Context, name: str, body: dict[str, Any], *, last: bool, changes: bool = True
) -> None:
    """``name`` on the checkout the request names (token, order number or --last)."""
    with references.checkout(
        ctx.obj, body.get("checkout_token"), last=last, remember=changes
    ) as reference:
        _run(ctx, name, {**body, "checkout_token": reference.token})


def initiate_checkout(
    ctx: typer.Context,
    cart_token: Annotated[
        str | None, typer.Argument(help="cart token (cart_…)", show_default=False)
    ] = None,
    body: Body = None,
) -> None:
    from checkout_cli.cli import recent

    result = _run(ctx, "initiate-checkout", merge_body(body, cart_token=cart_token))
    recent.remember(ctx.obj.settings, result["checkout_token"])


_COUNTRY_HELP = "ISO 3166 code or name (NL, DE, Netherlands…)"


def _address_flags(part: str, prefix: str, about: str, first: str = "") -> tuple[Flag, ...]:
    """An address's fields as flags: ``shipping_address.city`` is ``--city``, its billing one
    ``--billing-city``."""
    return tuple(
        Flag(
            f"{part}.{key}",
            f"--{prefix}{key.replace('_', '-')}",
            help=(
                f"{about} country: {_COUNTRY_HELP}"
                if key == "country"
                else f"{about} address: {{description}}" + (first if key == "line1" else "")
            ),
            callback=country_flag if key == "country" else None,
        )
        for key in ("line1", "line2", "postal_code", "city", "region", "country")
    )


# set-customer's flags: the request's nested fields mapped to the flags' names.
_CUSTOMER_FLAGS: tuple[str | Flag, ...] = (
    "customer.email",
    "customer.name",
    "customer.phone",
    "customer.company",
    *_address_flags("shipping_address", "", "shipping"),
    *_address_flags("billing_address", "billing-", "billing", " (default: the shipping address)"),
    Flag("shipping_cents", help="{description} (default: the shop's default shipping)"),
    Flag("tax_cents", help="total tax in minor units (default: computed from the country's rate)"),
)


@endpoint_command(CHECKOUT_FLOW, "set-customer", _CUSTOMER_FLAGS)
def set_customer(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    *,
    fields: Fields,
    body: Body = None,
) -> None:
    request = merge_body(body, checkout_token=checkout_token, **fields)
    _ask_missing_customer(ctx.obj, request, token=not last)
    _run_on(ctx, "set-customer", request, last=last)


# (request object, key, flag, prompt) for each required customer field, in asking order.
_CUSTOMER_FIELDS = (
    ("customer", "email", "--email", "Customer email"),
    ("customer", "name", "--name", "Customer name"),
    ("shipping_address", "line1", "--line1", "Street and number"),
    ("shipping_address", "postal_code", "--postal-code", "Postal code"),
    ("shipping_address", "city", "--city", "City"),
    ("shipping_address", "country", "--country", "Country"),
)


def _ask_missing_customer(state: State, request: dict[str, Any], *, token: bool) -> None:
    from checkout_cli.cli.prompts import can_prompt, checker, missing_input, prompter

    missing = [
        (part, key, flag, label)
        for part, key, flag, label in _CUSTOMER_FIELDS
        if not request.get(part, {}).get(key)
    ]
    if token and not request.get("checkout_token"):
        missing.insert(0, ("", "checkout_token", "CHECKOUT", "Checkout token or order number"))
    if not missing:
        return
    if not can_prompt(state.settings):
        raise missing_input([flag for _, _, flag, _ in missing])
    ask = prompter()
    for part, key, _, label in missing:
        if key == "country":
            from checkout_cli.countries import country_names

            choices = [
                (code, f"{code}  {name}")
                for code, name in sorted(country_names().items(), key=lambda kv: kv[1])
            ]
            value = ask.choice(label, choices, default="NL")
        elif part:
            model = Customer if part == "customer" else Address
            value = ask.text(label, validate=checker(field_type(model, key)))
        else:
            value = ask.text(label)
        if part:
            request.setdefault(part, {})[key] = value
        else:
            request[key] = value


@endpoint_command(
    CHECKOUT_FLOW,
    "create-payment",
    ("provider", "redirect_url", "webhook_url", Flag("new", help="{description}")),
)
def create_payment(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    *,
    fields: Fields,
    body: Body = None,
) -> None:
    request = merge_body(body, checkout_token=checkout_token, **fields)
    _run_on(ctx, "create-payment", request, last=last)


@endpoint_command(
    CHECKOUT_FLOW,
    "set-payment",
    (
        "provider",
        "reference",
        "status",
        "amount_cents",
        Flag("force", help="{description} (logged)"),
    ),
)
def set_payment(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    *,
    fields: Fields,
    body: Body = None,
) -> None:
    request = merge_body(body, checkout_token=checkout_token, **fields)
    _run_on(ctx, "set-payment", request, last=last)


def get_checkout_status(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    body: Body = None,
) -> None:
    request = merge_body(body, checkout_token=checkout_token)
    _run_on(ctx, "get-checkout-status", request, last=last, changes=False)


def complete_checkout(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    body: Body = None,
) -> None:
    _run_on(ctx, "complete-checkout", merge_body(body, checkout_token=checkout_token), last=last)


def cancel_checkout(
    ctx: typer.Context,
    checkout_token: CheckoutArgument = None,
    last: Last = False,
    reason: Annotated[str | None, typer.Option(help="why, for the timeline")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="cancel a paid checkout too: a Stripe/Mollie payment is refunded in full "
            "first (the checkout stays open if the refund fails); a payment linked by hand is "
            "not returned, you return it yourself",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    body: Body = None,
) -> None:
    from checkout_cli.cli.prompts import can_prompt, missing_input, prompter

    state: State = ctx.obj
    # --force is never implied by the confirmation: refunding is asked for on the line.
    request = merge_body(
        body, checkout_token=checkout_token, reason=reason, force=True if force else None
    )

    def render(result: dict[str, Any]) -> None:
        show_checkout(result)
        if refund := result.get("refund"):
            from checkout_cli.cli import output
            from checkout_cli.money import format_money

            output.say(
                f"refunded {format_money(refund['amount_cents'], refund['currency'])} "
                f"({refund['status']}, {refund['provider_refund_id']})"
            )

    reference = references.resolve(state, request.get("checkout_token"), last=last)
    if not yes:
        if not can_prompt(state.settings):
            raise missing_input(["--yes (confirm the cancellation)"])
        question = f"Cancel checkout {reference.label}"
        question += " even if paid (a Stripe/Mollie payment is refunded)?" if force else "?"
        if not prompter().confirm(question, default=False):
            from checkout_cli.cli import output

            output.say("not cancelled")
            return  # the operator's choice, not a failure
    with references.using(state, reference, remember=True):
        request["checkout_token"] = reference.token
        state.run(CHECKOUT_FLOW, "cancel-checkout", request, render)


def register(app: typer.Typer) -> None:
    for function, name, extra in (
        (initiate_checkout, "initiate-checkout", ""),
        (
            set_customer,
            "set-customer",
            "\n\nMissing customer and address fields are asked for on a terminal.",
        ),
        (create_payment, "create-payment", ""),
        (set_payment, "set-payment", ""),
        (get_checkout_status, "get-checkout-status", " Alias: status."),
        (complete_checkout, "complete-checkout", ""),
        (
            cancel_checkout,
            "cancel-checkout",
            " Asks to confirm unless --yes. Refused when paid: exit 5.",
        ),
    ):
        app.command(name, help=_help(name, extra), rich_help_panel="Checkout flow")(function)
    app.command(
        "status",
        help=_help("get-checkout-status", " Short for get-checkout-status."),
        rich_help_panel="Checkout flow",
    )(get_checkout_status)
