"""checkout smoke: a whole flow against the configured backend, for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.cli.state import State
from checkout_cli.requests import Provider


def smoke(
    ctx: typer.Context,
    provider: Annotated[Provider, typer.Option(help="the payment provider to pay with")] = (
        Provider.invoice
    ),
    junit_xml: Annotated[
        Path | None, typer.Option("--junit-xml", help="also write the steps as JUnit XML")
    ] = None,
) -> None:
    """Run a whole checkout on the configured backend as a smoke run, timing each step, and
    leave the shop as it was: the run's product, cart, checkout, order and email are hidden
    from lists, numbering and the outbox, and removed at the end, whichever step failed (a
    killed run is removed by the next). Needs an operate token, no terminal. A failing step
    is named; the exit code says which class of failure (6 unreachable, 7 token or
    permission, 4 conflict, 5 payment…).

    Example: checkout --remote http://127.0.0.1:8787 --project shop-nl smoke --junit-xml smoke.xml
    """
    from checkout_cli.cli import output
    from checkout_cli.workflows import smoke as workflow

    state: State = ctx.obj
    result = workflow.run(state.backend, provider.value)
    if junit_xml:
        junit_xml.write_text(workflow.junit_xml(result))

    def render(summary: dict[str, Any]) -> None:
        t = output.table("Step", "Result", "Seconds", "Detail")
        for s in summary["steps"]:
            t.add_row(s["name"], "ok" if s["ok"] else "FAILED", f"{s['seconds']:.3f}", s["detail"])
        output.out().print(t)
        if summary["ok"]:
            output.say(f"smoke test passed ({summary['provider']})", "green")
        else:
            line = f"smoke test failed at {summary['failed_step']}"
            step = next(s for s in summary["steps"] if s["name"] == summary["failed_step"])
            if _invoicing_off(step["error_object"]):
                line += (
                    " — this shop does not allow invoice checkouts: pass `--provider stripe` "
                    "(or mollie), or enable invoicing with "
                    "`checkout settings set allow_invoice_checkout true`"
                )
            elif step["error_object"] and step["error_object"].get("recovery"):
                line += f" — {step['error_object']['recovery']}"
            output.say(line, "red")

    state.show(result.as_dict(), render)
    failed = result.failed
    if failed is not None and failed.error and failed.error.code == INVOICING_OFF:
        # The shop's configuration, not a bad token: 7 would send CI looking at credentials.
        raise typer.Exit(4)
    if failed is not None:
        raise typer.Exit(failed.error.exit_code if failed.error else 1)


INVOICING_OFF = "invoice_checkout_not_allowed"


def _invoicing_off(error_object: dict[str, Any] | None) -> bool:
    return error_object is not None and error_object.get("code") == INVOICING_OFF


def register(app: typer.Typer) -> None:
    app.command("smoke")(smoke)
