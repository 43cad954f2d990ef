"""Request schemas on pydantic: each endpoint's request is a model (``checkout_cli/requests.py``)
that both validates a request and emits the JSON Schema published for it.

The field types below carry the project's own error codes (``invalid_sku``, …) as pydantic
custom errors, and their constraints as JSON Schema keywords, so ``/openapi.json`` and the MCP
tool inputs are generated from what the engine accepts and cannot drift from it. A refused
request names **every** bad field: ``ValidationError.errors`` lists them, the first one is also
its ``field``/``code``/``message``.

Strings are strict (a string, never a number), whole numbers take JSON's integral ``2.0`` as 2
(JSON Schema's ``integer`` does), booleans only ``true``/``false``; ``null`` is the same as
leaving an optional field out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from annotated_types import GroupedMetadata
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticError
from pydantic_core import PydanticCustomError

from checkout_cli.errors import ValidationError
from checkout_cli.money import MAX_AMOUNT_CENTS
from checkout_cli.values import is_text, parse_int, shown, text_problem

R = TypeVar("R", bound=BaseModel)


class Request(BaseModel):
    """An endpoint's request: unknown fields refused, read-only once validated. Built on first
    use (``defer_build``): a command pays only for the models it validates."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, defer_build=True, hide_input_in_errors=True
    )

    def given(self, name: str) -> bool:
        """Whether the caller set ``name`` (to anything but null)."""
        return getattr(self, name) is not None


def refuse(code: str, message: str, recovery: str | None = None) -> PydanticCustomError:
    # The message travels in the context, never as the template: a shown value may hold "{".
    context: dict[str, Any] = {"message": message}
    if recovery:
        context["recovery"] = recovery
    return PydanticCustomError(code, "{message}", context)


@dataclass(frozen=True)
class Checks(GroupedMetadata):
    """A field type's checks, as one item of ``Annotated``: ``Annotated[str, Text(64)]``.
    The constraints come first so pydantic publishes them (and checks them again, inside)."""

    items: tuple[Any, ...]
    # What kind of value it is ("text", "whole", "cents", "choice", "email", "sku", …) and, for
    # a choice, its values: what a face shows for the field (a flag's metavar and choices).
    kind: str = "value"
    choices: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


def _checks(
    constraints: Any, check: Callable[[Any], Any], kind: str, choices: tuple[str, ...] = ()
) -> Checks:
    return Checks((constraints, BeforeValidator(check)), kind, choices)


def _schema_extra(**extra: Any) -> Callable[[dict[str, Any]], None]:
    def update(schema: dict[str, Any]) -> None:
        schema.update({k: v() if callable(v) else v for k, v in extra.items()})

    return update


# --- field types -------------------------------------------------------------------------------

# What ``str.strip()`` strips (``str.isspace``), named one by one. A published pattern is an
# ECMA-262 regex, whose ``\\s`` is another set than Python's (it holds U+FEFF, and not U+001C to
# U+001F or U+0085): spelled out, the pattern means the same to every JSON Schema validator, to
# Python's ``re`` and to pydantic's own regex engine, and the same as the model's stripping.
SPACES = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NON_SPACE = f"[^{SPACES}]"


def Text(
    max_length: int = 500,
    *,
    pattern: str | None = None,
    code: str = "invalid_value",
    min_length: int = 1,
    description: str | None = None,
    kind: str = "text",
) -> Checks:
    """A string. With ``pattern`` it must match whole, as given (a padded token is refused, as
    its published pattern refuses it); free text is stripped and, unless ``min_length`` is 0,
    must hold a character that is not stripped (published as the pattern ``NON_SPACE``)."""
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise refuse("invalid_type", f"must be a string, got {shown(value)}")
        if not is_text(value):
            raise refuse(code, "holds a lone surrogate (e.g. \\ud800), which is not text")
        if len(value) > max_length:
            raise refuse(code, f"is longer than {max_length} characters")
        if compiled is not None:
            if not value and min_length:
                raise refuse("missing_field", "must not be empty")
            if not compiled.fullmatch(value):
                # The field's own words, where it has them, say more to an operator than a regex.
                expected = description or pattern
                raise refuse(code, f"{shown(value)} is not valid", f"expected {expected}")
            return value
        value = value.strip()
        if len(value) < min_length:
            raise refuse("missing_field" if not value else code, "must not be empty")
        return value

    published = f"^(?:{pattern})$" if pattern else (NON_SPACE if min_length else None)
    return _checks(
        Field(max_length=max_length, pattern=published, description=description), check, kind
    )


def Whole(
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    code: str = "value_out_of_range",
    description: str | None = None,
    kind: str = "whole",
) -> Checks:
    """A whole number; JSON's ``2.0`` is the integer 2, as JSON Schema's ``integer`` says."""

    def check(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("invalid_type", f"must be a whole number, got {shown(value)}")
        if minimum is not None and value < minimum:
            raise refuse(code, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise refuse(code, f"must be at most {maximum}, got {value}")
        return value

    return _checks(Field(ge=minimum, le=maximum, description=description), check, kind)


def Cents(description: str | None = None, maximum: int = MAX_AMOUNT_CENTS) -> Checks:
    """A non-negative amount in minor units."""
    return Whole(0, maximum, code="invalid_amount", description=description, kind="cents")


def Flag(description: str | None = None) -> Checks:
    def check(value: Any) -> Any:
        if value is not None and not isinstance(value, bool):
            raise refuse("invalid_type", f"must be true or false, got {shown(value)}")
        return value

    return _checks(Field(description=description), check, "flag")


def Choice(
    choices: tuple[str, ...], *, code: str = "invalid_value", description: str | None = None
) -> Checks:
    allowed = ", ".join(choices)

    def check(value: Any) -> Any:
        if value is not None and value not in choices:
            raise refuse(code, f"{shown(value)} is not one of {allowed}", f"use {allowed}")
        return None if value is None else str(value)

    return _checks(
        Field(description=description, json_schema_extra=_schema_extra(enum=list(choices))),
        check,
        "choice",
        tuple(str(c) for c in choices),
    )


def parse_email(value: Any, path: str = "email") -> str:
    """An email address as email-validator reads it (RFC 5321/5322, internationalized domains;
    no DNS lookup), normalized (the domain in lower case); a refusal says why."""
    try:
        return _email(value)
    except PydanticCustomError as exc:
        raise _one(path, exc.type, exc.context or {}) from None


def _email(value: Any) -> str:
    import email_validator  # lazily: only commands that take an address pay for it

    if not isinstance(value, str):
        raise refuse("invalid_type", f"must be a string, got {shown(value)}")
    if not is_text(value) or len(value) > MAX_EMAIL_LENGTH:
        raise refuse("invalid_email", "is not an email address (not text, or over 254 characters)")
    recovery = "give an address like name@example.com"
    try:
        address = email_validator.validate_email(value.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise refuse(
            "invalid_email", f"{shown(value.strip())} is not an email address: {exc}", recovery
        ) from None
    if not _email_pattern().fullmatch(value):
        raise refuse(
            "invalid_email",
            f"{shown(value.strip())} is not an address taken here: letters, digits and "
            f"{_ATEXT_SIGNS} before the @, an ASCII domain (no quotes, IP or Punycode)",
            recovery,
        )
    return address.normalized


# The addresses taken, published as the field's pattern: those email-validator takes (above)
# that an ASCII pattern can describe exactly, so what the schema allows is what is accepted.
# Its ``format: email`` alone allows more (quoted names, IP literals, ``a@localhost``, the
# special-use ``.test``), which email-validator refuses. A dot-atom before the @; labels of
# letters, digits and inner hyphens (at most 63, never "ab--": IDNA's reserved form), the last
# one ending in a letter and no special-use name; padding that is stripped.
MAX_EMAIL_LENGTH = 254
_ATEXT_SIGNS = "!#$%&'*+/=?^_`{|}~-"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]"
_NO_IDNA_HYPHENS = r"(?![A-Za-z0-9\-]{2}--)"
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")
_SPECIAL = "|".join("".join(f"[{c.upper()}{c}]" for c in name) for name in _SPECIAL_USE)
_LABEL = rf"{_NO_IDNA_HYPHENS}[A-Za-z0-9](?:[A-Za-z0-9\-]{{0,61}}[A-Za-z0-9])?"
_NOT_SPECIAL = rf"(?!(?:{_SPECIAL})(?:[{SPACES}]|$))"
_TLD = rf"{_NO_IDNA_HYPHENS}{_NOT_SPECIAL}(?:[A-Za-z0-9][A-Za-z0-9\-]{{0,61}})?[A-Za-z]"
EMAIL_PATTERN = rf"^(?:[{SPACES}]*{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_TLD}[{SPACES}]*)$"


@cache
def _email_pattern() -> re.Pattern[str]:
    return re.compile(EMAIL_PATTERN)


def Email(description: str | None = None) -> Checks:
    return _checks(
        Field(
            description=description,
            json_schema_extra=_schema_extra(
                format="email", pattern=EMAIL_PATTERN, maxLength=MAX_EMAIL_LENGTH
            ),
        ),
        lambda value: None if value is None else _email(value),
        "email",
    )


def _iso_code(
    kind: str,
    codes: Callable[[], Collection[str]],
    refused: str,
    recovery: str,
    description: str | None,
) -> Checks:
    """Exactly one of ``codes`` (loaded on first use), published as the field's enum."""

    def check(value: Any) -> Any:
        # Not a string (a list, an object) is refused too, not looked up: it may not hash.
        if value is not None and (not isinstance(value, str) or value not in codes()):
            raise refuse(f"invalid_{kind}", f"{shown(value)} is not an {refused}", recovery)
        return value

    published = _schema_extra(enum=lambda: sorted(codes()))
    return _checks(Field(description=description, json_schema_extra=published), check, kind)


def _country_codes() -> Collection[str]:
    from checkout_cli.countries import country_names

    return country_names().keys()


def _currency_codes() -> Collection[str]:
    from checkout_cli.money import currency_codes

    return currency_codes()


def Country(description: str | None = "ISO 3166-1 alpha-2 code, in capitals") -> Checks:
    """Exactly an ISO code (``NL``): people's spellings ("nl", "Netherlands") are read by
    ``countries.parse_country`` before a request is made."""
    return _iso_code(
        "country",
        _country_codes,
        "ISO 3166-1 alpha-2 country code",
        "use a two-letter code in capitals such as NL, DE, BE, GB, US",
        description,
    )


def Currency(description: str | None = "ISO 4217 code, in capitals") -> Checks:
    return _iso_code(
        "currency",
        _currency_codes,
        "ISO 4217 currency code",
        "use a code in capitals such as EUR, USD, GBP",
        description,
    )


def _finite_json(value: Any) -> Any:
    """``value`` unchanged, unless it holds NaN or an infinity somewhere (not JSON: stored, it
    would make every later answer containing it unserializable), or a lone surrogate."""
    if problem := text_problem(value):
        raise refuse("invalid_text", problem)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise refuse("invalid_number", f"{shown(item)} is not a JSON number")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def AnyObject(description: str | None = None) -> Checks:
    """A free-form JSON object, checked further by the handler (meta values, product config)."""

    def check(value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise refuse("invalid_type", "must be an object")
        return _finite_json(value)

    return _checks(Field(description=description), check, "object")


def AnyValue(description: str | None = None) -> Checks:
    """Any JSON value; the handler checks it (a setting against the setting's own type)."""
    return _checks(Field(description=description), _finite_json, "value")


# --- validation --------------------------------------------------------------------------------


def validate(model: type[R], body: Any) -> R:
    """``body`` as ``model``, or a ``ValidationError`` listing every bad field."""
    if not isinstance(body, Mapping):
        raise ValidationError("invalid_type", "body: must be a JSON object", field="body")
    try:
        return model.model_validate(body)
    except PydanticError as exc:
        raise _refusal(model, exc) from None


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def check(kind: Any, value: Any, path: str) -> Any:
    """One value of a field type (``SKU``, ``Email()``…), normalized, or a ValidationError
    naming ``path``: the CLI's prompts and flags and the batch reader check with the types the
    requests are made of."""
    if value is None:
        raise _one(path, "missing_field", {"message": "is required"})
    try:
        return _adapter(kind).validate_python(value)
    except PydanticError as exc:
        error = exc.errors(include_url=False)[0]
        code, message, recovery = _explain(error, None)
        raise _one(path, code, {"message": message, "recovery": recovery}) from None


def field_type(model: type[BaseModel], name: str) -> Any:
    """The type of one of ``model``'s fields, with its checks (for ``check``)."""
    info = model.model_fields[name]
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


@dataclass(frozen=True)
class FieldFacts:
    """What a face needs to know of one request field to offer it (a CLI flag, a prompt)."""

    kind: str  # Checks.kind, or "object" for a nested model
    description: str | None
    choices: tuple[str, ...]
    required: bool


def field_facts(model: type[BaseModel], path: str) -> FieldFacts:
    """The field at ``path`` in ``model``: ``"email"``, or ``"customer.email"`` inside a nested
    model (``required`` is the field's own, within its model)."""
    *parents, name = path.split(".")
    for part in parents:
        nested = _plain(model.model_fields[part].annotation)
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            raise KeyError(f"{path}: {part} is not an object")
        model = nested
    info = model.model_fields[name]
    checks = next(
        (m for m in _metadata(info.annotation, info.metadata) if isinstance(m, Checks)), None
    )
    if checks is None:
        return FieldFacts("object", info.description, (), info.is_required())
    described = next((i.description for i in checks.items if getattr(i, "description", None)), None)
    return FieldFacts(checks.kind, described, checks.choices, info.is_required())


def _metadata(annotation: Any, metadata: list[Any]) -> list[Any]:
    """A field's annotated metadata, also when it is optional (``Annotated[…] | None``)."""
    if metadata:
        return metadata
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    return list(get_args(annotation)[1:]) if get_origin(annotation) is Annotated else []


def from_query(model: type[BaseModel], params: Mapping[str, str]) -> dict[str, Any]:
    """Query-string values typed by ``model`` (``?limit=5&include_archived=true``); what does
    not parse stays text and is refused by the model with the field's own error."""
    typed: dict[str, Any] = {}
    for key, text in params.items():
        info = model.model_fields.get(key)
        kind = _plain(info.annotation) if info is not None else str
        if kind is int and (number := parse_int(text)) is not None:
            typed[key] = number
        elif kind is bool and text.lower() in ("true", "false"):
            typed[key] = text.lower() == "true"
        else:
            typed[key] = text
    return typed


def _plain(annotation: Any) -> Any:
    """``int`` for ``int | None`` and for ``Annotated[int, …] | None``."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _one(path: str, code: str, context: Mapping[str, Any]) -> ValidationError:
    message = str(context.get("message", "is not valid"))
    recovery = context.get("recovery")
    error = {"field": path, "code": code, "message": message}
    return ValidationError(
        code, f"{path}: {message}", field=path, recovery=recovery, errors=[error]
    )


def _dotted(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose fields ``loc`` (a path into ``model``'s input) names."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        is_model = isinstance(current, type) and issubclass(current, BaseModel)
        info = current.model_fields.get(part) if is_model else None
        if info is None:
            return None
        current = _plain(info.annotation)
        if get_origin(current) is list:
            current = _plain(get_args(current)[0])
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_TYPE_NAMES = {"model": "an object", "dict": "an object", "list": "a list"}


def _explain(error: Mapping[str, Any], model: type[BaseModel] | None) -> tuple[str, str, Any]:
    """(code, message, recovery) of one pydantic error, in the project's words."""
    kind, context, loc = error["type"], error.get("ctx") or {}, tuple(error["loc"])
    if "message" in context:  # one of ours (``refuse``)
        return kind, str(context["message"]), context.get("recovery")
    if kind == "missing" or (kind.endswith("_type") and error.get("input", "") is None):
        return "missing_field", "is required", None
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1]) if model is not None else None
        known = ", ".join(parent.model_fields) if parent is not None else ""
        return "unknown_field", "is not a known field", f"known: {known or 'none'}"
    if kind.endswith("_type") or kind == "model_attributes_type":
        name = _TYPE_NAMES.get(kind.removesuffix("_type"), "of another type")
        return "invalid_type", f"must be {name}", None
    if kind == "too_long" and "max_length" in context:
        return "value_out_of_range", f"has more than {context['max_length']} items", None
    return "invalid_value", str(error.get("msg", "is not valid")), None


def _refusal(model: type[BaseModel], exc: PydanticError) -> ValidationError:
    problems = []
    for error in exc.errors(include_url=False):
        code, message, recovery = _explain(error, model)
        problems.append(
            {"field": _dotted(tuple(error["loc"])), "code": code, "message": message}
            | ({"recovery": recovery} if recovery else {})
        )
    first = problems[0]
    return ValidationError(
        first["code"],
        f"{first['field']}: {first['message']}",
        field=first["field"],
        recovery=first.get("recovery"),
        errors=[{k: p[k] for k in ("field", "code", "message")} for p in problems],
    )


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with every ``$ref`` replaced by its definition (some MCP clients
    resolve no references)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
                return {**target, **{k: resolve(v) for k, v in node.items() if k != "$ref"}}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
