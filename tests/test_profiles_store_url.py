"""A profile naming a PostgreSQL store: config.toml is plain text, so it keeps no database
password (libpq finds it: PGPASSWORD, ~/.pgpass), and one written there by hand is never
shown."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from checkout_cli.cli.app import app
from checkout_cli.config import config_file
from tests.conftest import WATCH

PASSWORD = WATCH.secret("pr0file-db-pa55word")


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://shop:{PASSWORD}@db.internal:5432/shop",
        f"postgresql://shop@db.internal/shop?sslmode=require&password={PASSWORD}",
    ],
)
def test_a_password_in_the_url_is_refused_and_nothing_saved(url: str) -> None:
    result = run("profiles", "add", "team", "--db", url)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PGPASSWORD" in lines[0] and "~/.pgpass" in lines[0]
    assert PASSWORD not in result.stdout + result.stderr
    assert not config_file().exists()


def test_a_url_without_one_is_kept_and_shown_as_given() -> None:
    url = "postgresql://shop@db.internal:5432/shop"
    assert run("profiles", "add", "team", "--db", url).exit_code == 0
    shown = json.loads(run("--json", "profiles", "show", "team").stdout)
    assert shown["db"] == url


def test_a_password_written_in_by_hand_is_never_shown() -> None:
    config_file().parent.mkdir(parents=True, exist_ok=True)
    config_file().write_text(
        f'[profiles.team]\ndb = "postgresql://shop:{PASSWORD}@db.internal:5432/shop"\n'
    )
    for args in (
        ("profiles", "list"),
        ("--json", "profiles", "list"),
        ("profiles", "show", "team"),
        ("--json", "profiles", "show", "team"),
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert PASSWORD not in result.stdout + result.stderr
        assert "postgresql://shop@db.internal:5432/shop" in result.stdout
