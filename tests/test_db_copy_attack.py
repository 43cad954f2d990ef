"""checkout db copy against hostile targets: the source's own side files, a target that is no
regular file, the same PostgreSQL database however its URL is spelled, a source that is not a
store: each a one-line refusal that writes nothing."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.test_db_copy import make_small_shop, one_line_error, run


@pytest.fixture
def small_shop(tmp_path: Path) -> Path:
    return make_small_shop(tmp_path)


def test_the_sources_wal_file_is_refused_as_the_same_store(
    tmp_path: Path, small_shop: Path
) -> None:
    """--to SHOP.db-wal is accepted (an absent or 0-byte -wal counts as a new/empty file), the
    copy reports success, and the next open of the source deletes the 'copy' as a stale WAL."""
    conn = sqlite3.connect(small_shop)  # keep the source open in WAL mode: its -wal exists
    conn.execute("PRAGMA journal_mode=WAL")
    wal = Path(f"{small_shop}-wal")
    result = run("db", "copy", "--from", str(small_shop), "--to", str(wal))
    conn.close()
    one_line_error(result, 2)


@pytest.mark.parametrize("suffix", ["-shm", "-journal", "-writer.lock"])
def test_the_sources_side_files_are_refused(tmp_path: Path, small_shop: Path, suffix: str) -> None:
    side = Path(f"{small_shop}{suffix}")
    side.touch()
    result = run("db", "copy", "--from", str(small_shop), "--to", str(side))
    one_line_error(result, 2)


def test_a_target_that_is_not_a_regular_file_is_a_clear_refusal(
    tmp_path: Path, small_shop: Path
) -> None:
    """A FIFO (or /dev/null) as --to: 'unexpected OperationalError … this is a bug', exit 1."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run("db", "copy", "--from", str(small_shop), "--to", str(fifo))
    line = one_line_error(result, 2)
    assert "bug" not in line


def _respelled(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname
    other = "localhost" if host == "127.0.0.1" else "127.0.0.1"
    netloc = parts.netloc.replace(f"@{host}", f"@{other}")
    return urlunsplit(parts._replace(netloc=netloc))


def test_the_same_database_spelled_localhost_is_the_same_store(
    small_shop: Path, pg_url: str
) -> None:
    """localhost vs 127.0.0.1: exit 4 (not empty) instead of 2, and with --force the copy
    goes ahead, DELETE-ing and re-inserting a database into itself."""
    assert run("db", "copy", "--from", str(small_shop), "--to", pg_url).exit_code == 0
    one_line_error(run("db", "copy", "--from", pg_url, "--to", _respelled(pg_url)), 2)
    one_line_error(run("db", "copy", "--from", pg_url, "--to", _respelled(pg_url), "--force"), 2)


def test_a_port_given_in_the_query_is_the_one_described_and_compared(
    small_shop: Path, pg_url: str
) -> None:
    """postgresql://h:9/db?port=REAL connects to REAL but is described (and compared) as :9."""
    assert run("db", "copy", "--from", str(small_shop), "--to", pg_url).exit_code == 0
    parts = urlsplit(pg_url)
    real = parts.port
    odd = urlunsplit(
        parts._replace(netloc=parts.netloc.replace(f":{real}", ":9"), query=f"port={real}")
    )
    one_line_error(run("db", "copy", "--from", pg_url, "--to", odd), 2)


def test_a_source_that_is_not_a_store_names_from_not_db(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello\n")
    line = one_line_error(run("db", "copy", "--from", str(junk), "--to", str(tmp_path / "c.db")), 6)
    assert "--db" not in line and "--from" in line
    assert not (tmp_path / "c.db").exists()


def test_an_empty_store_name_is_a_usage_error(small_shop: Path) -> None:
    one_line_error(run("db", "copy", "--from", "", "--to", "x.db"), 2)
    one_line_error(run("db", "copy", "--from", str(small_shop), "--to", ""), 2)
