"""The real `checkout` on a pseudo-terminal (pexpect), driven like an operator would."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect

from tests.conftest import WATCH

DOWN = "\x1b[B"
BACKSPACE = "\x7f"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def shown(text: str) -> str:
    """A regex for ``text`` as prompt_toolkit draws it: a space may be a cursor move.

    prompt_toolkit redraws only what changed, so a message replacing another one in the same
    place skips the characters they share: wait for a part that differs.
    """
    return r"(?: |\x1b\[\d*C)+".join(re.escape(word) for word in text.split(" "))


class Terminal:
    """One `python -m checkout_cli --db DB ARGS…` on a terminal: wait for a prompt, answer it."""

    def __init__(
        self, db_path: Path, tmp_path: Path, *args: str, dimensions: tuple[int, int] = (50, 140)
    ) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            # COLUMNS/LINES (pytest-xdist sets them) would override the terminal's own size.
            if k not in ("CI", "COLUMNS", "LINES", "NO_COLOR") and not k.startswith("CHECKOUT_")
        }
        env.update(
            TERM="xterm-256color",
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            XDG_DATA_HOME=str(tmp_path / "data"),
            # pexpect is not a terminal emulator: it never answers prompt_toolkit's cursor
            # position request, and every prompt would wait a second for the answer.
            PROMPT_TOOLKIT_NO_CPR="1",
        )
        self.transcript = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "checkout_cli", "--db", str(db_path), *args],
            env=env,
            dimensions=dimensions,
            timeout=15,
            encoding="utf-8",
            codec_errors="replace",
        )
        self.child.logfile_read = self.transcript

    def at(self, pattern: str, send: str | None = None) -> str:
        """Wait for ``pattern`` (a regex), then type ``send``; returns what came before it."""
        self.child.expect(pattern)
        before = self.child.before
        if send is not None:
            self.child.send(send)
        return before

    def retype(self, wrong: str, problem: str, right: str) -> None:
        """Type a refused value, see why (``problem``, plain text), erase it, type another."""
        self.child.send(wrong + "\r")
        self.at(shown(problem), BACKSPACE * len(wrong) + right + "\r")

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        WATCH.seen("checkout (terminal)", self.transcript.getvalue())
        return self.child.exitstatus

    @property
    def text(self) -> str:
        """What the operator saw, without colours and cursor movements."""
        return ANSI.sub("", self.transcript.getvalue())

    def kill(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def starter(factory: Callable[..., Terminal]) -> Iterator[Callable[..., Terminal]]:
    """A fixture body: start terminals with ``factory``, kill what is left at the end."""
    started: list[Terminal] = []

    def start(*args: str, **kwargs: object) -> Terminal:
        term = factory(*args, **kwargs)
        started.append(term)
        return term

    yield start
    for term in started:
        term.kill()
