"""Support: each kind of stuck checkout made on purpose, found by `checkouts list --stuck`, and
explained by `inspect` with the command that fixes it — which then does fix it."""

from __future__ import annotations

import shlex
import socket
from datetime import UTC, datetime, timedelta

from checkout_cli.engine.core import utc_now
from tests.conftest import ready_checkout

FLOW = "checkout-flow"


def backdated(backend, hours: float = 2):
    """Make the engine's next writes happen ``hours`` ago (restore with ``now``)."""
    backend.engine.clock = lambda: datetime.now(UTC) - timedelta(hours=hours)


def now(backend) -> None:
    backend.engine.clock = utc_now


def stuck(cli, *args: str) -> dict[str, list[str]]:
    """checkout token -> stuck reasons, from `checkouts list --stuck --json`."""
    result = cli("--json", "checkouts", "list", "--stuck", *args)
    assert result.exit_code == 0, result.stderr
    return {c["checkout_token"]: c["stuck_reasons"] for c in result.json()["checkouts"]}


def fixes(cli, token: str) -> list[str]:
    result = cli("--json", "inspect", token, "--no-live")
    assert result.exit_code == 0, result.stderr
    return [d["fix"] for d in result.json()["diagnosis"]]


def run_fix(cli, fix: str):
    """Run a diagnosis's fix exactly as printed."""
    words = shlex.split(fix)
    assert words[0] == "checkout"
    result = cli(*words[1:])
    assert result.exit_code == 0, (fix, result.stderr)
    return result


def pay(backend, token: str, status: str, reference: str = "NL-4711") -> None:
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": reference, "status": status},
    )


def invoice(backend, token: str) -> None:
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})


def test_payment_linked_as_pending_too_long(backend, cli):
    token = ready_checkout(backend)
    backdated(backend)
    pay(backend, token, "pending", reference="NL 4711/B")
    now(backend)
    fresh = ready_checkout(backend, [("GIFT-CARD-25", 1)])
    pay(backend, fresh, "pending")
    found = stuck(cli)
    assert found == {token: ["payment_pending_too_long"]}
    # --older-than says what "too long" is: 0m makes the fresh one too long as well.
    assert stuck(cli, "--older-than", "0m") == {
        token: ["payment_pending_too_long"],
        fresh: ["payment_pending_too_long"],
    }
    assert stuck(cli, "--older-than", "3h") == {}
    report = cli("--json", "inspect", token, "--no-live").json()
    assert report["stuck_reasons"] == ["payment_pending_too_long"]
    assert report["provider_live"] is None
    assert [e["kind"] for e in report["timeline"]][-1] == "payment_linked"
    fix = report["diagnosis"][0]["fix"]
    # Marking it paid is safe only once the money is there, and the diagnosis says so.
    assert "only once the transfer has arrived" in report["diagnosis"][0]["problem"]
    # A payment linked by hand has no link to renew: the fix records it as paid.
    assert fix == (
        f"checkout set-payment {token} --provider bank --reference 'NL 4711/B' --status paid"
    )
    run_fix(cli, fix)
    assert stuck(cli) == {token: ["paid_not_completed"]}
    run_fix(cli, fixes(cli, token)[0])
    assert token not in stuck(cli)
    assert backend.call(FLOW, "get-checkout-status", {"checkout_token": token})["order"]


def test_provider_payment_pending_too_long_and_paid_at_the_provider(backend, cli, mollie_fake):
    token = ready_checkout(backend)
    backdated(backend)
    created = backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "mollie"})
    now(backend)
    assert created["status"] == "payment_pending"
    assert stuck(cli) == {token: ["payment_pending_too_long"]}
    assert fixes(cli, token)[0] == f"checkout create-payment {token} --provider mollie --new"
    live = cli("--json", "inspect", token).json()
    assert live["provider_live"]["provider"] == "mollie"
    assert live["provider_live"]["status"] == "open"
    # The customer pays, the webhook never arrives: inspect asks Mollie and says complete it.
    mollie_fake.mark_paid(created["payment"]["provider_payment_id"])
    live = cli("--json", "inspect", token).json()
    assert live["provider_live"]["status"] == "paid"
    assert live["diagnosis"][0]["fix"] == f"checkout complete-checkout {token}"
    run_fix(cli, live["diagnosis"][0]["fix"])
    assert token not in stuck(cli)
    text = cli("inspect", token, "--no-live")
    assert text.exit_code == 0
    assert "Timeline" in text.stdout and "Diagnosis" in text.stdout


def test_completable_but_not_completed(backend, cli):
    token = ready_checkout(backend)
    backdated(backend)
    invoice(backend, token)
    now(backend)
    fresh = ready_checkout(backend, [("GIFT-CARD-25", 1)])
    invoice(backend, fresh)
    assert stuck(cli) == {token: ["completable_not_completed"]}
    assert fixes(cli, token) == [f"checkout complete-checkout {token}"]
    listed = cli("checkouts", "list", "--stuck", env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert token in listed.stdout and "completable_not_completed" in listed.stdout
    narrow = cli("checkouts", "list", "--stuck", env={"COLUMNS": "60"})
    assert token in narrow.stdout  # the token is never cut short
    run_fix(cli, fixes(cli, token)[0])
    assert stuck(cli) == {}


def test_paid_but_not_completed(backend, cli):
    token = ready_checkout(backend)
    pay(backend, token, "paid")
    found = stuck(cli)
    assert found == {token: ["paid_not_completed"]}
    row = cli("--json", "checkouts", "list", "--stuck").json()["checkouts"][0]
    assert row["payment_provider"] == "bank" and row["payment_status"] == "paid"
    assert row["status"] == "completable"
    assert fixes(cli, token) == [f"checkout complete-checkout {token}"]
    run_fix(cli, f"checkout complete-checkout {token}")
    assert stuck(cli) == {}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens


def test_confirmation_email_not_delivered(backend, cli):
    for key, value in {
        "email_transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": _closed_port(),
        "smtp_starttls": False,
    }.items():
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    token = ready_checkout(backend)
    invoice(backend, token)
    done = backend.call(FLOW, "complete-checkout", {"checkout_token": token})
    assert done["status"] == "completed"
    outbox = backend.call("checkout-admin", "list-outbox", {})
    assert [e["status"] for e in outbox["emails"]] == ["failed"]
    assert stuck(cli) == {token: ["email_not_delivered"]}
    row = cli("--json", "checkouts", "list", "--stuck").json()["checkouts"][0]
    assert row["order_number"] == done["order"]["order_number"]
    assert fixes(cli, token) == ["checkout outbox send"]
    backend.call("checkout-admin", "set-setting", {"key": "email_transport", "value": "file"})
    run_fix(cli, "checkout outbox send")
    assert stuck(cli) == {}


def test_stock_shortfall(backend, cli):
    token = ready_checkout(backend, [("LENS-MONTH-6", 5), ("GIFT-CARD-25", 1)])
    backend.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 2})
    assert stuck(cli) == {token: ["stock_shortfall"]}
    remove, restock = cli("--json", "inspect", token, "--no-live").json()["diagnosis"][:2]
    assert "LENS-MONTH-6: 5 wanted, only 2 available" in remove["problem"]
    # Restocking asks for the counted shelf, never the wanted quantity (that invents goods).
    assert "once more LENS-MONTH-6 has really arrived" in restock["problem"]
    assert "needs 3 more" in restock["problem"]
    assert restock["fix"] == "checkout products set-stock LENS-MONTH-6 COUNTED"
    assert "set-stock LENS-MONTH-6 5" not in str(remove) + str(restock)
    # Taking the line out, step by step as printed, leaves a checkout that is not stuck.
    assert remove["fix"] == f"checkout cancel-checkout {token}"
    run_fix(cli, remove["fix"] + " --yes")  # off a terminal the confirmation is a flag
    run_fix(cli, remove["then"][0])
    again = run_fix(cli, remove["then"][1] + " --json").json()
    assert [item["product_sku"] for item in again["items"]] == ["GIFT-CARD-25"]
    assert stuck(cli) == {}
    shown = cli("inspect", token, "--no-live")
    assert shown.exit_code == 0


def test_stock_shortfall_counts_what_other_checkouts_hold(backend, cli, mollie_fake):
    holder = ready_checkout(backend, [("LENS-MONTH-6", 3)])
    backend.call(FLOW, "create-payment", {"checkout_token": holder, "provider": "mollie"})
    token = ready_checkout(backend, [("LENS-MONTH-6", 5)])
    backend.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 6})
    assert stuck(cli) == {token: ["stock_shortfall"]}
    remove, restock = cli("--json", "inspect", token, "--no-live").json()["diagnosis"][:2]
    assert "5 wanted, only 3 available" in remove["problem"]
    assert "needs 2 more than is free now (3 held by other checkouts)" in restock["problem"]
    shown = cli("inspect", token, "--no-live")
    assert "then: checkout cart remove" in shown.stdout


def test_healthy_checkouts_are_not_stuck(backend, cli):
    active = ready_checkout(backend)
    completed = ready_checkout(backend, [("GIFT-CARD-25", 1)])
    invoice(backend, completed)
    backend.call(FLOW, "complete-checkout", {"checkout_token": completed})
    cancelled = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    backend.call(FLOW, "cancel-checkout", {"checkout_token": cancelled})
    payable = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    invoice(backend, payable)  # just now: not yet "too long"
    assert stuck(cli) == {}
    listed = cli("--json", "checkouts", "list").json()["checkouts"]
    assert {c["checkout_token"] for c in listed} == {active, completed, cancelled, payable}
    assert all(c["stuck_reasons"] == [] for c in listed)
    assert cli("checkouts", "list", "--stuck").stderr.strip() == "no checkouts"
    by_status = cli("--json", "checkouts", "list", "--status", "cancelled").json()["checkouts"]
    assert [c["checkout_token"] for c in by_status] == [cancelled]
    assert len(cli("--json", "checkouts", "list", "--limit", "2").json()["checkouts"]) == 2
    report = cli("--json", "inspect", completed, "--no-live").json()
    assert report["stuck_reasons"] == []
    assert report["diagnosis"] == [
        {"problem": "Nothing looks wrong.", "fix": f"checkout status {completed}"}
    ]
    assert fixes(cli, cancelled) == [
        f"checkout initiate-checkout {report_cart(backend, cancelled)}"
    ]
    assert cli("checkouts", "list", "--older-than", "soon").exit_code == 2
    assert cli("inspect", "chk_doesnotexist00000000", "--no-live").exit_code == 3


def report_cart(backend, token: str) -> str:
    return backend.call(FLOW, "get-checkout-status", {"checkout_token": token})["cart_token"]


def test_inspect_and_the_stuck_list_use_the_same_threshold(backend, cli):
    token = ready_checkout(backend)
    backdated(backend, hours=0.25)  # 15 minutes ago: stuck for --older-than 10m, not for 30m
    pay(backend, token, "pending")
    now(backend)
    for older_than, reasons in (("10m", ["payment_pending_too_long"]), ("30m", [])):
        listed = stuck(cli, "--older-than", older_than).get(token, [])
        report = cli("--json", "inspect", token, "--no-live", "--older-than", older_than)
        assert report.exit_code == 0, report.stderr
        assert listed == report.json()["stuck_reasons"] == reasons
    diagnosis = cli("--json", "inspect", token, "--no-live", "--older-than", "10m").json()
    assert "has not been marked paid" in diagnosis["diagnosis"][0]["problem"]
    assert cli("inspect", token, "--no-live", "--older-than", "soon").exit_code == 2
