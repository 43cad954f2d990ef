"""Money back out through MCP only by the operator's opt-in: `checkout mcp --allow-refunds`
makes refund-order a tool and lets cancel-order refund; without it neither, with nothing
written. Real MCP sessions (the SDK's stdio client) on a store whose Stripe is the fake one."""

from __future__ import annotations

import pytest

from tests.conftest import dump
from tests.test_mcp import _env, error, local, mcp_session, ok, tool_names, whole_checkout
from tests.test_mcp import served as served  # the fixture: a `checkout serve` subprocess
from tests.test_order_refunds import provider_order

pytestmark = pytest.mark.anyio

REFUND = "order-management_refund_order"
CANCEL = "order-management_cancel_order"
GET = "order-management_get_order"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def refunded_at_stripe(fake) -> list[int]:
    return [refund["amount"] for refund in fake.refunds.values()]


async def test_without_the_flag_no_refund_tool_and_no_cancel_with_refund(
    backend, db_path, tmp_path, stripe_fake
):
    order = provider_order(backend, "stripe", stripe_fake)
    number = order["order_number"]
    before = dump(db_path)
    async with mcp_session(tmp_path, *local(db_path)) as session:
        assert REFUND not in await tool_names(session)
        err = await error(session, REFUND, {"order_id": number, "amount_cents": 100})
        assert err["code"] == "tool_not_found"
        refused = await error(session, CANCEL, {"order_id": number, "refund": True})
        assert (refused["type"], refused["code"]) == ("forbidden", "forbidden_scope")
        assert "not for an assistant" in refused["message"]
        assert "checkout mcp --allow-refunds" in refused["recovery"]
    assert dump(db_path) == before
    assert refunded_at_stripe(stripe_fake) == []


async def test_with_the_flag_an_assistant_refunds_part_of_a_stripe_order(
    backend, db_path, tmp_path, stripe_fake
):
    order = provider_order(backend, "stripe", stripe_fake)
    number, paid = order["order_number"], order["amount_paid_cents"]
    assert paid == order["totals"]["total_cents"] > 500
    async with mcp_session(tmp_path, *local(db_path, "--allow-refunds")) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        hints = tools[REFUND].annotations
        assert hints is not None
        assert (hints.read_only_hint, hints.destructive_hint, hints.open_world_hint) == (
            False,
            True,
            True,
        )
        # The opt-in grants money back out and nothing else.
        assert "checkout-admin_refund_payment" not in tools
        assert "checkout-admin_set_vault" not in tools

        done = await ok(session, REFUND, {"order_id": number, "amount_cents": 500})
        assert done["amount_cents"] == 500
        [made] = done["refunds"]
        assert (made["kind"], made["provider"], made["amount_cents"]) == ("provider", "stripe", 500)
        shown = await ok(session, GET, {"order_id": number})
        assert shown["amount_refunded_cents"] == 500

        before = dump(db_path)
        too_much = await error(session, REFUND, {"order_id": number, "amount_cents": paid})
        assert too_much["type"] == "validation" or too_much["type"] == "conflict", too_much
        assert too_much["field"] == "amount_cents" or too_much["code"], too_much
        assert dump(db_path) == before
    after = backend.call("order-management", "get-order", {"order_id": number})
    assert after["amount_refunded_cents"] == sum(refunded_at_stripe(stripe_fake)) == 500


async def test_with_the_flag_cancel_with_refund_refunds_in_full(
    backend, db_path, tmp_path, stripe_fake
):
    order = provider_order(backend, "stripe", stripe_fake)
    number, paid = order["order_number"], order["amount_paid_cents"]
    async with mcp_session(tmp_path, *local(db_path, "--allow-refunds")) as session:
        done = await ok(session, CANCEL, {"order_id": number, "refund": True, "reason": "asked"})
        assert done["order"]["status"] == "cancelled"
    after = backend.call("order-management", "get-order", {"order_id": number})
    assert after["status"] == "cancelled"
    assert after["amount_refunded_cents"] == sum(refunded_at_stripe(stripe_fake)) == paid


def test_read_only_with_allow_refunds_is_a_usage_error(backend, db_path, cli):
    before = dump(db_path)
    result = cli("mcp", "--read-only", "--allow-refunds")
    assert result.exit_code == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "--read-only" in line and "--allow-refunds" in line
    assert "Traceback" not in result.stderr
    assert dump(db_path) == before


async def test_over_a_remote_the_token_scope_still_decides(served, backend, db_path, tmp_path):
    """--allow-refunds lists the tool over --remote too, but the server refuses the refund to
    a token below admin (the fixture's is operate), before anything is written."""
    url, project, token = served
    args = ["--remote", url, "--project", project, "mcp", "--allow-refunds"]
    async with mcp_session(tmp_path, *args, env=_env(tmp_path, CHECKOUT_TOKEN=token)) as session:
        assert REFUND in await tool_names(session)
        number = (await whole_checkout(session))["order"]["order_number"]
        before = dump(db_path)
        refused = await error(session, REFUND, {"order_id": number, "amount_cents": 1})
        assert (refused["type"], refused["code"]) == ("forbidden", "forbidden_scope")
        assert "scope admin" in refused["message"]
        refused = await error(session, CANCEL, {"order_id": number, "refund": True})
        assert (refused["type"], refused["code"]) == ("forbidden", "forbidden_scope")
        assert dump(db_path) == before
