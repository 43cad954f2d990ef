"""An endpoint's flags, made from its request model (``checkout_cli/requests.py``).

``endpoint_command`` gives a command one option per request field it lists: the option's
type, metavar, help text (the field's description) and choices (a ``Choice`` field's values,
checked by the parser: a bad one is exit 2 naming them, and offered by shell completion) come
from the model, so the flags cannot drift from what the endpoint takes. A field inside a
nested object (``customer.email``) is a flag of its own (``--email``); the command receives
the flags given as one request fragment, nested as the request is::

    @endpoint_command(CHECKOUT_FLOW, "create-payment", ("provider", "redirect_url"))
    def create_payment(ctx: typer.Context, *, fields: Fields, body: Body = None) -> None:
        request = merge_body(body, **fields)
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, TypeVar

import typer

from checkout_cli.cli.metavars import kind_metavar
from checkout_cli.endpoints import ENDPOINTS
from checkout_cli.schema import FieldFacts, field_facts

Fields = dict[str, Any]  # the flags given, as a (nested) request fragment
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Flag:
    """One request field as an option. ``help`` may hold ``{description}`` (the field's)."""

    field: str  # its path in the request: "tax_cents", "customer.email"
    name: str | None = None  # default: the field's own name, "--tax-cents", "--email"
    help: str | None = None  # default: the field's description
    callback: Callable[[Any], Any] | None = None  # e.g. a country's name read as its code
    autocompletion: Callable[..., Any] | None = None

    @property
    def option(self) -> str:
        return self.name or "--" + self.field.rsplit(".", 1)[-1].replace("_", "-")

    @property
    def parameter(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


def endpoint_command(service: str, name: str, flags: Sequence[str | Flag]) -> Callable[[F], F]:
    """The decorated command with an option for each of ``flags`` (field paths of the
    endpoint's request, or ``Flag``s), placed where it declares its ``fields`` parameter
    (keyword-only: ``*, fields: Fields``), which gets the ones given."""
    model = ENDPOINTS[(service, name)].request
    specs = tuple(Flag(f) if isinstance(f, str) else f for f in flags)

    def decorate(function: F) -> F:
        own = list(inspect.signature(function, eval_str=True).parameters.values())
        at = next((i for i, p in enumerate(own) if p.name == "fields"), None)
        if at is None:
            raise TypeError(f"{function.__name__} takes no `fields` for its flags")
        own.pop(at)
        made = [
            inspect.Parameter(
                spec.parameter,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=_annotation(spec, field_facts(model, spec.field)),
            )
            for spec in specs
        ]
        # Keyword-only after the context: typer passes every parameter by name.
        parameters = [
            own[0],
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[1:at]),
            *made,
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at:]),
        ]

        def command(*args: Any, **kwargs: Any) -> Any:
            fields: Fields = {}
            for spec in specs:
                value = kwargs.pop(spec.parameter)
                if value is not None:
                    _put(fields, spec.field, value.value if isinstance(value, enum.Enum) else value)
            return function(*args, **kwargs, fields=fields)

        command.__name__ = function.__name__
        command.__qualname__ = function.__qualname__
        command.__doc__ = function.__doc__
        command.__module__ = function.__module__
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return command  # type: ignore[return-value]

    return decorate


def _put(fields: Fields, path: str, value: Any) -> None:
    *parents, key = path.split(".")
    for part in parents:
        fields = fields.setdefault(part, {})
    fields[key] = value


def _annotation(spec: Flag, facts: FieldFacts) -> Any:
    description = facts.description or ""
    shown = spec.help.format(description=description) if spec.help else description
    options: dict[str, Any] = {"help": shown or None, "show_default": False}
    if spec.callback is not None:
        options["callback"] = spec.callback
    if spec.autocompletion is not None:
        options["autocompletion"] = spec.autocompletion
    if facts.kind == "flag":
        return Annotated[bool | None, typer.Option(spec.option, **options)]
    options["metavar"] = kind_metavar(facts.kind, spec.parameter)
    if facts.kind == "choice":
        choices = _choices(spec.parameter, facts.choices)
        return Annotated[choices | None, typer.Option(spec.option, **options)]
    kind = int if facts.kind in ("whole", "cents") else str
    return Annotated[kind | None, typer.Option(spec.option, **options)]


@cache
def _choices(name: str, values: tuple[str, ...]) -> type[enum.StrEnum]:
    """A choice field's values as the enum typer makes a checked choice of."""
    return enum.StrEnum(name.title().replace("_", ""), {value: value for value in values})  # type: ignore[return-value]
