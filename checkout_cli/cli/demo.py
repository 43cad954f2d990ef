"""checkout demo: a whole phone order on a fresh store, every checkout-flow step shown."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import typer

from checkout_cli.cli.state import State, print_json
from checkout_cli.endpoints import CHECKOUT_ADMIN, CHECKOUT_FLOW, PRODUCT_CATALOG, SHOPPING_CART
from checkout_cli.errors import UsageError


def fixture(name: str) -> dict[str, Any]:
    return json.loads(files("checkout_cli").joinpath("fixtures", name).read_text())


def demo(ctx: typer.Context) -> None:
    """Run a complete phone order on a fresh store: no network, no input.

    Loads the fixtures (meta definitions, catalog, settings, a cart), then walks every
    checkout-flow endpoint: an invoiced order with a lens prescription and an engraving on its
    lines, and a cancelled checkout redone with a manually linked bank payment.
    Uses a new store in a temporary folder unless --db names one (it must not exist yet).

    Example: checkout demo
    """
    from checkout_cli.cli import output
    from checkout_cli.cli.meta import import_definitions
    from checkout_cli.cli.products import import_catalog

    state: State = ctx.obj
    if state.settings.db_given:
        if not isinstance(state.settings.db, Path):
            raise UsageError(
                "demo_needs_a_file",
                "the demo makes a fresh SQLite store; it does not run on a PostgreSQL database",
                recovery="name a new file with --db, or leave --db out",
            )
        if state.settings.db.exists() and state.settings.db.stat().st_size > 0:
            raise UsageError(
                "store_not_fresh",
                f"{state.settings.db} already exists",
                recovery="the demo needs a fresh store: name a new file with --db",
            )
        db = state.settings.db
    else:
        db = Path(tempfile.mkdtemp(prefix="checkout-demo-")) / "demo.db"
    state = State(settings=replace(state.settings, db=db), creates_store=True)  # a fresh one
    ctx.obj.close()
    ctx.obj = state
    quiet = state.settings.json
    steps: list[dict[str, Any]] = []

    def step(title: str, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = state.call(service, name, body)
        steps.append({"step": title, "endpoint": f"{service}/{name}", "result": result})
        if not quiet:
            output.out().rule(f"{title}  ({service}/{name})")
            if service == CHECKOUT_FLOW:
                output.checkout_view(result)
            elif service == SHOPPING_CART:
                output.cart_view(result)
        return result

    if not quiet:
        output.say(f"demo store: {db}")
    outbox_dir = db.parent / "outbox"
    for key, value in {**fixture("settings.json"), "email_outbox_dir": str(outbox_dir)}.items():
        state.call(CHECKOUT_ADMIN, "set-setting", {"key": key, "value": value})
    import_definitions(state, fixture("meta_definitions.json")["definitions"])
    catalog = fixture("catalog.json")["products"]
    import_catalog(state, catalog)
    products = [state.call(PRODUCT_CATALOG, "get-product", {"sku": p["sku"]}) for p in catalog]
    if not quiet:
        output.out().rule("Catalog (fixtures/catalog.json)")
        output.products_view(products)

    cart_fixture = fixture("cart.json")
    cart_token = None
    for item in cart_fixture["items"]:
        cart = step(
            f"Add {item['product_sku']} x{item['quantity']}",
            SHOPPING_CART,
            "add-item",
            {"cart_token": cart_token, **item},
        )
        cart_token = cart["cart_token"]
    checkout = step(
        "Initiate the checkout", CHECKOUT_FLOW, "initiate-checkout", {"cart_token": cart_token}
    )
    token = checkout["checkout_token"]
    step(
        "Initiate again: the open checkout is reused",
        CHECKOUT_FLOW,
        "initiate-checkout",
        {"cart_token": cart_token},
    )
    customer = {
        "customer": cart_fixture["customer"],
        "shipping_address": cart_fixture["shipping_address"],
    }
    step(
        "Set the customer (tax from the NL rate)",
        CHECKOUT_FLOW,
        "set-customer",
        {"checkout_token": token, **customer},
    )
    for meta in cart_fixture["meta"]:
        values = dict(meta["values"])
        if meta["def_key"] == "lens_prescription":
            # A prescription must be recent: date it two months before today.
            values["prescribed_on"] = (date.today() - timedelta(days=61)).isoformat()
        step(
            f"Line meta: {meta['def_key']} on {meta['product_sku']}",
            CHECKOUT_FLOW,
            "set-line-meta",
            {
                "checkout_token": token,
                "product_sku": meta["product_sku"],
                "def_key": meta["def_key"],
                "values": values,
            },
        )
    step(
        "Pay by invoice",
        CHECKOUT_FLOW,
        "create-payment",
        {"checkout_token": token, "provider": "invoice"},
    )
    step(
        "Status before completion", CHECKOUT_FLOW, "get-checkout-status", {"checkout_token": token}
    )
    done = step(
        "Complete: order, stock, confirmation email",
        CHECKOUT_FLOW,
        "complete-checkout",
        {"checkout_token": token},
    )
    step(
        "Complete again: the same order",
        CHECKOUT_FLOW,
        "complete-checkout",
        {"checkout_token": token},
    )

    second = step(
        "Second call: a gift card",
        SHOPPING_CART,
        "add-item",
        {"product_sku": "GIFT-CARD-25", "quantity": 2},
    )
    first_try = step(
        "Initiate", CHECKOUT_FLOW, "initiate-checkout", {"cart_token": second["cart_token"]}
    )
    step(
        "The customer hesitates: cancel (the cart stays)",
        CHECKOUT_FLOW,
        "cancel-checkout",
        {"checkout_token": first_try["checkout_token"], "reason": "customer will call back"},
    )
    retry = step(
        "Called back: a new checkout from the same cart",
        CHECKOUT_FLOW,
        "initiate-checkout",
        {"cart_token": second["cart_token"]},
    )
    step(
        "Set the customer",
        CHECKOUT_FLOW,
        "set-customer",
        {"checkout_token": retry["checkout_token"], **customer},
    )
    step(
        "Link the bank transfer that arrived",
        CHECKOUT_FLOW,
        "set-payment",
        {
            "checkout_token": retry["checkout_token"],
            "provider": "bank",
            "reference": "NL91-TRANSFER-0042",
            "status": "paid",
        },
    )
    paid = step(
        "Complete", CHECKOUT_FLOW, "complete-checkout", {"checkout_token": retry["checkout_token"]}
    )

    numbers = [done["order"]["order_number"], paid["order"]["order_number"]]
    if quiet:
        print_json({"db": str(db), "order_numbers": numbers, "steps": steps})
        return
    email = outbox_dir / f"{numbers[0]}.eml"
    output.out().rule(f"The confirmation email ({email})")
    output.out().print(_text_part(email))
    output.say(f"done: orders {', '.join(numbers)} in {db}", "green")


def _text_part(path: Path) -> str:
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part else ""


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
