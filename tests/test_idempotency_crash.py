"""Server workers SIGKILLed mid-request while clients write through ``RemoteBackend``: every
call's reported outcome matches the store.

A real ``checkout serve --workers 3`` (uvicorn starts a new worker for each one killed); four
client threads run checkout flows (three add-items, initiate, set-customer, create-payment
invoice, complete: seven writes each, until 500+ writes and 5+ kills) while a killer thread
SIGKILLs a random worker every few hundred milliseconds. Afterwards, per flow: each add-item
that reported success is in the cart exactly once and each that failed is not; a reported
checkout, customer, payment and order exist exactly once and a failed one not at all; the
engine's invariants hold, and no idempotency claim is left ``in_progress``.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import pytest

from checkout_cli.errors import CheckoutError
from tests.conftest import CUSTOMER
from tests.serve_helpers import count, invariant_violations, prepare_store, serving

pytestmark = pytest.mark.slow

FLOW, CART = "checkout-flow", "shopping-cart"
SKU = "LENS-DAILY-30"
CLIENTS, WORKERS = 4, 3
# Clients run flows until the store has seen enough of both (writes, and workers killed under
# them), so a slow machine gets more flows, not a weaker test; the carts are a supply for that.
MIN_WRITES, MIN_KILLS, MIN_CUT_OFF = 500, 5, 3
CARTS_PER_CLIENT = 150
ADDS_PER_FLOW = 3
DEADLINE_SECONDS = 240  # the clients stop here whatever happened (the test then fails)


@dataclass
class Outcome:
    ok: bool
    result: Any = None
    code: str | None = None


@dataclass
class FlowRecord:
    cart: str
    adds: list[Outcome] = field(default_factory=list)
    steps: dict[str, Outcome] = field(default_factory=dict)


def _call(remote: Any, service: str, name: str, body: dict[str, Any]) -> Outcome:
    try:
        return Outcome(True, remote.call(service, name, body))
    except CheckoutError as exc:
        return Outcome(False, code=exc.code)


def _workers(server_pid: int) -> list[psutil.Process]:
    """The server's live uvicorn workers (a killed one is a zombie until uvicorn reaps it)."""
    workers = []
    for child in psutil.Process(server_pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "--multiprocessing-fork" in (
                child.cmdline()
            ):
                workers.append(child)
        except psutil.Error:
            continue
    return workers


class CountingTransport(httpx.HTTPTransport):
    """The client's own transport, counting requests cut off by a killed worker."""

    cut_off = 0
    lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.TransportError:
            with CountingTransport.lock:
                CountingTransport.cut_off += 1
            raise


def _killer(server_pid: int, stop: threading.Event, kills: list[int]) -> None:
    chance = random.Random(7)
    while not stop.wait(chance.uniform(0.15, 0.5)):
        try:
            alive = _workers(server_pid)
            if len(alive) < 2:  # keep one serving while uvicorn starts the others again
                continue
            victim = chance.choice(alive)
            os.kill(victim.pid, signal.SIGKILL)
            kills.append(victim.pid)
        except (psutil.Error, ProcessLookupError):
            continue


def _writes(flows: list[FlowRecord]) -> int:
    return sum(len(r.adds) + len(r.steps) for r in flows)


def _client(
    served: Any,
    carts: list[str],
    records: list[FlowRecord],
    enough: Callable[[], bool],
    deadline: float,
) -> None:
    remote = served.remote(timeout=10, transport=CountingTransport())
    try:
        for cart in carts:
            if enough() or time.monotonic() > deadline:
                return
            record = FlowRecord(cart)
            records.append(record)
            for _ in range(ADDS_PER_FLOW):
                body = {"cart_token": cart, "product_sku": SKU, "quantity": 1}
                record.adds.append(_call(remote, CART, "add-item", body))
            started = _call(remote, FLOW, "initiate-checkout", {"cart_token": cart})
            record.steps["initiate"] = started
            if not started.ok:
                continue
            token = started.result["checkout_token"]
            for step, name, body in (
                ("customer", "set-customer", {"checkout_token": token, **CUSTOMER}),
                ("payment", "create-payment", {"checkout_token": token, "provider": "invoice"}),
                ("complete", "complete-checkout", {"checkout_token": token}),
            ):
                record.steps[step] = outcome = _call(remote, FLOW, name, body)
                if not outcome.ok:
                    break
    finally:
        remote.close()


def _check_flow(db: Any, record: FlowRecord) -> list[str]:
    """What in the store contradicts what the client was told about this flow."""
    wrong = []
    added = sum(a.ok for a in record.adds)
    quantity = count(
        db,
        "SELECT COALESCE(SUM(i.quantity), 0) FROM cart_items i JOIN carts c ON c.id = i.cart_id "
        "WHERE c.token = ?",
        (record.cart,),
    )
    if quantity != added:
        failures = [a.code for a in record.adds if not a.ok]
        wrong.append(
            f"{record.cart}: {added} add-items succeeded, cart holds {quantity} {failures}"
        )
    checkouts = count(
        db,
        "SELECT COUNT(*) FROM checkouts k JOIN carts c ON c.id = k.cart_id WHERE c.token = ?",
        (record.cart,),
    )
    started = record.steps.get("initiate")
    if started is None:
        return wrong
    if checkouts != (1 if started.ok else 0):
        wrong.append(f"{record.cart}: initiate {started}, {checkouts} checkouts")
    if not started.ok:
        return wrong
    token = started.result["checkout_token"]
    facts = {
        "customer": count(
            db,
            "SELECT COUNT(*) FROM events e JOIN checkouts k ON k.id = e.checkout_id "
            "WHERE k.token = ? AND e.kind = 'customer_set'",
            (token,),
        ),
        "payment": count(
            db,
            "SELECT COUNT(*) FROM payments p JOIN checkouts k ON k.id = p.checkout_id "
            "WHERE k.token = ?",
            (token,),
        ),
        "complete": count(
            db,
            "SELECT COUNT(*) FROM orders o JOIN checkouts k ON k.id = o.checkout_id "
            "WHERE k.token = ?",
            (token,),
        ),
    }
    for step, found in facts.items():
        outcome = record.steps.get(step)
        expected = 1 if outcome is not None and outcome.ok else 0
        if found != expected:
            wrong.append(f"{token} {step}: told {outcome}, store has {found}")
    done = record.steps.get("complete")
    if done is not None and done.ok and done.result["already_completed"]:
        wrong.append(f"{token}: its only completion was reported as already completed")
    return wrong


def test_workers_killed_mid_request_never_make_a_reported_outcome_untrue(tmp_path):
    db = tmp_path / "shop.db"
    token = prepare_store(db)
    CountingTransport.cut_off = 0
    local_backend = None
    with serving(db, token, workers=WORKERS) as served:
        local_backend = served.local()
        local_backend.call("product-catalog", "set-stock", {"sku": SKU, "stock": 100_000})
        carts = [
            [
                local_backend.call(CART, "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
                for _ in range(CARTS_PER_CLIENT)
            ]
            for _ in range(CLIENTS)
        ]
        # The carts start with a gift card so the remote add-items are all to an existing cart.
        cart_tokens = [[c["cart_token"] for c in per_client] for per_client in carts]
        for per_client in cart_tokens:
            for cart in per_client:
                local_backend.call(
                    CART, "remove-item", {"cart_token": cart, "product_sku": "GIFT-CARD-25"}
                )
        records: list[list[FlowRecord]] = [[] for _ in range(CLIENTS)]
        stop, kills = threading.Event(), []
        killer = threading.Thread(target=_killer, args=(served.pid, stop, kills), daemon=True)
        deadline = time.monotonic() + DEADLINE_SECONDS

        def enough() -> bool:
            return (
                _writes([r for per_client in records for r in per_client]) >= MIN_WRITES
                and len(kills) >= MIN_KILLS
                and CountingTransport.cut_off >= MIN_CUT_OFF
            )

        clients = [
            threading.Thread(
                target=_client, args=(served, cart_tokens[i], records[i], enough, deadline)
            )
            for i in range(CLIENTS)
        ]
        killer.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=DEADLINE_SECONDS + 60)
        stop.set()
        killer.join(timeout=5)
        local_backend.close()

    flows = [record for per_client in records for record in per_client]
    writes = _writes(flows)
    assert writes >= MIN_WRITES, f"only {writes} writes before the deadline"
    assert len(kills) >= MIN_KILLS, f"only {len(kills)} workers killed"
    assert CountingTransport.cut_off >= MIN_CUT_OFF, (
        f"only {CountingTransport.cut_off} requests cut off"
    )
    wrong = [problem for record in flows for problem in _check_flow(db, record)]
    assert wrong == [], wrong
    assert invariant_violations(db) == []
    assert count(db, "SELECT COUNT(*) FROM idempotent_requests WHERE status = 'in_progress'") == 0
