"""Token scopes and local-only operations, over a real `checkout serve`.

Every endpoint in the registry is called by a read, an operate and an admin token with a
plausible body: an allowed call is never 403, a refused one is 403 with its code and leaves
every table as it was. The expected matrix is spelled out here from the issue's rules, not
computed by the code under test. One server serves the whole module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from checkout_cli.backends.local import LocalBackend
from checkout_cli.backends.remote import RemoteBackend
from checkout_cli.cli.app import app
from checkout_cli.endpoints import ENDPOINTS, HTTP, MCP
from checkout_cli.engine.settings import SETTINGS
from checkout_cli.errors import ForbiddenError
from tests.conftest import CUSTOMER, WATCH, dump, ready_checkout
from tests.serve_helpers import Served, StandIn, create_token, prepare_store, serving

SCOPES = ("read", "operate", "admin")
RANK = {"read": 0, "operate": 1, "admin": 2}
SECRET = WATCH.secret("sk_live_matrix0never0leaves0this0machine")
CLOSED = "http://127.0.0.1:9"
ADMIN = "checkout-admin"

# The rules, by hand: never over HTTP whatever the scope ...
LOCAL_ONLY = {
    (ADMIN, "set-vault"),
    (ADMIN, "delete-vault"),
    (ADMIN, "create-token"),
    (ADMIN, "revoke-token"),
}
# ... admin: the catalog, settings, the outbox, reconcile (and the names of tokens and secrets).
ADMIN_ONLY = {
    ("product-catalog", "upsert-product"),
    ("product-catalog", "set-stock"),
    ("product-catalog", "upsert-meta-definition"),
    ("product-catalog", "create-product"),
    ("product-catalog", "update-product"),
    ("product-catalog", "delete-product"),
    ("product-catalog", "bulk-upsert-products"),
    (ADMIN, "set-setting"),
    (ADMIN, "import-settings"),
    (ADMIN, "unset-setting"),
    (ADMIN, "send-outbox"),
    (ADMIN, "reconcile"),
    (ADMIN, "list-tokens"),
    (ADMIN, "list-vault"),
    (ADMIN, "refund-payment"),  # money back out of the shop: an administrator's decision
    ("order-management", "refund-order"),  # the same for an order's money
    ("order-events", "subscribe"),  # where the shop's order data is sent
    ("order-events", "unsubscribe"),
    ("order-events", "resend-delivery"),
    ("order-events", "fire-event"),  # signed like a real event, to every subscriber
}
# ... read: get-*/list-* and nothing else; operate: everything else (the default).


def needed_scope(key: tuple[str, str]) -> str:
    if key in ADMIN_ONLY:
        return "admin"
    return "read" if key[1].startswith(("get-", "list-", "search-")) else "operate"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served store with a read, an operate and an admin token, and something of everything
    for the calls to act on."""
    db = tmp_path_factory.mktemp("access") / "shop.db"
    tokens = {"admin": WATCH.secret(prepare_store(db, token_name="admin", scope="admin"))}
    for scope in ("read", "operate"):
        tokens[scope] = WATCH.secret(create_token(db, scope, scope=scope))
    local = LocalBackend(db, actor="test")
    try:
        for key, value in {
            "stripe_api_base": CLOSED,
            "mollie_api_endpoint": CLOSED,
            "provider_timeout_seconds": 2,
        }.items():
            local.call(ADMIN, "set-setting", {"key": key, "value": value})
        local.call(ADMIN, "set-vault", {"name": "smtp_password", "value": SECRET})
        completed = ready_checkout(local)
        local.call(
            "checkout-flow", "create-payment", {"checkout_token": completed, "provider": "invoice"}
        )
        order = local.call("checkout-flow", "complete-checkout", {"checkout_token": completed})
        ids = {
            "checkout": ready_checkout(local, [("LENS-TORIC-6", 1)]),
            "other_checkout": ready_checkout(local),
            "cart": local.call(
                "shopping-cart", "add-item", {"product_sku": "LENS-MONTH-6", "quantity": 1}
            )["cart_token"],
            "merge_source": local.call(
                "shopping-cart", "add-item", {"product_sku": "LENS-MONTH-6", "quantity": 1}
            )["cart_token"],
            "order": order["order"]["order_number"],
        }
    finally:
        local.close()
    with serving(db, tokens["admin"], workers=1) as server:
        yield {"server": server, "tokens": tokens, "ids": ids, "db": db}
    WATCH.export_store(db)


def plausible_bodies(ids: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """A request for every endpoint that would do its job if allowed."""
    chk, cart, order = ids["checkout"], ids["cart"], ids["order"]
    flow, carts, catalog, orders = (
        "checkout-flow",
        "shopping-cart",
        "product-catalog",
        "order-management",
    )
    return {
        (flow, "initiate-checkout"): {"cart_token": cart},
        (flow, "set-customer"): {"checkout_token": chk, **CUSTOMER},
        (flow, "create-payment"): {"checkout_token": chk, "provider": "invoice"},
        (flow, "set-payment"): {
            "checkout_token": ids["other_checkout"],
            "provider": "bank",
            "reference": "NL-4711",
            "status": "paid",
        },
        (flow, "get-checkout-status"): {"checkout_token": chk},
        (flow, "set-line-meta"): {
            "checkout_token": chk,
            "product_sku": "LENS-TORIC-6",
            "def_key": "lens_prescription",
            "values": {
                "right_sphere": "-1.25",
                "left_sphere": "-1.50",
                "prescribed_on": "2026-09-01",
            },
        },
        (flow, "complete-checkout"): {"checkout_token": chk},
        (flow, "cancel-checkout"): {"checkout_token": ids["other_checkout"], "reason": "matrix"},
        (carts, "add-item"): {"cart_token": cart, "product_sku": "GIFT-CARD-25", "quantity": 1},
        (carts, "update-item"): {"cart_token": cart, "product_sku": "GIFT-CARD-25", "quantity": 2},
        (carts, "remove-item"): {"cart_token": cart, "product_sku": "GIFT-CARD-25"},
        (carts, "get-cart"): {"cart_token": cart},
        (carts, "clear-cart"): {"cart_token": cart},
        # The same source into the same target again: already merged, still allowed.
        (carts, "merge-cart"): {
            "source_cart_token": ids["merge_source"],
            "target_cart_token": cart,
        },
        (carts, "link-visitor"): {"cart_token": cart, "visitor_id": "matrix"},
        (catalog, "list-products"): {},
        (catalog, "get-product"): {"sku": "LENS-DAILY-30"},
        (catalog, "upsert-product"): {"sku": "MATRIX-1", "name": "Matrix", "price_cents": 100},
        (catalog, "set-stock"): {"sku": "LENS-DAILY-30", "stock": 5},
        (catalog, "create-product"): {"sku": "MATRIX-NEW", "name": "Matrix", "price_cents": 100},
        (catalog, "update-product"): {"sku": "LENS-DAILY-30", "price_cents": 2495},
        (catalog, "delete-product"): {"sku": "MATRIX-1"},
        (catalog, "search-products"): {"query": "lens"},
        (catalog, "bulk-upsert-products"): {
            "products": [{"sku": "MATRIX-2", "name": "Matrix", "price_cents": 100}]
        },
        (catalog, "list-meta-definitions"): {},
        (catalog, "get-meta-definition"): {"def_key": "lens_prescription"},
        (catalog, "upsert-meta-definition"): {
            "def_key": "gift_message",
            "fields": [{"name": "message", "type": "string", "max_length": 200}],
        },
        (orders, "list-orders"): {},
        (orders, "get-order"): {"order_id": order},
        (orders, "get-line-meta"): {"order_id": order},
        (orders, "record-payment"): {
            "order_id": order,
            "amount_cents": 1,
            "method": "bank_transfer",
            "reference": "MATRIX-1",
        },
        (orders, "fulfil-order"): {"order_id": order},
        (orders, "refund-order"): {"order_id": order, "amount_cents": 1},
        (orders, "cancel-order"): {"order_id": order},
        (orders, "create-payment-link"): {"order_id": order, "provider": "stripe"},
        (ADMIN, "list-outbox"): {},
        (ADMIN, "send-outbox"): {},
        (ADMIN, "create-token"): {"name": "backdoor", "scope": "admin"},
        (ADMIN, "list-tokens"): {},
        (ADMIN, "revoke-token"): {"name": "read"},
        (ADMIN, "list-checkouts"): {},
        (ADMIN, "inspect-checkout"): {"checkout_token": chk, "live": False},
        (ADMIN, "check-invariants"): {},
        (ADMIN, "reconcile"): {},
        (ADMIN, "get-settings"): {},
        (ADMIN, "get-store"): {},
        (ADMIN, "start-smoke"): {"run_id": "00000000000a"},
        (ADMIN, "finish-smoke"): {"run_id": "00000000000a"},
        (ADMIN, "set-setting"): {"key": "shop_name", "value": "Matrix Shop"},
        (ADMIN, "import-settings"): {"settings": {"shop_name": "Matrix Shop", "currency": "EUR"}},
        (ADMIN, "unset-setting"): {"key": "shop_name"},
        (ADMIN, "list-vault"): {},
        (ADMIN, "set-vault"): {"name": "stripe_secret_key", "value": SECRET},
        (ADMIN, "delete-vault"): {"name": "smtp_password"},
        (ADMIN, "refund-payment"): {"checkout_token": chk, "provider_payment_id": "tr_matrix"},
        ("order-events", "subscribe"): {"url": f"{CLOSED}/hooks", "events": ["order.paid"]},
        ("order-events", "list-subscriptions"): {},
        ("order-events", "unsubscribe"): {"subscription_id": "whs_matrix"},
        ("order-events", "list-deliveries"): {},
        ("order-events", "fire-event"): {"type": "order.paid", "dry_run": True},
        ("order-events", "resend-delivery"): {"delivery_id": "whd_matrix"},
        ("order-events", "deliver-events"): {},
    }


def test_every_endpoint_has_a_plausible_body():
    assert set(
        plausible_bodies(
            {"checkout": "", "other_checkout": "", "cart": "", "merge_source": "", "order": ""}
        )
    ) == set(ENDPOINTS)


def test_the_registry_declares_what_the_rules_say():
    for key, endpoint in ENDPOINTS.items():
        assert (HTTP not in endpoint.faces) == (key in LOCAL_ONLY), key
        if key not in LOCAL_ONLY:
            assert endpoint.scope == needed_scope(key), key
        if endpoint.scope == "read":
            assert endpoint.reads_only, key  # a read token runs get-*/list-* only
        if HTTP not in endpoint.faces:
            assert MCP not in endpoint.faces, key


def post(server: Served, token: str, key: tuple[str, str], body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if not ENDPOINTS[key].reads_only:  # as the remote client does: a refusal remembers nothing
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return httpx.post(server.endpoint_url(*key), json=body, headers=headers, timeout=30)


MATRIX = [(key, scope) for key in ENDPOINTS for scope in SCOPES]


@pytest.mark.parametrize(
    "key, scope", MATRIX, ids=[f"{s}/{n} as {scope}" for (s, n), scope in MATRIX]
)
def test_every_endpoint_for_every_scope(shop, key, scope):
    server, db = shop["server"], shop["db"]
    body = plausible_bodies(shop["ids"])[key]
    refused_with = (
        "local_only"
        if key in LOCAL_ONLY
        else "forbidden_scope"
        if RANK[scope] < RANK[needed_scope(key)]
        else None
    )
    before = dump(db) if refused_with else None
    response = post(server, shop["tokens"][scope], key, body)
    WATCH.seen(f"matrix {key} as {scope}", response.text)
    assert response.status_code < 500, response.text
    if refused_with is None:
        assert response.status_code != 403, response.text
        return
    assert response.status_code == 403, response.text
    error = response.json()["error_object"]
    assert (error["type"], error["code"]) == ("forbidden", refused_with), error
    assert error["recovery"].startswith(("use a token with scope", "run it on the server's own"))
    assert dump(db) == before  # nothing written: not the call, not its idempotency key


def test_each_scope_does_its_own_work(shop):
    """Allowed is not only "not 403": each scope's own kind of call succeeds and is kept."""
    server, tokens = shop["server"], shop["tokens"]
    product = {"sku": "MATRIX-ADMIN", "name": "By admin", "price_cents": 250}
    upserted = post(server, tokens["admin"], ("product-catalog", "upsert-product"), product)
    assert upserted.status_code == 200, upserted.text
    added = post(
        server,
        tokens["operate"],
        ("shopping-cart", "add-item"),
        {"product_sku": "MATRIX-ADMIN", "quantity": 2},
    )
    assert added.status_code == 200 and added.json()["result"]["subtotal_cents"] == 500
    read = post(
        server,
        tokens["read"],
        ("shopping-cart", "get-cart"),
        {"cart_token": added.json()["result"]["cart_token"]},
    )
    assert read.status_code == 200 and read.json()["result"]["items"][0]["quantity"] == 2


def test_the_remote_client_refuses_local_only_calls_without_sending_anything(shop):
    server, token = shop["server"], shop["tokens"]["admin"]
    body = plausible_bodies(shop["ids"])
    local_only_settings = [key for key, s in SETTINGS.items() if s.local_only]
    with StandIn.proxy(server.url) as counting:
        remote = RemoteBackend(counting.url, server.project, token)
        try:
            for key in sorted(LOCAL_ONLY):
                with pytest.raises(ForbiddenError) as refused:
                    remote.call(*key, body[key])
                assert refused.value.code == "local_only"
                assert SECRET not in str(refused.value.to_error_object())
            for setting in local_only_settings:
                with pytest.raises(ForbiddenError) as refused:
                    remote.call(ADMIN, "set-setting", {"key": setting, "value": CLOSED})
                assert (refused.value.code, refused.value.field) == ("local_only", "key")
                with pytest.raises(ForbiddenError) as refused:
                    remote.call(ADMIN, "unset-setting", {"key": setting})
                assert (refused.value.code, refused.value.field) == ("local_only", "key")
                imported = {"settings": {"shop_name": "Fine", setting: CLOSED}}
                with pytest.raises(ForbiddenError) as refused:
                    remote.call(ADMIN, "import-settings", imported)
                assert (refused.value.code, refused.value.field) == ("local_only", "settings")
                assert setting in refused.value.message
            assert counting.requests == []
            remote.call(ADMIN, "get-settings", {})  # the counter counts
        finally:
            remote.close()
    assert len(counting.requests) == 1


def checkout(server: Served, token: str, *args: str) -> Any:
    env = {"CHECKOUT_TOKEN": token, "CHECKOUT_PROFILE": None, "CHECKOUT_DB": None}
    result = CliRunner().invoke(
        app, ["--remote", server.url, "--project", server.project, *args], env=env
    )
    WATCH.seen(f"checkout --remote {' '.join(args)}", result.stdout + result.stderr)
    return result


def test_a_refused_call_is_exit_7_on_the_cli(shop, tmp_path: Path):
    server, tokens, db = shop["server"], shop["tokens"], shop["db"]
    before = dump(db)
    upsert = ("products", "upsert", "MATRIX-2", "--name", "No", "--price-cents", "1")
    as_read = checkout(server, tokens["read"], *upsert)
    assert as_read.exit_code == 7, as_read.stderr
    assert "needs a token with scope admin" in as_read.stderr
    assert "--scope admin" in as_read.stderr and "Traceback" not in as_read.stderr
    as_json = checkout(server, tokens["operate"], "--json", *upsert)
    error = json.loads(as_json.stderr)["error_object"]
    assert (as_json.exit_code, error["type"], error["code"]) == (7, "forbidden", "forbidden_scope")
    backdoor = checkout(server, tokens["admin"], "--json", "tokens", "create", "--name", "x")
    error = json.loads(backdoor.stderr)["error_object"]
    assert (backdoor.exit_code, error["code"]) == (7, "local_only")
    routed = checkout(server, tokens["admin"], "settings", "set", "smtp_host", "mail.evil.example")
    assert routed.exit_code == 7 and "only on the server's own machine" in routed.stderr
    assert dump(db) == before


def test_tokens_list_shows_each_tokens_scope(shop):
    listed = checkout(shop["server"], shop["tokens"]["admin"], "--json", "tokens", "list")
    assert listed.exit_code == 0, listed.stderr
    scopes = {t["name"]: t["scope"] for t in json.loads(listed.stdout)["tokens"]}
    assert scopes == {"admin": "admin", "operate": "operate", "read": "read"}
    table = checkout(shop["server"], shop["tokens"]["admin"], "tokens", "list")
    # Piped: one token a line, its scope in the second field.
    assert ["operate", "operate"] in [line.split("\t")[:2] for line in table.stdout.splitlines()]


def test_a_cancel_that_would_refund_needs_what_a_refund_needs(shop):
    """cancel-checkout is operate work, but with force it refunds a paid payment in full:
    the token must be one that may call refund-payment."""
    server, tokens, db = shop["server"], shop["tokens"], shop["db"]
    key = ("checkout-flow", "cancel-checkout")
    assert ENDPOINTS[key].raised_scope == (("force", "admin"),)
    body = {"checkout_token": shop["ids"]["other_checkout"], "force": True}
    before = dump(db)
    refused = post(server, tokens["operate"], key, body)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error_object"]
    assert error["code"] == "forbidden_scope"
    assert "cancel-checkout with force needs a token with scope admin" in error["message"]
    assert dump(db) == before
    for truthy in ("yes", 1):  # a value the engine would refuse is still refused first
        assert post(server, tokens["operate"], key, {**body, "force": truthy}).status_code == 403
    unforced = post(server, tokens["operate"], key, {**body, "force": False})
    assert unforced.status_code != 403, unforced.text
