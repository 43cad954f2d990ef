"""What every command gets: resolved settings, the backend (opened on first use), and the
one helper that calls an endpoint and prints its result as JSON or a view."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.config import Settings
from checkout_cli.errors import UsageError


@dataclass
class State:
    settings: Settings
    _backend: Backend | None = field(default=None, repr=False)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from checkout_cli.backends import open_backend

            self._backend = open_backend(self.settings)
        return self._backend

    def call(self, service: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.backend.call(service, name, body)

    def show(self, result: Any, render: Callable[[Any], None]) -> None:
        if self.settings.json:
            print_json(result)  # no rich on this path: scripts start faster
        else:
            render(result)

    def run(
        self,
        service: str,
        name: str,
        body: dict[str, Any],
        render: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        result = self.call(service, name, body)
        self.show(result, render)
        return result

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def parse_body(text: str | None) -> dict[str, Any]:
    """``--body '{"a": 1}'``, ``--body @file.json`` or ``--body @-`` (stdin)."""
    if not text:
        return {}
    source = "--body"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise UsageError("body_unreadable", f"cannot read {source}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            "invalid_json",
            f"{source} is not valid JSON: {exc}",
            recovery="pass a JSON object, e.g. --body '{\"quantity\": 2}'",
        ) from None
    if not isinstance(value, dict):
        raise UsageError("invalid_json", f"{source} must be a JSON object")
    return value


def merge_body(body: str | None, **flags: Any) -> dict[str, Any]:
    """The ``--body`` object with the flags given on top (nested objects merged one level)."""
    merged = parse_body(body)
    for key, value in flags.items():
        if value is None or value == {}:
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def present(**values: Any) -> dict[str, Any]:
    """Only the values that were given (None means the flag was left out)."""
    return {k: v for k, v in values.items() if v is not None}
