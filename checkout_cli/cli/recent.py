"""The operator's most recent checkout, for ``--last``: kept per user in the data dir.

One entry per operator, profile and store (a local store by its path, a remote by its address
and project), so two operators of one shared server, or one operator's two shops, never get
each other's. Only commands that create or change a checkout set it; reading one does not, so
``status``/``inspect`` of an old order cannot turn the next ``complete-checkout --last`` to it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkout_cli.config import Settings, data_dir


def _path() -> Path:
    return data_dir() / "recent.json"


def _key(settings: Settings) -> str:
    if settings.remote:
        where = f"{settings.remote}#{settings.project}"
    elif isinstance(settings.db, Path):
        where = str(settings.db.resolve())
    else:
        from checkout_cli.engine.stores import describe

        where = describe(settings.db)  # a URL, never with its password
    return f"{settings.actor}|{settings.profile or ''}|{where}"


def _load() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: nothing remembered, never a failed command
    return data if isinstance(data, dict) else {}


def last_checkout(settings: Settings) -> dict[str, str] | None:
    """``{"checkout_token", "at"}`` of the last checkout this operator created or changed."""
    entry = _load().get(_key(settings))
    if isinstance(entry, dict) and isinstance(entry.get("checkout_token"), str):
        return entry
    return None


def remember(settings: Settings, token: str) -> None:
    """Make ``token`` the operator's last checkout; a failure to write is only a warning."""
    data = _load()
    data[_key(settings)] = {
        "checkout_token": token,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = _path()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
        os.replace(temporary, path)  # whole or not at all, if two commands finish at once
    except OSError as exc:
        from checkout_cli.cli import output

        output.say(f"warning: could not remember the last checkout in {path}: {exc.strerror}")
