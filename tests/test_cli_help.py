"""Every command and group has help with an example, and `--help` on it exits 0."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from checkout_cli.cli.app import app


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
