"""`checkout phone-order` on a pseudo-terminal: Tab in the product picker puts the SKU in the
line, and a pattern-checked text field says in words what it takes."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from checkout_cli.errors import ValidationError
from checkout_cli.metadefs import check_definition, check_value, describe
from tests.terminal import ANSI, shown
from tests.test_phone_order import Q, operator  # noqa: F401  (fixture)

PRODUCT = r"Product \(type part of a name or SKU, Tab to complete\)"


def test_tab_in_the_product_picker_inserts_the_sku_only(backend, operator):  # noqa: F811
    op = operator()
    op.at(PRODUCT, "daily")
    op.at(re.escape("Daily contact lenses, 30 pack"), "\t")
    op.at(r"LENS-DAILY-30", "\r")
    op.at(Q + r"Quantity", "\x03")
    assert op.finish() == 130
    # The answer as drawn last, when Enter submitted it: the SKU, nothing of the suggestion.
    answered = ANSI.sub("", op.transcript.getvalue()).rsplit("Tab to complete)", 1)[1]
    assert answered.split("?")[0].strip() == "LENS-DAILY-30", answered


def test_the_engraving_prompt_says_what_is_allowed_in_words(backend, operator):  # noqa: F811
    op = operator()
    op.search("travel", "Travel lens case")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "n")
    op.new_customer()
    op.at(r"Add engraving for line 1 \(CASE-TRAVEL\)\?", "y")
    op.at(shown("Text to engrave [up to 20 letters, digits, spaces or the signs . , ' & -]"))
    op.retype("Für Anna!", "'Für Anna!' is not allowed: up to 20 letters", "Anna")
    op.at(Q + r"Font", "\x03")
    assert op.finish() == 130
    assert "[A-Za-z0-9" not in op.text  # the regex itself is never shown


def field(**spec: Any) -> dict[str, Any]:
    return {"name": "code", "type": "string", **spec}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (field(pattern="[A-Za-z0-9 ]+", max_length=20), "up to 20 letters, digits or spaces"),
        (field(pattern="[A-Z0-9]{6}"), "exactly 6 capital letters or digits"),
        (field(pattern="[0-9]{4,8}"), "4 to 8 digits"),
        (field(pattern="[a-z-]*", max_length=30), "up to 30 lower-case letters or the sign -"),
        # Not one character class: the definition's hint, else a sentence, never the regex.
        (
            field(pattern="[A-Z]{2}-[0-9]{4}", hint="an order number such as AB-1234"),
            "an order number such as AB-1234, at most 500 characters",
        ),
        (
            field(pattern="[A-Z]{2}-[0-9]{4}", max_length=7),
            "text in the form this field's definition sets, at most 7 characters",
        ),
        (field(pattern="[a-f0-9]+"), "text in the form this field's definition sets, at most 500"),
        (field(max_length=40), "text, at most 40 characters"),
    ],
)
def test_a_text_field_is_described_in_words(spec, words):
    said = describe(spec)
    assert said.startswith(words)
    assert spec.get("pattern", "@@") not in said


def test_a_hint_is_part_of_a_definition_and_must_be_text():
    definition = {"def_key": "ref", "fields": [field(pattern="[A-Z]{2}-[0-9]{4}", hint="AB-1234")]}
    assert check_definition(definition)["fields"][0]["hint"] == "AB-1234"
    definition["fields"][0]["hint"] = 7
    with pytest.raises(ValidationError, match="hint must be a string"):
        check_definition(definition)
    # The refusal of a value says the hint too.
    with pytest.raises(ValidationError) as refused:
        check_value(field(pattern="[A-Z]{2}-[0-9]{4}", hint="like AB-1234"), "ab-12", date.today())
    assert "like AB-1234" in refused.value.message and "[A-Z]" not in refused.value.message
