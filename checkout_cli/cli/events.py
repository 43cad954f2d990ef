"""checkout events: order events out as signed webhooks (subscriptions, deliveries, tests)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from checkout_cli.cli import listing
from checkout_cli.cli.listing import Format, Limit, Offset, Quiet
from checkout_cli.cli.state import State, present
from checkout_cli.endpoints import ORDER_EVENTS

events_app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Order events out as signed webhooks: subscribe a URL, see its deliveries, test it.\n\n"
    "Example: checkout events subscribe --url https://shop.example/hooks --event order.paid",
    no_args_is_help=True,
)


def _subscriptions_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    t = output.table("Subscription", "URL", "Events", "Status", "Created")
    for s in result["subscriptions"]:
        t.add_row(
            s["subscription_id"], s["url"], ", ".join(s["events"]), s["status"], s["created_at"]
        )
    output.out().print(t)


def _deliveries_table(result: dict[str, Any]) -> None:
    from checkout_cli.cli import output

    t = output.table("Delivery", "Event", "Type", "Status", "Attempts", "Answer", "Next attempt")
    for d in result["deliveries"]:
        answer = str(d["response_status"]) if d["response_status"] is not None else ""
        t.add_row(
            d["delivery_id"],
            d["event_id"],
            d["event_type"],
            d["status"],
            str(d["attempts"]),
            answer or (d["last_error"] or ""),
            d["next_attempt_at"] or "",
        )
    output.out().print(t)


SUBSCRIPTIONS = listing.Listing(
    rows="subscriptions",
    noun="webhook subscriptions",
    id_of=lambda s: s["subscription_id"],
    columns=listing.fields("subscription_id", "url", "status", "created_at"),
    table=_subscriptions_table,
)
DELIVERIES = listing.Listing(
    rows="deliveries",
    noun="webhook deliveries",
    id_of=lambda d: d["delivery_id"],
    columns=listing.fields(
        "delivery_id",
        "event_id",
        "event_type",
        "subscription_id",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "next_attempt_at",
    ),
    table=_deliveries_table,
)


@events_app.command("subscribe")
def subscribe(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="where events are POSTed (http or https)")],
    event: Annotated[
        list[str],
        typer.Option("--event", help="an event type (repeat it), or '*' for every one"),
    ],
    description: Annotated[
        str | None, typer.Option("--description", help="what the receiver is")
    ] = None,
) -> None:
    """Subscribe a URL to order events; prints its signing secret once.

    Example: checkout events subscribe --url https://shop.example/hooks --event order.paid
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        output.out().print(result["secret"])
        output.say(
            f"subscription {result['subscription_id']} to {result['url']} "
            f"({', '.join(result['events'])}) created; its secret will not be shown again"
        )

    state: State = ctx.obj
    body = present(url=url, events=event, description=description)
    state.run(ORDER_EVENTS, "subscribe", body, render)


@events_app.command("subscriptions")
def subscriptions(
    ctx: typer.Context,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Webhook subscriptions (never their secrets).

    Example: checkout events subscriptions
    """
    state: State = ctx.obj
    body = listing.page(limit, offset)
    listing.run(state, ORDER_EVENTS, "list-subscriptions", body, SUBSCRIPTIONS, fmt, quiet)


@events_app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    subscription_id: Annotated[str, typer.Argument(help="whs_…", show_default=False)],
) -> None:
    """Disable a subscription; what it was still to be sent is given up.

    Example: checkout events unsubscribe whs_…
    """
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(
        ORDER_EVENTS,
        "unsubscribe",
        {"subscription_id": subscription_id},
        lambda r: output.say(f"subscription {r['subscription_id']} {r['status']}"),
    )


@events_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option("--status", help="queued, sending, delivered, failed or dead"),
    ] = None,
    subscription: Annotated[
        str | None, typer.Option("--subscription", help="only this subscription's")
    ] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    limit: Limit = listing.DEFAULT_LIMIT,
    offset: Offset = 0,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Webhook deliveries, newest first, with each receiver's answer.

    Example: checkout events deliveries --status failed
    """
    state: State = ctx.obj
    body = {
        **present(status=status, subscription_id=subscription, event_type=event_type),
        **listing.page(limit, offset),
    }
    listing.run(state, ORDER_EVENTS, "list-deliveries", body, DELIVERIES, fmt, quiet)


@events_app.command("trigger")
def trigger(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="the event type, e.g. order.paid")],
    order: Annotated[
        str | None, typer.Option("--order", help="order id or number (default: the latest)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the payload and its subscribers; send nothing")
    ] = False,
) -> None:
    """Send a test event of a type for an order to its subscribers.

    Example: checkout events trigger order.paid --order 2026-000001 --dry-run
    """
    from checkout_cli.cli import output
    from checkout_cli.cli.state import print_json

    def render(result: dict[str, Any]) -> None:
        if result["dry_run"]:
            print_json(result["payload"])
            output.say(
                f"dry run: {result['type']} would go to "
                f"{', '.join(result['subscriptions']) or 'no subscription'}; nothing was written"
            )
        else:
            output.say(
                f"event {result['event_id']} ({result['type']}) queued: "
                f"{len(result['deliveries'])} deliveries"
            )

    state: State = ctx.obj
    body = {"type": event, "dry_run": dry_run, **present(order_id=order)}
    state.run(ORDER_EVENTS, "fire-event", body, render)


@events_app.command("resend")
def resend(
    ctx: typer.Context,
    delivery_id: Annotated[str, typer.Argument(help="whd_…", show_default=False)],
) -> None:
    """Send a delivery's event again, as a new delivery naming the first.

    Example: checkout events resend whd_…
    """
    from checkout_cli.cli import output

    state: State = ctx.obj
    state.run(
        ORDER_EVENTS,
        "resend-delivery",
        {"delivery_id": delivery_id},
        lambda r: output.say(
            f"delivery {r['delivery_id']} (resend of {r['resend_of']}): {r['status']}"
        ),
    )


def _outcome_line(d: dict[str, Any]) -> str:
    answer = d["response_status"] if d["response_status"] is not None else d["error"]
    return f"{d['event_type']} {d['event_id']} {d['delivery_id']} -> {d['status']} [{answer}]"


@events_app.command("deliver")
def deliver(ctx: typer.Context) -> None:
    """Send the webhook deliveries that are due now (retries included).

    Example: checkout events deliver
    """
    from checkout_cli.cli import output

    def render(result: dict[str, Any]) -> None:
        for d in result["deliveries"]:
            output.say(_outcome_line(d))
        output.say(
            f"{result['attempted']} attempted: {result['delivered']} delivered, "
            f"{result['failed']} failed, {result['dead']} given up"
        )

    state: State = ctx.obj
    state.run(ORDER_EVENTS, "deliver-events", {}, render)


@events_app.command("listen")
def listen(
    ctx: typer.Context,
    forward_to: Annotated[
        str, typer.Option("--forward-to", help="the local URL events are POSTed to")
    ],
    event: Annotated[
        list[str] | None, typer.Option("--event", help="only these event types (default: all)")
    ] = None,
) -> None:
    """Forward every event to a URL on this machine until Ctrl-C (a temporary subscription).

    Example: checkout events listen --forward-to http://127.0.0.1:4242/webhooks
    """
    state: State = ctx.obj
    sub = state.call(
        ORDER_EVENTS,
        "subscribe",
        {"url": forward_to, "events": event or ["*"], "description": "checkout events listen"},
    )
    sub_id = sub["subscription_id"]
    print(f"Ready! Your webhook signing secret is {sub['secret']}", file=sys.stderr, flush=True)
    print(f"forwarding events to {forward_to} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        while True:
            result = state.call(ORDER_EVENTS, "deliver-events", {"subscription_id": sub_id})
            for d in result["deliveries"]:
                print(_outcome_line(d), flush=True)
            if not result["deliveries"]:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        state.call(ORDER_EVENTS, "unsubscribe", {"subscription_id": sub_id})
        print(f"subscription {sub_id} removed", file=sys.stderr, flush=True)
