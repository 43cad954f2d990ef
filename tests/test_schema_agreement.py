"""The published request schemas and the request models agree (property tests).

For every endpoint, its request's JSON Schema as published (``inline_schema``: the MCP tool
input; /openapi.json is the same with ``$ref``s) is the contract: every body the schema allows
is accepted by the model (``schema.validate``), and every body it refuses is refused by the model
with a ``ValidationError`` naming the bad field, never another exception. Bodies are drawn from
the schema itself (hypothesis-jsonschema); violations are valid bodies with one field broken
(wrong type, too long, out of range, off-pattern, not in the enum, missing, unknown), kept only
when a JSON Schema 2020-12 validator (patterns read as ECMA-262 reads them) says the body is
invalid, and lone surrogates, which no schema can refuse. The same examples on every run.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError

from checkout_cli import schema
from checkout_cli.endpoints import ENDPOINTS
from checkout_cli.errors import ValidationError

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# One endpoint per request model: endpoints sharing a model share its schema.
MODELS = {endpoint.request: f"{service}/{name}" for (service, name), endpoint in ENDPOINTS.items()}
CASES = [pytest.param(model, id=name) for model, name in MODELS.items()]


def published(model: type[schema.Request]) -> dict[str, Any]:
    return schema.inline_schema(model)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[Any]:
    """``pattern`` as ECMA-262 reads it: a final ``$`` is the end of the string (Python's also
    matches before a last newline, so ``re`` would take "tok\\n" for a token)."""
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    if not re.search(pattern, instance):
        yield SchemaError(f"{instance!r} does not match {pattern!r}")


# A JSON Schema 2020-12 validator whose patterns end where ECMA-262's do.
Validator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def _branch(node: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's ``anyOf``."""
    options = [s for s in node.get("anyOf", [node]) if s.get("type") != "null"]
    return options[0] if len(options) == 1 else node


@dataclass(frozen=True)
class Break:
    """One way to break a body: at ``path`` (keys and list indexes), set ``value``, or delete
    the key (``value`` is ``DELETE``). ``field`` is the path as the error names it."""

    path: tuple[str | int, ...]
    value: Any
    kind: str

    @property
    def field(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text


DELETE = object()
# The one refusal a JSON Schema cannot say: a lone surrogate ("\\ud800") is a JSON string but
# no Unicode text (I-JSON, RFC 7493, forbids it); every string field refuses it as a bad value
# of that field, never with another exception.
SURROGATE = "surrogate"
WRONG_TYPE = {"string": 12345, "integer": "12", "boolean": "yes", "object": [1], "array": {"a": 1}}
# Strings off a pattern: spaces Python and ECMA-262 disagree on (U+001C, U+0085, U+FEFF), a
# newline Python's ``$`` lets through, addresses the ``email`` format allows and email-validator
# refuses.
OFF_PATTERN = [
    *("", " ", "!", "a b", "é", "x\n", "-", "\t", "ab#", "AAA%", "\x1c", "\x85", "\ufeff"),
    *("a@b.test", "a@localhost", '"a b"@example.com', "a@[127.0.0.1]", "é@exämple.de"),
]


def breaks(node: dict[str, Any], path: tuple[str | int, ...] = ()) -> Iterator[Break]:
    """Every single-field violation of the object schema ``node``, and of those inside it."""
    for name, prop in node.get("properties", {}).items():
        where = (*path, name)
        inner = _branch(prop)
        kind = inner.get("type")
        if kind in WRONG_TYPE:
            yield Break(where, WRONG_TYPE[kind], "wrong_type")
        if kind == "string" or "enum" in inner:
            yield Break(where, "ab\ud800", SURROGATE)
        elif "enum" in inner:
            yield Break(where, 12345, "wrong_type")
        if "enum" in inner:
            yield Break(where, "ZZ-not-one", "not_in_enum")
        if "maxLength" in inner:
            yield Break(where, "a" * (inner["maxLength"] + 1), "too_long")
        if "maximum" in inner:
            yield Break(where, inner["maximum"] + 1, "above_maximum")
        if "minimum" in inner:
            yield Break(where, inner["minimum"] - 1, "below_minimum")
        if "pattern" in inner:
            for text in OFF_PATTERN:
                yield Break(where, text, "off_pattern")
        if kind == "object":
            yield from breaks(inner, where)
        if kind == "array" and isinstance(inner.get("items"), dict):
            items = inner["items"]
            yield Break((*where, 0), WRONG_TYPE.get(items.get("type", "")), "wrong_item")
            if items.get("type") == "object":
                yield from breaks(items, (*where, 0))
    for name in node.get("required", []):
        yield Break((*path, name), DELETE, "missing")
    if node.get("additionalProperties") is False:
        yield Break((*path, "zz_unknown"), 1, "unknown_field")


def broken(body: dict[str, Any], change: Break) -> dict[str, Any] | None:
    """``body`` with ``change`` made, or None when the place it names is not in ``body``
    (an optional object left out, an empty list)."""
    body = copy.deepcopy(body)
    parent: Any = body
    for part in change.path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return None
    last = change.path[-1]
    if isinstance(last, int):
        if not isinstance(parent, list) or len(parent) <= last:
            return None
    elif not isinstance(parent, dict):
        return None
    if change.value is DELETE:
        parent.pop(last, None)
    else:
        parent[last] = change.value
    return body


@pytest.mark.parametrize("model", CASES)
def test_every_body_the_schema_allows_is_accepted(model: type[schema.Request]) -> None:
    contract = published(model)
    validator = Validator(contract)

    @EXAMPLES
    @given(from_schema(contract))
    def accepted(body: dict[str, Any]) -> None:
        assert validator.is_valid(body)  # the generator's own view of the schema
        try:
            schema.validate(model, body)
        except ValidationError as exc:
            pytest.fail(f"the schema allows {body!r}, the model refuses it: {exc.errors}")

    accepted()


@pytest.mark.parametrize("model", CASES)
def test_every_body_the_schema_refuses_is_refused(model: type[schema.Request]) -> None:
    contract = published(model)
    validator = Validator(contract)
    changes = list(breaks(contract))
    assert changes, "every request schema can be broken somehow"

    @EXAMPLES
    @given(from_schema(contract), st.sampled_from(changes))
    def refused(body: dict[str, Any], change: Break) -> None:
        bad = broken(body, change)
        assume(bad is not None)
        assume(change.kind == SURROGATE or not validator.is_valid(bad))
        try:
            schema.validate(model, bad)
        except ValidationError as exc:
            fields = [error["field"] for error in exc.errors]
            assert exc.field == fields[0] and exc.code == exc.errors[0]["code"]
            assert change.field in fields, (change, exc.errors)
        else:
            pytest.fail(f"the schema refuses {bad!r} ({change.kind}), the model accepts it")

    refused()


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


# Escapes and groups whose meaning differs between ECMA-262, Python's re and pydantic's regex
# engine (\s, \w, \d and \b are Unicode-aware in Python, ASCII or another set in ECMA-262).
DIALECT_BOUND = re.compile(r"\\[sSwWdDbBAZz]|\(\?[aiLmsux]|\(\?P")


@pytest.mark.parametrize("model", CASES)
def test_published_patterns_mean_the_same_in_every_regex_dialect(
    model: type[schema.Request],
) -> None:
    for pattern in _patterns(published(model)):
        assert not DIALECT_BOUND.search(pattern), pattern
        re.compile(pattern)


def test_the_spaces_named_are_those_the_model_strips() -> None:
    spaces = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    named = {char for char in map(chr, range(0x110000)) if re.fullmatch(f"[{schema.SPACES}]", char)}
    assert named == spaces
    contract = published(schema_model("Customer"))
    name = contract["properties"]["name"]
    for char in ["\x1c", "\x85", "\u3000", "\ufeff", "a"]:
        body = {"email": "a@example.org", "name": f" {char} "}
        allowed = Validator(contract).is_valid(body)
        assert allowed == (char.strip() != ""), (char, name)
        if allowed:
            assert schema.validate(schema_model("Customer"), body).name == char
        else:
            with pytest.raises(ValidationError) as refused:
                schema.validate(schema_model("Customer"), body)
            assert refused.value.field == "name"


def schema_model(name: str) -> type[schema.Request]:
    from checkout_cli import requests

    model: type[schema.Request] = getattr(requests, name)
    return model


@EXAMPLES
@given(st.from_regex(schema.EMAIL_PATTERN).filter(lambda s: len(s) <= schema.MAX_EMAIL_LENGTH))
def test_every_address_the_published_pattern_allows_is_taken(address: str) -> None:
    taken = schema.validate(schema_model("Customer"), {"email": address, "name": "Ann"})
    assert taken.email == taken.email.strip() and "@" in taken.email


@pytest.mark.parametrize(
    "address",
    [
        "a@b.test",
        "a@b.TEST ",
        "a@localhost",
        "a@b",
        '"a b"@example.com',
        "a@[127.0.0.1]",
        "é@exämple.de",
        "x@xn--p1ai.com",
        "a@ab--c.com",
        "a..b@x.com",
        "a@-x.com",
        "a@x.c1",
    ],
)
def test_an_address_email_validator_refuses_is_off_the_published_pattern(address: str) -> None:
    contract = published(schema_model("Customer"))
    body = {"email": address, "name": "Ann"}
    assert not Validator(contract).is_valid(body)
    with pytest.raises(ValidationError) as refused:
        schema.validate(schema_model("Customer"), body)
    assert (refused.value.field, refused.value.code) == ("email", "invalid_email")


def test_every_country_and_currency_published_is_taken_and_no_other() -> None:
    from itertools import product
    from string import ascii_uppercase

    from checkout_cli.money import currency_codes

    countries = published(schema_model("Address"))["properties"]["country"]["enum"]
    currencies = _branch(published(schema_model("UpsertProduct"))["properties"]["currency"])
    assert set(currencies["enum"]) == set(currency_codes())
    body = {"line1": "Main 1", "postal_code": "1000", "city": "Town"}
    for pair in map("".join, product(ascii_uppercase, repeat=2)):
        if pair in countries:
            assert schema.validate(schema_model("Address"), {**body, "country": pair}).country
        else:
            with pytest.raises(ValidationError):
                schema.validate(schema_model("Address"), {**body, "country": pair})
    for code in ("nl", "NLD", " NL", "EUR"):
        with pytest.raises(ValidationError):
            schema.validate(schema_model("Address"), {**body, "country": code})
