"""`checkout set-line-meta` with no values, on a real pseudo-terminal (pexpect): each field is
asked for in definition order, ranges shown, typed values checked as typed, allowed values
offered as a choice list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import dump, ready_checkout
from tests.terminal import BACKSPACE, DOWN, Terminal, shown, starter
from tests.test_line_meta_engine import ENGRAVING, LENS, dates, today


@pytest.fixture
def terminal(db_path, tmp_path):
    """``terminal(TOKEN, SKU, …)``: `checkout set-line-meta TOKEN SKU …` on a terminal."""
    yield from starter(lambda *args: Terminal(db_path, tmp_path, "set-line-meta", *args))


def meta_of(backend: Any, token: str, sku: str) -> dict[str, Any]:
    co = backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    [item] = [i for i in co["items"] if i["product_sku"] == sku]
    return item["meta"]


def test_prescription_asked_field_by_field(backend, terminal):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    recent = dates()["recent"]
    tomorrow = (today() + timedelta(days=1)).isoformat()
    t = terminal(token, "LENS-TORIC-6")
    t.at(r"Contact lens prescription \(both eyes\) for LENS-TORIC-6")

    t.at(r"Right eye: sphere \(SPH\) \[-20\.00 to 20\.00 in steps of 0\.25\]")
    t.retype("-30", "-30 is outside -20.00 to 20.00", "-1.30")
    t.at(shown("is not a multiple of 0.25"), BACKSPACE * 5 + "-1.25\r")
    t.at(r"Right eye: cylinder \(CYL\) \[-6\.00 to 0\.00 in steps of 0\.25\]")
    t.retype("0.25", "0.25 is outside -6.00 to 0.00", "-0.75")
    # The cylinder is not zero, so the axis may not be left empty.
    t.at(r"Right eye: axis \[a whole number from 0 to 180\]", "\r")
    t.at(shown("required when right_cylinder is set"))
    t.retype("181", "outside 0 to 180", "90")  # "181 is…": its "i" is already on screen
    t.at(r"Right eye: addition \(ADD\) \[0\.75 to 3\.50 in steps of 0\.25\]", "\r")  # optional

    # Choices come from LENS-TORIC-6's own config: 8.6 and 8.9, not LENS-MULTI-6's 8.4/8.8.
    t.at(r"Right eye: base curve \(BC\)")
    seen = t.at(r"8\.9")
    assert "8.6" in seen and "8.4" not in seen and "8.8" not in seen
    t.child.send(DOWN * 2 + "\r")  # (none), 8.6, 8.9
    t.at(r"Right eye: diameter \(DIA\)")
    t.at(r"14\.5", DOWN + "\r")  # (none), 14.5

    t.at(r"Left eye: sphere \(SPH\) \[-20\.00 to 20\.00 in steps of 0\.25\]", "+2\r")
    t.at(r"Left eye: cylinder \(CYL\)", "\r")
    t.at(r"Left eye: axis", "\r")  # no cylinder: the axis stays optional
    t.at(r"Left eye: addition \(ADD\)", "\r")
    t.at(r"Left eye: base curve \(BC\)")
    t.at(r"8\.9", DOWN + "\r")  # 8.6
    t.at(r"Left eye: diameter \(DIA\)")
    t.at(r"14\.5", "\r")  # (none)

    t.at(r"Prescription date \[a date YYYY-MM-DD, not in the future, not older than 24 months\]")
    t.retype(tomorrow, "is in the future", recent)
    t.at("Line meta")  # the checkout, with its meta, once stored
    assert t.finish() == 0
    assert "Traceback" not in t.text

    assert meta_of(backend, token, "LENS-TORIC-6") == {
        LENS: {
            "right_sphere": "-1.25",
            "right_cylinder": "-0.75",
            "right_axis": 90,
            "right_base_curve": "8.9",
            "right_diameter": "14.5",
            "left_sphere": "2.00",
            "left_base_curve": "8.6",
            "prescribed_on": recent,
        }
    }


def test_engraving_asked_with_a_settings_list(backend, terminal):
    token = ready_checkout(backend, [("LENS-DAILY-30", 1), ("CASE-TRAVEL", 1)])
    t = terminal(token, "CASE-TRAVEL")  # no --def: the product takes just one
    t.at("Engraving on a lens case for CASE-TRAVEL")
    # What is allowed, in words from the definition's pattern; never the regex itself.
    t.at(shown("Text to engrave [up to 20 letters, digits, spaces or the signs . , ' & -]"))
    t.retype("Hello World!", "'Hello World!' is not allowed", "Hello World")
    t.at("Font")
    seen = t.at("script")
    assert "serif" in seen and "sans" in seen
    t.child.send(DOWN * 3 + "\r")  # (none), serif, sans, script
    t.at("Gift wrap", "y")
    t.at("Line meta")
    assert t.finish() == 0
    assert "[A-Za-z0-9" not in t.text
    assert meta_of(backend, token, "CASE-TRAVEL") == {
        ENGRAVING: {"text": "Hello World", "font": "script", "gift_wrap": True}
    }
    assert meta_of(backend, token, "LENS-DAILY-30") == {}


def test_ctrl_c_in_the_prompts_stores_nothing(backend, db_path, terminal):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    before = dump(db_path)
    t = terminal(token, "LENS-TORIC-6", "--def", LENS)
    t.at(r"Right eye: sphere \(SPH\)", "-1.25\r")
    t.at(r"Right eye: cylinder \(CYL\)", "\x03")
    assert t.finish() == 130
    assert "Traceback" not in t.text
    assert dump(db_path) == before
    assert meta_of(backend, token, "LENS-TORIC-6") == {}
