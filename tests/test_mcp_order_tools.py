"""The order-management tools after the order, through a real MCP session: each new endpoint
is a tool with the hints its effect calls for (refund-order is none), and what needs a person
(a forced overpayment, a cancel that refunds) is refused to an assistant with nothing written."""

from __future__ import annotations

import pytest

from tests.conftest import dump
from tests.test_mcp import error, local, mcp_session, ok, whole_checkout

pytestmark = pytest.mark.anyio

ORDER = "order-management_"
# tool: (read_only, destructive, idempotent, open_world)
HINTS = {
    # Once per reference; adds money, removes nothing; the received email goes out.
    "record_payment": (False, False, True, True),
    # Cancelled once; stock back and an open payment link closed; the email goes out.
    "cancel_order": (False, True, True, True),
    # The same lines again ship again (only a tracking number makes a retry ship nothing).
    "fulfil_order": (False, False, False, True),
    # An open link for the same balance is answered again; Stripe or Mollie is called.
    "create_payment_link": (False, False, True, True),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_each_order_life_endpoint_is_a_tool_with_its_hints(backend, db_path, tmp_path):
    async with mcp_session(tmp_path, *local(db_path)) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert f"{ORDER}refund_order" not in tools  # money back out: a person's call
    for name, (read_only, destructive, idempotent, open_world) in HINTS.items():
        hints = tools[ORDER + name].annotations
        assert hints is not None, name
        assert (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        ) == (read_only, destructive, idempotent, open_world), name


async def test_an_assistant_records_a_payment_and_ships_but_needs_a_person_for_money_back(
    backend, db_path, tmp_path
):
    async with mcp_session(tmp_path, *local(db_path)) as session:
        number = (await whole_checkout(session))["order"]["order_number"]
        order = await ok(session, f"{ORDER}get_order", {"order_id": number})
        due = order["balance_due_cents"]
        pay = {"order_id": number, "method": "bank_transfer"}
        before = dump(db_path)
        forced = await error(
            session,
            f"{ORDER}record_payment",
            {**pay, "amount_cents": due + 100, "reference": "MCP-F", "force": True},
        )
        assert (forced["type"], forced["code"]) == ("forbidden", "forbidden_scope")
        assert dump(db_path) == before
        paid = await ok(
            session, f"{ORDER}record_payment", {**pay, "amount_cents": due, "reference": "MCP-1"}
        )
        assert paid["order"]["payment_status"] == "paid"
        again = await ok(
            session, f"{ORDER}record_payment", {**pay, "amount_cents": due, "reference": "MCP-1"}
        )
        assert again["already_recorded"] is True
        refused = await error(session, f"{ORDER}cancel_order", {"order_id": number, "refund": True})
        assert (refused["type"], refused["code"]) == ("forbidden", "forbidden_scope")
        assert "not for an assistant" in refused["message"]
        shipped = await ok(session, f"{ORDER}fulfil_order", {"order_id": number})
        assert shipped["order"]["status"] == "completed"
    shown = backend.call("order-management", "get-order", {"order_id": number})
    assert (shown["amount_paid_cents"], shown["amount_refunded_cents"]) == (due, 0)
    assert shown["status"] == "completed"
