"""checkout orders …: the order-management endpoints."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from checkout_cli.cli import listing
from checkout_cli.cli.endpoint_command import Fields, Flag, endpoint_command
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import Body, State, merge_body, with_arguments
from checkout_cli.endpoints import ENDPOINTS, ORDER_MANAGEMENT
from checkout_cli.requests import FULFILMENT_STATES, ORDER_PAYMENT_STATES, OrderState

# The CLI's choices of the other two statuses (typer takes an enum).
PaymentState = enum.StrEnum("PaymentState", {s: s for s in ORDER_PAYMENT_STATES})  # type: ignore[misc]
FulfilmentState = enum.StrEnum("FulfilmentState", {s: s for s in FULFILMENT_STATES})  # type: ignore[misc]

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Orders made by completed checkouts.\n\nExample: checkout orders list",
    no_args_is_help=True,
)


def _help(name: str) -> str:
    e = ENDPOINTS[(ORDER_MANAGEMENT, name)]
    return f"{e.summary} (endpoint {name})\n\nExample: {e.example}"


# An order named on the command line, or as order_id in --body.
OrderOrBody = Annotated[
    str | None,
    typer.Argument(
        metavar="ORDER",
        help="order number (2026-000042) or order id (or order_id in --body)",
        show_default=False,
    ),
]


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
        ("amount_paid_cents", lambda o: o["amount_paid_cents"]),
        ("balance_due_cents", lambda o: o["balance_due_cents"]),
        ("fulfilment_status", lambda o: o["fulfilment_status"]),
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
    payment_status: Annotated[
        PaymentState | None, typer.Option(help="only orders whose payment is in this state")
    ] = None,
    fulfilment_status: Annotated[
        FulfilmentState | None, typer.Option(help="only orders shipped this far")
    ] = None,
    overdue: Annotated[
        bool,
        typer.Option(
            "--overdue",
            help="only invoices unpaid past invoice_due_days: money due, not cancelled",
        ),
    ] = False,
    email: Annotated[str | None, typer.Option(help="customer's email")] = None,
    reference: Annotated[
        str | None, typer.Option(help="the batch reference the order was made for")
    ] = None,
    payment_reference: Annotated[
        str | None,
        typer.Option(help="the order a payment was recorded for (a bank transaction id)"),
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
        payment_status=payment_status.value if payment_status else None,
        fulfilment_status=fulfilment_status.value if fulfilment_status else None,
        overdue=overdue or None,
        email=email,
        reference=reference,
        payment_reference=payment_reference,
        **listing.page(limit, offset),
    )
    listing.run(state, ORDER_MANAGEMENT, "list-orders", body_, ORDERS, fmt, quiet)


@app.command("show", help=_help("get-order"))
def show(
    ctx: typer.Context,
    order: OrderOrBody = None,
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
    order: OrderOrBody = None,
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


OrderArgument = Annotated[
    str,
    typer.Argument(
        metavar="ORDER", help="order number (2026-000042) or order id", show_default=False
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


def _refund_lines(values: list[str] | None) -> list[dict[str, Any]] | None:
    """``--line SKU=QTY`` (repeatable) → request lines; anything else is a usage error."""
    from checkout_cli.errors import UsageError
    from checkout_cli.values import parse_int

    if not values:
        return None
    lines = []
    for value in values:
        sku, sep, quantity = value.rpartition("=")
        number = parse_int(quantity) if sep else None
        if not sku or number is None:
            raise UsageError(
                "invalid_line",
                f"--line takes SKU=QTY (e.g. LENS-DAILY-30=1), got {value!r}",
                recovery="give one --line per SKU: --line SKU=QTY",
            )
        lines.append({"product_sku": sku, "quantity": number})
    return lines


def _confirm(state: State, question: str, declined: str) -> bool:
    """Ask on a terminal; piped without --yes is a usage error (exit 2)."""
    from checkout_cli.cli import output
    from checkout_cli.cli.prompts import can_prompt, missing_input, prompter

    if not can_prompt(state.settings):
        raise missing_input([f"--yes (confirm the {declined})"])
    if prompter().confirm(question, default=False):
        return True
    output.say(f"not {'refunded' if declined == 'refund' else 'cancelled'}")
    return False


def _refund_question(state: State, request: dict[str, Any]) -> str:
    """What the operator confirms: the money, in the order's currency, and whose it is."""
    from checkout_cli.money import format_money

    order = state.call(ORDER_MANAGEMENT, "get-order", {"order_id": request.get("order_id")})
    currency = order["currency"]
    held = sum(
        r["amount_cents"]
        for r in order["refunds"]
        if r["status"] in ("creating", "pending", "succeeded")
    )
    refundable = format_money(max(order["amount_paid_cents"] - held, 0), currency)
    if request.get("amount_cents") is not None:
        what = format_money(request["amount_cents"], currency)
    elif request.get("lines"):
        what = ", ".join(f"{x['quantity']} × {x['product_sku']}" for x in request["lines"])
    else:
        what = f"everything refundable, {refundable},"
    who = (order["customer"] or {}).get("name") or "the customer"
    return f"Refund {what} of order {order['order_number']} to {who} ({refundable} refundable)?"


def _refund_said(refunds: list[dict[str, Any]]) -> str:
    from checkout_cli.money import format_money

    return ", ".join(
        f"{format_money(r['amount_cents'], r['currency'])} "
        + (f"credit ({r['provider']})" if r["kind"] == "credit" else f"{r['provider']} ")
        + ("" if r["kind"] == "credit" else f"{r['status']} ({r['provider_refund_id']})")
        for r in refunds
    )


@app.command("refund", help=_help("refund-order") + "\n\nAsks to confirm unless --yes.")
def refund(
    ctx: typer.Context,
    order: OrderArgument,
    amount_cents: Annotated[
        int | None, typer.Option(help="refund this amount (minor units); default: all refundable")
    ] = None,
    line: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SKU=QTY", help="refund these units of a line (repeatable); with --restock"
        ),
    ] = None,
    restock: Annotated[
        bool, typer.Option("--restock", help="put the refunded lines back in stock")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why, for the timeline and the email")] = None,
    yes: Yes = False,
    body: Body = None,
) -> None:
    from checkout_cli.cli import output
    from checkout_cli.money import format_money

    state: State = ctx.obj
    request = merge_body(
        body,
        order_id=order,
        amount_cents=amount_cents,
        lines=_refund_lines(line),
        restock=True if restock else None,
        reason=reason,
    )
    if not yes:
        question = _refund_question(state, request)
        if not _confirm(state, question, "refund"):
            return

    def render(result: dict[str, Any]) -> None:
        shown = result["order"]
        again = " (resumed: an earlier attempt of this refund)" if result["resumed"] else ""
        output.say(
            f"order {shown['order_number']}: refunded "
            f"{format_money(result['amount_cents'], shown['currency'])}{again}: "
            f"{_refund_said(result['refunds'])}; payment {shown['payment_status']}",
            "green",
        )

    state.run(ORDER_MANAGEMENT, "refund-order", request, render)


@app.command(
    "cancel", help=_help("cancel-order") + "\n\nAsks to confirm unless --yes. Shipped: refused."
)
def cancel(
    ctx: typer.Context,
    order: OrderArgument,
    reason: Annotated[str | None, typer.Option(help="why, for the timeline and the email")] = None,
    no_restock: Annotated[
        bool, typer.Option("--no-restock", help="leave the stock as it is")
    ] = False,
    refund_: Annotated[
        bool,
        typer.Option(
            "--refund", help="a paid order: refund everything refundable first, then cancel"
        ),
    ] = False,
    yes: Yes = False,
    body: Body = None,
) -> None:
    from checkout_cli.cli import output

    state: State = ctx.obj
    request = merge_body(
        body,
        order_id=order,
        reason=reason,
        no_restock=True if no_restock else None,
        refund=True if refund_ else None,
    )
    if not yes:
        extra = " and refund what it was paid" if refund_ else ""
        if not _confirm(state, f"Cancel order {order}{extra}?", "cancellation"):
            return

    def render(result: dict[str, Any]) -> None:
        shown = result["order"]
        if result["already_cancelled"]:
            output.say(f"order {shown['order_number']} was already cancelled")
            return
        said = f"order {shown['order_number']} cancelled"
        if result["refunds"]:
            said += f"; refunded {_refund_said(result['refunds'])}"
        if result["restocked"]:
            said += "; back in stock: " + ", ".join(
                f"{r['quantity']} × {r['product_sku']}" for r in result["restocked"]
            )
        output.say(said, "green")

    state.run(ORDER_MANAGEMENT, "cancel-order", request, render)


# --- checkout orders fulfil ---


def _line_quantities(given: list[str]) -> list[dict[str, Any]]:
    """``--line SKU=QTY`` flags as request lines; a flag of another form is exit 2."""
    from checkout_cli.errors import UsageError
    from checkout_cli.values import parse_int, shown

    lines = []
    for text in given:
        sku, equals, quantity = text.rpartition("=")
        number = parse_int(quantity) if equals else None
        if not sku or number is None:
            raise UsageError(
                "bad_usage",
                f"--line {shown(text)}: expected SKU=QTY, e.g. LENS-DAILY-30=2",
                field="lines",
                recovery="one --line per SKU, its quantity a whole number",
            )
        lines.append({"product_sku": sku, "quantity": number})
    return lines


def _fulfilled(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    order, shipment = result["order"], result["fulfilment"]
    names = {item["line_id"]: item["product_sku"] for item in order["items"]}
    what = ", ".join(f"{names[li['line_id']]} × {li['quantity']}" for li in shipment["lines"])
    how = " ".join(
        p for p in (shipment["carrier"], shipment["tracking_number"], shipment["tracking_url"]) if p
    )
    again = " (already shipped: nothing shipped twice)" if result["already_fulfilled"] else ""
    output.say(
        f"order {order['order_number']}: shipment {shipment['fulfilment_id']}{again}: {what}"
        + (f" — {how}" if how else ""),
        "green",
    )
    output.say(f"order {order['status']}, {order['fulfilment_status'].replace('_', ' ')}")
    for line in result["refunded_units_shipped"]:
        output.say(
            f"note: {line['quantity']} unit(s) of line {line['line_id']} "
            f"({names[line['line_id']]}) were refunded and shipped anyway",
            "yellow",
        )


@app.command("fulfil", help=_help("fulfil-order"))
def fulfil(
    ctx: typer.Context,
    order: OrderOrBody = None,
    line: Annotated[
        list[str] | None,
        typer.Option(
            "--line",
            metavar="SKU=QTY",
            help="ship this many of a SKU (repeat for more; default: every unit not shipped)",
        ),
    ] = None,
    carrier: Annotated[str | None, typer.Option(help="who carries it, e.g. PostNL")] = None,
    tracking: Annotated[
        str | None, typer.Option(help="the carrier's tracking number (needs --carrier)")
    ] = None,
    tracking_url: Annotated[
        str | None, typer.Option(help="where the customer follows it (http or https)")
    ] = None,
    body: Body = None,
) -> None:
    state: State = ctx.obj
    request = with_arguments(
        merge_body(
            body,
            lines=_line_quantities(line) if line else None,
            carrier=carrier,
            tracking_number=tracking,
            tracking_url=tracking_url,
        ),
        ("order_id", "ORDER", order),
    )
    state.run(ORDER_MANAGEMENT, "fulfil-order", request, _fulfilled)


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
        order: OrderOrBody = None,
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
