"""Every command and group has help with an example, and `--help` on it exits 0."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer
from typer._click.utils import make_default_short_help
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from checkout_cli.cli.command_index import COMMANDS


def command_tree() -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) for the root, every group and every command, lazy groups included."""
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append((path, command))
        if hasattr(command, "list_commands"):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), (*path, name))

    walk(typer.main.get_command(app), ())
    return found


TREE = command_tree()


def test_the_tree_has_every_command():
    paths = {" ".join(path) for path, _ in TREE}
    expected = {
        "initiate-checkout",
        "set-customer",
        "create-payment",
        "set-payment",
        "get-checkout-status",
        "status",
        "complete-checkout",
        "cancel-checkout",
        "cart add",
        "cart update",
        "cart remove",
        "cart show",
        "cart clear",
        "products list",
        "products show",
        "products upsert",
        "products set-stock",
        "products import",
        "orders list",
        "orders show",
        "outbox list",
        "outbox send",
        "settings show",
        "settings set",
        "vault set",
        "vault list",
        "vault delete",
        "init",
        "call",
        "demo",
    }
    assert expected <= paths, expected - paths


@pytest.mark.parametrize(
    ("path", "command"), TREE, ids=[" ".join(p) or "checkout" for p, _ in TREE]
)
def test_help_has_an_example_and_exits_0(path, command):
    assert command.help and "Example:" in command.help, f"no example in help of {path}"
    example = command.help.split("Example:", 1)[1].strip()
    assert example.startswith("checkout") or example.startswith("printenv"), example

    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "Example:" in result.stdout
    assert result.stdout.startswith("Usage: checkout")


def test_short_help_flag_too():
    result = CliRunner().invoke(app, ["cart", "add", "-h"])
    assert result.exit_code == 0
    assert "Example:" in result.stdout


def test_the_root_help_lists_each_command_as_its_own_help_would():
    """`checkout --help` reads the index; at every width it says what the commands would."""
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    assert root.list_commands(ctx) == list(COMMANDS)
    for name, entry in COMMANDS.items():
        command = root.get_command(ctx, name)
        for limit in range(20, 320, 7):
            listed = make_default_short_help(entry.summary, limit)
            assert listed == command.get_short_help_str(limit), (name, limit)


def test_the_root_help_imports_no_command_and_no_model():
    """Listing the commands imports none of them (nor pydantic, which their flags come from);
    naming one builds that one's module only."""
    probe = (
        "import sys\n"
        "from checkout_cli.entry import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith(('checkout_cli.cli.', "
        "'pydantic', 'checkout_cli.requests', 'checkout_cli.results')))\n"
        "    print(' '.join(loaded), file=sys.stderr)\n"
    )

    def loaded(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return set(done.stderr.split())

    listed = loaded("--help")
    assert not {m for m in listed if m.startswith("pydantic")}, listed
    assert not {f"checkout_cli.cli.{m}" for m in ("flow", "admin", "support", "cart")} & listed
    assert "checkout_cli.results" not in listed
    named = loaded("cart", "--help")
    assert "checkout_cli.cli.cart" in named
    assert not {"checkout_cli.cli.flow", "checkout_cli.cli.admin"} & named
