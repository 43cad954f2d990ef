"""The README's two set-up commands work in a fresh virtual environment, from a clean copy."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    return [b for b in blocks if "pip install" in b]


def test_readme_has_exactly_the_two_setup_commands_ci_runs():
    install_and_demo, install_and_test = readme_commands()[:2]
    assert install_and_demo == "python -m pip install . && checkout demo"
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
def test_setup_commands_in_a_fresh_venv(tmp_path):
    install_and_demo, install_and_test = readme_commands()[:2]
    clone = tmp_path / "clone"
    shutil.copytree(
        ROOT,
        clone,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            ".mypy_cache",
            "build",
        ),
    )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    path = f"{env_dir / 'bin'}:/usr/bin:/bin"
    env = {
        "PATH": path,
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TMPDIR": str(tmp_path),  # where `checkout demo` leaves its store
    }

    def sh(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=900
        )

    first = sh(install_and_demo)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "done: orders 2026-" in first.stderr or "done: orders" in first.stderr
    # The test command, with the suite narrowed so this test does not run itself again.
    second = sh(
        install_and_test.replace(
            "python -m pytest -n 2", "python -m pytest -n 2 tests/test_smoke_flow.py"
        )
    )
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert " passed" in second.stdout
    assert sys.version_info >= (3, 11)
