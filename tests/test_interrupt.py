"""Ctrl-C on a real pseudo-terminal: whatever the command and wherever it is pressed, one
``interrupted`` line, exit 130, no traceback."""

from __future__ import annotations

import time

import pytest

from tests.test_phone_order import Q, operator, status  # noqa: F401  (fixture)


def test_ctrl_c_at_the_first_prompt_says_interrupted_once(backend, operator):  # noqa: F811
    op = operator()
    op.at(r"Product \(type part of a name or SKU", "\x03")
    assert op.finish() == 130
    assert op.text.count("interrupted") == 1, op.text
    assert "Traceback" not in op.text and "Aborted" not in op.text


def test_ctrl_c_in_the_flow_says_interrupted_once_with_how_to_resume(backend, operator):  # noqa: F811
    op = operator()
    op.search("month", "Monthly contact lenses, 6 pack")
    op.at(Q + r"Quantity", "1\r")
    op.at(r"Add another product\?", "n")
    op.at("Customer email", "\x03")
    op.at(r"interrupted; nothing is half-done\. Resume with: checkout phone-order --resume chk_\w+")
    assert op.finish() == 130
    assert op.text.count("interrupted") == 1, op.text
    assert "stopped" not in op.text and "Traceback" not in op.text


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6])
def test_ctrl_c_while_the_program_starts_says_interrupted_once(backend, operator, delay):  # noqa: F811
    op = operator()
    time.sleep(delay)  # the command's modules are still being imported, or it just asks
    op.child.sendintr()
    assert op.finish() == 130, op.text
    assert op.text.count("interrupted") == 1, op.text
    assert "Traceback" not in op.text
