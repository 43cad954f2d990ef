"""Typed line meta through the CLI: `checkout set-line-meta`, `checkout meta …`,
`checkout orders line-meta`; the same refusals as the engine tests, as exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Result, dump, ready_checkout
from tests.test_line_meta_engine import (
    ENGRAVING,
    FULL,
    FULL_STORED,
    LENS,
    PRESCRIPTION,
    REFUSALS,
    add_second_line,
    dates,
    engraving,
    events,
    fixture_definition,
    lens,
    resolve,
    set_meta,
    sql,
)


def error_of(result: Result) -> dict[str, Any]:
    """The one error object a `--json` command writes on stderr (stdout stays empty)."""
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return json.loads(lines[0])["error_object"]


def pairs(values: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in resolve(values).items()]


def values_file(tmp_path: Path, values: dict[str, Any], name: str = "values.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(resolve(values)))
    return str(path)


@pytest.fixture
def meta_checkout(backend):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("CASE-TRAVEL", 1)])
    set_meta(backend, token, "LENS-TORIC-6", lens(right_add="1.00"))
    set_meta(backend, token, "CASE-TRAVEL", engraving(font="sans"), ENGRAVING)
    return token


# -- refusals: exit 4, the field, the allowed range, nothing changed -------------------------


# With no values at all the CLI asks for them (or, off a terminal, says they are missing).
GIVEN = [case for case in REFUSALS if case.values[2]]


@pytest.mark.parametrize(("sku", "def_key", "values", "field", "code", "recovery"), GIVEN)
def test_refused_values_file(
    cli, db_path, tmp_path, meta_checkout, sku, def_key, values, field, code, recovery
):
    path = values_file(tmp_path, values)
    before = dump(db_path)
    result = cli(
        "--json", "set-line-meta", meta_checkout, sku, "--def", def_key, "--values-file", path
    )
    assert result.exit_code == 4, result.stderr
    error = error_of(result)
    assert (error["type"], error["code"], error["field"]) == ("validation", code, field)
    assert recovery in error["recovery"]
    assert dump(db_path) == before


# The cases a person can type: every value a string (FIELD=VALUE pairs are always text).
TYPED = [case for case in GIVEN if all(isinstance(v, str) for v in case.values[2].values())]


@pytest.mark.parametrize(("sku", "def_key", "values", "field", "code", "recovery"), TYPED)
def test_refused_pairs(cli, db_path, meta_checkout, sku, def_key, values, field, code, recovery):
    before = dump(db_path)
    result = cli("set-line-meta", meta_checkout, sku, "--def", def_key, *pairs(values))
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    [message] = result.stderr.strip().splitlines()
    assert message.startswith(f"error: {field}:"), message
    assert recovery in message
    assert dump(db_path) == before


def test_some_refusals_are_typed_as_pairs():
    assert len(TYPED) > 30


# -- stored, shown, copied, read back ---------------------------------------------------------


def test_pairs_are_normalized(backend, cli):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    recent = dates()["recent"]
    result = cli(
        "--json",
        "set-line-meta",
        token,
        "LENS-TORIC-6",  # no --def: the product takes one definition
        "right_sphere=-1.5",
        "left_sphere=2",
        "right_add=+1.25",
        "right_cylinder=-0.75",
        "right_axis=90",
        f"prescribed_on={recent}",
    )
    assert result.exit_code == 0, result.stderr
    [item] = result.json()["items"]
    assert item["meta"] == {
        LENS: {
            "right_sphere": "-1.50",
            "right_cylinder": "-0.75",
            "right_axis": 90,
            "right_add": "1.25",
            "left_sphere": "2.00",
            "prescribed_on": recent,
        }
    }


def test_boolean_and_text_pairs(backend, cli):
    token = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    result = cli(
        "--json",
        "set-line-meta",
        token,
        "CASE-TRAVEL",
        "text=For Anna",
        "font=script",
        "gift_wrap=yes",
    )
    assert result.exit_code == 0, result.stderr
    [item] = result.json()["items"]
    assert item["meta"] == {ENGRAVING: {"text": "For Anna", "font": "script", "gift_wrap": True}}


def test_values_file_and_pairs_together(backend, cli, tmp_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    path = values_file(tmp_path, lens(right_sphere=-3.5))
    result = cli(
        "--json", "set-line-meta", token, "LENS-TORIC-6", "--values-file", path, "left_sphere=-4"
    )
    assert result.exit_code == 0, result.stderr
    meta = result.json()["items"][0]["meta"][LENS]
    assert (meta["right_sphere"], meta["left_sphere"]) == ("-3.50", "-4.00")


def test_prescription_shown_copied_and_read_back(backend, cli, db_path, tmp_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-DAILY-30", 1)])
    stored = resolve(FULL_STORED)
    result = cli(
        "--json",
        "set-line-meta",
        token,
        "LENS-TORIC-6",
        "--def",
        LENS,
        "--values-file",
        values_file(tmp_path, FULL),
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"][0]["meta"] == {LENS: stored}

    shown = cli("--json", "status", token)
    assert shown.exit_code == 0, shown.stderr
    assert [i["meta"] for i in shown.json()["items"]] == [{LENS: stored}, {}]

    table = cli("status", token)
    assert table.exit_code == 0, table.stderr
    assert "Line meta" in table.stdout and LENS in table.stdout
    for name, value in stored.items():
        assert f"{name}={value}" in table.stdout, (name, table.stdout)

    assert cli("create-payment", token, "--provider", "invoice").exit_code == 0
    done = cli("--json", "complete-checkout", token)
    assert done.exit_code == 0, done.stderr
    order = done.json()["order"]

    read = cli("--json", "orders", "line-meta", order["order_number"])
    assert read.exit_code == 0, read.stderr
    assert read.json() == {
        "order_id": order["order_id"],
        "order_number": order["order_number"],
        "lines": [{"line_id": 1, "product_sku": "LENS-TORIC-6", "meta": {LENS: stored}}],
    }
    assert cli("--json", "orders", "line-meta", order["order_id"], "--def", LENS).json() == (
        read.json()
    )
    other = cli("--json", "orders", "line-meta", order["order_id"], "--def", ENGRAVING)
    assert other.json()["lines"] == []

    # Byte for byte: the same TEXT in both tables, the same JSON object (key order too).
    [(checkout_text,)] = sql(
        db_path, "SELECT meta FROM checkout_lines WHERE product_sku = 'LENS-TORIC-6'"
    )
    [(order_text,)] = sql(
        db_path, "SELECT meta FROM order_lines WHERE product_sku = 'LENS-TORIC-6'"
    )
    assert order_text == checkout_text
    meta = read.json()["lines"][0]["meta"]
    assert json.dumps(meta, ensure_ascii=False) == order_text
    assert list(meta[LENS]) == list(json.loads(checkout_text)[LENS])

    listed = cli("orders", "line-meta", order["order_number"])
    assert listed.exit_code == 0, listed.stderr
    assert "LENS-TORIC-6" in listed.stdout and LENS in listed.stdout
    assert "right_axis=170" in listed.stdout
    shown = cli("orders", "show", order["order_number"])
    assert shown.exit_code == 0, shown.stderr
    assert "right_sphere=-2.25" in shown.stdout and "prescribed_on=" in shown.stdout


def test_completion_refused_without_required_meta(backend, cli, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("LENS-DAILY-30", 1)])
    assert cli("create-payment", token, "--provider", "invoice").exit_code == 0
    before = dump(db_path)
    result = cli("--json", "complete-checkout", token)
    assert result.exit_code == 4
    error = error_of(result)
    assert (error["type"], error["code"]) == ("conflict", "line_meta_missing")
    assert "LENS-TORIC-6" in error["message"] and LENS in error["message"]
    assert dump(db_path) == before

    plain = cli("complete-checkout", token)
    assert plain.exit_code == 4 and "LENS-TORIC-6" in plain.stderr and LENS in plain.stderr

    assert cli("set-line-meta", token, "LENS-TORIC-6", *pairs(PRESCRIPTION)).exit_code == 0
    done = cli("--json", "complete-checkout", token)
    assert done.exit_code == 0, done.stderr
    assert done.json()["status"] == "completed"


def test_optional_meta_does_not_block_completion(backend, cli):
    token = ready_checkout(backend, [("LENS-DAILY-30", 1)])
    assert cli("create-payment", token, "--provider", "invoice").exit_code == 0
    done = cli("--json", "complete-checkout", token)
    assert done.exit_code == 0, done.stderr


# -- lines, definitions, checkout states ------------------------------------------------------


def test_line_id_picks_the_line(backend, cli, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    add_second_line(db_path, token, "LENS-TORIC-6")
    before = dump(db_path)
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6", *pairs(PRESCRIPTION))
    assert result.exit_code == 4
    error = error_of(result)
    assert (error["code"], error["field"]) == ("line_id_required", "line_id")
    assert "--line-id" in error["recovery"] and "1, 2" in error["recovery"]
    assert dump(db_path) == before

    values = pairs(lens(right_sphere="-5.00"))
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6", "--line-id", "2", *values)
    assert result.exit_code == 0, result.stderr
    first, second = result.json()["items"]
    assert (first["line_id"], first["meta"]) == (1, {})
    assert (second["line_id"], second["meta"][LENS]["right_sphere"]) == (2, "-5.00")

    missing = cli("--json", "set-line-meta", token, "LENS-TORIC-6", "--line-id", "7", *values)
    assert missing.exit_code == 3
    assert error_of(missing)["code"] == "line_not_found"


def test_definition_not_taken_by_the_product(backend, cli, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    before = dump(db_path)
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6", "--def", ENGRAVING, "text=Hi")
    assert result.exit_code == 4
    error = error_of(result)
    assert (error["code"], error["field"]) == ("meta_def_not_allowed", "def_key")
    assert error["recovery"] == "it takes: lens_prescription"
    assert dump(db_path) == before


def test_unknown_definition_exits_3(backend, cli, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    before = dump(db_path)
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6", "--def", "prism", "base=up")
    assert result.exit_code == 3
    error = error_of(result)
    assert (error["type"], error["code"], error["field"]) == (
        "not_found",
        "meta_definition_not_found",
        "def_key",
    )
    assert dump(db_path) == before


@pytest.mark.parametrize(
    ("ending", "code"), [("completed", "checkout_not_active"), ("cancelled", "checkout_cancelled")]
)
def test_set_line_meta_on_a_finished_checkout(backend, cli, db_path, ending, code):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    assert cli("set-line-meta", token, "LENS-TORIC-6", *pairs(PRESCRIPTION)).exit_code == 0
    if ending == "completed":
        assert cli("create-payment", token, "--provider", "invoice").exit_code == 0
        assert cli("complete-checkout", token).exit_code == 0
    else:
        assert cli("cancel-checkout", token, "--yes").exit_code == 0
    before = dump(db_path)
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6", *pairs(PRESCRIPTION))
    assert result.exit_code == 4
    error = error_of(result)
    assert (error["type"], error["code"]) == ("conflict", code)
    assert dump(db_path) == before


def test_usage_errors(backend, cli, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1), ("GIFT-CARD-25", 1)])
    before = dump(db_path)
    # Not a terminal and no values: nothing to ask with.
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6")
    assert result.exit_code == 2
    assert error_of(result)["code"] == "missing_input"
    # A value that is not FIELD=VALUE.
    result = cli("--json", "set-line-meta", token, "LENS-TORIC-6", "right_sphere")
    assert result.exit_code == 2
    assert error_of(result)["code"] == "invalid_value_pair"
    # No --def for a product that takes no definition.
    result = cli("--json", "set-line-meta", token, "GIFT-CARD-25", "a=1")
    assert result.exit_code == 2
    assert "none" in error_of(result)["recovery"]
    assert dump(db_path) == before


def test_each_change_is_an_event(backend, cli, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    for sphere in ("-1.00", "-1.25", "-1.25"):
        values = pairs(lens(right_sphere=sphere))
        assert cli("set-line-meta", token, "LENS-TORIC-6", *values).exit_code == 0
    assert cli("set-line-meta", token, "LENS-TORIC-6", "right_sphere=-1.30").exit_code == 4
    assert len(events(db_path)) == 3
    inspect = cli("--json", "inspect", token)  # support's view lists the timeline
    assert inspect.exit_code == 0, inspect.stderr
    assert json.dumps(inspect.json()).count("line_meta_set") == 3


# -- meta import, list, show ------------------------------------------------------------------


def test_meta_import_versions(cli, db_path, tmp_path):
    fixture = str(FIXTURES / "meta_definitions.json")
    assert cli("init").exit_code == 0
    first = cli("--json", "meta", "import", fixture)
    assert first.exit_code == 0, first.stderr
    assert [(d["def_key"], d["version"], d["changed"]) for d in first.json()["definitions"]] == [
        (LENS, 1, True),
        (ENGRAVING, 1, True),
    ]
    again = cli("--json", "meta", "import", fixture)
    assert [(d["def_key"], d["version"], d["changed"]) for d in again.json()["definitions"]] == [
        (LENS, 1, False),
        (ENGRAVING, 1, False),
    ]
    definition = fixture_definition(ENGRAVING)
    definition["fields"][0]["max_length"] = 12
    changed = tmp_path / "engraving.json"
    changed.write_text(json.dumps(definition))  # a single definition, not wrapped
    result = cli("--json", "meta", "import", str(changed))
    assert result.exit_code == 0, result.stderr
    [imported] = result.json()["definitions"]
    assert (imported["def_key"], imported["version"], imported["changed"]) == (ENGRAVING, 2, True)

    listed = cli("--json", "meta", "list")
    assert [(d["def_key"], d["version"]) for d in listed.json()["definitions"]] == [
        (ENGRAVING, 2),
        (LENS, 1),
    ]
    table = cli("meta", "list")
    assert table.exit_code == 0 and "right_sphere" in table.stdout and ENGRAVING in table.stdout
    assert sql(db_path, "SELECT def_key, version FROM meta_definitions ORDER BY 1, 2") == [
        (ENGRAVING, 1),
        (ENGRAVING, 2),
        (LENS, 1),
    ]


def test_the_new_version_validates(backend, cli, db_path, tmp_path):
    definition = fixture_definition(ENGRAVING)
    definition["fields"][0]["max_length"] = 12
    path = tmp_path / "engraving.json"
    path.write_text(json.dumps({"definitions": [definition]}))
    assert cli("meta", "import", str(path)).exit_code == 0
    token = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    result = cli("--json", "set-line-meta", token, "CASE-TRAVEL", "text=Thirteen char")
    assert result.exit_code == 4
    error = error_of(result)
    assert (error["field"], error["code"]) == ("values.text", "meta_value_invalid")
    assert "up to 12 letters" in error["recovery"]
    assert cli("set-line-meta", token, "CASE-TRAVEL", "text=Twelve chars").exit_code == 0
    assert events(db_path)[-1]["version"] == 2


def test_meta_import_refuses_a_malformed_file_and_writes_nothing(cli, db_path, tmp_path):
    assert cli("init").exit_code == 0
    before = dump(db_path)
    bad = {
        "def_key": "broken",
        "fields": [{"name": "size", "type": "decimal", "min": "2", "max": "1"}],
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps({"definitions": [fixture_definition(LENS), bad]}))
    result = cli("--json", "meta", "import", str(path))
    assert result.exit_code == 4
    error = error_of(result)
    assert error["code"] == "invalid_meta_definition"
    assert error["field"].startswith("definitions[1]")
    assert dump(db_path) == before

    path.write_text("{not json")
    assert cli("meta", "import", str(path)).exit_code == 2
    assert dump(db_path) == before


def test_product_with_an_unknown_definition_is_refused(backend, cli, db_path):
    before = dump(db_path)
    body = json.dumps({"meta_defs": [{"def_key": "prism", "required": True}]})
    result = cli(
        "--json",
        "products",
        "upsert",
        "LENS-NEW-6",
        "--name",
        "New",
        "--price-cents",
        "100",
        "--body",
        body,
    )
    assert result.exit_code == 3
    error = error_of(result)
    assert (error["code"], error["field"]) == ("meta_definition_not_found", "meta_defs[0].def_key")
    assert dump(db_path) == before


def test_meta_show_resolves_the_products_config(backend, cli):
    result = cli("--json", "meta", "show", LENS, "--product", "LENS-TORIC-6")
    assert result.exit_code == 0, result.stderr
    fields = {f["name"]: f for f in result.json()["fields"]}
    assert fields["right_base_curve"]["values"] == ["8.6", "8.9"]
    assert fields["left_base_curve"]["values"] == ["8.6", "8.9"]
    assert fields["right_diameter"]["values"] == ["14.5"]
    assert fields["right_base_curve"]["source"] == "product:base_curves"
    multi = cli("--json", "meta", "show", LENS, "--product", "LENS-MULTI-6").json()
    assert {f["name"]: f.get("values") for f in multi["fields"]}["right_base_curve"] == [
        "8.4",
        "8.6",
        "8.8",
    ]
    plain = cli("--json", "meta", "show", LENS).json()
    assert all("values" not in f for f in plain["fields"])

    table = cli("meta", "show", LENS, "--product", "LENS-TORIC-6")
    assert table.exit_code == 0, table.stderr
    text = " ".join(table.stdout.split())
    for expected in (
        "lens_prescription v1",
        "right_sphere",
        "decimal",
        "one of 8.6, 8.9",
        "-20.00",
    ):
        assert expected in text, expected
    missing = cli("--json", "meta", "show", "prism")
    assert missing.exit_code == 3
    assert error_of(missing)["code"] == "meta_definition_not_found"
