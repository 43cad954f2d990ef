"""Customer-supplied text never reaches a terminal with its control characters.

A customer name holding ``ESC ] 0 ;`` (window title), ``ESC [ 2 J`` (clear screen), an OSC 52
clipboard write and a C1 CSI is shown as visible escapes: on a real pseudo-terminal and piped,
in tables, panels and error lines. ``--json`` stays exact JSON: the name reads back unchanged.
"""

from __future__ import annotations

import json
import re

import pytest

from checkout_cli.cli.safe_text import json_safe, visible
from tests.conftest import CUSTOMER, ready_checkout
from tests.terminal import Terminal

FLOW = "checkout-flow"
EVIL = "Evil\x1b]0;pwned\x07\x1b[2J\x1b]52;c;Y3VybA==\x07\u009b31m\u202eLIVE"
# What must never be printed: an escape starting an OSC or a CSI, a C1 CSI, a bidi override.
RAW_CONTROL = re.compile("\x1b[\\]\\[]|\u009b|\u202e")


@pytest.fixture
def evil_checkout(backend):
    token = ready_checkout(backend)
    customer = {**CUSTOMER, "customer": {**CUSTOMER["customer"], "name": EVIL}}
    backend.call(FLOW, "set-customer", {"checkout_token": token, **customer})
    return token


def test_visible_escapes_every_control_but_newline_and_tab():
    assert visible("a\x1b[2Jb\tc\nd\x7f\u009b\u202e") == "a\\x1b[2Jb\tc\nd\\x7f\\x9b\\u202e"
    assert json.loads(json_safe(json.dumps(EVIL, ensure_ascii=False))) == EVIL
    assert not RAW_CONTROL.search(json_safe(json.dumps(EVIL, ensure_ascii=False)))


@pytest.mark.parametrize(
    "args",
    [("status", "{token}"), ("inspect", "{token}", "--no-live")],
    ids=["status", "inspect"],
)
def test_piped_output_shows_escapes(cli, evil_checkout, args):
    result = cli(*(a.replace("{token}", evil_checkout) for a in args))
    assert result.exit_code == 0, result.stderr
    assert not RAW_CONTROL.search(result.stdout + result.stderr), result.stdout
    assert "Evil\\x1b]0;pwned" in result.stdout


def test_json_output_is_exact_and_still_safe(cli, evil_checkout):
    result = cli("--json", "status", evil_checkout)
    assert result.exit_code == 0, result.stderr
    assert not RAW_CONTROL.search(result.stdout)
    assert json.loads(result.stdout)["customer"]["name"] == EVIL


def test_an_error_line_quoting_a_value_shows_escapes(cli, evil_checkout):
    result = cli("cart", "add", "\x1b]0;pwned\x07SKU")
    assert result.exit_code != 0
    assert not RAW_CONTROL.search(result.stderr), result.stderr


def test_on_a_terminal_the_escapes_are_shown_not_run(db_path, tmp_path, evil_checkout):
    term = Terminal(db_path, tmp_path, "status", evil_checkout, dimensions=(40, 80))
    assert term.finish() == 0
    seen = term.transcript.getvalue()
    assert "\x1b]" not in seen and "\u009b" not in seen and "\u202e" not in seen
    assert "Evil\\x1b]0;pwned" in term.text.replace("\n", "").replace("│", "").replace(" ", "")
