"""Request schemas: one definition that both validates a request and emits its JSON Schema.

The registry's schemas are built from these nodes, so the JSON Schema served to clients
(``/openapi.json``, MCP tool inputs) can never drift from what the engine accepts.
Validation returns a normalized copy of the input and raises ``ValidationError`` naming
the first bad field by its dotted path (``customer.email``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from checkout_cli.errors import ValidationError
from checkout_cli.money import MAX_AMOUNT_CENTS
from checkout_cli.values import is_text, parse_int, shown, text_problem


def _fail(code: str, path: str, message: str, recovery: str | None = None) -> ValidationError:
    return ValidationError(code, f"{path}: {message}", field=path, recovery=recovery)


@dataclass(frozen=True)
class Node:
    description: str = ""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def _schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        schema = self._schema()
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Str(Node):
    min_length: int = 1
    max_length: int = 500
    pattern: str | None = None
    code: str = "invalid_value"
    upper: bool = False

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _fail("invalid_type", path, "must be a string")
        if not is_text(value):
            raise _fail(self.code, path, "holds a lone surrogate (e.g. \\ud800), which is not text")
        value = value.strip()
        if self.upper:
            value = value.upper()
        if len(value) < self.min_length:
            raise _fail("missing_field" if not value else self.code, path, "must not be empty")
        if len(value) > self.max_length:
            raise _fail(self.code, path, f"is longer than {self.max_length} characters")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise _fail(self.code, path, f"{shown(value)} is not valid", f"expected {self.pattern}")
        return value

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern})$"
        return schema


def parse_email(value: str, path: str = "email") -> str:
    """An email address as email-validator reads it (RFC 5321/5322, internationalized domains;
    no DNS lookup), normalized (the domain in lower case); a refusal says why."""
    import email_validator  # lazily: only commands that take an address pay for it

    if not is_text(value):
        raise _fail("invalid_email", path, "is not text")
    try:
        return email_validator.validate_email(value.strip(), check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise _fail(
            "invalid_email",
            path,
            f"{shown(value.strip())} is not an email address: {exc}",
            "give an address like name@example.com",
        ) from None


@dataclass(frozen=True)
class Email(Node):
    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _fail("invalid_type", path, "must be a string")
        return parse_email(value, path)

    def _schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "email", "maxLength": 254}


@dataclass(frozen=True)
class Country(Node):
    def check(self, value: Any, path: str) -> str:
        from checkout_cli.countries import COUNTRIES

        if not isinstance(value, str):
            raise _fail("invalid_type", path, "must be a string")
        code = value.strip().upper()
        if code not in COUNTRIES:
            raise _fail(
                "invalid_country",
                path,
                f"{shown(value)} is not an ISO 3166-1 alpha-2 country code",
                "use a two-letter code such as NL, DE, BE, GB, US",
            )
        return code

    def _schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z]{2}$"}


@dataclass(frozen=True)
class Currency(Node):
    def check(self, value: Any, path: str) -> str:
        from checkout_cli.money import is_currency

        if not isinstance(value, str) or not is_currency(value.strip()):
            raise _fail(
                "invalid_currency",
                path,
                f"{shown(value)} is not an ISO 4217 currency code",
                "use a code such as EUR, USD, GBP",
            )
        return value.strip().upper()

    def _schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z]{3}$"}


@dataclass(frozen=True)
class Int(Node):
    minimum: int | None = None
    maximum: int | None = None
    code: str = "value_out_of_range"

    def check(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("invalid_type", path, f"must be a whole number, got {shown(value)}")
        if self.minimum is not None and value < self.minimum:
            raise _fail(self.code, path, f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise _fail(self.code, path, f"must be at most {self.maximum}, got {value}")
        return value

    def _schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


def Cents(description: str = "", maximum: int = MAX_AMOUNT_CENTS) -> Int:
    """A non-negative amount in minor units."""
    return Int(description=description, minimum=0, maximum=maximum, code="invalid_amount")


@dataclass(frozen=True)
class Bool(Node):
    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise _fail("invalid_type", path, f"must be true or false, got {shown(value)}")
        return value

    def _schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Enum(Node):
    choices: tuple[str, ...] = ()
    code: str = "invalid_value"

    def check(self, value: Any, path: str) -> str:
        if value not in self.choices:
            allowed = ", ".join(self.choices)
            raise _fail(
                self.code, path, f"{shown(value)} is not one of {allowed}", f"use {allowed}"
            )
        return value

    def _schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class AnyObject(Node):
    """A free-form JSON object, checked further by the handler (meta values, product config)."""

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail("invalid_type", path, "must be an object")
        return _finite_json(value, path)

    def _schema(self) -> dict[str, Any]:
        return {"type": "object"}


@dataclass(frozen=True)
class AnyValue(Node):
    """Any JSON value; the handler checks it (a setting against the setting's own type)."""

    def check(self, value: Any, path: str) -> Any:
        return _finite_json(value, path)

    def _schema(self) -> dict[str, Any]:
        return {}


def _finite_json(value: Any, path: str) -> Any:
    """``value`` unchanged, unless it holds NaN or an infinity somewhere (not JSON: stored, it
    would make every later answer containing it unserializable), or a lone surrogate."""
    if problem := text_problem(value):
        raise _fail("invalid_text", path, problem)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise _fail("invalid_number", path, f"{shown(item)} is not a JSON number")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


@dataclass(frozen=True)
class Array(Node):
    items: Node = field(default_factory=AnyObject)
    max_items: int = 1000

    def check(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _fail("invalid_type", path, "must be a list")
        if len(value) > self.max_items:
            raise _fail("value_out_of_range", path, f"has more than {self.max_items} items")
        return [self.items.check(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def _schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.items.json_schema(), "maxItems": self.max_items}


@dataclass(frozen=True)
class Prop:
    node: Node
    required: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class Obj(Node):
    props: dict[str, Prop] = field(default_factory=dict)

    def check(self, value: Any, path: str = "") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail("invalid_type", path or "body", "must be a JSON object")
        prefix = f"{path}." if path else ""
        for key in value:
            if key not in self.props:
                known = ", ".join(self.props) or "none"
                raise _fail(
                    "unknown_field", f"{prefix}{key}", "is not a known field", f"known: {known}"
                )
        result: dict[str, Any] = {}
        for key, prop in self.props.items():
            item = value.get(key)
            if item is None:
                if prop.required:
                    raise _fail("missing_field", f"{prefix}{key}", "is required")
                continue
            result[key] = prop.node.check(item, f"{prefix}{key}")
        return result

    def from_query(self, params: dict[str, str]) -> dict[str, Any]:
        """Query-string values typed by this schema (``?limit=5&include_archived=true``)."""
        typed: dict[str, Any] = {}
        for key, text in params.items():
            node = self.props[key].node if key in self.props else None
            if isinstance(node, Int) and parse_int(text) is not None:
                typed[key] = parse_int(text)
            elif isinstance(node, Bool) and text.lower() in ("true", "false"):
                typed[key] = text.lower() == "true"
            else:
                typed[key] = text
        return typed

    def _schema(self) -> dict[str, Any]:
        properties = {}
        for key, prop in self.props.items():
            schema = prop.node.json_schema()
            if prop.nullable or not prop.required:
                schema = {"anyOf": [schema, {"type": "null"}]}
            properties[key] = schema
        return {
            "type": "object",
            "properties": properties,
            "required": [key for key, prop in self.props.items() if prop.required],
            "additionalProperties": False,
        }


def obj(**props: Prop | Node) -> Obj:
    """``obj(a=req(Str()), b=Int())``: a plain node means an optional field."""
    return Obj(props={k: v if isinstance(v, Prop) else Prop(v) for k, v in props.items()})


def req(node: Node) -> Prop:
    return Prop(node, required=True)
