"""The `checkout` program's entry point: light, so Ctrl-C during start-up is handled too.

Importing the CLI and building its commands takes a moment; a Ctrl-C then would end in a
traceback. Here it ends as it does anywhere else: ``interrupted``, once, exit 130. (Once the
command runs, ``CheckoutGroup`` prints that line itself and exits 130.)
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130  # as checkout_cli.cli.errors, not imported: it may be half-imported


def main() -> None:
    try:
        from checkout_cli.cli.app import main as run

        run()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stderr.write("\ninterrupted\n")
        _exit_interrupted()
    except SystemExit as done:
        if done.code == EXIT_INTERRUPTED:
            _exit_interrupted()
        raise


def _exit_interrupted() -> None:
    """Exit 130 for certain. CPython ends itself by SIGINT on the way out (a shell then
    reads "killed", not 130) when a Ctrl-C struck inside code it ran from a string, such as a
    dataclass being made, even though the interrupt was handled. The store is closed by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
