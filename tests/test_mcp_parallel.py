"""`checkout mcp` under parallel tool calls, as an AI assistant makes them: the official SDK
client fires many writes at once through a real `checkout mcp` process, on the local store and
over a remote (`checkout serve`). Afterwards the store holds exactly what was reported: every
success committed, every failure wrote nothing, and the invariants hold."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from checkout_cli.engine.invariants import check_invariants
from tests.conftest import CUSTOMER, ready_checkout
from tests.test_mcp import _env, local, mcp_session
from tests.test_mcp import served as served  # the `checkout serve` fixture

pytestmark = pytest.mark.anyio

CARTS = 4
ADDS_PER_CART = 5
CHECKOUTS_PER_KIND = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _customer(number: int) -> dict[str, Any]:
    return {**CUSTOMER, "customer": {"email": f"p{number}@example.com", "name": f"P {number}"}}


def _plan(backend: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, tool, arguments) for every parallel call, on records made here beforehand."""
    carts = [
        backend.call("shopping-cart", "add-item", {"product_sku": "LENS-MONTH-6", "quantity": 1})[
            "cart_token"
        ]
        for _ in range(CARTS)
    ]
    fresh = []
    for _ in range(CHECKOUTS_PER_KIND):
        cart = backend.call(
            "shopping-cart", "add-item", {"product_sku": "LENS-DAILY-30", "quantity": 2}
        )
        fresh.append(
            backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
                "checkout_token"
            ]
        )
    unpaid = [ready_checkout(backend) for _ in range(CHECKOUTS_PER_KIND)]
    payable = [ready_checkout(backend) for _ in range(CHECKOUTS_PER_KIND)]
    for token in payable:
        backend.call(
            "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
        )
    adds = [("add", "GIFT-CARD-25")] * ADDS_PER_CART + [("bad_add", "NO-SUCH-SKU")]  # refused
    calls = [
        (kind, "shopping-cart_add_item", {"cart_token": cart, "product_sku": sku, "quantity": 1})
        for cart in carts
        for kind, sku in adds
    ]
    calls += [
        ("customer", "checkout-flow_set_customer", {"checkout_token": token, **_customer(n)})
        for n, token in enumerate(fresh)
    ]
    calls += [
        ("pay", "checkout-flow_create_payment", {"checkout_token": t, "provider": "invoice"})
        for t in unpaid
    ]
    # Races its own create-payment: completes if the payment is in first, else refused.
    calls += [("race", "checkout-flow_complete_checkout", {"checkout_token": t}) for t in unpaid]
    # Two completions each: one order, the second reports already_completed.
    calls += [
        ("complete", "checkout-flow_complete_checkout", {"checkout_token": t})
        for t in payable
        for _ in range(2)
    ]
    random.Random(7).shuffle(calls)
    return calls


def _check_store(db_path: Path, calls: list[Any], results: list[Any]) -> None:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        assert [v.as_dict() for v in check_invariants(conn)] == []

        def one(sql: str, *params: Any) -> Any:
            return conn.execute(sql, params).fetchone()

        gift_cards: dict[str, int] = {}
        for (kind, _tool, args), (ok, result) in zip(calls, results, strict=True):
            token = args.get("checkout_token")
            if kind == "add" and ok:
                gift_cards[args["cart_token"]] = gift_cards.get(args["cart_token"], 0) + 1
            elif kind == "bad_add":
                assert not ok and result["code"] == "product_not_found", result
            elif kind == "customer":
                row = one("SELECT customer FROM checkouts WHERE token = ?", token)
                if ok:
                    assert args["customer"]["email"] in row["customer"]
                else:
                    assert row["customer"] is None, (result, row["customer"])
            elif kind == "pay":
                payments = one(
                    "SELECT COUNT(*) FROM payments p JOIN checkouts c ON c.id = p.checkout_id "
                    "WHERE c.token = ?",
                    token,
                )[0]
                assert payments == (1 if ok else 0), result
            elif kind in ("race", "complete"):
                order = one(
                    "SELECT o.order_number FROM orders o JOIN checkouts c ON c.id = o.checkout_id "
                    "WHERE c.token = ?",
                    token,
                )
                if ok:
                    assert order is not None and order[0] == result["order"]["order_number"]
                elif kind == "race":
                    assert order is None, result
        for cart, added in gift_cards.items():
            row = one(
                "SELECT i.quantity FROM cart_items i JOIN carts c ON c.id = i.cart_id "
                "WHERE c.token = ? AND i.product_sku = 'GIFT-CARD-25'",
                cart,
            )
            assert row is not None and row[0] == added, (cart, added, row and row[0])
    finally:
        conn.close()


async def _fire(session: Any, calls: list[Any]) -> list[tuple[bool, dict[str, Any]]]:
    results: list[Any] = [None] * len(calls)

    async def one(index: int, tool: str, arguments: dict[str, Any]) -> None:
        try:
            answer = await session.call_tool(tool, arguments)
        except MCPError as exc:  # no answer at all (a hung call times out)
            results[index] = (False, {"code": "no_answer", "message": str(exc)})
            return
        content = answer.structured_content
        results[index] = (False, content["error_object"]) if answer.is_error else (True, content)

    async with anyio.create_task_group() as group:
        for index, (_kind, tool, arguments) in enumerate(calls):
            group.start_soon(one, index, tool, arguments)
    return results


def _assert_outcomes(calls: list[Any], results: list[Any]) -> None:
    """What must succeed did; the only refusals are the ones the plan provokes."""
    failures = [r for ok, r in results if not ok]
    assert not [r for r in failures if r["code"] == "no_answer"], failures
    assert not [r for r in failures if "transaction" in r["message"]], failures
    for (kind, tool, args), (ok, result) in zip(calls, results, strict=True):
        if kind in ("add", "customer", "pay", "complete"):
            assert ok, (tool, args, result)
        elif kind == "race" and not ok:
            assert result["code"] in ("checkout_not_completable", "payment_required"), result
    completions: dict[str, list[dict[str, Any]]] = {}
    for (kind, _tool, args), (_ok, result) in zip(calls, results, strict=True):
        if kind == "complete":
            completions.setdefault(args["checkout_token"], []).append(result)
    for token, pair in completions.items():
        assert sorted(bool(r.get("already_completed")) for r in pair) == [False, True], token
        assert pair[0]["order"] == pair[1]["order"]


async def test_parallel_writes_on_the_local_store_commit_what_they_report(
    backend, db_path, tmp_path
):
    calls = _plan(backend)
    assert len(calls) >= 50
    async with mcp_session(tmp_path, *local(db_path)) as session:
        results = await _fire(session, calls)
    _check_store(db_path, calls, results)
    _assert_outcomes(calls, results)


async def test_parallel_writes_over_a_remote_commit_what_they_report(
    served, backend, db_path, tmp_path
):
    url, project, token = served
    calls = _plan(backend)
    args = ["--remote", url, "--project", project, "mcp"]
    env = _env(tmp_path, CHECKOUT_TOKEN=token)
    async with mcp_session(tmp_path, *args, env=env) as session:
        results = await _fire(session, calls)
    _check_store(db_path, calls, results)
    _assert_outcomes(calls, results)
