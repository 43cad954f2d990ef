"""checkout orders …: the order-management endpoints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from checkout_cli.cli import listing
from checkout_cli.cli.endpoint_command import Fields, Flag, endpoint_command
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import Body, State, merge_body, with_arguments
from checkout_cli.endpoints import ENDPOINTS, ORDER_MANAGEMENT
from checkout_cli.requests import OrderState

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Orders made by completed checkouts.\n\nExample: checkout orders list",
    no_args_is_help=True,
)


def _help(name: str) -> str:
    e = ENDPOINTS[(ORDER_MANAGEMENT, name)]
    return f"{e.summary} (endpoint {name})\n\nExample: {e.example}"


def _orders_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    output.orders_view(result["orders"])


def _customer(field: str) -> Any:
    return lambda o: (o["customer"] or {}).get(field)


ORDERS = listing.Listing(
    rows="orders",
    id_of=lambda o: o["order_number"],
    columns=(
        ("order_number", lambda o: o["order_number"]),
        ("order_id", lambda o: o["order_id"]),
        ("status", lambda o: o["status"]),
        ("payment_status", lambda o: o["payment_status"]),
        ("customer_email", _customer("email")),
        ("customer_name", _customer("name")),
        ("company", _customer("company")),
        ("subtotal_cents", lambda o: o["totals"]["subtotal_cents"]),
        ("shipping_cents", lambda o: o["totals"]["shipping_cents"]),
        ("tax_cents", lambda o: o["totals"]["tax_cents"]),
        ("total_cents", lambda o: o["totals"]["total_cents"]),
        ("currency", lambda o: o["currency"]),
        ("country", lambda o: (o["shipping_address"] or {}).get("country")),
        ("external_reference", lambda o: o.get("external_reference")),
        ("checkout_token", lambda o: o["checkout_token"]),
        ("created_at", lambda o: o["created_at"]),
    ),
    table=_orders_table,
)


@app.command("list", help=_help("list-orders"))
def list_(
    ctx: typer.Context,
    status: Annotated[OrderState | None, typer.Option(help="only orders in this status")] = None,
    email: Annotated[str | None, typer.Option(help="customer's email")] = None,
    reference: Annotated[
        str | None, typer.Option(help="the batch reference the order was made for")
    ] = None,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    body_ = merge_body(
        body,
        status=status.value if status else None,
        email=email,
        reference=reference,
        **listing.page(limit, offset),
    )
    listing.run(state, ORDER_MANAGEMENT, "list-orders", body_, ORDERS, fmt, quiet)


@app.command("show", help=_help("get-order"))
def show(
    ctx: typer.Context,
    order: Annotated[
        str | None,
        typer.Argument(
            metavar="ORDER",
            help="order number (2026-000042) or order id (or order_id in --body)",
            show_default=False,
        ),
    ] = None,
    body: Body = None,
) -> None:
    from checkout_cli.cli import output

    state: State = ctx.obj
    request = with_arguments(merge_body(body), ("order_id", "ORDER", order))
    state.run(ORDER_MANAGEMENT, "get-order", request, output.order_view)


# --- checkout orders record-payment ---


@app.command(
    "record-payment",
    help=_help("record-payment")
    + "\n\nThe same reference again for the same order and amount answers the payment "
    "recorded before (already_recorded); with another order or amount it is refused (exit 4), "
    "as are more than the balance due (unless --force), a cancelled order and another currency.",
)
@endpoint_command(
    ORDER_MANAGEMENT,
    "record-payment",
    (
        "amount_cents",
        "method",
        "reference",
        "currency",
        Flag("paid_on", help="the day the money arrived, YYYY-MM-DD (not in the future)"),
        Flag("force", help="{description}; needs an admin token over --remote (logged)"),
        "note",
    ),
)
def record_payment(
    ctx: typer.Context,
    order: Annotated[
        str | None,
        typer.Argument(
            metavar="ORDER",
            help="order number (2026-000042) or order id (or order_id in --body)",
            show_default=False,
        ),
    ] = None,
    *,
    fields: Fields,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    request = with_arguments(merge_body(body, **fields), ("order_id", "ORDER", order))
    state.run(ORDER_MANAGEMENT, "record-payment", request, _recorded_view)


def _recorded_view(result: dict[str, Any]) -> None:
    from rich.text import Text

    from checkout_cli.cli import output
    from checkout_cli.money import format_money

    payment, order = result["payment"], result["order"]
    amount = format_money(payment["amount_cents"], payment["currency"])
    said = "already recorded" if result["already_recorded"] else "recorded"
    forced = " (more than the balance: forced)" if payment["forced"] else ""
    output.out().print(
        Text(
            f"{said}: {amount} by {payment['method']} ({payment['reference']}) for order "
            f"{order['order_number']}{forced}; now {order['payment_status']}, balance due "
            f"{format_money(order['balance_due_cents'], order['currency'])}"
        ),
        soft_wrap=True,
    )


# --- checkout orders refund, checkout orders cancel ---


# --- checkout orders fulfil ---


# --- checkout orders pay-link ---


def _pay_link_view(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output
    from checkout_cli.cli.safe_text import visible

    said = "the open link, again" if result["reused"] else "a new link"
    if result["replaced_provider_payment_id"]:
        said += f" (closed {result['replaced_provider_payment_id']}: the balance changed)"
    output.out().print(
        visible(
            f"Order {result['order_number']}: {result['provider']} payment link for "
            f"{result['amount_due']}, {result['status']} — {said}"
        ),
        markup=False,
        highlight=False,
    )
    if result["redirect_url"]:
        output.out().print(
            visible(result["redirect_url"]), markup=False, highlight=False, soft_wrap=True
        )


def _pay_link_command() -> None:
    @app.command("pay-link", help=_help("create-payment-link"))
    @endpoint_command(
        ORDER_MANAGEMENT, "create-payment-link", ("provider", "redirect_url", "webhook_url")
    )
    def pay_link(
        ctx: typer.Context,
        order: Annotated[
            str | None,
            typer.Argument(
                metavar="ORDER",
                help="order number (2026-000042) or order id (or order_id in --body)",
                show_default=False,
            ),
        ] = None,
        *,
        fields: Fields,
        body: Body = None,
    ) -> None:
        state: State = ctx.obj
        request = with_arguments(merge_body(body, **fields), ("order_id", "ORDER", order))
        state.run(ORDER_MANAGEMENT, "create-payment-link", request, _pay_link_view)


_pay_link_command()


def _line_meta_command() -> None:
    from checkout_cli.cli.meta import line_meta

    app.command("line-meta")(line_meta)


_line_meta_command()
