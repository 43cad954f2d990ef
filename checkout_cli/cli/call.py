"""checkout call SERVICE ENDPOINT: any registry endpoint, raw JSON in and out (like `gh api`)."""

from __future__ import annotations

from typing import Annotated

import typer

from checkout_cli.cli.state import Body, State, merge_body, print_json
from checkout_cli.endpoints import ENDPOINTS


def call(
    ctx: typer.Context,
    service: Annotated[
        str | None, typer.Argument(help="e.g. checkout-flow", show_default=False)
    ] = None,
    endpoint: Annotated[
        str | None, typer.Argument(help="e.g. get-checkout-status", show_default=False)
    ] = None,
    body: Body = None,
    list_endpoints: Annotated[bool, typer.Option("--list", help="list every endpoint")] = False,
) -> None:
    """Call any endpoint with a JSON body and print the result as JSON.

    Example: checkout call checkout-flow get-checkout-status --body '{"checkout_token": "chk_…"}'
    """
    from checkout_cli.cli import output
    from checkout_cli.errors import UsageError

    state: State = ctx.obj
    if list_endpoints:
        rows = [
            {"service": e.service, "endpoint": e.name, "summary": e.summary}
            for e in ENDPOINTS.values()
        ]

        def render(result: dict) -> None:
            t = output.table("Service", "Endpoint", "Summary")
            for r in result["endpoints"]:
                t.add_row(r["service"], r["endpoint"], r["summary"])
            output.out().print(t)

        state.show({"endpoints": rows}, render)
        return
    if not service or not endpoint:
        raise UsageError(
            "missing_input", "give SERVICE and ENDPOINT", recovery="see `checkout call --list`"
        )
    print_json(state.call(service, endpoint, merge_body(body)))


def register(app: typer.Typer) -> None:
    app.command("call")(call)
