"""Flags made from the request models: upper-case metavars everywhere, choices checked by the
parser, positional arguments that --body may give, and lists that a pipe gets whole."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer import _click as click
from typer.core import TyperGroup

from checkout_cli.cli.app import app
from tests.conftest import dump, ready_checkout
from tests.terminal import ANSI, Terminal, starter
from tests.test_line_meta_engine import PRESCRIPTION, resolve

SKU_60 = "LENS-" + "A1B2C3D4E5" * 5 + "XYZ-END"  # 62 characters, under the 64 a SKU may have


def run(db_path: Path, *args: str, columns: int = 40) -> subprocess.CompletedProcess[str]:
    """``checkout --db DB ARGS`` as its own process, stdout and stderr real pipes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKOUT_")}
    env["COLUMNS"] = str(columns)  # a narrow width must not cut piped values either
    return subprocess.run(
        [sys.executable, "-m", "checkout_cli", "--db", str(db_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


# -- metavars ----------------------------------------------------------------------------------


def commands() -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command of the CLI, from click's command tree of the typer app."""

    def walk(command: click.Command, path: str, parent: click.Context | None) -> Iterator[Any]:
        ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=parent)
        yield path, command, ctx
        if isinstance(command, TyperGroup):
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), f"{path} {name}", ctx)

    yield from walk(typer.main.get_command(app), "checkout", None)


def metavars(record: str) -> list[str]:
    """The metavars in one help record's name: ``-q, --quantity N`` → ``N``; ``SKU`` → ``SKU``."""
    if not record.startswith("-"):
        return [record]
    found = []
    for part in re.split(r", | / ", record):
        _flag, _, metavar = part.partition(" ")
        if metavar:
            found.append(metavar)
    return found


# What typer shows for a parameter without a metavar: <str>, <int>, <a|b>, <integer range>…
TYPER_TYPES = re.compile(r"<(?:str|int|float|bool|path|file|text|[^<> ]*\|[^<>]*|[a-z ]* range)>")


def test_every_metavar_in_help_is_upper_case_and_none_is_a_type():
    seen: dict[str, set[str]] = {}
    for path, command, ctx in commands():
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            for metavar in metavars(record[0]):
                seen.setdefault(metavar, set()).add(path)
        help_text = command.get_help(ctx)
        assert not TYPER_TYPES.search(help_text), (path, help_text)
    wrong = {m: p for m, p in seen.items() if re.search(r"<.*>", m) or m != m.upper()}
    assert not wrong, wrong
    # The walk reached the commands that take each kind of value.
    for metavar in ("CHECKOUT", "SKU", "FIELD=VALUE", "EMAIL", "CENTS", "TEXT", "N", "PROVIDER"):
        assert metavar in seen, sorted(seen)
    assert len({path for paths in seen.values() for path in paths}) > 40


def test_set_customer_help_is_made_from_the_model():
    text = run(Path("unused.db"), "set-customer", "--help", columns=120).stdout
    assert "<str>" not in text and "<int>" not in text
    assert re.search(r"--email EMAIL +customer's email address", text), text
    assert re.search(r"--shipping-cents CENTS", text)
    assert re.search(r"--billing-country COUNTRY +billing country: ISO 3166 code or name", text)
    assert re.search(r"Arguments:\n  CHECKOUT +checkout token", text), text


# -- choices -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (("create-payment", "{checkout}", "--provider", "paypal"), "'stripe', 'mollie', 'invoice'"),
        (("smoke", "--provider", "paypal"), "'stripe', 'mollie', 'invoice'"),
        (("orders", "list", "--status", "lost"), "'pending', 'paid'"),
        (("checkouts", "list", "--status", "open"), "'active', 'payment_pending', 'completable'"),
        (("outbox", "list", "--status", "lost"), "'queued', 'sending', 'sent', 'failed'"),
        (("set-payment", "{checkout}", "--status", "refunded"), "'paid', 'pending'"),
    ],
)
def test_a_value_not_among_the_choices_is_exit_2_naming_them(backend, db_path, args, choices):
    token = ready_checkout(backend)
    before = dump(db_path)
    done = run(db_path, *(a.replace("{checkout}", token) for a in args))
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--") and choices in line, line
    assert "Value error" not in line
    assert dump(db_path) == before


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("create-payment",), "[choices: stripe, mollie, invoice]"),
        (("checkouts", "list"), "completed, cancelled"),
        (("orders", "list"), "[choices: pending, paid, cancelled, completed]"),
        (("outbox", "list"), "[choices: queued, sending, sent, failed]"),
    ],
)
def test_choices_are_listed_in_help(db_path, args, shown):
    text = run(db_path, *args, "--help", columns=120).stdout
    assert shown in " ".join(text.split()), text


def test_create_payment_takes_a_listed_provider(backend, db_path):
    token = ready_checkout(backend)
    done = run(db_path, "--json", "create-payment", token, "--provider", "invoice")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["payment"]["provider"] == "invoice"


# -- positional arguments from --body ----------------------------------------------------------


def test_set_line_meta_takes_the_sku_from_the_body(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    body = {"product_sku": "LENS-TORIC-6", "values": resolve(PRESCRIPTION)}
    done = run(db_path, "--json", "set-line-meta", token, "--body", json.dumps(body))
    assert done.returncode == 0, done.stderr
    [line] = [i for i in json.loads(done.stdout)["items"] if i["product_sku"] == "LENS-TORIC-6"]
    assert line["meta"]["lens_prescription"]["right_sphere"] == PRESCRIPTION["right_sphere"]


def test_set_line_meta_takes_the_checkout_and_sku_from_the_body(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    body = {"checkout_token": token, "product_sku": "LENS-TORIC-6"}
    pairs = [f"{k}={v}" for k, v in resolve(PRESCRIPTION).items()]
    done = run(db_path, "--json", "set-line-meta", *pairs, "--body", json.dumps(body))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checkout_token"] == token


def test_a_positional_the_body_does_not_give_is_still_required(backend, db_path):
    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    before = dump(db_path)
    done = run(db_path, "set-line-meta", token, "--body", '{"values": {"a": 1}}')
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: missing PRODUCT_SKU — give it as an argument, or as its field in --body"
    ]
    done = run(db_path, "--json", "products", "show")
    assert done.returncode == 2
    assert json.loads(done.stderr)["error_object"]["code"] == "missing_input"
    assert dump(db_path) == before


def test_other_commands_take_their_positionals_from_the_body(backend, db_path):
    shown = run(db_path, "--json", "products", "show", "--body", '{"sku": "LENS-DAILY-30"}')
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["sku"] == "LENS-DAILY-30"
    added = run(db_path, "--json", "cart", "add", "--body", '{"product_sku": "LENS-MONTH-6"}')
    assert added.returncode == 0, added.stderr
    cart = json.loads(added.stdout)["cart_token"]
    # The body gives the cart: the one word typed is the SKU.
    body = json.dumps({"cart_token": cart})
    updated = run(db_path, "--json", "cart", "update", "LENS-MONTH-6", "-q", "3", "--body", body)
    assert updated.returncode == 0, updated.stderr
    assert [i["quantity"] for i in json.loads(updated.stdout)["items"]] == [3]


# -- piped and empty lists ---------------------------------------------------------------------


def test_piped_lists_print_whole_values_one_record_per_line(backend, db_path):
    backend.call(
        "product-catalog",
        "upsert-product",
        {"sku": SKU_60, "name": "Long\x1b]0;owned\x07 name", "price_cents": 100, "stock": 2},
    )
    token = ready_checkout(backend)
    products = run(db_path, "products", "list")
    assert products.returncode == 0, products.stderr
    lines = products.stdout.splitlines()
    total = backend.call("product-catalog", "list-products", {})["total"]
    assert len(lines) == total  # no header, no footer: one line per product
    [long_line] = [line for line in lines if line.startswith(SKU_60 + "\t")]
    # Control characters stay escapes when piped.
    assert long_line.split("\t")[1] == "Long\\x1b]0;owned\\x07 name"
    assert "\x1b" not in products.stdout
    checkouts = run(db_path, "checkouts", "list")
    assert checkouts.returncode == 0, checkouts.stderr
    [line] = checkouts.stdout.splitlines()
    assert line.split("\t")[:2] == [token, "active"]
    assert "…" not in products.stdout + checkouts.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("orders", "list"), "no orders"),
        (("checkouts", "list", "--stuck"), "no checkouts"),
        (("products", "list", "--query", "nothing-like-this"), "no products"),
        (("outbox", "list"), "no emails"),
        (("tokens", "list"), "no API tokens"),
    ],
)
def test_an_empty_list_prints_nothing_and_says_so_on_stderr(backend, db_path, args, said):
    done = run(db_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [said]


def test_an_empty_list_as_json_or_csv_is_unchanged(backend, db_path):
    as_json = run(db_path, "--json", "orders", "list")
    assert json.loads(as_json.stdout)["orders"] == [] and as_json.stderr == ""
    as_csv = run(db_path, "orders", "list", "--format", "csv")
    assert as_csv.stdout.startswith("order_number,") and as_csv.stderr == ""


@pytest.fixture
def terminal(db_path, tmp_path):
    yield from starter(lambda *args, **kw: Terminal(db_path, tmp_path, *args, **kw))


def test_on_a_terminal_a_list_stays_a_table(backend, terminal):
    token = ready_checkout(backend)
    term = terminal("checkouts", "list", dimensions=(40, 160))
    assert term.finish() == 0
    screen = ANSI.sub("", term.transcript.getvalue())
    assert "Checkout" in screen and "Status" in screen  # a header, unlike a pipe
    assert token in screen
