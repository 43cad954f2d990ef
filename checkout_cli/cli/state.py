"""What every command gets: resolved settings, the backend (opened on first use), and the
one helper that calls an endpoint and prints its result as JSON or a view."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from checkout_cli.backends.base import Backend
from checkout_cli.config import Settings
from checkout_cli.errors import UsageError
from checkout_cli.values import JSONRefused, load_json

Body = Annotated[
    str | None,
    typer.Option(
        "--body",
        metavar="JSON|@FILE",
        help="request fields as a JSON object, or @file.json (@- for stdin); flags win",
    ),
]


@dataclass
class State:
    settings: Settings
    # Only `init` creates a local store: a mistyped --db elsewhere must not make an empty one.
    creates_store: bool = False
    _backend: Backend | None = field(default=None, repr=False)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from checkout_cli.backends import open_backend

            self._backend = open_backend(self.settings, create=self.creates_store)
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
    from checkout_cli.cli.safe_text import json_safe

    sys.stdout.write(json_safe(json.dumps(value, indent=2, ensure_ascii=False)) + "\n")


def read_json_file(path: Path) -> Any:
    """A JSON file, or a one-line usage error naming the file and what is wrong."""
    try:
        return load_json(path.read_bytes())
    except OSError as exc:
        raise UsageError("file_unreadable", f"cannot read {path}: {exc.strerror}") from None
    except JSONRefused as exc:
        raise UsageError("invalid_json", f"{path} is not valid JSON: {exc}") from None


def read_items_file(path: Path, key: str) -> list[dict[str, Any]]:
    """A file of objects: a JSON list, ``{key: [...]}``, or a single object."""
    data = read_json_file(path)
    items = data.get(key, [data]) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UsageError("invalid_file", f"{path}: expected a list of {key}")
    return items


def upsert_all(
    state: State,
    service: str,
    name: str,
    items: list[dict[str, Any]],
    label: str,
    check: Callable[[Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """Check every item against the endpoint's schema first (nothing is written if one is
    bad, and the error names it), then call the endpoint for each."""
    from checkout_cli.endpoints import ENDPOINTS
    from checkout_cli.errors import CheckoutError, ValidationError
    from checkout_cli.schema import validate

    request = ENDPOINTS[(service, name)].request
    for index, item in enumerate(items):
        try:
            clean = validate(request, item)
            if check is not None:
                check(clean.model_dump(exclude_none=True))
        except CheckoutError as exc:
            raise ValidationError(
                exc.code,
                f"{label} {index + 1}: {exc.message}",
                field=f"{label}s[{index}].{exc.field}",
                recovery=exc.recovery,
            ) from None
    return [state.call(service, name, item) for item in items]


def parse_body(text: str | None) -> dict[str, Any]:
    """``--body '{"a": 1}'``, ``--body @file.json`` or ``--body @-`` (stdin)."""
    if not text:
        return {}
    if text.startswith("@") and text != "@-":
        value = read_json_file(Path(text[1:]))
        source = text[1:]
    else:
        source = "stdin" if text == "@-" else "--body"
        try:
            value = load_json(sys.stdin.buffer.read() if text == "@-" else text)
        except JSONRefused as exc:
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


Argument = tuple[str, str, Any]  # request field, its metavar (SKU), the value typed or None


def with_arguments(request: dict[str, Any], *arguments: Argument) -> dict[str, Any]:
    """``request`` (the ``--body`` object with the flags on it) with the positional arguments
    typed: a field ``--body`` gives needs no argument. All typed: they win over the body, as
    flags do; fewer: they fill, in order, the fields the body leaves out (``set-line-meta CHK
    --body '{"product_sku": …}'``). A field still missing is a usage error naming it."""
    typed = [value for _, _, value in arguments if value is not None]
    fields = [(field, metavar) for field, metavar, _ in arguments]
    open_ = [(field, metavar) for field, metavar in fields if request.get(field) is None]
    targets = fields if len(typed) == len(fields) or len(typed) > len(open_) else open_
    merged = {
        **request,
        **{field: value for (field, _), value in zip(targets, typed, strict=False)},
    }
    missing = [metavar for field, metavar in fields if merged.get(field) is None]
    if missing:
        raise UsageError(
            "missing_input",
            f"missing {', '.join(missing)}",
            field=next(field for field, _ in fields if merged.get(field) is None),
            recovery="give it as an argument, or as its field in --body",
        )
    return merged
