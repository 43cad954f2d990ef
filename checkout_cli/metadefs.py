"""Typed line meta: checking a meta definition, and validating values against it.

Pure functions, shared by the engine (which stores and enforces) and the CLI (which validates
each prompted field as it is typed). Decimals are strings compared as ``Decimal``, never floats.

A definition::

    {"def_key": "lens_prescription", "title": "…", "fields": [
        {"name": "right_sphere", "type": "decimal", "min": "-20.00", "max": "20.00",
         "step": "0.25", "required": true},
        {"name": "right_axis", "type": "integer", "min": 0, "max": 180,
         "required_if": "right_cylinder"},
        {"name": "right_base_curve", "type": "enum", "source": "product:base_curves"},
        {"name": "prescribed_on", "type": "date", "not_future": true, "max_age_months": 24}]}

``required_if`` names another field: this one is required when that one is present and not
zero. A ``string`` may have a ``pattern`` (a regex the whole text must match) and a ``hint``
saying in words what it allows ("an order number such as AB-1234"): prompts and errors show
the hint, or words derived from a single character class (``[A-Za-z0-9 ]+``: "letters,
digits or spaces"), never the regex. An ``enum`` takes its allowed values from ``values`` or
from a config ``source``: ``product:KEY`` (the product's own config) or ``list:NAME`` (a named
list in settings).
"""

from __future__ import annotations

import functools
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from checkout_cli.errors import ValidationError
from checkout_cli.values import parse_decimal, parse_int, shown

FIELD_TYPES = ("enum", "decimal", "integer", "string", "date", "boolean")
_FIELD_KEYS = {
    "name",
    "type",
    "label",
    "hint",
    "required",
    "required_if",
    "min",
    "max",
    "step",
    "values",
    "source",
    "pattern",
    "max_length",
    "not_future",
    "max_age_months",
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> Any:
    """A definition's pattern, compiled by RE2: matching takes time linear in the text, so no
    pattern (``(a|aa)+$``) can stall a worker on a crafted value. RE2 refuses what it cannot
    run in linear time (backreferences, look-around) with ``ValueError`` (``re2.error``)."""
    import re2  # google-re2; only definitions with a pattern need it

    options = re2.Options()
    options.log_errors = False  # the refusal is ours to word; RE2 would log it to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else b""
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(text or "not a pattern RE2 can run") from None


def _def_error(message: str, field: str = "fields") -> ValidationError:
    return ValidationError("invalid_meta_definition", message, field=field)


def _decimal(text: Any, what: str) -> Decimal:
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise _def_error(f'{what} must be a decimal written as a string, e.g. "0.25"')
    number = parse_decimal(str(text))
    if number is None:
        raise _def_error(f"{what}: {shown(text)} is not a decimal such as 0.25")
    return number


def _places(number: Decimal) -> int:
    """The decimal places ``number`` is written with (``-exponent``)."""
    exponent = number.as_tuple().exponent
    # Only NaN and infinity have a letter here, and _decimal refuses them in a definition.
    assert isinstance(exponent, int), f"{number} is not a finite decimal"
    return -exponent


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """Refuse a malformed definition; return it normalized (fields in order, keys checked)."""
    key = definition.get("def_key")
    if not isinstance(key, str) or not _NAME.fullmatch(key):
        raise _def_error("def_key must be lower_snake_case", "def_key")
    fields = definition.get("fields")
    if not isinstance(fields, list) or not fields:
        raise _def_error("fields must be a non-empty list")
    names: set[str] = set()
    for index, spec in enumerate(fields):
        where = f"fields[{index}]"
        if not isinstance(spec, dict):
            raise _def_error(f"{where} must be an object", where)
        unknown = set(spec) - _FIELD_KEYS
        if unknown:
            raise _def_error(f"{where}: unknown keys {sorted(unknown)}", where)
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in names:
            raise _def_error(f"{where}: name must be unique lower_snake_case", where)
        names.add(name)
        kind = spec.get("type")
        if kind not in FIELD_TYPES:
            raise _def_error(f"{name}: type must be one of {', '.join(FIELD_TYPES)}", where)
        if kind == "decimal":
            low, high = (
                _decimal(spec.get("min"), f"{name}.min"),
                _decimal(spec.get("max"), f"{name}.max"),
            )
            step = _decimal(spec.get("step", "0.01"), f"{name}.step")
            if low > high or step <= 0:
                raise _def_error(f"{name}: needs min <= max and a positive step", where)
        if kind == "integer":
            if not all(_whole(spec.get(b, 0)) for b in ("min", "max")):
                raise _def_error(f"{name}: integer bounds must be whole numbers", where)
            if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
                raise _def_error(f"{name}: needs min <= max", where)
        if kind == "enum" and ("values" in spec) == ("source" in spec):
            raise _def_error(f"{name}: an enum needs either values or a source", where)
        if "values" in spec and not (
            isinstance(spec["values"], list)
            and spec["values"]
            and all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in spec["values"]
            )
        ):
            raise _def_error(f"{name}: values must be a non-empty list of strings", where)
        for flag in ("required", "not_future"):
            if flag in spec and not isinstance(spec[flag], bool):
                raise _def_error(f"{name}: {flag} must be true or false", where)
        for text in ("label", "hint", "required_if"):
            if text in spec and not isinstance(spec[text], str):
                raise _def_error(f"{name}: {text} must be a string", where)
        for bound in ("max_length", "max_age_months"):
            if bound in spec and not (_whole(spec[bound]) and spec[bound] > 0):
                raise _def_error(f"{name}: {bound} must be a positive whole number", where)
        if "source" in spec and not re.fullmatch(
            r"(product|list):[A-Za-z0-9_]+", str(spec["source"])
        ):
            raise _def_error(f"{name}: source must be product:KEY or list:NAME", where)
        if "pattern" in spec:
            if not isinstance(spec["pattern"], str):
                raise _def_error(f"{name}: pattern must be a string", where)
            try:
                _pattern(spec["pattern"])
            except ValueError as exc:
                raise _def_error(f"{name}: bad pattern: {exc}", where) from None
    for spec in fields:
        if "required_if" in spec and spec["required_if"] not in names:
            raise _def_error(
                f"{spec['name']}: required_if names unknown field {shown(spec['required_if'])}"
            )
    return {"def_key": key, "title": str(definition.get("title") or key), "fields": fields}


def resolve_sources(
    definition: dict[str, Any], product_config: dict[str, Any], lists: dict[str, list[Any]]
) -> dict[str, Any]:
    """The definition with each ``source`` replaced by the allowed ``values`` it names."""
    fields = []
    for spec in definition["fields"]:
        if "source" in spec:
            kind, _, name = spec["source"].partition(":")
            values = (product_config if kind == "product" else lists).get(name)
            spec = {**spec, "values": [str(v) for v in values] if isinstance(values, list) else []}
        fields.append(spec)
    return {**definition, "fields": fields}


def describe(spec: dict[str, Any]) -> str:
    """What a field accepts, for people: ``-20.00 to 20.00 in steps of 0.25``."""
    kind = spec["type"]
    if kind == "decimal":
        return f"{spec['min']} to {spec['max']} in steps of {spec.get('step', '0.01')}"
    if kind == "integer":
        return f"a whole number from {spec.get('min', '…')} to {spec.get('max', '…')}"
    if kind == "enum":
        return "one of " + (", ".join(spec.get("values", [])) or "(none configured)")
    if kind == "date":
        rules = ["a date YYYY-MM-DD"]
        if spec.get("not_future"):
            rules.append("not in the future")
        if spec.get("max_age_months"):
            rules.append(f"not older than {spec['max_age_months']} months")
        return ", ".join(rules)
    if kind == "boolean":
        return "true or false"
    longest = spec.get("max_length", MAX_TEXT)
    if spec.get("hint"):
        return f"{spec['hint']}, at most {longest} characters"
    if spec.get("pattern"):
        return _pattern_in_words(spec["pattern"], longest) or (
            f"text in the form this field's definition sets, at most {longest} characters"
        )
    return f"text, at most {longest} characters"


MAX_TEXT = 500  # a string field's length without its own max_length
_CHAR_CLASS = re.compile(r"\[([^\]^\\]+)\](\+|\*|\{(\d+)(,(\d*))?\})?")
_CLASS_PART = re.compile(r"A-Za-z|a-zA-Z|A-Z|a-z|0-9|.-.|.")
_PART_WORDS = {
    "A-Za-z": "letters",
    "a-zA-Z": "letters",
    "A-Z": "capital letters",
    "a-z": "lower-case letters",
    "0-9": "digits",
    " ": "spaces",
}


def _pattern_in_words(pattern: str, longest: int) -> str | None:
    """``[A-Za-z0-9 .-]+`` as "up to 20 letters, digits, spaces or the signs . -"; None when
    the pattern is anything but one character class (with an optional repeat)."""
    found = _CHAR_CLASS.fullmatch(pattern)
    if found is None:
        return None
    words: list[str] = []
    signs: list[str] = []
    for part in _CLASS_PART.findall(found.group(1)):
        if part in _PART_WORDS:
            words.append(_PART_WORDS[part])
        elif len(part) == 1:
            signs.append(part)
        else:  # another range (a-f): not said in words
            return None
    if signs:
        words.append(("the signs " if len(signs) > 1 else "the sign ") + " ".join(signs))
    allowed = ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]
    repeat = found.group(2)
    low, high = 1, longest
    if repeat == "*":
        low = 0
    elif repeat is None:
        high = 1
    elif repeat.startswith("{"):
        low = int(found.group(3))
        if found.group(5):
            high = min(longest, int(found.group(5)))
        elif not found.group(4):  # {n}: exactly n
            high = min(longest, low)
    if low == high:
        return f"one character: {allowed}" if low == 1 else f"exactly {low} {allowed}"
    if low > 1:
        return f"{low} to {high} {allowed}"
    return f"up to {high} {allowed}"


def _bad(code: str, spec: dict[str, Any], message: str) -> ValidationError:
    name = spec["name"]
    return ValidationError(
        code,
        f"values.{name}: {message}",
        field=f"values.{name}",
        recovery=f"{name} must be {describe(spec)}",
    )


def _months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def check_value(spec: dict[str, Any], value: Any, today: date) -> Any:
    """One field's value, validated and normalized (``-1.5`` -> ``"-1.50"``)."""
    kind = spec["type"]
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _bad("invalid_type", spec, f"{shown(value)} is not a number")
        number = parse_decimal(str(value))
        if number is None:
            raise _bad("invalid_type", spec, f"{shown(value)} is not a number such as -1.25")
        number = abs(number) if number == 0 else number  # "-0" is stored as "0.00"
        low, high = Decimal(spec["min"]), Decimal(spec["max"])
        step = Decimal(spec.get("step", "0.01"))
        if not low <= number <= high:
            raise _bad("meta_value_out_of_range", spec, f"{value} is outside {low} to {high}")
        if (number - low) % step != 0:
            raise _bad("meta_value_off_step", spec, f"{value} is not a multiple of {step}")
        places = max(_places(step), _places(low), 0)
        return f"{number:.{places}f}"
    if kind == "integer":
        if isinstance(value, str) and parse_int(value) is not None:
            value = parse_int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad("invalid_type", spec, f"{shown(value)} is not a whole number")
        if not spec.get("min", value) <= value <= spec.get("max", value):
            raise _bad(
                "meta_value_out_of_range",
                spec,
                f"{value} is outside {spec.get('min')} to {spec.get('max')}",
            )
        return value
    if kind == "enum":
        allowed = [str(v) for v in spec.get("values", [])]
        text = str(value).strip() if isinstance(value, str | int | float) else None
        if text not in allowed:
            raise _bad("meta_value_not_allowed", spec, f"{shown(value)} is not allowed")
        return text
    if kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "yes",
            "1",
            "false",
            "no",
            "0",
        ):
            return value.strip().lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise _bad("invalid_type", spec, f"{shown(value)} is not true or false")
        return value
    if kind == "date":
        try:
            day = date.fromisoformat(str(value).strip()) if isinstance(value, str) else None
        except ValueError:
            day = None
        if day is None:
            raise _bad("invalid_type", spec, f"{shown(value)} is not a date YYYY-MM-DD")
        if spec.get("not_future") and day > today:
            raise _bad("meta_value_out_of_range", spec, f"{day} is in the future")
        if spec.get("max_age_months") and day < _months_before(today, spec["max_age_months"]):
            raise _bad(
                "meta_value_out_of_range",
                spec,
                f"{day} is older than {spec['max_age_months']} months",
            )
        return day.isoformat()
    if not isinstance(value, str):
        raise _bad("invalid_type", spec, f"{shown(value)} is not text")
    text = value.strip()
    if not text or len(text) > spec.get("max_length", MAX_TEXT):
        raise _bad("meta_value_invalid", spec, f"{shown(text)} has the wrong length")
    if spec.get("pattern") and not _pattern(spec["pattern"]).fullmatch(text):
        raise _bad("meta_value_invalid", spec, f"{shown(text)} is not allowed: {describe(spec)}")
    return text


def is_set(value: Any) -> bool:
    """Whether a value counts as given for ``required_if``: present and not zero."""
    if value is None or value == "" or value is False:
        return False
    try:
        return Decimal(str(value)) != 0
    except InvalidOperation:
        return True


def check_values(definition: dict[str, Any], values: dict[str, Any], today: date) -> dict[str, Any]:
    """All values for one definition (sources already resolved), normalized, in field order."""
    specs = {spec["name"]: spec for spec in definition["fields"]}
    for name in values:
        if name not in specs:
            raise ValidationError(
                "unknown_field",
                f"values.{name}: not a field of {definition['def_key']}",
                field=f"values.{name}",
                recovery="fields: " + ", ".join(specs),
            )
    clean = {
        name: check_value(specs[name], value, today)
        for name, value in values.items()
        if value is not None and value != ""
    }
    for spec in definition["fields"]:
        name = spec["name"]
        needed = spec.get("required") or (
            "required_if" in spec and is_set(clean.get(spec["required_if"]))
        )
        if needed and name not in clean:
            why = "" if spec.get("required") else f" when {spec['required_if']} is set"
            raise ValidationError(
                "missing_field",
                f"values.{name}: required{why}",
                field=f"values.{name}",
                recovery=f"{name} must be {describe(spec)}",
            )
    return {
        spec["name"]: clean[spec["name"]] for spec in definition["fields"] if spec["name"] in clean
    }
