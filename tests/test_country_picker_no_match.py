"""The country picker on a real pseudo-terminal: a typed filter that matches no country says
so, and Enter then takes nothing (it once took Afghanistan, the first of the whole list)."""

from __future__ import annotations

import pexpect

from tests.terminal import BACKSPACE, shown
from tests.test_country_picker import picker


def test_enter_with_no_matching_country_does_nothing_until_the_filter_matches():
    child = picker()
    try:
        child.expect("Country")
        child.send("xq")
        child.expect(shown("nothing matches 'xq'"))
        child.send("\r")
        assert child.expect([r"picked=", pexpect.TIMEOUT], timeout=1.5) == 1  # nothing taken
        child.send(BACKSPACE * 2 + "BE")
        child.expect("Belgium")  # the list is back, BE first
        child.send("\r")
        child.expect(r"picked=([A-Z]{2})=")
        assert child.match.group(1) == "BE"
    finally:
        child.terminate(force=True)
