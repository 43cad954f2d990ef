"""Several clients over HTTP against `checkout serve --workers 2`: the same checkouts completed
from four clients at once give exactly one order each, exact stock and one confirmation
each, and the engine's invariants hold."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

from checkout_cli.errors import CheckoutError
from tests.conftest import CUSTOMER
from tests.serve_helpers import (
    count,
    invariant_violations,
    served_fixture,  # noqa: F401
)

N_CHECKOUTS = 30
N_CLIENTS = 4
SKU = "CONCURRENT-1"
STOCK = 100


def _in_threads(n: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_clients_completing_the_same_checkouts_make_one_order_each(served):
    local = served.local()
    local.call(
        "product-catalog",
        "upsert-product",
        {"sku": SKU, "name": "Concurrency lens", "price_cents": 1000, "stock": STOCK},
    )
    tokens = []
    for _ in range(N_CHECKOUTS):
        cart = local.call("shopping-cart", "add-item", {"product_sku": SKU, "quantity": 2})
        token = local.call(
            "checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]}
        )["checkout_token"]
        local.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
        local.call(
            "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
        )
        tokens.append(token)

    answers: list[tuple[str, bool, str]] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        remote = served.remote()
        order = tokens[:]
        random.Random(i).shuffle(order)
        try:
            for token in order:
                done = remote.call("checkout-flow", "complete-checkout", {"checkout_token": token})
                with lock:
                    answers.append((token, done["already_completed"], done["order"]["order_id"]))
        finally:
            remote.close()

    errors = _in_threads(N_CLIENTS, client)
    assert not errors, [e.to_error_object() if isinstance(e, CheckoutError) else e for e in errors]
    assert len(answers) == N_CHECKOUTS * N_CLIENTS
    firsts = Counter(token for token, already, _ in answers if not already)
    assert firsts == Counter(tokens)  # exactly one client completed each checkout
    by_token: dict[str, set[str]] = {}
    for token, _, order_id in answers:
        by_token.setdefault(token, set()).add(order_id)
    assert all(len(ids) == 1 for ids in by_token.values())  # all saw the same order

    marks = ",".join("?" * len(tokens))
    orders = count(
        served.db,
        f"SELECT COUNT(*) FROM orders o JOIN checkouts c ON c.id = o.checkout_id "
        f"WHERE c.token IN ({marks})",
        tuple(tokens),
    )
    confirmations = count(
        served.db,
        f"SELECT COUNT(*) FROM outbox x JOIN orders o ON o.id = x.order_id "
        f"JOIN checkouts c ON c.id = o.checkout_id "
        f"WHERE c.token IN ({marks}) AND x.kind = 'order_confirmation'",
        tuple(tokens),
    )
    numbers = count(
        served.db,
        f"SELECT COUNT(DISTINCT order_number) FROM orders o JOIN checkouts c "
        f"ON c.id = o.checkout_id WHERE c.token IN ({marks})",
        tuple(tokens),
    )
    assert (orders, confirmations, numbers) == (N_CHECKOUTS, N_CHECKOUTS, N_CHECKOUTS)
    stock = local.call("product-catalog", "get-product", {"sku": SKU})["stock"]
    assert stock == STOCK - 2 * N_CHECKOUTS
    local.close()
    assert invariant_violations(served.db) == []


def test_clients_adding_to_one_cart_lose_no_update(served):
    local = served.local()
    cart = local.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})
    token = cart["cart_token"]
    per_client = 5

    def client(i: int) -> None:
        remote = served.remote()
        try:
            for _ in range(per_client):
                remote.call(
                    "shopping-cart",
                    "add-item",
                    {"cart_token": token, "product_sku": "GIFT-CARD-25", "quantity": 1},
                )
        finally:
            remote.close()

    errors = _in_threads(N_CLIENTS, client)
    assert not errors, errors
    items = local.call("shopping-cart", "get-cart", {"cart_token": token})["items"]
    assert sum(i["quantity"] for i in items) == 1 + N_CLIENTS * per_client
    local.close()


def test_concurrent_requests_without_a_key_each_get_their_own_connection(served):
    """Regression: requests without an Idempotency-Key (reads, plain HTTP clients) ran on one
    SQLite connection shared by all worker threads, so one request's BEGIN landed inside
    another's transaction (503 "cannot start a transaction within a transaction")."""
    import httpx

    local = served.local()
    carts = [
        local.call("shopping-cart", "add-item", {"product_sku": "GIFT-CARD-25", "quantity": 1})[
            "cart_token"
        ]
        for _ in range(N_CLIENTS * 2)
    ]
    failures: list[str] = []
    rounds = 10

    def client(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(rounds):
                wrote = http.post(
                    served.endpoint_url("shopping-cart", "add-item"),
                    json={"cart_token": carts[i], "product_sku": "GIFT-CARD-25", "quantity": 1},
                    headers=served.auth,
                )
                read = http.get(
                    served.endpoint_url("shopping-cart", "get-cart"),
                    params={"cart_token": carts[i]},
                    headers=served.auth,
                )
                failures.extend(r.text for r in (wrote, read) if r.status_code != 200)

    errors = _in_threads(len(carts), client)
    assert not errors and not failures, (errors, failures[:3])
    for cart in carts:
        items = local.call("shopping-cart", "get-cart", {"cart_token": cart})["items"]
        assert items[0]["quantity"] == 1 + rounds
    local.close()
