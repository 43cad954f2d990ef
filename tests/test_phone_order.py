"""`checkout phone-order` driven like an operator would, in a real pseudo-terminal (pexpect)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import pytest

from tests.conftest import CUSTOMER, dump, ready_checkout
from tests.terminal import BACKSPACE, DOWN, Terminal, starter

Q = r"\?(?:\x1b\[[0-9;]*m)* "  # a question's mark, then its (styled) text


class Operator(Terminal):
    """One `checkout phone-order` session on a terminal."""

    def search(self, typed: str, name: str) -> None:
        """The product search: type part of a name, wait for the suggestion, Tab, Enter."""
        self.at(r"Product \(type part of a name or SKU, Tab to complete\)", typed)
        self.at(re.escape(name))  # the completion menu shows the match (typed part highlighted)
        self.child.send("\t")
        self.child.send("\r")

    def new_customer(self, email: str = "anna@example.com") -> None:
        self.at("Customer email", email + "\r")
        self.at(Q + r"Name", "Anna de Vries\r")
        self.at(r"Phone \(optional\)", "\r")  # Enter skips
        self.at("Street and number", "Prinsengracht 263\r")
        self.at("Postal code", "1016 GV\r")
        self.at("City", "Amsterdam\r")
        self.at(Q + r"Country", "\r")  # NL is the default


@pytest.fixture
def operator(db_path, tmp_path):
    yield from starter(
        lambda *args, dimensions=(50, 140): Operator(
            db_path, tmp_path, "phone-order", *args, dimensions=dimensions
        )
    )


def orders(backend: Any, email: str = "anna@example.com") -> list[dict[str, Any]]:
    return backend.call("order-management", "list-orders", {"email": email})["orders"]


def status(backend: Any, token: str) -> dict[str, Any]:
    return backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})


def test_a_whole_phone_order(backend, operator):
    op = operator()
    op.search("daily", "Daily contact lenses, 30 pack")
    op.at(Q + r"Quantity", "2\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add lens_prescription for line 1 \(LENS-DAILY-30\)\?", "n")
    op.at(Q + r"Payment", "\r")  # Invoice (pay later) is the default
    op.at("Read this out")
    assert op.finish() == 0

    [order] = orders(backend)
    assert order["status"] == "pending" and order["payment_status"] == "unpaid"
    assert order["customer"]["name"] == "Anna de Vries"
    assert order["customer"]["phone"] is None
    assert order["shipping_address"] == {
        "line1": "Prinsengracht 263",
        "line2": None,
        "postal_code": "1016 GV",
        "city": "Amsterdam",
        "region": None,
        "country": "NL",
    }
    assert order["billing_address"] == order["shipping_address"]
    [line] = order["items"]
    assert (line["product_sku"], line["quantity"], line["meta"]) == ("LENS-DAILY-30", 2, {})
    assert order["totals"]["subtotal_cents"] == 4990
    co = status(backend, order["checkout_token"])
    assert co["status"] == "completed" and co["payment"]["provider"] == "invoice"
    # The number to read out, in the panel that says so.
    assert re.search(
        r"Read this out.*Order number\s+" + re.escape(order["order_number"]), op.text, re.S
    )


def test_ctrl_c_leaves_a_consistent_checkout_and_resume_completes_it(backend, operator, db_path):
    op = operator()
    op.search("month", "Monthly contact lenses, 6 pack")
    op.at(Q + r"Quantity", "3\r")
    op.at(r"Add another product\?", "n")
    op.at("Customer email", "bram@example.com\r")
    op.at(Q + r"Name")  # the checkout exists; the customer is half typed
    op.child.send("Bram")
    before = dump(db_path)
    op.child.send("\x03")
    op.at(r"Resume with: checkout phone-order --resume (chk_\w+)")
    token = op.child.match.group(1)
    assert op.finish() == 130
    assert "Traceback" not in op.text

    # Nothing half-written: the checkout as it was before the prompt, no customer, no order.
    assert dump(db_path) == before
    co = status(backend, token)
    assert co["status"] == "active" and co["customer"] is None and co["order"] is None
    assert [(i["product_sku"], i["quantity"]) for i in co["items"]] == [("LENS-MONTH-6", 3)]

    op = operator("--resume", token)
    op.new_customer("bram@example.com")
    op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0
    co = status(backend, token)
    assert co["status"] == "completed"
    assert co["customer"]["email"] == "bram@example.com"
    assert [(i["product_sku"], i["quantity"]) for i in co["items"]] == [("LENS-MONTH-6", 3)]
    assert co["order"]["order_number"] in op.text
    assert len(orders(backend, "bram@example.com")) == 1


def test_ctrl_c_before_the_checkout_resumes_from_the_cart(backend, operator):
    op = operator(dimensions=(24, 80))  # a narrow terminal: the command must not be broken
    op.search("daily", "Daily contact lenses, 30 pack")
    op.at(Q + r"Quantity", "2\r")
    op.at(r"Add another product\?", "\x03")
    op.at(r"Resume with: checkout phone-order --resume (cart_\w+)")
    cart = op.child.match.group(1)
    assert op.finish() == 130
    assert backend.call("checkout-admin", "list-checkouts", {})["checkouts"] == []
    assert (
        backend.call("shopping-cart", "get-cart", {"cart_token": cart})["items"][0]["quantity"] == 2
    )

    op = operator("--resume", cart)
    op.at(r"Add more products\?", "y")
    op.search("gift", "Gift card EUR 25")
    op.at(Q + r"Quantity", "\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add lens_prescription for line 1 \(LENS-DAILY-30\)\?", "n")
    op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0
    [order] = orders(backend)
    assert [(i["product_sku"], i["quantity"]) for i in order["items"]] == [
        ("LENS-DAILY-30", 2),
        ("GIFT-CARD-25", 1),
    ]


def test_a_returning_customer_is_offered_by_email(backend, operator):
    first = ready_checkout(backend, [("LENS-MONTH-6", 1)])
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": first, "provider": "invoice"}
    )
    number = backend.call("checkout-flow", "complete-checkout", {"checkout_token": first})["order"][
        "order_number"
    ]

    op = operator()
    op.search("gift", "Gift card EUR 25")
    op.at(Q + r"Quantity", "\r")  # Enter: the default, 1
    op.at(r"Add another product\?", "n")
    op.at("Customer email", "anna@example.com\r")
    asked = re.escape(f"Use Anna de Vries, Prinsengracht 263, Amsterdam from order {number}?")
    op.at(asked, "y")
    op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0
    # No address questions for a customer we know.
    assert "Street and number" not in op.text and "Postal code" not in op.text

    newest = orders(backend)[0]
    assert newest["order_number"] != number
    [line] = newest["items"]
    assert (line["product_sku"], line["quantity"]) == ("GIFT-CARD-25", 1)
    co = status(backend, newest["checkout_token"])
    old = status(backend, first)
    assert co["customer"] == old["customer"]
    assert co["shipping_address"] == old["shipping_address"]
    assert co["billing_address"] == old["billing_address"]
    assert co["shipping_address"]["line1"] == CUSTOMER["shipping_address"]["line1"]


def test_required_line_meta_is_asked_field_by_field(backend, operator):
    prescribed = (date.today() - timedelta(days=30)).isoformat()
    op = operator()
    op.search("toric", "Toric monthly lenses, 6 pack")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    # Required: no "Add …?" question, straight to the fields.
    op.at("Contact lens prescription \\(both eyes\\) for LENS-TORIC-6")
    op.at(r"Right eye: sphere \(SPH\) \[-20.00 to 20.00 in steps of 0.25\]", "-30\r")
    op.at("-30 is outside -20.00 to 20.00", BACKSPACE * 3 + "-1.25\r")  # refused as typed
    op.at(r"Right eye: cylinder \(CYL\)", "-0.75\r")
    op.at(r"Right eye: axis", "90\r")
    op.at(r"Right eye: addition \(ADD\)", "\r")
    op.at(r"Right eye: base curve \(BC\)")
    # The allowed values come from the product's own config: 8.6 and 8.9 only.
    shown = op.at(r"8\.9")
    assert "8.6" in shown and "8.4" not in shown and "8.8" not in shown
    op.child.send(DOWN * 2 + "\r")  # (none), 8.6, 8.9
    op.at(r"Right eye: diameter \(DIA\)", DOWN + "\r")  # (none), 14.5
    op.at(r"Left eye: sphere \(SPH\)", "-1.50\r")
    op.at(r"Left eye: cylinder \(CYL\)", "\r")
    op.at(r"Left eye: axis", "\r")
    op.at(r"Left eye: addition \(ADD\)", "\r")
    op.at(r"Left eye: base curve \(BC\)", "8.6\r")  # typing filters the list
    op.at(r"Left eye: diameter \(DIA\)", "\r")
    op.at("Prescription date", prescribed + "\r")
    op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0
    assert "Add lens_prescription" not in op.text

    [order] = orders(backend)
    [line] = order["items"]
    assert line["product_sku"] == "LENS-TORIC-6"
    assert line["meta"] == {
        "lens_prescription": {
            "right_sphere": "-1.25",
            "right_cylinder": "-0.75",
            "right_axis": 90,
            "right_base_curve": "8.9",
            "right_diameter": "14.5",
            "left_sphere": "-1.50",
            "left_base_curve": "8.6",
            "prescribed_on": prescribed,
        }
    }


def test_without_a_terminal_it_is_a_usage_error(backend, db_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    result = subprocess.run(
        [sys.executable, "-m", "checkout_cli", "--db", str(db_path), "phone-order"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs a terminal" in lines[0]
    assert backend.call("checkout-admin", "list-checkouts", {})["checkouts"] == []


def test_a_line_short_of_stock_is_refused_when_added_and_a_backorder_is_said(backend, operator):
    op = operator()
    op.search("solution", "Lens solution 360 ml")  # 0 in stock, no backorder
    op.at(Q + r"Quantity", "1\r")
    op.at(r"not added: SOLUTION-360: 0 in stock, 1 wanted")
    op.search("travel", "Travel lens case")  # 2 in stock, backorder allowed
    op.at(Q + r"Quantity", "3\r")
    op.at(r"CASE-TRAVEL: 2 in stock, 3 wanted; backorder is\s+allowed")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add engraving for line 1 \(CASE-TRAVEL\)\?", "n")
    op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0, op.text

    [order] = orders(backend)
    assert [(i["product_sku"], i["quantity"]) for i in order["items"]] == [("CASE-TRAVEL", 3)]


def test_the_total_is_shown_before_payment_and_a_payment_elsewhere_asks_the_amount(
    backend, operator
):
    op = operator()
    op.search("daily", "Daily contact lenses, 30 pack")
    op.at(Q + r"Quantity", "2\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add lens_prescription for line 1 \(LENS-DAILY-30\)\?", "n")
    shown_before_payment = op.at(Q + r"Payment", DOWN * 3 + "\r")  # already paid elsewhere
    op.at(r"Paid via", "\r")
    op.at(r"Payment reference", "POS-77\r")
    op.at(r"Amount received \(EUR, up to 2 decimals\)", "1.00\r")
    op.at(r"is not the total .*Record it anyway\?", "n")
    op.at(r"not recorded")
    op.at(Q + r"Payment", DOWN * 3 + "\r")
    op.at(r"Paid via", "\r")
    op.at(r"Payment reference", "POS-77\r")
    op.at(r"Amount received \(EUR, up to 2 decimals\)", "\r")  # the total is the default
    op.at("Read this out")
    assert op.finish() == 0, op.text

    [order] = orders(backend)
    co = status(backend, order["checkout_token"])
    totals = co["totals"]
    assert totals["tax_cents"] > 0 and totals["shipping_cents"] > 0
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown_before_payment)
    for label in ("Subtotal", "Shipping", "Tax", "Total"):
        assert label in plain
    total = f"{totals['total_cents'] // 100}.{totals['total_cents'] % 100:02d}"
    assert re.search(r"Total\s+€ " + re.escape(total), plain), plain
    assert order["payment_status"] == "paid"
    assert co["payment"]["amount_cents"] == totals["total_cents"]
    assert co["payment"]["reference"] == "POS-77"


def test_resume_shows_the_cart_and_the_customer_before_asking_to_change_them(backend, operator):
    cart = backend.call(
        "shopping-cart", "add-item", {"product_sku": "LENS-MONTH-6", "quantity": 3}
    )["cart_token"]
    op = operator("--resume", cart)
    before = op.at(r"Add more products\?", "\x03")
    assert "LENS-MONTH-6" in before
    op.finish()

    token = ready_checkout(backend)
    co = status(backend, token)
    op = operator("--resume", token)
    before = op.at(r"Change the customer\?", "\x03")
    op.finish()
    assert co["customer"]["email"] in before
    assert co["shipping_address"]["line1"] in before
