"""Backends. ``open_backend`` is the one place that decides where a command's calls go."""

from __future__ import annotations

from checkout_cli.backends.base import Backend
from checkout_cli.config import Settings


def open_backend(config: Settings) -> Backend:
    """The embedded store at ``config.db`` (the only backend of this release)."""
    from checkout_cli.backends.local import LocalBackend

    return LocalBackend(config.db, actor=config.actor)
