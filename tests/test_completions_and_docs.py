"""Completion scripts stay current; every command has help with an example and is in the README."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from checkout_cli.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "completions"))
from generate import SHELLS, script  # noqa: E402


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_script_is_current(shell):
    committed = (ROOT / "completions" / SHELLS[shell]).read_text()
    assert committed == script(shell), "stale: run python completions/generate.py"


def test_bash_completion_completes_commands():
    env = {
        **os.environ,
        "_CHECKOUT_COMPLETE": "complete_bash",
        "COMP_WORDS": "checkout cre",
        "COMP_CWORD": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "checkout_cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["create-payment"]


def command_paths() -> list[str]:
    """Every leaf command, groups built lazily included (asked for by name, as click does)."""
    root = typer.main.get_command(app)
    paths = []

    def walk(command, prefix: str) -> None:
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            path = f"{prefix} {name}".strip()
            if hasattr(sub, "list_commands"):
                walk(sub, path)
            else:
                paths.append(path)

    walk(root, "")
    return paths


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [p for p in command_paths() if f"checkout {p}" not in readme]
    assert not missing, f"commands not in README.md: {missing}"
    assert len(command_paths()) >= 30
