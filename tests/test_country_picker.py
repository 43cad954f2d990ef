"""The country picker on a real pseudo-terminal: a typed ISO code, then Enter, saves that
country, for every code; so does a typed full name. (A substring filter in list order once
saved Finland for ``NL`` and Bangladesh for ``DE``, and with them the wrong tax.)"""

from __future__ import annotations

import re
import sys

import pexpect
import pytest

from checkout_cli.cli.prompts import match_rank
from checkout_cli.countries import country_names
from tests.test_cli_flow import status_of
from tests.test_prompts import open_checkout, terminal  # noqa: F401  (fixture)

# The picker exactly as `set-customer` and `phone-order` build it, asked once per line read.
PICKER = """
import sys
from checkout_cli.cli.prompts import prompter
from checkout_cli.countries import country_names
ask = prompter()
choices = [(c, f"{c}  {n}") for c, n in sorted(country_names().items(), key=lambda kv: kv[1])]
while True:
    print("picked=" + ask.choice("Country", choices, default="NL") + "=", flush=True)
"""


def picker() -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-c", PICKER],
        env={"TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", "PATH": "/usr/bin:/bin"},
        dimensions=(40, 120),
        timeout=15,
        encoding="utf-8",
    )
    return child


def pick(child: pexpect.spawn, typed: str) -> str:
    child.expect("Country")
    child.send(typed)
    child.expect(re.escape(typed[-1]) + r"(?:\x1b\[[0-9;]*m)*\.\.\.")  # the filter line is drawn
    child.send("\r")
    child.expect(r"picked=([A-Z]{2})=")
    return child.match.group(1)


def test_every_iso_code_typed_then_enter_picks_that_country():
    child = picker()
    try:
        wrong = {}
        for code in sorted(country_names()):
            got = pick(child, code)
            if got != code:
                wrong[code] = got
        assert wrong == {}
    finally:
        child.terminate(force=True)


@pytest.mark.parametrize(
    ("typed", "code"),
    [("Netherlands", "NL"), ("germany", "DE"), ("India", "IN"), ("Niger", "NE"), ("Oman", "OM")],
)
def test_a_full_name_picks_that_country_before_longer_names(typed, code):
    child = picker()
    try:
        assert pick(child, typed) == code
    finally:
        child.terminate(force=True)


@pytest.mark.parametrize(
    ("typed", "code"), [("NL", "NL"), ("de", "DE"), ("BE", "BE"), ("us", "US"), ("FR", "FR")]
)
def test_set_customer_saves_the_typed_code(backend, terminal, typed, code):  # noqa: F811
    token = open_checkout(backend)
    t = terminal(
        "set-customer", token, "--email", "a@example.com", "--name", "A", "--line1", "Markt 1"
    )
    t.at("Postal code", "2801 JG\r")
    t.at("City", "Gouda\r")
    t.at("Country", typed)
    t.at(re.escape(typed[-1]) + r"(?:\x1b\[[0-9;]*m)*\.\.\.", "\r")
    assert t.finish() == 0, t.text
    assert status_of(backend, token)["shipping_address"]["country"] == code


def test_match_rank_orders_code_name_word_then_substring():
    assert match_rank("nl", "NL", "NL  Netherlands") == 0
    assert match_rank("nl", "FI", "FI  Finland") == 3
    assert match_rank("niger", "NE", "NE  Niger") == 1
    assert match_rank("niger", "NG", "NG  Nigeria") == 2
    assert match_rank("xyz", "NL", "NL  Netherlands") is None
