"""The command groups through the CLI: cart, products, orders, outbox, settings, vault, plus
`init` and `call`. `--json` prints what the engine returns; refusals are one line and the
documented exit code."""

from __future__ import annotations

import json
import socket

from tests.conftest import FIXTURES, dump, ready_checkout
from tests.test_cli_flow import FLOW, error_line, new_cart, ok, refused, status_of

CART = "shopping-cart"
CATALOG = "product-catalog"
ORDERS = "order-management"
ADMIN = "checkout-admin"


def get_cart(backend, token: str) -> dict:
    return backend.call(CART, "get-cart", {"cart_token": token})


def get_product(backend, sku: str) -> dict:
    return backend.call(CATALOG, "get-product", {"sku": sku})


def completed_order(backend) -> dict:
    token = ready_checkout(backend)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    return backend.call(FLOW, "complete-checkout", {"checkout_token": token})["order"]


# -- cart --------------------------------------------------------------------------------------


def test_cart_add_update_remove_show_clear(backend, cli):
    cart = ok(cli("--json", "cart", "add", "LENS-DAILY-30", "--quantity", "2"))
    token = cart["cart_token"]
    assert token.startswith("cart_")
    assert cart == get_cart(backend, token)
    assert [(i["product_sku"], i["quantity"]) for i in cart["items"]] == [("LENS-DAILY-30", 2)]
    assert cart["subtotal_cents"] == 4990

    # Without --quantity: one. The same SKU again: the quantities add up.
    cart = ok(cli("--json", "cart", "add", "GIFT-CARD-25", "--cart", token))
    cart = ok(cli("--json", "cart", "add", "LENS-DAILY-30", "-q", "3", "--cart", token))
    assert {i["product_sku"]: i["quantity"] for i in cart["items"]} == {
        "LENS-DAILY-30": 5,
        "GIFT-CARD-25": 1,
    }
    assert cart == get_cart(backend, token)

    cart = ok(cli("--json", "cart", "update", token, "GIFT-CARD-25", "--quantity", "4"))
    assert {i["product_sku"]: i["quantity"] for i in cart["items"]}["GIFT-CARD-25"] == 4
    assert cart["subtotal_cents"] == 5 * 2495 + 4 * 2500

    cart = ok(cli("--json", "cart", "remove", token, "LENS-DAILY-30"))
    assert [i["product_sku"] for i in cart["items"]] == ["GIFT-CARD-25"]

    # update to 0 removes the line.
    cart = ok(cli("--json", "cart", "update", token, "GIFT-CARD-25", "-q", "0"))
    assert cart["items"] == []

    ok(cli("--json", "cart", "add", "LENS-MONTH-6", "--cart", token))
    shown = ok(cli("--json", "cart", "show", token))
    assert shown == get_cart(backend, token)

    table = cli("cart", "show", token)
    assert table.exit_code == 0
    assert token in table.stdout and "LENS-MONTH-6" in table.stdout and "€ 39.95" in table.stdout

    cleared = ok(cli("--json", "cart", "clear", token))
    assert cleared["items"] == [] and cleared["subtotal_cents"] == 0
    assert cleared == get_cart(backend, token)


def test_cart_quantity_from_body_is_not_overridden_by_a_default(backend, cli):
    cart = ok(cli("--json", "cart", "add", "LENS-MONTH-6", "--body", '{"quantity": 5}'))
    assert cart["items"][0]["quantity"] == 5
    cart = ok(cli("--json", "cart", "add", "LENS-MONTH-6", "-q", "2", "--body", '{"quantity": 5}'))
    assert cart["items"][0]["quantity"] == 2


def test_cart_refusals(backend, cli, db_path):
    token = new_cart(backend)
    before = dump(db_path)
    refused(
        cli,
        "cart",
        "add",
        "NOPE-1",
        exit_code=3,
        type="not_found",
        code="product_not_found",
        field="product_sku",
    )
    refused(
        cli,
        "cart",
        "add",
        "GIFT-CARD-25",
        "--cart",
        "cart_unknown",
        exit_code=3,
        type="not_found",
        code="cart_not_found",
    )
    refused(
        cli,
        "cart",
        "show",
        "cart_unknown",
        exit_code=3,
        type="not_found",
        code="cart_not_found",
        field="cart_token",
    )
    refused(
        cli, "cart", "clear", "cart_unknown", exit_code=3, type="not_found", code="cart_not_found"
    )
    refused(
        cli,
        "cart",
        "update",
        token,
        "GIFT-CARD-25",
        "-q",
        "1",
        exit_code=3,
        type="not_found",
        code="cart_item_not_found",
    )
    refused(
        cli,
        "cart",
        "remove",
        token,
        "GIFT-CARD-25",
        exit_code=3,
        type="not_found",
        code="cart_item_not_found",
    )
    refused(
        cli,
        "cart",
        "update",
        token,
        "LENS-DAILY-30",
        "-q",
        "-1",
        exit_code=4,
        type="validation",
        field="quantity",
    )
    refused(cli, "cart", "update", token, "LENS-DAILY-30", exit_code=2, type="usage")
    refused(cli, "cart", "add", exit_code=2, type="usage")
    assert dump(db_path) == before


# -- products ----------------------------------------------------------------------------------


def test_products_list_and_show(backend, cli):
    listed = ok(cli("--json", "products", "list"))
    assert listed == backend.call(CATALOG, "list-products", {"limit": 100})  # the CLI's page
    assert "LENS-TORIC-6" in {p["sku"] for p in listed["products"]}
    found = ok(cli("--json", "products", "list", "--query", "toric"))
    assert [p["sku"] for p in found["products"]] == ["LENS-TORIC-6"]
    assert ok(cli("--json", "products", "list", "--all")) == backend.call(
        CATALOG, "list-products", {"include_archived": True, "limit": 100}
    )

    product = ok(cli("--json", "products", "show", "CASE-TRAVEL"))
    assert product == get_product(backend, "CASE-TRAVEL")
    assert product["allow_backorder"] is True

    table = cli("products", "list", env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "SOLUTION-360" in table.stdout and "Lens solution 360 ml" in table.stdout
    assert "untracked" in table.stdout  # the gift card


def test_products_upsert_and_set_stock(backend, cli):
    created = ok(
        cli(
            "--json",
            "products",
            "upsert",
            "GLASSES-CLOTH",
            "--name",
            "Cleaning cloth",
            "--price-cents",
            "350",
            "--stock",
            "12",
        )
    )
    assert created == get_product(backend, "GLASSES-CLOTH")
    assert (created["name"], created["price_cents"], created["stock"]) == (
        "Cleaning cloth",
        350,
        12,
    )
    assert created["currency"] == "EUR"
    assert created["allow_backorder"] is False

    updated = ok(
        cli(
            "--json",
            "products",
            "upsert",
            "GLASSES-CLOTH",
            "--name",
            "Cleaning cloth XL",
            "--price-cents",
            "450",
            "--allow-backorder",
        )
    )
    assert (updated["name"], updated["price_cents"], updated["allow_backorder"]) == (
        "Cleaning cloth XL",
        450,
        True,
    )
    assert updated == get_product(backend, "GLASSES-CLOTH")

    assert ok(cli("--json", "products", "set-stock", "GLASSES-CLOTH", "7"))["stock"] == 7
    assert get_product(backend, "GLASSES-CLOTH")["stock"] == 7
    untracked = ok(cli("--json", "products", "set-stock", "GLASSES-CLOTH", "--untracked"))
    assert untracked["stock"] is None
    assert untracked == get_product(backend, "GLASSES-CLOTH")


def test_products_import(backend, cli, db_path, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "products": [
                    {"sku": "IMP-1", "name": "One", "price_cents": 100, "stock": 5},
                    {"sku": "IMP-2", "name": "Two", "price_cents": 200},
                ]
            }
        )
    )
    result = ok(cli("--json", "products", "import", str(path)))
    assert [(i["sku"], i["status"]) for i in result["items"]] == [
        ("IMP-1", "created"),
        ("IMP-2", "created"),
    ]
    assert get_product(backend, "IMP-1")["stock"] == 5
    assert get_product(backend, "IMP-2")["price_cents"] == 200
    # The shipped catalog imports over the fixture store (an update of each product).
    again = ok(cli("--json", "products", "import", str(FIXTURES / "catalog.json")))
    shipped = json.loads((FIXTURES / "catalog.json").read_text())["products"]
    assert again["summary"]["by_action"] == {"created": 0, "updated": len(shipped), "failed": 0}


def test_products_refusals(backend, cli, db_path, tmp_path):
    before = dump(db_path)
    refused(
        cli, "products", "show", "NOPE-1", exit_code=3, type="not_found", code="product_not_found"
    )
    refused(
        cli,
        "products",
        "set-stock",
        "NOPE-1",
        "3",
        exit_code=3,
        type="not_found",
        code="product_not_found",
    )
    refused(
        cli,
        "products",
        "set-stock",
        "GIFT-CARD-25",
        "--body",
        '{"stock": -4}',
        exit_code=4,
        type="validation",
        code="invalid_stock",
    )
    refused(
        cli,
        "products",
        "upsert",
        "NEW-1",
        "--price-cents",
        "100",
        exit_code=4,
        type="validation",
        field="name",
    )
    refused(
        cli,
        "products",
        "upsert",
        "NEW-1",
        "--name",
        "N",
        "--price-cents",
        "-1",
        exit_code=4,
        type="validation",
        field="price_cents",
    )

    # An import with one bad product writes none of them, and names the bad one.
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {"sku": "OK-1", "name": "Fine", "price_cents": 100},
                {"sku": "BAD-2", "name": "Bad", "price_cents": 1.5},
            ]
        )
    )
    error = refused(cli, "products", "import", str(bad), exit_code=4, type="validation")
    assert error["field"].startswith("products[1]")
    refused(
        cli,
        "products",
        "import",
        str(tmp_path / "missing.json"),
        exit_code=2,
        type="usage",
        code="file_unreadable",
    )
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    refused(cli, "products", "import", str(garbage), exit_code=2, type="usage", code="invalid_json")
    assert dump(db_path) == before


# -- orders ------------------------------------------------------------------------------------


def test_orders_list_and_show(backend, cli):
    order = completed_order(backend)
    listed = ok(cli("--json", "orders", "list"))
    assert listed == backend.call(ORDERS, "list-orders", {})
    assert [o["order_number"] for o in listed["orders"]] == [order["order_number"]]
    assert ok(cli("--json", "orders", "list", "--email", "nobody@example.com"))["orders"] == []
    assert len(ok(cli("--json", "orders", "list", "--status", "pending"))["orders"]) == 1

    expected = backend.call(ORDERS, "get-order", {"order_id": order["order_id"]})
    assert ok(cli("--json", "orders", "show", order["order_number"])) == expected
    assert ok(cli("--json", "orders", "show", order["order_id"])) == expected
    assert expected["order_number"] == order["order_number"]

    table = cli("orders", "show", order["order_number"])
    assert table.exit_code == 0
    assert order["order_number"] in table.stdout and "Anna de Vries" in table.stdout
    listing = cli("orders", "list")
    assert order["order_number"] in listing.stdout


def test_orders_refusals(backend, cli, db_path):
    before = dump(db_path)
    refused(
        cli, "orders", "show", "2099-999999", exit_code=3, type="not_found", code="order_not_found"
    )
    refused(cli, "orders", "list", "--limit", "0", exit_code=2, type="usage", field="limit")
    assert dump(db_path) == before


# -- outbox ------------------------------------------------------------------------------------


def test_outbox_list_and_send(backend, cli):
    order = completed_order(backend)
    listed = ok(cli("--json", "outbox", "list"))
    assert listed == backend.call(ADMIN, "list-outbox", {})
    [email] = listed["emails"]
    assert email["order_number"] == order["order_number"]
    assert email["status"] == "sent"  # the file transport delivered it after the commit
    assert ok(cli("--json", "outbox", "list", "--status", "queued"))["emails"] == []

    sent = ok(cli("--json", "outbox", "send"))
    assert (sent["sent"], sent["failed"]) == (0, 0)

    table = cli("outbox", "list")
    assert table.exit_code == 0 and order["order_number"] in table.stdout


def test_outbox_send_reports_a_failed_delivery_with_exit_6(backend, cli, db_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in (
        ("email_transport", "smtp"),
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", port),
    ):
        backend.call(ADMIN, "set-setting", {"key": key, "value": value})
    completed_order(backend)
    [email] = backend.call(ADMIN, "list-outbox", {})["emails"]
    assert email["status"] == "failed"

    result = cli("--json", "outbox", "send")
    assert result.exit_code == 6, result.stderr
    assert "Traceback" not in result.stderr
    report = result.json()
    assert (report["sent"], report["failed"]) == (0, 1)
    assert report["results"][0]["status"] == "failed"
    plain = cli("outbox", "send")
    assert plain.exit_code == 6
    assert "failed 1" in plain.stderr and "Traceback" not in plain.stderr


def test_outbox_refusals(backend, cli, db_path):
    before = dump(db_path)
    # The flag's choices are the parser's: exit 2 naming them; a body's status, the request's.
    error = refused(cli, "outbox", "list", "--status", "lost", exit_code=2, type="usage")
    assert "'queued', 'sending', 'sent', 'failed'" in error["message"], error
    refused(
        cli,
        "outbox",
        "list",
        "--body",
        '{"status": "lost"}',
        exit_code=4,
        type="validation",
        field="status",
    )
    assert dump(db_path) == before


# -- settings ----------------------------------------------------------------------------------


def test_settings_show_and_set(backend, cli):
    shown = ok(cli("--json", "settings", "show"))
    assert shown == backend.call(ADMIN, "get-settings", {})
    assert shown["settings"]["allow_invoice_checkout"] is True

    changed = ok(cli("--json", "settings", "set", "allow_invoice_checkout", "false"))
    assert changed["key"] == "allow_invoice_checkout" and changed["value"] is False
    assert backend.call(ADMIN, "get-settings", {})["settings"]["allow_invoice_checkout"] is False

    ok(cli("--json", "settings", "set", "default_shipping_cents", "650"))
    ok(cli("--json", "settings", "set", "tax_rates", '{"NL": "9", "DE": "7"}'))
    settings = backend.call(ADMIN, "get-settings", {})["settings"]
    assert settings["default_shipping_cents"] == 650
    assert settings["tax_rates"] == {"NL": "9", "DE": "7"}

    plain = cli("settings", "set", "shop_name", "Lens Shop Utrecht")
    assert plain.exit_code == 0 and "shop_name" in plain.stderr
    table = cli("settings", "show")
    assert table.exit_code == 0 and "Lens Shop Utrecht" in table.stdout


def test_settings_refusals(backend, cli, db_path):
    before = dump(db_path)
    refused(cli, "settings", "set", "no_such_setting", "1", exit_code=4, type="validation")
    # A negative value needs `--`, or the parser takes it for an option (a usage error).
    refused(cli, "settings", "set", "default_shipping_cents", "-5", exit_code=2, type="usage")
    refused(
        cli,
        "settings",
        "set",
        "default_shipping_cents",
        "--",
        "-5",
        exit_code=4,
        type="validation",
        code="invalid_setting",
    )
    refused(
        cli,
        "settings",
        "set",
        "default_shipping_cents",
        "abc",
        exit_code=4,
        type="validation",
        code="invalid_setting",
    )
    refused(cli, "settings", "set", "allow_invoice_checkout", exit_code=2, type="usage")
    assert dump(db_path) == before


# -- vault -------------------------------------------------------------------------------------


def test_vault_set_list_delete(backend, cli, secret_watch):
    value = secret_watch.secret("smtp-pass-6b1f0c")
    result = cli("vault", "set", "smtp_password", input=value + "\n")
    assert result.exit_code == 0, result.stderr
    assert "smtp_password stored" in result.stderr
    assert result.stdout == ""

    listed = ok(cli("--json", "vault", "list"))
    assert listed == backend.call(ADMIN, "list-vault", {})
    entry = next(s for s in listed["secrets"] if s["name"] == "smtp_password")
    assert entry["set"] is True and entry["set_at"]
    table = cli("vault", "list")
    assert "smtp_password" in table.stdout

    deleted = ok(cli("--json", "vault", "delete", "smtp_password"))
    assert deleted == {"name": "smtp_password", "set": False}
    listed = backend.call(ADMIN, "list-vault", {})["secrets"]
    assert next(s for s in listed if s["name"] == "smtp_password")["set"] is False


def test_vault_refusals(backend, cli, db_path, secret_watch):
    value = secret_watch.secret("never-stored-93ad")
    before = dump(db_path)
    refused(
        cli,
        "vault",
        "set",
        "bogus_key",
        input=value,
        exit_code=4,
        type="validation",
        code="unknown_secret",
        field="name",
    )
    refused(cli, "vault", "set", "smtp_password", input="", exit_code=4, type="validation")
    refused(
        cli, "vault", "delete", "bogus_key", exit_code=4, type="validation", code="unknown_secret"
    )
    error = refused(cli, "vault", "delete", "smtp_password", exit_code=3, type="not_found")
    assert "smtp_password" in error["message"]
    assert dump(db_path) == before


# -- init --------------------------------------------------------------------------------------


def test_init_creates_the_store_once(cli, db_path):
    assert not db_path.exists()
    created = ok(cli("--json", "init", "--project-id", "shop-nl"))
    assert created == {"db": str(db_path), "created": True, "project_id": "shop-nl"}
    assert db_path.exists()
    assert db_path.stat().st_mode & 0o777 == 0o600
    again = ok(cli("--json", "init"))
    assert again == {"db": str(db_path), "created": False, "project_id": "shop-nl"}
    plain = cli("init")
    assert plain.exit_code == 0 and str(db_path) in plain.stderr and plain.stdout == ""


def test_init_keeps_an_existing_stores_project_id_unless_forced(cli, db_path):
    ok(cli("--json", "init", "--project-id", "shop-nl"))
    before = dump(db_path)
    error = refused(
        cli,
        "init",
        "--project-id",
        "shop-be",
        exit_code=4,
        type="conflict",
        code="project_id_differs",
        field="project_id",
    )
    line = error_line(cli("init", "--project-id", "shop-be"), 4)
    assert "serves project shop-nl" in line and "--project shop-be" in line and "--force" in line
    assert error["recovery"] == "add --force to change it"
    assert dump(db_path) == before
    same = ok(cli("--json", "init", "--project-id", "shop-nl"))
    assert (same["created"], same["project_id"]) == (False, "shop-nl")
    forced = ok(cli("--json", "init", "--project-id", "shop-be", "--force"))
    assert (forced["created"], forced["project_id"]) == (False, "shop-be")


# -- tokens ------------------------------------------------------------------------------------


def test_tokens_have_a_scope_chosen_at_creation(cli, db_path):
    assert cli("init").exit_code == 0
    made = {
        name: ok(cli("--json", "tokens", "create", "--name", name, *scope))
        for name, scope in (
            ("desk", ()),
            ("report", ("--scope", "read")),
            ("ops", ("--scope", "admin")),
        )
    }
    assert {name: m["scope"] for name, m in made.items()} == {
        "desk": "operate",  # the default: the checkout flow
        "report": "read",
        "ops": "admin",
    }
    listed = ok(cli("--json", "tokens", "list"))["tokens"]
    assert [(t["name"], t["scope"]) for t in listed] == [
        ("desk", "operate"),
        ("ops", "admin"),
        ("report", "read"),
    ]
    table = cli("tokens", "list")
    assert table.exit_code == 0
    # Piped: one token per line, name and scope in the first two tab-separated fields.
    rows = [line.split("\t") for line in table.stdout.splitlines()]
    assert ["desk", "operate"] in [row[:2] for row in rows]
    plain = cli("tokens", "create", "--name", "lookout", "--scope", "read")
    assert plain.exit_code == 0 and "(read)" in plain.stderr
    before = dump(db_path)
    error = refused(
        cli,
        "tokens",
        "create",
        "--name",
        "root",
        "--scope",
        "superuser",
        exit_code=4,
        type="validation",
        code="invalid_scope",
        field="scope",
    )
    assert "read, operate, admin" in error["message"]
    assert dump(db_path) == before


# -- call --------------------------------------------------------------------------------------


def test_call_any_endpoint(backend, cli):
    token = ready_checkout(backend)
    body = json.dumps({"checkout_token": token})
    # call always prints JSON, with or without --json.
    for args in (("call",), ("--json", "call")):
        result = ok(cli(*args, FLOW, "get-checkout-status", "--body", body))
        assert result == status_of(backend, token)
    cart = ok(
        cli("call", CART, "add-item", "--body", '{"product_sku": "GIFT-CARD-25", "quantity": 2}')
    )
    assert cart == get_cart(backend, cart["cart_token"])
    assert ok(cli("call", ADMIN, "get-settings")) == backend.call(ADMIN, "get-settings", {})


def test_call_list(backend, cli):
    from checkout_cli.endpoints import ENDPOINTS

    listed = ok(cli("--json", "call", "--list"))["endpoints"]
    assert {(e["service"], e["endpoint"]) for e in listed} == set(ENDPOINTS)
    assert all(e["summary"] for e in listed)
    table = cli("call", "--list")
    assert table.exit_code == 0
    for name in ("initiate-checkout", "complete-checkout", "add-item", "list-orders"):
        assert name in table.stdout


def test_call_refusals(backend, cli, db_path):
    before = dump(db_path)
    refused(cli, "call", FLOW, "no-such-endpoint", exit_code=3, type="not_found")
    refused(cli, "call", "no-such-service", "x", exit_code=3, type="not_found")
    refused(
        cli,
        "call",
        FLOW,
        "get-checkout-status",
        "--body",
        "{}",
        exit_code=4,
        type="validation",
        code="missing_field",
        field="checkout_token",
    )
    refused(
        cli,
        "call",
        FLOW,
        "get-checkout-status",
        "--body",
        '{"checkout_token": "chk_x"}',
        exit_code=3,
        type="not_found",
        code="checkout_not_found",
    )
    refused(cli, "call", exit_code=2, type="usage", code="missing_input")
    refused(
        cli,
        "call",
        FLOW,
        "get-checkout-status",
        "--body",
        "[1]",
        exit_code=2,
        type="usage",
        code="invalid_json",
    )
    assert dump(db_path) == before
