"""The CLI's whole flow, as a user runs it with ``--remote``, against the hosted platform (a
fake written only from its public documentation: tests/fakes/fake_platform.py) and against a
real ``checkout serve``: catalog, cart, the checkout flow, orders — with the same results.

Also what the documentation promises about the envelope: a 429 burst is waited out, an error
answered with HTTP 200 and ``success: false`` is the error it names, our own extras (settings,
``set-stock``) are "not supported by this remote" (exit 3), ``wpa_`` account tokens work, and a
project id the platform does not have is 404 (exit 3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from checkout_cli.cli.app import app
from tests.fakes.fake_platform import PROJECT_ID, WPA_TOKEN, WPS_TOKEN, FakePlatform
from tests.serve_helpers import Served, served_fixture  # noqa: F401

CATALOG = [
    {
        "sku": "PLAT-LENS-30",
        "name": "Platform daily lenses, 30 pack",
        "price_cents": 2495,
        "currency": "EUR",
        "stock": None,
    },
    {
        "sku": "PLAT-CASE",
        "name": "Platform travel case",
        "price_cents": 650,
        "currency": "EUR",
        "stock": None,
    },
]
CUSTOMER_FLAGS = [
    "--name",
    "Anna de Vries",
    "--line1",
    "Prinsengracht 263",
    "--postal-code",
    "1016 GV",
    "--city",
    "Amsterdam",
    "--country",
    "NL",
    "--shipping-cents",
    "495",
    "--tax-cents",
    "0",
]


@dataclass
class Target:
    """Where the CLI points: ``--remote URL --project ID`` with ``CHECKOUT_TOKEN``."""

    url: str
    project: str
    token: str

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(
            app,
            ["--remote", self.url, "--project", self.project, "--json", *args],
            env={"CHECKOUT_TOKEN": self.token, "CHECKOUT_PROFILE": None, "CHECKOUT_DB": None},
        )

    def ok(self, *args: str) -> Any:
        run = self.cli(*args)
        assert run.exit_code == 0, (args, run.exit_code, run.stdout, run.stderr)
        return json.loads(run.stdout) if run.stdout.strip() else None


def refusal(run: Result, exit_code: int) -> dict[str, Any]:
    assert "Traceback" not in run.output, run.output
    assert run.exit_code == exit_code, (run.exit_code, run.stdout, run.stderr)
    return json.loads(run.stderr.strip().splitlines()[-1])["error_object"]


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as fake:
        yield fake
        assert fake.errors == []


def platform_target(fake: FakePlatform, token: str = WPS_TOKEN) -> Target:
    return Target(fake.base_url, PROJECT_ID, token)


def seed_catalog(fake: FakePlatform) -> None:
    """The catalog through the platform's documented ``create-product``."""
    for product in CATALOG:
        answer = httpx.post(
            f"{fake.base_url}/iapi/project/{PROJECT_ID}/product-catalog/create-product",
            json=product,
            headers={"Authorization": f"Bearer {WPS_TOKEN}"},
        )
        assert answer.json()["success"] is True, answer.text


def whole_flow(target: Target, catalog: Path) -> dict[str, Any]:
    """The user's flow; returns the projection both remotes must agree on."""
    seen: dict[str, Any] = {}
    seen["import"] = target.ok("products", "import", str(catalog))
    added = target.ok("products", "add", "PLAT-EXTRA", "--name", "Extra", "--price-cents", "100")
    updated = target.ok("products", "update", "PLAT-EXTRA", "--price-cents", "150")
    found = target.ok("products", "search", "platform travel")
    deleted = target.ok("products", "delete", "PLAT-EXTRA", "--yes")
    seen["products"] = (
        (added["sku"], added["price_cents"], added["status"]),
        (updated["name"], updated["price_cents"]),
        [p["sku"] for p in found["products"] if p["sku"].startswith("PLAT-")],
        deleted,
    )
    listed = target.ok("products", "list", "--query", "PLAT-")
    seen["catalog"] = sorted(
        (p["sku"], p["price_cents"]) for p in listed["products"] if p["sku"].startswith("PLAT-")
    )
    cart = target.ok("cart", "add", "PLAT-LENS-30", "--quantity", "2")
    token = cart["cart_token"]
    cart = target.ok("cart", "add", "PLAT-CASE", "--cart", token)
    cart = target.ok("cart", "update", token, "PLAT-LENS-30", "--quantity", "3")
    seen["cart"] = (
        cart["status"],
        sorted((i["product_sku"], i["quantity"], i["line_total_cents"]) for i in cart["items"]),
        cart["subtotal_cents"],
    )
    other = target.ok("cart", "add", "PLAT-CASE")["cart_token"]
    merged = target.ok("cart", "merge", other, token)
    seen["merged"] = (
        merged["cart_token"] == token,
        sorted((i["product_sku"], i["quantity"], i["line_total_cents"]) for i in merged["items"]),
        merged["subtotal_cents"],
    )
    seen["source"] = target.ok("cart", "show", other)["status"]
    visitor = f"visitor-{uuid.uuid4().hex[:8]}"
    seen["visitor"] = target.ok("cart", "link-visitor", token, visitor)["visitor_id"] == visitor
    email = f"anna-{uuid.uuid4().hex[:8]}@example.com"
    checkout = target.ok("initiate-checkout", token)
    chk = checkout["checkout_token"]
    # Before set-customer the shop's default shipping is the shop's own: only the subtotal.
    subtotal = checkout["totals"]["subtotal_cents"]
    seen["initiated"] = (checkout["status"], checkout["reused"], subtotal)
    checkout = target.ok("set-customer", chk, "--email", email, *CUSTOMER_FLAGS)
    seen["customer"] = (checkout["customer"]["email"] == email, checkout["totals"])
    checkout = target.ok("create-payment", chk, "--provider", "invoice")
    seen["payment"] = (checkout["status"], checkout["payment"]["provider"])
    done = target.ok("complete-checkout", chk)
    number = done["order"]["order_number"]
    seen["completed"] = (done["status"], done["already_completed"], done["totals"])
    again = target.ok("complete-checkout", chk)
    seen["again"] = (again["already_completed"], again["order"]["order_number"] == number)
    seen["status"] = target.ok("status", chk)["status"]
    listed = target.ok("orders", "list", "--email", email)
    seen["orders"] = [o["order_number"] == number for o in listed["orders"]]
    order = target.ok("orders", "show", number)
    seen["order"] = (
        order["status"],
        order["payment_status"],
        order["checkout_token"] == chk,
        sorted((i["product_sku"], i["quantity"], i["line_total_cents"]) for i in order["items"]),
        order["totals"],
    )
    return seen


EXPECTED = {
    "import": {
        "items": [
            {"index": 0, "sku": "PLAT-LENS-30", "status": "created"},
            {"index": 1, "sku": "PLAT-CASE", "status": "created"},
        ],
        "summary": {
            "total": 2,
            "by_action": {"created": 2, "updated": 0, "failed": 0},
            "by_error_type": {},
        },
    },
    "products": (
        ("PLAT-EXTRA", 100, "active"),
        ("Extra", 150),
        ["PLAT-CASE"],
        {"sku": "PLAT-EXTRA", "action": "deleted"},
    ),
    "catalog": [("PLAT-CASE", 650), ("PLAT-LENS-30", 2495)],
    "cart": ("active", [("PLAT-CASE", 1, 650), ("PLAT-LENS-30", 3, 7485)], 8135),
    "merged": (True, [("PLAT-CASE", 2, 1300), ("PLAT-LENS-30", 3, 7485)], 8785),
    "source": "abandoned",
    "visitor": True,
    "initiated": ("active", False, 8785),
    "payment": ("completable", "invoice"),
    "status": "completed",
    "orders": [True],
}
TOTALS = {"subtotal_cents": 8785, "shipping_cents": 495, "tax_cents": 0, "total_cents": 9280}


def test_the_whole_flow_agrees_on_the_platform_and_on_checkout_serve(
    platform: FakePlatform, served: Served, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"products": CATALOG}))
    on_platform = whole_flow(platform_target(platform), catalog)
    on_serve = whole_flow(Target(served.url, served.project, served.token), catalog)
    assert on_platform == on_serve
    assert {k: on_serve[k] for k in EXPECTED} == EXPECTED
    assert on_serve["customer"] == (True, TOTALS)
    assert on_serve["completed"] == ("completed", False, TOTALS)
    assert on_serve["again"] == (True, True)
    assert on_serve["order"] == (
        "pending",
        "unpaid",
        True,
        [("PLAT-CASE", 2, 1300), ("PLAT-LENS-30", 3, 7485)],
        TOTALS,
    )
    # Every call was the documented POST under the numeric project, never /iapi/meta.
    assert platform.requests and all(r.method == "POST" for r in platform.requests)
    assert all(r.path.startswith(f"/iapi/project/{PROJECT_ID}/") for r in platform.requests)
    assert len(platform.orders) == 1


def test_products_import_on_the_platform_is_one_bulk_upsert(
    platform: FakePlatform, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"products": CATALOG}))
    platform_target(platform).ok("products", "import", str(catalog))
    assert sorted(platform.products) == ["PLAT-CASE", "PLAT-LENS-30"]
    calls = platform.calls("product-catalog", "bulk-upsert-products")
    assert len(calls) == 1 and len(calls[0].json()["products"]) == 2


def test_products_import_goes_in_calls_of_at_most_500(
    platform: FakePlatform, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.json"
    products = [{"sku": f"BULK-{n:04d}", "name": f"Item {n}", "price_cents": 100 + n}
                for n in range(1201)]  # fmt: skip
    catalog.write_text(json.dumps({"products": products}))
    result = platform_target(platform).ok("products", "import", str(catalog))
    calls = platform.calls("product-catalog", "bulk-upsert-products")
    assert [len(c.json()["products"]) for c in calls] == [500, 500, 201]
    assert all(c.status == 200 for c in calls)  # the platform refuses more than 500 (422)
    assert len(platform.products) == 1201
    assert result["summary"]["by_action"]["created"] == 1201


def test_an_item_the_platform_fails_is_named_and_exits_4(
    platform: FakePlatform, tmp_path: Path
) -> None:
    # "success: true does not mean all items succeeded": the others are written.
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"products": CATALOG}))
    platform.refused_skus.add("PLAT-CASE")
    run = platform_target(platform).cli("products", "import", str(catalog))
    assert run.exit_code == 4, (run.stdout, run.stderr)
    assert "PLAT-CASE" in run.output and "Traceback" not in run.output
    assert sorted(platform.products) == ["PLAT-LENS-30"]


def test_a_429_burst_is_waited_out_and_the_command_succeeds(platform: FakePlatform) -> None:
    seed_catalog(platform)
    platform.rate_limit_next(2)
    cart = platform_target(platform).ok("cart", "add", "PLAT-CASE")
    assert [i["product_sku"] for i in cart["items"]] == ["PLAT-CASE"]
    adds = platform.calls("shopping-cart", "add-item")
    assert [r.status for r in adds] == [429, 429, 200]
    assert len({r.header("Idempotency-Key") for r in adds}) == 1  # one write, retried
    assert len(platform.carts) == 1


def test_a_rate_limit_past_the_budget_exits_6_rate_limited(platform: FakePlatform) -> None:
    # A wait longer than the client's budget (60 s a call) is not slept: it stops at once.
    # (The client's side of the bound is tests/test_remote_rate_limit.py's.)
    seed_catalog(platform)
    platform.rate_limit_next(1, retry_after="3600")
    error = refusal(platform_target(platform).cli("cart", "add", "PLAT-CASE"), 6)
    assert error["code"] == "rate_limited"
    assert platform.carts == {}
    assert [r.status for r in platform.calls("shopping-cart", "add-item")] == [429]


def test_a_failure_answered_with_http_200_is_the_error_it_names(platform: FakePlatform) -> None:
    seed_catalog(platform)
    target = platform_target(platform)
    platform.answer_next_with_200("shopping-cart", "add-item")
    error = refusal(target.cli("cart", "add", "NO-SUCH-SKU"), 3)
    assert (error["type"], error["code"]) == ("not_found", "product_not_found")
    assert platform.calls("shopping-cart", "add-item")[0].status == 200
    cart = target.ok("cart", "add", "PLAT-CASE")["cart_token"]
    chk = target.ok("initiate-checkout", cart)["checkout_token"]
    target.ok("set-customer", chk, "--email", "anna@example.com", *CUSTOMER_FLAGS)
    platform.allow_invoice_checkout = False
    platform.answer_next_with_200("checkout-flow", "create-payment")
    error = refusal(target.cli("create-payment", chk, "--provider", "invoice"), 7)
    assert (error["type"], error["code"]) == ("forbidden", "invoice_checkout_not_allowed")
    assert platform.checkouts[chk]["payment"] is None


def test_invoice_checkout_off_is_403_exit_7(platform: FakePlatform) -> None:
    seed_catalog(platform)
    target = platform_target(platform)
    cart = target.ok("cart", "add", "PLAT-CASE")["cart_token"]
    chk = target.ok("initiate-checkout", cart)["checkout_token"]
    target.ok("set-customer", chk, "--email", "anna@example.com", *CUSTOMER_FLAGS)
    platform.allow_invoice_checkout = False
    error = refusal(target.cli("create-payment", chk, "--provider", "invoice"), 7)
    assert error["code"] == "invoice_checkout_not_allowed"
    assert platform.calls("checkout-flow", "create-payment")[0].status == 403


@pytest.mark.parametrize(
    "args",
    [
        ("settings", "show"),
        ("settings", "set", "allow_invoice_checkout", "true"),
        ("products", "set-stock", "PLAT-CASE", "5"),
        ("meta", "list"),
        ("checkouts", "list"),
        ("outbox", "list"),
        ("tokens", "list"),
        ("doctor",),
        ("reconcile", "--dry-run"),
    ],
    ids=lambda args: "-".join(args),
)
def test_our_own_extras_are_not_supported_by_the_platform(
    platform: FakePlatform, args: tuple[str, ...]
) -> None:
    seed_catalog(platform)
    before = len(platform.requests)
    run = platform_target(platform).cli(*args)
    error = refusal(run, 3)
    assert len(platform.requests) == before + 1  # one call, refused: nothing else sent
    assert error["code"] == "endpoint_not_supported"
    assert "not supported by this remote" in error["message"]
    assert platform.products["PLAT-CASE"]["stock"] is None  # nothing changed


def test_an_account_token_works_and_a_foreign_one_is_refused(platform: FakePlatform) -> None:
    seed_catalog(platform)
    listed = platform_target(platform, WPA_TOKEN).ok("products", "list")
    assert [p["sku"] for p in listed["products"]] == ["PLAT-CASE", "PLAT-LENS-30"]
    for token in ("ck_our_own_server_token", "wps_unknown"):
        error = refusal(platform_target(platform, token).cli("products", "list"), 7)
        assert error["type"] == "auth"


def test_a_project_id_the_platform_lacks_is_404_exit_3(platform: FakePlatform) -> None:
    for project in ("shop-nl", "99999"):
        run = Target(platform.base_url, project, WPA_TOKEN).cli("products", "list")
        error = refusal(run, 3)
        assert error["code"] == "project_not_found", error
    assert {r.status for r in platform.requests} == {404}


def test_the_fake_serves_only_the_documented_posts(platform: FakePlatform) -> None:
    auth = {"Authorization": f"Bearer {WPS_TOKEN}"}
    base = f"{platform.base_url}/iapi"
    assert httpx.get(f"{base}/meta", headers=auth).status_code == 404
    assert httpx.post(f"{base}/meta", headers=auth, json={}).status_code == 404
    url = f"{base}/project/{PROJECT_ID}/product-catalog/list-products"
    assert httpx.get(url, headers=auth).status_code == 404
    assert httpx.post(url, json={}).status_code == 401
    answer = httpx.post(f"{base}/project/{PROJECT_ID}/checkout-admin/get-settings", headers=auth)
    assert answer.status_code == 404
    assert answer.json()["error_object"]["code"] == "endpoint_not_found"


def test_a_project_token_is_for_its_own_project_only() -> None:
    with FakePlatform(projects=(PROJECT_ID, "67890")) as platform:
        elsewhere = Target(platform.base_url, "67890", WPS_TOKEN)
        error = refusal(elsewhere.cli("products", "list"), 7)
        assert (error["type"], error["code"]) == ("forbidden", "project_not_owned")
        account = Target(platform.base_url, "67890", WPA_TOKEN)
        assert account.ok("products", "list")["products"] == []
        assert platform.errors == []
