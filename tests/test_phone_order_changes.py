"""`checkout phone-order` on a pseudo-terminal: changing or removing a line late in the flow,
line meta kept across Ctrl-C, and a way out when completion fails for stock."""

from __future__ import annotations

from datetime import date, timedelta

from tests.conftest import CUSTOMER, ready_checkout
from tests.terminal import DOWN
from tests.test_phone_order import Q, operator, orders, status  # noqa: F401  (fixture)

CHANGE = DOWN * 4  # the payment menu's last choice: "Change the products"


def engrave(op, line: int, text: str) -> None:
    op.at(rf"Add engraving for line {line} \(CASE-TRAVEL\)\?", "y")
    op.at(r"Text to engrave", text + "\r")
    op.at(Q + r"Font", "\r")  # (none)
    op.at(r"Gift wrap", "n")


def test_lines_changed_before_payment_keep_customer_and_meta(backend, operator):  # noqa: F811
    op = operator()
    op.search("daily", "Daily contact lenses, 30 pack")
    op.at(Q + r"Quantity", "2\r")
    op.at(r"Add another product\?", "y")
    op.search("month", "Monthly contact lenses, 6 pack")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "y")
    op.search("travel", "Travel lens case")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add lens_prescription for line 1 \(LENS-DAILY-30\)\?", "n")
    engrave(op, 3, "Anna")
    op.at(Q + r"Payment", CHANGE + "\r")
    op.at(r"Which line\?", "\r")  # line 1, LENS-DAILY-30
    op.at(r"Line 1: LENS-DAILY-30 × 2", DOWN + "\r")  # remove the line
    op.at(r"LENS-DAILY-30 removed; the order continues as chk_\w+")
    op.at(r"Which line\?", "\r")  # now line 1 is LENS-MONTH-6
    op.at(r"Line 1: LENS-MONTH-6 × 1", "\r")  # change the quantity
    op.at(r"New quantity", "50\r")  # 40 in stock: refused, nothing changed
    op.at(r"not changed: LENS-MONTH-6: 40 in stock, 50 wanted")
    op.at(r"Which line\?", "\r")
    op.at(r"Line 1: LENS-MONTH-6 × 1", "\r")
    op.at(r"New quantity", "3\r")
    op.at(r"LENS-MONTH-6 now × 3")
    op.at(r"Which line\?", DOWN * 2 + "\r")  # done
    after_changes = op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0, op.text
    # Nothing asked again: the customer, the declined prescription, the engraving.
    for asked in ("Customer email", "Street and number", "lens_prescription", "engraving"):
        assert asked not in after_changes

    [order] = orders(backend)
    assert [(i["product_sku"], i["quantity"], i["meta"]) for i in order["items"]] == [
        ("LENS-MONTH-6", 3, {}),
        ("CASE-TRAVEL", 1, {"engraving": {"text": "Anna", "gift_wrap": False}}),
    ]
    assert order["customer"]["name"] == "Anna de Vries"
    assert order["shipping_address"]["city"] == "Amsterdam"
    co = status(backend, order["checkout_token"])
    assert co["totals"]["subtotal_cents"] == 3 * 3995 + 495
    assert co["totals"]["tax_cents"] > 0  # NL tax, from the carried address
    # The checkouts left behind by the changes are cancelled, not open.
    checkouts = backend.call("checkout-admin", "list-checkouts", {})["checkouts"]
    assert sorted(c["status"] for c in checkouts) == ["cancelled", "cancelled", "completed"]


def test_meta_completed_before_ctrl_c_is_kept(backend, operator):  # noqa: F811
    prescribed = (date.today() - timedelta(days=10)).isoformat()
    op = operator()
    op.search("travel", "Travel lens case")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "y")
    op.search("toric", "Toric monthly lenses, 6 pack")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    engrave(op, 1, "Bram")
    op.at(r"Right eye: sphere \(SPH\)", "-1.25\r")
    op.at(r"Right eye: cylinder \(CYL\)", "\x03")  # the prescription half typed
    op.at(r"Resume with: checkout phone-order --resume (chk_\w+)")
    token = op.child.match.group(1)
    assert op.finish() == 130
    [line1, line2] = status(backend, token)["items"]
    assert line1["meta"] == {"engraving": {"text": "Bram", "gift_wrap": False}}
    assert line2["meta"] == {}

    op = operator("--resume", token)
    op.at(r"Change the customer\?", "n")
    op.at(r"Right eye: sphere \(SPH\)", "-1.25\r")  # the unfinished prescription is asked
    for field in ("cylinder", "axis", "addition", "base curve", "diameter"):
        op.at(rf"Right eye: {field}", "\r")
    op.at(r"Left eye: sphere \(SPH\)", "-1.50\r")
    for field in ("cylinder", "axis", "addition", "base curve", "diameter"):
        op.at(rf"Left eye: {field}", "\r")
    op.at("Prescription date", prescribed + "\r")
    op.at(Q + r"Payment", "\r")
    op.at("Read this out")
    assert op.finish() == 0, op.text
    assert "engraving" not in op.text.split("Change the customer")[1]

    [order] = orders(backend)
    assert order["items"][0]["meta"] == {"engraving": {"text": "Bram", "gift_wrap": False}}
    assert order["items"][1]["meta"]["lens_prescription"]["right_sphere"] == "-1.25"


def test_resume_after_a_stock_failure_offers_to_change_the_line(backend, operator):  # noqa: F811
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-MONTH-6", 3)])
    prescription = {
        "right_sphere": "-1.25",
        "left_sphere": "-1.50",
        "prescribed_on": (date.today() - timedelta(days=5)).isoformat(),
    }
    backend.call(
        "checkout-flow",
        "set-line-meta",
        {
            "checkout_token": token,
            "product_sku": "LENS-TORIC-6",
            "def_key": "lens_prescription",
            "values": prescription,
        },
    )
    # A reference (as a batch gives) and shipping given by hand: both stay with the order.
    cart = status(backend, token)["cart_token"]
    backend.call(
        "checkout-flow",
        "initiate-checkout",
        {"cart_token": cart, "external_reference": "PHONE-77"},
    )
    backend.call(
        "checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER, "shipping_cents": 0}
    )
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    backend.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 1})
    before = status(backend, token)

    op = operator("--resume", token)
    op.at(r"cannot complete: LENS-MONTH-6: 1 available, 3 needed")
    op.at(r"Change or remove that line now\?", "y")
    op.at(r"Which line\?", DOWN + "\r")  # line 2, LENS-MONTH-6
    op.at(r"Line 2: LENS-MONTH-6 × 3", "\r")
    op.at(r"New quantity", "1\r")
    op.at(r"Which line\?", DOWN * 2 + "\r")  # done
    op.at(Q + r"Payment", "\r")  # the new checkout's payment: the invoice again
    op.at("Read this out")
    assert op.finish() == 0, op.text
    assert "Right eye" not in op.text  # the prescription was carried, not asked

    [order] = orders(backend)
    assert [(i["product_sku"], i["quantity"]) for i in order["items"]] == [
        ("LENS-TORIC-6", 1),
        ("LENS-MONTH-6", 1),
    ]
    assert order["items"][0]["meta"] == {
        "lens_prescription": before["items"][0]["meta"]["lens_prescription"]
    }
    assert order["customer"] == before["customer"]
    assert order["shipping_address"] == before["shipping_address"]
    assert status(backend, token)["status"] == "cancelled"
    assert order["external_reference"] == "PHONE-77"
    assert order["totals"]["shipping_cents"] == 0
    stock = backend.call("product-catalog", "get-product", {"sku": "LENS-MONTH-6"})["stock"]
    assert stock == 0
