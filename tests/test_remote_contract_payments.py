"""Contract suite, record-payment: the same scenario on LocalBackend and on RemoteBackend
talking to a real `checkout serve` gives the same normalized transcript."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.serve_helpers import Served, served_fixture  # noqa: F401
from tests.test_remote_contract import FLOW, ORDERS, Flow, open_backend

# The served store lives for the whole session: this run's references are its own, and the
# same on both backends so their transcripts compare.
RUN = uuid.uuid4().hex[:8].upper()


def _invoice_order(f: Flow) -> dict[str, Any]:
    token = f.ready(("GIFT-CARD-25", 1))
    f.ok(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    return f.ok(FLOW, "complete-checkout", {"checkout_token": token})["order"]


def _pay(order: str, amount: int, reference: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order,
        "amount_cents": amount,
        "method": "bank_transfer",
        "reference": f"{RUN}-{reference}",
        **extra,
    }


def record_payment_flow(f: Flow) -> None:
    number = _invoice_order(f)["order_number"]
    order = f.ok(ORDERS, "get-order", {"order_id": number})
    total = order["balance_due_cents"]
    assert order["payment_status"] == "unpaid" and total > 1000
    part = f.ok(ORDERS, "record-payment", _pay(number, 1000, "1", paid_on="2026-01-02"))
    assert (part["already_recorded"], part["order"]["payment_status"]) == (
        False,
        "partially_paid",
    )
    again = f.ok(ORDERS, "record-payment", _pay(number, 1000, "1", paid_on="2026-01-02"))
    assert again["already_recorded"] is True
    assert again["payment"]["payment_id"] == part["payment"]["payment_id"]
    conflict = dict(http_status=409, exit_code=4)
    f.fails(
        ORDERS,
        "record-payment",
        _pay(number, 999, "1"),
        ConflictError,
        "reference_conflict",
        "reference",
        **conflict,
    )
    f.fails(
        ORDERS,
        "record-payment",
        _pay(number, total, "2"),
        ConflictError,
        "payment_exceeds_balance",
        "amount_cents",
        **conflict,
    )
    f.fails(
        ORDERS,
        "record-payment",
        _pay(number, 10, "3", currency="USD"),
        ConflictError,
        "currency_mismatch",
        "currency",
        **conflict,
    )
    f.fails(
        ORDERS,
        "record-payment",
        _pay(number, 10, "4", method="wire"),
        ValidationError,
        "invalid_method",
        "method",
        http_status=422,
        exit_code=4,
    )
    f.fails(
        ORDERS,
        "record-payment",
        _pay(number, 0, "5"),
        ValidationError,
        "invalid_amount",
        "amount_cents",
        http_status=422,
        exit_code=4,
    )
    f.fails(
        ORDERS,
        "record-payment",
        _pay("2026-999999", 10, "6"),
        NotFoundError,
        "order_not_found",
        "order_id",
        http_status=404,
        exit_code=3,
    )
    rest = f.ok(ORDERS, "record-payment", _pay(number, total - 1000, "7"))
    assert rest["order"]["payment_status"] == "paid"
    assert rest["order"]["balance_due_cents"] == 0
    # The admin token may force an overpayment.
    forced = f.ok(ORDERS, "record-payment", _pay(number, 50, "8", force=True))
    assert forced["payment"]["forced"] is True
    found = f.ok(ORDERS, "list-orders", {"payment_reference": f"{RUN}-7"})
    assert [o["order_number"] for o in found["orders"]] == [number]
    other = _invoice_order(f)["order_number"]
    f.fails(
        ORDERS,
        "record-payment",
        _pay(other, 1000, "1"),
        ConflictError,
        "reference_conflict",
        "reference",
        **conflict,
    )


SCENARIOS: dict[str, Callable[[Flow], None]] = {f.__name__: f for f in (record_payment_flow,)}
TRANSCRIPTS: dict[str, dict[str, list[tuple[str, Any]]]] = {}


def run_scenario(name: str, kind: str, served: Served, tmp_path: Path) -> list[Any]:
    with open_backend(kind, served, tmp_path) as (backend, db):
        if kind == "local":
            backend.call(
                "checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": True}
            )
        flow = Flow(backend, db)
        SCENARIOS[name](flow)
    TRANSCRIPTS.setdefault(name, {})[kind] = flow.transcript
    return flow.transcript


@pytest.mark.parametrize("kind", ["local", "remote"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_same_on_both_backends(scenario: str, kind: str, served, tmp_path):
    # Once per backend and process: the served store keeps this run's references, so a
    # second remote run of the scenario would meet its own payments.
    if kind not in TRANSCRIPTS.get(scenario, {}):
        run_scenario(scenario, kind, served, tmp_path)
    other = "remote" if kind == "local" else "local"
    seen = TRANSCRIPTS[scenario]
    if other not in seen:
        run_scenario(scenario, other, served, tmp_path)
    assert seen["remote"] == seen["local"]


def test_batch_payments_over_remote(served, tmp_path):
    """The statement workflow through `--remote`: looked up and recorded over HTTP."""
    from typer.testing import CliRunner

    from checkout_cli.cli.app import app

    remote = served.remote()
    try:
        f = Flow(remote, served.db)
        number = _invoice_order(f)["order_number"]
        total = f.ok(ORDERS, "get-order", {"order_id": number})["balance_due_cents"]
    finally:
        remote.close()
    whole, part = divmod(total, 100)
    file = tmp_path / "statement.csv"
    file.write_text(
        "date;amount;currency;counterparty;description;bank_id\n"
        f"2026-12-01;{whole},{part:02d};EUR;Anna;order {number};{RUN}-R1\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    args = [*served.remote_args(), "--json", "batch", "payments", str(file)]
    first = runner.invoke(app, args, env=served.cli_env())
    assert first.exit_code == 0, first.stderr
    assert '"matched": 1' in first.stdout and '"recorded": 1' in first.stdout
    second = runner.invoke(app, args, env=served.cli_env())
    assert second.exit_code == 0, second.stderr
    assert '"already_recorded": 1' in second.stdout and '"recorded": 0' in second.stdout


def test_a_forced_overpayment_needs_an_admin_token(served):
    """Recording more than is owed makes the shop owe money back: operate may record
    payments, only admin may force one."""
    from checkout_cli.backends.remote import RemoteBackend
    from checkout_cli.endpoints import ENDPOINTS
    from checkout_cli.errors import ForbiddenError
    from tests.conftest import WATCH
    from tests.serve_helpers import create_token

    assert ENDPOINTS[(ORDERS, "record-payment")].raised_scope == (("force", "admin"),)
    remote = served.remote()
    try:
        number = _invoice_order(Flow(remote, served.db))["order_number"]
    finally:
        remote.close()
    token = WATCH.secret(create_token(served.db, f"operate-{RUN.lower()}", scope="operate"))
    operate = RemoteBackend(served.url, served.project, token)
    try:
        with pytest.raises(ForbiddenError) as refused:
            operate.call(ORDERS, "record-payment", _pay(number, 10**6, "F1", force=True))
        assert refused.value.code == "forbidden_scope"
        assert "record-payment with force" in refused.value.message
        done = operate.call(ORDERS, "record-payment", _pay(number, 100, "F2"))
        assert done["already_recorded"] is False
    finally:
        operate.close()
