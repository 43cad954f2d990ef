"""Typed line meta through the engine (DESIGN §5, issue 3): definitions, validation, completion.

The refusal table ``REFUSALS`` is shared with ``test_line_meta_cli.py``, which runs the same
cases through ``checkout set-line-meta`` (exit 4). Dates are written as ``{today}``-style
placeholders and resolved when a test runs, against the engine's (UTC) day.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.errors import CheckoutError, ConflictError, NotFoundError, ValidationError
from checkout_cli.metadefs import check_definition
from tests.conftest import dump, ready_checkout

FLOW = "checkout-flow"
CATALOG = "product-catalog"
ORDERS = "order-management"
LENS = "lens_prescription"
ENGRAVING = "engraving"
SPHERE = "-20.00 to 20.00 in steps of 0.25"
CYLINDER = "-6.00 to 0.00 in steps of 0.25"
ADD = "0.75 to 3.50 in steps of 0.25"
AXIS = "a whole number from 0 to 180"
DATE = "a date YYYY-MM-DD, not in the future, not older than 24 months"
LENS_FIELDS = [
    "right_sphere",
    "right_cylinder",
    "right_axis",
    "right_add",
    "right_base_curve",
    "right_diameter",
    "left_sphere",
    "left_cylinder",
    "left_axis",
    "left_add",
    "left_base_curve",
    "left_diameter",
    "prescribed_on",
]


# -- dates -----------------------------------------------------------------------------------


def today() -> date:
    return datetime.now(UTC).date()


def months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    for last in (day.day, 30, 29, 28):
        try:
            return date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def dates() -> dict[str, str]:
    now = today()
    limit = months_before(now, 24)
    return {
        "today": now.isoformat(),
        "tomorrow": (now + timedelta(days=1)).isoformat(),
        "recent": (now - timedelta(days=30)).isoformat(),
        "limit": limit.isoformat(),
        "too_old": (limit - timedelta(days=1)).isoformat(),
    }


def resolve(values: Any) -> Any:
    """``{today}``, ``{limit}`` … in string values replaced by real dates."""
    if isinstance(values, dict):
        return {k: resolve(v) for k, v in values.items()}
    if isinstance(values, str) and values.startswith("{") and values.endswith("}"):
        return dates().get(values[1:-1], values)
    return values


# -- values ----------------------------------------------------------------------------------

PRESCRIPTION = {"right_sphere": "-1.25", "left_sphere": "-1.50", "prescribed_on": "{recent}"}
ENGRAVED = {"text": "For Anna"}
_DROP = object()


def lens(**changes: Any) -> dict[str, Any]:
    """The minimal valid prescription with ``changes``; ``_DROP`` removes a field."""
    values = {**PRESCRIPTION, **changes}
    return {k: v for k, v in values.items() if v is not _DROP}


def engraving(**changes: Any) -> dict[str, Any]:
    values = {**ENGRAVED, **changes}
    return {k: v for k, v in values.items() if v is not _DROP}


def refusal(
    case_id: str,
    values: dict[str, Any],
    field: str,
    code: str,
    recovery: str,
    sku: str = "LENS-TORIC-6",
    def_key: str = LENS,
):
    return pytest.param(sku, def_key, values, f"values.{field}", code, recovery, id=case_id)


def on_case(case_id: str, values: dict[str, Any], field: str, code: str, recovery: str):
    return refusal(case_id, values, field, code, recovery, "CASE-TRAVEL", ENGRAVING)


RANGE, STEP, TYPE = "meta_value_out_of_range", "meta_value_off_step", "invalid_type"
NOT_ALLOWED, INVALID, MISSING = "meta_value_not_allowed", "meta_value_invalid", "missing_field"
CYL = {"right_cylinder": "-0.75"}  # makes right_axis required

REFUSALS = [
    # decimal: just past min and max, off-step, wrong types
    refusal("sphere-below-min", lens(right_sphere="-20.25"), "right_sphere", RANGE, SPHERE),
    refusal("sphere-above-max", lens(right_sphere="20.25"), "right_sphere", RANGE, SPHERE),
    refusal("left-sphere-above-max", lens(left_sphere="20.25"), "left_sphere", RANGE, SPHERE),
    refusal("cylinder-below-min", lens(right_cylinder="-6.25"), "right_cylinder", RANGE, CYLINDER),
    refusal("cylinder-above-max", lens(left_cylinder="0.25"), "left_cylinder", RANGE, CYLINDER),
    refusal("add-below-min", lens(right_add="0.50"), "right_add", RANGE, ADD),
    refusal("add-above-max", lens(left_add="3.75"), "left_add", RANGE, ADD),
    refusal("sphere-off-step", lens(right_sphere="-1.30"), "right_sphere", STEP, SPHERE),
    refusal("sphere-off-step-number", lens(left_sphere=-1.3), "left_sphere", STEP, SPHERE),
    refusal("cylinder-off-step", lens(right_cylinder="-0.10"), "right_cylinder", STEP, CYLINDER),
    refusal("add-off-step", lens(right_add="1.10"), "right_add", STEP, ADD),
    refusal("decimal-list", lens(right_sphere=["-1.25"]), "right_sphere", TYPE, SPHERE),
    refusal("decimal-object", lens(right_sphere={"v": "-1.25"}), "right_sphere", TYPE, SPHERE),
    refusal("decimal-text", lens(right_sphere="abc"), "right_sphere", TYPE, SPHERE),
    refusal("decimal-true", lens(right_sphere=True), "right_sphere", TYPE, SPHERE),
    refusal("decimal-nan", lens(left_sphere="NaN"), "left_sphere", TYPE, SPHERE),
    refusal("decimal-infinity", lens(left_sphere="Infinity"), "left_sphere", TYPE, SPHERE),
    # integer: just past 0 and 180, wrong types
    refusal("axis-below-min", lens(**CYL, right_axis=-1), "right_axis", RANGE, AXIS),
    refusal("axis-above-max", lens(**CYL, right_axis=181), "right_axis", RANGE, AXIS),
    refusal("axis-text-above-max", lens(**CYL, right_axis="181"), "right_axis", RANGE, AXIS),
    refusal("axis-text", lens(**CYL, right_axis="abc"), "right_axis", TYPE, AXIS),
    refusal("axis-fraction", lens(**CYL, right_axis=90.5), "right_axis", TYPE, AXIS),
    refusal("axis-fraction-text", lens(**CYL, right_axis="90.5"), "right_axis", TYPE, AXIS),
    refusal("axis-true", lens(**CYL, right_axis=True), "right_axis", TYPE, AXIS),
    refusal("axis-list", lens(**CYL, right_axis=[90]), "right_axis", TYPE, AXIS),
    # date: tomorrow, one day older than 24 months, not a date
    refusal("date-future", lens(prescribed_on="{tomorrow}"), "prescribed_on", RANGE, DATE),
    refusal("date-too-old", lens(prescribed_on="{too_old}"), "prescribed_on", RANGE, DATE),
    refusal("date-impossible", lens(prescribed_on="2026-02-30"), "prescribed_on", TYPE, DATE),
    refusal("date-format", lens(prescribed_on="01/02/2026"), "prescribed_on", TYPE, DATE),
    refusal("date-number", lens(prescribed_on=20260101), "prescribed_on", TYPE, DATE),
    # enum from the product's config: 8.6 and 8.9 on LENS-TORIC-6 (8.4 is LENS-MULTI-6's)
    refusal(
        "base-curve-not-in-config",
        lens(right_base_curve="9.9"),
        "right_base_curve",
        NOT_ALLOWED,
        "right_base_curve must be one of 8.6, 8.9",
    ),
    refusal(
        "base-curve-number-not-in-config",
        lens(left_base_curve=9.9),
        "left_base_curve",
        NOT_ALLOWED,
        "left_base_curve must be one of 8.6, 8.9",
    ),
    refusal(
        "base-curve-of-another-product",
        lens(right_base_curve="8.4"),
        "right_base_curve",
        NOT_ALLOWED,
        "one of 8.6, 8.9",
    ),
    refusal(
        "diameter-not-in-config",
        lens(left_diameter="14.0"),
        "left_diameter",
        NOT_ALLOWED,
        "left_diameter must be one of 14.5",
    ),
    refusal(
        "base-curve-list",
        lens(right_base_curve=["8.6"]),
        "right_base_curve",
        NOT_ALLOWED,
        "one of 8.6, 8.9",
    ),
    # unknown fields
    refusal(
        "unknown-field",
        lens(right_prism="1.00"),
        "right_prism",
        "unknown_field",
        "fields: " + ", ".join(LENS_FIELDS),
    ),
    # missing required, required_if
    refusal("missing-left-sphere", lens(left_sphere=_DROP), "left_sphere", MISSING, SPHERE),
    refusal("empty-right-sphere", lens(right_sphere=""), "right_sphere", MISSING, SPHERE),
    refusal("null-right-sphere", lens(right_sphere=None), "right_sphere", MISSING, SPHERE),
    refusal("missing-date", lens(prescribed_on=_DROP), "prescribed_on", MISSING, DATE),
    refusal("nothing-at-all", {}, "right_sphere", MISSING, SPHERE),
    refusal("axis-required-if-cylinder", lens(**CYL), "right_axis", MISSING, AXIS),
    refusal(
        "left-axis-required-if-cylinder",
        lens(left_cylinder="-6.00"),
        "left_axis",
        MISSING,
        AXIS,
    ),
    # string: just past max_length, off pattern, wrong type; enum from a settings list; boolean
    on_case("text-too-long", engraving(text="A" * 21), "text", INVALID, "up to 20 letters, digits"),
    on_case("text-off-pattern", engraving(text="Hi!"), "text", INVALID, "or the signs . , ' & -"),
    on_case("text-blank", engraving(text="   "), "text", INVALID, "up to 20 letters, digits"),
    on_case("text-number", engraving(text=42), "text", TYPE, "text must be up to 20 letters"),
    on_case("text-missing", {"font": "serif"}, "text", MISSING, "up to 20 letters, digits"),
    on_case(
        "font-not-in-settings-list",
        engraving(font="gothic"),
        "font",
        NOT_ALLOWED,
        "font must be one of serif, sans, script",
    ),
    on_case("boolean-text", engraving(gift_wrap="maybe"), "gift_wrap", TYPE, "true or false"),
    on_case("boolean-number", engraving(gift_wrap=2), "gift_wrap", TYPE, "true or false"),
    on_case("boolean-list", engraving(gift_wrap=[True]), "gift_wrap", TYPE, "true or false"),
    on_case("engraving-unknown", engraving(colour="red"), "colour", "unknown_field", "text"),
]


# -- helpers ---------------------------------------------------------------------------------


def set_meta(
    backend: Any,
    token: str,
    sku: str,
    values: dict[str, Any],
    def_key: str = LENS,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "checkout_token": token,
        "product_sku": sku,
        "def_key": def_key,
        "values": resolve(values),
        **extra,
    }
    return backend.call(FLOW, "set-line-meta", body)


def line(checkout: dict[str, Any], sku: str, line_id: int | None = None) -> dict[str, Any]:
    [found] = [
        item
        for item in checkout["items"]
        if item["product_sku"] == sku and line_id in (None, item["line_id"])
    ]
    return found


def status(backend: Any, token: str) -> dict[str, Any]:
    return backend.call(FLOW, "get-checkout-status", {"checkout_token": token})


def pay_and_complete(backend: Any, token: str) -> dict[str, Any]:
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    return backend.call(FLOW, "complete-checkout", {"checkout_token": token})


def sql(db_path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def events(db_path: Path, kind: str = "line_meta_set") -> list[dict[str, Any]]:
    rows = sql(db_path, "SELECT detail FROM events WHERE kind = ? ORDER BY id", kind)
    return [json.loads(detail) for (detail,) in rows]


def refused(call, error_type: type[CheckoutError] = ValidationError) -> CheckoutError:
    with pytest.raises(error_type) as info:
        call()
    return info.value


@pytest.fixture
def meta_checkout(backend):
    """A checkout with a lens line and a lens case, both already carrying valid meta."""
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("CASE-TRAVEL", 1)])
    set_meta(backend, token, "LENS-TORIC-6", lens(right_add="1.00"))
    set_meta(backend, token, "CASE-TRAVEL", engraving(font="sans"), ENGRAVING)
    return token


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sku", "def_key", "values", "field", "code", "recovery"), REFUSALS)
def test_invalid_values_are_refused_and_change_nothing(
    backend, db_path, meta_checkout, sku, def_key, values, field, code, recovery
):
    before = dump(db_path)
    error = refused(lambda: set_meta(backend, meta_checkout, sku, values, def_key))
    assert (error.code, error.field) == (code, field), error.to_error_object()
    assert error.http_status == 422 and error.exit_code == 4
    assert recovery in error.recovery
    assert error.message.startswith(field + ":")
    assert dump(db_path) == before


ACCEPTED = [
    pytest.param(
        lens(right_sphere="-20.00", left_sphere="20.00"),
        {"right_sphere": "-20.00", "left_sphere": "20.00", "prescribed_on": "{recent}"},
        id="sphere-at-min-and-max",
    ),
    pytest.param(
        lens(right_cylinder="-6.00", right_axis=0, left_cylinder="-0.25", left_axis=180),
        {
            "right_sphere": "-1.25",
            "right_cylinder": "-6.00",
            "right_axis": 0,
            "left_sphere": "-1.50",
            "left_cylinder": "-0.25",
            "left_axis": 180,
            "prescribed_on": "{recent}",
        },
        id="cylinder-at-min-axis-at-0-and-180",
    ),
    pytest.param(
        lens(right_cylinder="0.00", left_cylinder="-0"),
        {
            "right_sphere": "-1.25",
            "right_cylinder": "0.00",
            "left_sphere": "-1.50",
            "left_cylinder": "0.00",
            "prescribed_on": "{recent}",
        },
        id="cylinder-zero-needs-no-axis",
    ),
    pytest.param(
        lens(right_add="0.75", left_add="3.50"),
        {
            "right_sphere": "-1.25",
            "right_add": "0.75",
            "left_sphere": "-1.50",
            "left_add": "3.50",
            "prescribed_on": "{recent}",
        },
        id="add-at-min-and-max",
    ),
    pytest.param(
        lens(prescribed_on="{today}"),
        {"right_sphere": "-1.25", "left_sphere": "-1.50", "prescribed_on": "{today}"},
        id="date-today",
    ),
    pytest.param(
        lens(prescribed_on="{limit}"),
        {"right_sphere": "-1.25", "left_sphere": "-1.50", "prescribed_on": "{limit}"},
        id="date-exactly-24-months-old",
    ),
    pytest.param(
        lens(right_base_curve="8.9", left_base_curve=8.6, right_diameter="14.5"),
        {
            "right_sphere": "-1.25",
            "right_base_curve": "8.9",
            "right_diameter": "14.5",
            "left_sphere": "-1.50",
            "left_base_curve": "8.6",
            "prescribed_on": "{recent}",
        },
        id="base-curves-and-diameter-from-config",
    ),
]


@pytest.mark.parametrize(("values", "stored"), ACCEPTED)
def test_values_at_their_bounds_are_accepted(backend, values, stored):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    co = set_meta(backend, token, "LENS-TORIC-6", values)
    assert line(co, "LENS-TORIC-6")["meta"] == {LENS: resolve(stored)}


@pytest.mark.parametrize(
    ("values", "stored"),
    [
        pytest.param({"text": "A" * 20}, {"text": "A" * 20}, id="text-at-max-length"),  # exactly 20
        pytest.param(
            {"text": "  Anna & Co. 's-Hertog ", "font": " script ", "gift_wrap": True},
            {"text": "Anna & Co. 's-Hertog", "font": "script", "gift_wrap": True},
            id="trimmed-text-font-from-settings",
        ),
        pytest.param(
            {"text": "Hi", "gift_wrap": "yes"}, {"text": "Hi", "gift_wrap": True}, id="yes"
        ),
        pytest.param(
            {"text": "Hi", "gift_wrap": "no"}, {"text": "Hi", "gift_wrap": False}, id="no"
        ),
        pytest.param(
            {"text": "Hi", "gift_wrap": False}, {"text": "Hi", "gift_wrap": False}, id="false"
        ),
        pytest.param(
            {"text": "Hi", "gift_wrap": "TRUE"}, {"text": "Hi", "gift_wrap": True}, id="T"
        ),
    ],
)
def test_engraving_bounds_and_normalization(backend, values, stored):
    token = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    co = set_meta(backend, token, "CASE-TRAVEL", values, ENGRAVING)
    assert line(co, "CASE-TRAVEL")["meta"] == {ENGRAVING: stored}


def test_values_are_normalized_and_stored_in_definition_order(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    values = {
        "prescribed_on": "{recent}",
        "left_sphere": 2,
        "right_axis": "90",
        "right_add": "+1.25",
        "right_cylinder": "-0.75",
        "right_sphere": -1.5,
    }
    co = set_meta(backend, token, "LENS-TORIC-6", values)
    expected = {
        "right_sphere": "-1.50",
        "right_cylinder": "-0.75",
        "right_axis": 90,
        "right_add": "1.25",
        "left_sphere": "2.00",
        "prescribed_on": dates()["recent"],
    }
    meta = line(co, "LENS-TORIC-6")["meta"][LENS]
    assert meta == expected
    assert list(meta) == list(expected)  # definition order, whatever order they came in
    [(text,)] = sql(db_path, "SELECT meta FROM checkout_lines")
    assert text == json.dumps({LENS: expected}, ensure_ascii=False)


# -- stored, shown, copied to the order, read back -------------------------------------------

FULL = {
    "right_sphere": "-2.25",
    "right_cylinder": "-1.75",
    "right_axis": "170",
    "right_add": "1.50",
    "right_base_curve": "8.6",
    "right_diameter": "14.5",
    "left_sphere": "-2",
    "left_cylinder": "0",
    "left_add": 1.5,
    "left_base_curve": "8.9",
    "left_diameter": "14.5",
    "prescribed_on": "{recent}",
}
FULL_STORED = {
    "right_sphere": "-2.25",
    "right_cylinder": "-1.75",
    "right_axis": 170,
    "right_add": "1.50",
    "right_base_curve": "8.6",
    "right_diameter": "14.5",
    "left_sphere": "-2.00",
    "left_cylinder": "0.00",
    "left_add": "1.50",
    "left_base_curve": "8.9",
    "left_diameter": "14.5",
    "prescribed_on": "{recent}",
}


def test_prescription_is_copied_to_the_order_unchanged(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-DAILY-30", 2)])
    co = set_meta(backend, token, "LENS-TORIC-6", FULL)
    expected = {LENS: resolve(FULL_STORED)}
    assert line(co, "LENS-TORIC-6")["meta"] == expected
    assert line(status(backend, token), "LENS-TORIC-6")["meta"] == expected
    assert line(status(backend, token), "LENS-DAILY-30")["meta"] == {}

    done = pay_and_complete(backend, token)
    assert done["status"] == "completed"
    order = backend.call(ORDERS, "get-order", {"order_id": done["order"]["order_id"]})
    assert line(order, "LENS-TORIC-6")["meta"] == expected
    assert line(order, "LENS-DAILY-30")["meta"] == {}

    for key in (order["order_id"], order["order_number"]):
        read = backend.call(ORDERS, "get-line-meta", {"order_id": key})
        assert read == {
            "order_id": order["order_id"],
            "order_number": order["order_number"],
            "lines": [{"line_id": 1, "product_sku": "LENS-TORIC-6", "meta": expected}],
        }
    only = backend.call(ORDERS, "get-line-meta", {"order_id": order["order_id"], "def_key": LENS})
    assert only["lines"] == read["lines"]
    other = backend.call(
        ORDERS, "get-line-meta", {"order_id": order["order_id"], "def_key": ENGRAVING}
    )
    assert other["lines"] == []

    # Byte for byte: the order line's TEXT is the checkout line's, and reads back as the same
    # JSON object, keys in the same order.
    [(checkout_text,)] = sql(
        db_path, "SELECT meta FROM checkout_lines WHERE product_sku = 'LENS-TORIC-6'"
    )
    [(order_text,)] = sql(
        db_path, "SELECT meta FROM order_lines WHERE product_sku = 'LENS-TORIC-6'"
    )
    assert isinstance(order_text, str) and order_text == checkout_text
    assert json.dumps(read["lines"][0]["meta"], ensure_ascii=False) == order_text
    assert list(read["lines"][0]["meta"][LENS]) == list(json.loads(checkout_text)[LENS])


def test_get_line_meta_of_an_unknown_order(backend):
    error = refused(
        lambda: backend.call(ORDERS, "get-line-meta", {"order_id": "2099-999999"}), NotFoundError
    )
    assert error.code == "order_not_found"


# -- completion ------------------------------------------------------------------------------


def test_completion_needs_the_required_meta_then_accepts_it(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-DAILY-30", 1)])
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    before = dump(db_path)
    complete = lambda: backend.call(FLOW, "complete-checkout", {"checkout_token": token})  # noqa: E731
    error = refused(complete, ConflictError)
    assert error.code == "line_meta_missing" and error.http_status == 409
    assert error.exit_code == 4
    assert "LENS-TORIC-6" in error.message and LENS in error.message
    assert "set-line-meta" in error.recovery
    assert dump(db_path) == before
    assert sql(db_path, "SELECT count(*) FROM orders") == [(0,)]

    set_meta(backend, token, "LENS-TORIC-6", PRESCRIPTION)  # LENS-DAILY-30's is optional
    done = complete()
    assert done["status"] == "completed" and done["already_completed"] is False
    assert sql(db_path, "SELECT count(*) FROM orders") == [(1,)]


def test_every_line_that_requires_meta_is_checked(backend):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-MULTI-6", 1)])
    set_meta(backend, token, "LENS-TORIC-6", PRESCRIPTION)
    backend.call(FLOW, "create-payment", {"checkout_token": token, "provider": "invoice"})
    error = refused(
        lambda: backend.call(FLOW, "complete-checkout", {"checkout_token": token}), ConflictError
    )
    assert error.code == "line_meta_missing"
    assert "LENS-MULTI-6" in error.message and LENS in error.message
    set_meta(backend, token, "LENS-MULTI-6", lens(right_base_curve="8.4"))
    assert backend.call(FLOW, "complete-checkout", {"checkout_token": token})["status"] == (
        "completed"
    )


def test_optional_meta_is_not_required(backend):
    token = ready_checkout(backend, [("LENS-DAILY-30", 1), ("CASE-TRAVEL", 1)])
    done = pay_and_complete(backend, token)
    assert done["status"] == "completed"
    order = backend.call(ORDERS, "get-line-meta", {"order_id": done["order"]["order_id"]})
    assert order["lines"] == []


# -- which line, which definition, which checkout --------------------------------------------


def add_second_line(db_path: Path, token: str, sku: str) -> None:
    """The cart merges a SKU added twice; a checkout can still hold it on two lines."""
    sql(
        db_path,
        "INSERT INTO checkout_lines (checkout_id, line_no, product_sku, name, quantity, "
        "unit_price_cents, line_total_cents, tax_cents, meta) "
        "SELECT l.checkout_id, (SELECT max(line_no) + 1 FROM checkout_lines "
        "WHERE checkout_id = l.checkout_id), l.product_sku, l.name, l.quantity, "
        "l.unit_price_cents, l.line_total_cents, l.tax_cents, l.meta "
        "FROM checkout_lines l JOIN checkouts c ON c.id = l.checkout_id "
        "WHERE c.token = ? AND l.product_sku = ?",
        token,
        sku,
    )


def test_the_cart_merges_a_sku_added_twice(backend):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-TORIC-6", 2)])
    assert [(i["product_sku"], i["quantity"]) for i in status(backend, token)["items"]] == [
        ("LENS-TORIC-6", 3)
    ]


def test_a_sku_on_two_lines_needs_line_id(backend, db_path):
    token = ready_checkout(backend, [("LENS-DAILY-30", 1), ("LENS-TORIC-6", 1)])
    add_second_line(db_path, token, "LENS-TORIC-6")
    assert [(i["line_id"], i["product_sku"]) for i in status(backend, token)["items"]] == [
        (1, "LENS-DAILY-30"),
        (2, "LENS-TORIC-6"),
        (3, "LENS-TORIC-6"),
    ]
    before = dump(db_path)
    error = refused(lambda: set_meta(backend, token, "LENS-TORIC-6", PRESCRIPTION))
    assert (error.code, error.field) == ("line_id_required", "line_id")
    assert "2, 3" in error.recovery
    assert dump(db_path) == before

    error = refused(
        lambda: set_meta(backend, token, "LENS-TORIC-6", PRESCRIPTION, line_id=1), NotFoundError
    )
    assert (error.code, error.field) == ("line_not_found", "line_id")
    assert "2, 3" in error.recovery

    co = set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="-3.00"), line_id=3)
    assert line(co, "LENS-TORIC-6", 3)["meta"][LENS]["right_sphere"] == "-3.00"
    assert line(co, "LENS-TORIC-6", 2)["meta"] == {}
    co = set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="-4.00"), line_id=2)
    assert line(co, "LENS-TORIC-6", 2)["meta"][LENS]["right_sphere"] == "-4.00"
    assert line(co, "LENS-TORIC-6", 3)["meta"][LENS]["right_sphere"] == "-3.00"
    assert [e["line_id"] for e in events(db_path)] == [3, 2]


@pytest.mark.parametrize(
    ("sku", "def_key", "takes"),
    [
        ("LENS-TORIC-6", ENGRAVING, "it takes: lens_prescription"),
        ("CASE-TRAVEL", LENS, "it takes: engraving"),
        ("GIFT-CARD-25", LENS, "it takes: none"),
    ],
)
def test_meta_on_a_product_that_does_not_take_it(backend, db_path, sku, def_key, takes):
    token = ready_checkout(backend, [(sku, 1)])
    values = PRESCRIPTION if def_key == LENS else ENGRAVED
    before = dump(db_path)
    error = refused(lambda: set_meta(backend, token, sku, values, def_key))
    assert (error.code, error.field) == ("meta_def_not_allowed", "def_key")
    assert sku in error.message and error.recovery == takes
    assert dump(db_path) == before


def test_an_unknown_definition_is_not_found(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    before = dump(db_path)
    error = refused(lambda: set_meta(backend, token, "LENS-TORIC-6", {}, "prism"), NotFoundError)
    assert (error.code, error.field) == ("meta_definition_not_found", "def_key")
    assert error.exit_code == 3 and "meta list" in error.recovery
    assert dump(db_path) == before


def test_a_sku_not_on_the_checkout(backend):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    error = refused(lambda: set_meta(backend, token, "LENS-MULTI-6", PRESCRIPTION), NotFoundError)
    assert (error.code, error.field) == ("line_not_found", "product_sku")


@pytest.mark.parametrize("ending", ["completed", "cancelled"])
def test_meta_cannot_change_once_the_checkout_is_over(backend, db_path, ending):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    set_meta(backend, token, "LENS-TORIC-6", PRESCRIPTION)
    if ending == "completed":
        pay_and_complete(backend, token)
    else:
        backend.call(FLOW, "cancel-checkout", {"checkout_token": token})
    before = dump(db_path)
    error = refused(
        lambda: set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="-3.00")),
        ConflictError,
    )
    assert error.http_status == 409 and error.exit_code == 4
    assert error.code == ("checkout_cancelled" if ending == "cancelled" else "checkout_not_active")
    assert dump(db_path) == before


# -- events ----------------------------------------------------------------------------------


def test_every_replacement_is_an_event(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("CASE-TRAVEL", 1)])
    set_meta(backend, token, "LENS-TORIC-6", lens(right_add="1.00"))
    set_meta(backend, token, "CASE-TRAVEL", engraving(gift_wrap=True), ENGRAVING)
    co = set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="-1.00"))
    # A replacement, not a merge: right_add is gone; the other definition's line is untouched.
    assert line(co, "LENS-TORIC-6")["meta"] == {
        LENS: {"right_sphere": "-1.00", "left_sphere": "-1.50", "prescribed_on": dates()["recent"]}
    }
    assert line(co, "CASE-TRAVEL")["meta"] == {ENGRAVING: {"text": "For Anna", "gift_wrap": True}}
    refused(lambda: set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="-1.30")))
    assert events(db_path) == [
        {"line_id": 1, "product_sku": "LENS-TORIC-6", "def_key": LENS, "version": 1},
        {"line_id": 2, "product_sku": "CASE-TRAVEL", "def_key": ENGRAVING, "version": 1},
        {"line_id": 1, "product_sku": "LENS-TORIC-6", "def_key": LENS, "version": 1},
    ]
    rows = sql(
        db_path,
        "SELECT e.actor FROM events e JOIN checkouts c ON c.id = e.checkout_id "
        "WHERE c.token = ? AND e.kind = 'line_meta_set'",
        token,
    )
    assert rows == [("test",)] * 3


# -- definitions -----------------------------------------------------------------------------


def fixture_definition(def_key: str) -> dict[str, Any]:
    path = Path(__file__).resolve().parent.parent / "checkout_cli/fixtures/meta_definitions.json"
    [found] = [d for d in json.loads(path.read_text())["definitions"] if d["def_key"] == def_key]
    return found


def test_definitions_are_versioned(backend, db_path):
    listed = backend.call(CATALOG, "list-meta-definitions", {})["definitions"]
    assert [(d["def_key"], d["version"]) for d in listed] == [(ENGRAVING, 1), (LENS, 1)]

    definition = fixture_definition(LENS)
    again = backend.call(CATALOG, "upsert-meta-definition", definition)
    assert (again["version"], again["changed"]) == (1, False)
    assert sql(db_path, "SELECT count(*) FROM meta_definitions WHERE def_key = ?", LENS) == [(1,)]

    narrower = json.loads(json.dumps(definition))
    narrower["fields"][0]["max"] = "10.00"
    changed = backend.call(CATALOG, "upsert-meta-definition", narrower)
    assert (changed["version"], changed["changed"]) == (2, True)
    assert changed["fields"][0]["max"] == "10.00"
    assert backend.call(CATALOG, "get-meta-definition", {"def_key": LENS})["version"] == 2
    listed = backend.call(CATALOG, "list-meta-definitions", {})["definitions"]
    assert [(d["def_key"], d["version"]) for d in listed] == [(ENGRAVING, 1), (LENS, 2)]
    assert sql(db_path, "SELECT version FROM meta_definitions WHERE def_key = ?", LENS) == [
        (1,),
        (2,),
    ]
    same = backend.call(CATALOG, "upsert-meta-definition", narrower)
    assert (same["version"], same["changed"]) == (2, False)

    # Validation uses the new version: 15.00 was fine in version 1.
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    error = refused(lambda: set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="15.00")))
    assert (error.code, error.field) == (RANGE, "values.right_sphere")
    assert "-20.00 to 10.00 in steps of 0.25" in error.recovery
    set_meta(backend, token, "LENS-TORIC-6", lens(right_sphere="10.00"))
    assert events(db_path)[-1]["version"] == 2

    retitled = backend.call(CATALOG, "upsert-meta-definition", {**narrower, "title": "Rx"})
    assert (retitled["version"], retitled["changed"], retitled["title"]) == (3, True, "Rx")


def test_a_pattern_that_backtracks_cannot_stall_a_check(backend, db_path):
    """``(a|aa)+$`` on 38 a's and a b takes Python's re minutes (and got both server workers
    killed); definition patterns are matched by RE2, in time linear in the value."""
    stalling = {
        "def_key": "engraving",
        "fields": [
            {"name": "text", "type": "string", "pattern": "(a|aa)+$", "max_length": 60},
            {"name": "font", "type": "enum", "source": "list:engraving_fonts"},
            {"name": "gift_wrap", "type": "boolean"},
        ],
    }
    backend.call(CATALOG, "upsert-meta-definition", stalling)
    token = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    error = refused(
        lambda: set_meta(backend, token, "CASE-TRAVEL", {"text": "a" * 38 + "b"}, ENGRAVING)
    )
    assert (error.code, error.field) == ("meta_value_invalid", "values.text")
    set_meta(backend, token, "CASE-TRAVEL", {"text": "a" * 38}, ENGRAVING)


def test_a_new_definition_starts_at_version_1(backend):
    created = backend.call(
        CATALOG,
        "upsert-meta-definition",
        {"def_key": "fitting", "fields": [{"name": "notes", "type": "string"}]},
    )
    assert (created["version"], created["changed"], created["title"]) == (1, True, "fitting")


def _field(**spec: Any) -> dict[str, Any]:
    return {"def_key": "broken", "fields": [{"name": "f", **spec}]}


MALFORMED = [
    pytest.param({"def_key": "Bad Key", "fields": [{"name": "f", "type": "boolean"}]}, id="key"),
    pytest.param({"def_key": "broken", "fields": []}, id="no-fields"),
    pytest.param({"def_key": "broken", "fields": ["f"]}, id="field-not-object"),
    pytest.param(_field(type="colour"), id="unknown-type"),
    pytest.param(_field(type="boolean", colour="red"), id="unknown-key"),
    pytest.param(
        {"def_key": "broken", "fields": [{"name": "f", "type": "boolean"}] * 2}, id="dup-name"
    ),
    pytest.param({"def_key": "broken", "fields": [{"type": "boolean"}]}, id="no-name"),
    pytest.param(_field(type="decimal", min="1.00", max="0.00"), id="decimal-min-over-max"),
    pytest.param(_field(type="decimal", min=-1.5, max="2.00"), id="decimal-float-bound"),
    pytest.param(_field(type="decimal", max="2.00"), id="decimal-no-min"),
    pytest.param(_field(type="decimal", min="0", max="1", step="0"), id="decimal-zero-step"),
    pytest.param(_field(type="decimal", min="0", max="1", step="x"), id="decimal-bad-step"),
    pytest.param(_field(type="decimal", min="NaN", max="1"), id="decimal-nan"),
    pytest.param(_field(type="decimal", min="-Infinity", max="1"), id="decimal-infinite"),
    pytest.param(_field(type="integer", min=0.5, max=2), id="integer-fraction"),
    pytest.param(_field(type="integer", min=5, max=1), id="integer-min-over-max"),
    pytest.param(_field(type="enum"), id="enum-without-values"),
    pytest.param(_field(type="enum", values=["a"], source="list:x"), id="enum-values-and-src"),
    pytest.param(_field(type="enum", values="abc"), id="enum-values-not-a-list"),
    pytest.param(_field(type="enum", values=[]), id="enum-no-values"),
    pytest.param(_field(type="enum", source="settings:fonts"), id="bad-source"),
    pytest.param(_field(type="string", pattern="[a-"), id="bad-pattern"),
    pytest.param(_field(type="string", pattern=5), id="pattern-not-text"),
    # RE2 runs in linear time, so what needs backtracking is refused when it is defined
    pytest.param(_field(type="string", pattern=r"(a)\1"), id="pattern-backreference"),
    pytest.param(_field(type="string", pattern=r"(?=a)a"), id="pattern-lookahead"),
    pytest.param(_field(type="string", max_length="20"), id="max-length-text"),
    pytest.param(_field(type="string", max_length=0), id="max-length-zero"),
    pytest.param(_field(type="date", max_age_months="24"), id="max-age-text"),
    pytest.param(_field(type="boolean", required="yes"), id="required-not-bool"),
    pytest.param(_field(type="boolean", required_if="g"), id="required-if-unknown"),
    pytest.param(_field(type="boolean", required_if=["g"]), id="required-if-list"),
]


# The request schema catches some of these before metadefs.check_definition does.
SCHEMA_CODES = {"key": "invalid_def_key", "field-not-object": "invalid_type"}


@pytest.mark.parametrize("definition", MALFORMED)
def test_malformed_definitions_are_refused(request, backend, db_path, store_kind, definition):
    before = dump(db_path)
    error = refused(lambda: backend.call(CATALOG, "upsert-meta-definition", definition))
    case = request.node.callspec.id.removeprefix(f"{store_kind}-")
    expected = SCHEMA_CODES.get(case, "invalid_meta_definition")
    assert error.code == expected, error.to_error_object()
    assert error.field and error.http_status == 422
    assert dump(db_path) == before
    with pytest.raises(ValidationError) as pure:
        check_definition(definition)
    assert pure.value.code == "invalid_meta_definition"


def test_a_product_may_only_name_known_definitions(backend, db_path):
    before = dump(db_path)
    product = {
        "sku": "LENS-NEW-6",
        "name": "New lenses",
        "price_cents": 1000,
        "meta_defs": [{"def_key": LENS, "required": True}, {"def_key": "prism", "required": True}],
    }
    error = refused(lambda: backend.call(CATALOG, "upsert-product", product), NotFoundError)
    assert (error.code, error.field) == ("meta_definition_not_found", "meta_defs[1].def_key")
    assert dump(db_path) == before
    refused(lambda: backend.call(CATALOG, "get-product", {"sku": "LENS-NEW-6"}), NotFoundError)


def test_config_sources_resolve_per_product(backend):
    plain = backend.call(CATALOG, "get-meta-definition", {"def_key": LENS})
    fields = {f["name"]: f for f in plain["fields"]}
    assert fields["right_base_curve"]["source"] == "product:base_curves"
    assert "values" not in fields["right_base_curve"]

    def values(def_key: str, sku: str) -> dict[str, list[str]]:
        got = backend.call(CATALOG, "get-meta-definition", {"def_key": def_key, "product_sku": sku})
        return {f["name"]: f["values"] for f in got["fields"] if "source" in f}

    assert values(LENS, "LENS-TORIC-6") == {
        "right_base_curve": ["8.6", "8.9"],
        "right_diameter": ["14.5"],
        "left_base_curve": ["8.6", "8.9"],
        "left_diameter": ["14.5"],
    }
    assert values(LENS, "LENS-DAILY-30")["left_base_curve"] == ["8.4", "8.6", "8.8"]
    assert values(ENGRAVING, "CASE-TRAVEL") == {"font": ["serif", "sans", "script"]}

    # The settings list is read when validating: change it and the allowed fonts follow.
    backend.call(
        "checkout-admin", "set-setting", {"key": "lists", "value": {"engraving_fonts": ["mono"]}}
    )
    token = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    error = refused(
        lambda: set_meta(backend, token, "CASE-TRAVEL", engraving(font="serif"), ENGRAVING)
    )
    assert error.recovery == "font must be one of mono"
    co = set_meta(backend, token, "CASE-TRAVEL", engraving(font="mono"), ENGRAVING)
    assert line(co, "CASE-TRAVEL")["meta"][ENGRAVING]["font"] == "mono"
