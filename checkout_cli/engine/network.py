"""The engine's two ways onto the network, payment providers and mail servers, and a guard
for callers that must not wait on them: `checkout serve` runs every endpoint not marked
``calls_out`` on its event loop, where a slow provider would hold up other requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from checkout_cli.errors import InternalError

_thread = threading.local()


@contextmanager
def forbidden() -> Iterator[None]:
    """Within this block, on this thread, the engine refuses to talk to the network."""
    _thread.forbidden = True
    try:
        yield
    finally:
        _thread.forbidden = False


def check(peer: str) -> None:
    """Called just before the engine talks to ``peer``."""
    if getattr(_thread, "forbidden", False):
        raise InternalError(
            "network_not_allowed_here",
            f"this endpoint talked to {peer}, but its registry entry lacks calls_out=True",
        )


def allowed() -> bool:
    """Whether the engine may talk to the network on this thread now."""
    return not getattr(_thread, "forbidden", False)
