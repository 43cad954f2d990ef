"""Backends. ``open_backend`` is the one place that decides where a command's calls go."""

from __future__ import annotations

from checkout_cli.backends.base import Backend
from checkout_cli.config import Settings


def open_backend(config: Settings, *, create: bool = False) -> Backend:
    """A remote server when ``remote`` is set (flag, env or profile), else the local store
    (made if missing only with ``create``)."""
    if config.remote:
        from checkout_cli.backends.remote import RemoteBackend, require_remote_settings

        project = require_remote_settings(config.remote, config.project)
        return RemoteBackend(config.remote, project, config.token)
    from checkout_cli.backends.local import LocalBackend

    return LocalBackend(config.db, actor=config.actor, create=create)
