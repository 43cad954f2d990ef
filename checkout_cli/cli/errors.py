"""Turning any failure into one line on stderr and the documented exit code."""

from __future__ import annotations

import json
import signal
import sys
import traceback

from checkout_cli.errors import CheckoutError, InternalError

EXIT_INTERRUPTED = 130  # also in checkout_cli.entry (Ctrl-C during start-up)
EXIT_BROKEN_PIPE = 141  # as a process killed by SIGPIPE: the reader (`| head`) stopped reading


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush has nowhere to fail."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what the command wants the operator to know (how to resume).

    Commands raise this instead of printing their own line, so that ``interrupted`` is said
    once, by ``report``, whatever the command.
    """

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


def report(exc: BaseException, *, as_json: bool, debug: bool) -> int:
    """Print ``exc`` for an operator and return the exit code."""
    if isinstance(exc, KeyboardInterrupt):
        # A second Ctrl-C while the command closes its store would print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        hint = exc.hint if isinstance(exc, Interrupted) else ""
        sys.stderr.write("\ninterrupted" + (f"; {hint}" if hint else "") + "\n")
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError) and not debug:
        _silence_stdout()  # nobody reads any more: nothing to report
        return EXIT_BROKEN_PIPE
    if not isinstance(exc, CheckoutError):
        if debug:
            traceback.print_exception(exc)
        exc = InternalError(
            "internal_error",
            f"unexpected {type(exc).__name__}: {exc}",
            recovery="this is a bug; run again with --debug for the traceback",
        )
    elif debug and exc.__cause__ is not None:
        traceback.print_exception(exc)
    if as_json:
        sys.stderr.write(json.dumps({"error_object": exc.to_error_object()}) + "\n")
    else:
        line = f"error: {exc.message}"
        if exc.recovery:
            line += f" — {exc.recovery}"
        from checkout_cli.cli.safe_text import visible

        sys.stderr.write(visible(" ".join(line.split())) + "\n")
    return exc.exit_code
