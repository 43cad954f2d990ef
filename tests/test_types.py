"""The static checks, run by the same test command as everything else: mypy type-checks the
package (settings in pyproject.toml's [tool.mypy]), ruff checks lint and formatting, and
import-linter holds the layers and the engine free of import cycles ([tool.importlinter])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # about half a minute without a .mypy_cache
def test_package_type_checks():
    result = run("mypy", "checkout_cli")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_passes():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
