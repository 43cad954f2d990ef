"""checkout db backup / status / migrate on real SQLite files, one with a writer process
running beside the backup; a store from a newer release refused by every command alike."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checkout_cli.engine import store_admin
from checkout_cli.engine.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import dump, ready_checkout

WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from checkout_cli.backends.local import LocalBackend

    db, stop = Path(sys.argv[1]), Path(sys.argv[2])
    backend = LocalBackend(db, actor="writer")
    n = 0
    while not stop.exists():
        n += 1
        backend.call("product-catalog", "upsert-product",
                     {"sku": f"W-{n}", "name": f"Written {n}", "price_cents": 100 + n})
        print(n, flush=True)
    backend.close()
    """
)


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def _skus(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT sku FROM products WHERE sku LIKE 'W-%'")}
    finally:
        conn.close()


# ---- backup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("step_pages", [1, store_admin.STEP_PAGES])
def test_backup_while_another_process_keeps_writing(backend, db_path, tmp_path, cli, step_pages):
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "1"  # the writer is writing
        dest = tmp_path / "backups" / "shop.db"
        dest.parent.mkdir()
        result = store_admin.backup(db_path, dest, step_pages=step_pages)
        after = int(writer.stdout.readline())  # and went on writing after the copy
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    last = int(out.split()[-1]) if out.split() else after

    assert result["integrity"] == "ok" and result["schema_version"] == SCHEMA_VERSION
    assert result["bytes"] == dest.stat().st_size
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert _integrity(dest) == ["ok"]
    copied = _skus(dest)
    # A consistent snapshot: the first n products the writer made, for some n it had reached.
    assert copied == {f"W-{i}" for i in range(1, len(copied) + 1)}
    assert 1 <= len(copied) <= last
    assert _files(dest.parent) == {"shop.db"}  # no temporary file or WAL left beside it

    doctor = subprocess.run(
        [sys.executable, "-m", "checkout_cli", "--db", str(dest), "doctor", "--json"],
        capture_output=True,
        text=True,
    )
    assert doctor.returncode == 0, doctor.stderr
    assert json.loads(doctor.stdout)["violations"] == []


def test_writes_between_steps_restart_the_copy_then_one_step_finishes_it(
    backend, db_path, tmp_path, monkeypatch
):
    """Every step is followed by a write from another connection (as a serving process
    does): the stepped copy keeps restarting, so the rest is copied in one step."""
    writer = sqlite3.connect(db_path, isolation_level=None)
    made: list[int] = []
    seen: list[int] = []

    class WritingProgress(store_admin._Progress):
        def __call__(self, status: int, remaining: int, total: int) -> None:
            made.append(len(made) + 1)
            writer.execute(
                "INSERT INTO products (sku, name, price_cents, currency, created_at) "
                "VALUES (?, 'Written', 100, 'EUR', '2026-12-03T00:00:00Z')",
                (f"W-{made[-1]}",),
            )
            try:
                super().__call__(status, remaining, total)
            finally:
                seen.append(self.restarts)

    monkeypatch.setattr(store_admin, "_Progress", WritingProgress)
    dest = tmp_path / "copy.db"
    result = store_admin.backup(db_path, dest, step_pages=1)
    writer.close()
    assert seen[-1] == store_admin.RESTARTS_BEFORE_ONE_STEP  # it did restart, and gave up
    assert result["integrity"] == "ok" and _integrity(dest) == ["ok"]
    # The one step copied every write made before it.
    assert _skus(dest) == {f"W-{n}" for n in made}


def test_backup_command_reports_what_it_wrote(backend, db_path, tmp_path, cli):
    ready_checkout(backend)
    dest = tmp_path / "copy.db"
    result = cli("--json", "db", "backup", str(dest))
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report == {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "backup": str(dest),
        "bytes": dest.stat().st_size,
        "schema_version": SCHEMA_VERSION,
        "integrity": "ok",
        "counts": {"orders": 0, "checkouts": 1},
    }
    text = cli("db", "backup", str(tmp_path / "second.db"))
    assert text.exit_code == 0
    assert f"schema version {SCHEMA_VERSION}, integrity ok, 0 orders, 1 checkouts" in text.stdout


def test_backup_refuses_an_existing_dest_unless_forced(backend, db_path, tmp_path, cli):
    dest = tmp_path / "copy.db"
    dest.write_text("keep me")
    before = _files(tmp_path)
    result = cli("db", "backup", str(dest))
    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1 and "already exists" in result.stderr
    assert dest.read_text() == "keep me" and _files(tmp_path) == before

    forced = cli("db", "backup", str(dest), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert _integrity(dest) == ["ok"] and _files(tmp_path) == before


@pytest.mark.parametrize(
    "how", ["same path", "symlink", "hard link", "-wal", "-shm", "-journal", "-writer.lock"]
)
def test_backup_refuses_the_store_itself(backend, db_path, tmp_path, cli, how):
    backend.close()
    dest = db_path
    if how == "symlink":
        dest = tmp_path / "link.db"
        dest.symlink_to(db_path)
    elif how == "hard link":
        dest = tmp_path / "hard.db"
        os.link(db_path, dest)
    elif how.startswith("-"):  # a file SQLite keeps beside the store: a backup there is lost
        dest = Path(f"{db_path}{how}")
    before, files = dump(db_path), _files(tmp_path)
    result = cli("db", "backup", str(dest), "--force")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "is the store itself" in result.stderr
    assert dump(db_path) == before and _files(tmp_path) == files


def test_backup_of_a_postgresql_store_points_elsewhere(cli, tmp_path):
    result = cli_at(cli, "postgresql://shop:hunter2@db.example:5433/shop", "db", "backup", "x.db")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "pg_dump" in result.stderr
    assert "hunter2" not in result.stderr


def cli_at(cli, db: str, *args: str):
    return cli("--db", db, *args)  # a later --db wins over the fixture's


# ---- status ----------------------------------------------------------------------------------


def test_status_of_an_up_to_date_store_changes_nothing(backend, db_path, tmp_path, cli):
    backend.close()
    before, files = dump(db_path), _files(tmp_path)
    mtime = db_path.stat().st_mtime_ns
    result = cli("--json", "db", "status")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "schema_version": SCHEMA_VERSION,
        "expected_version": SCHEMA_VERSION,
        "state": "current",
    }
    assert "up to date" in cli("db", "status").stdout
    assert dump(db_path) == before and _files(tmp_path) == files
    assert db_path.stat().st_mtime_ns == mtime


def test_status_of_a_missing_store_creates_none(cli, db_path, tmp_path):
    result = cli("db", "status")
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and "no store at" in result.stderr
    assert not db_path.exists()


def test_status_names_a_postgresql_store_without_its_password():
    where = store_admin.describe_url("postgresql://shop:hunter2@db.example:5433/orders")
    assert where == {
        "kind": "postgresql",
        "host": "db.example",
        "port": 5433,
        "database": "orders",
        "user": "shop",
    }
    # A URL that went through Path (as --db does today) is still recognised.
    assert store_admin.pg_url(Path("postgresql://u@h/db")) == "postgresql://u@h/db"


# ---- status and migrate on PostgreSQL ----------------------------------------------------------


def pg_checkout(*args: str):
    """``checkout ARGS`` in-process against a PostgreSQL store (no SQLite fixture involved)."""
    from typer.testing import CliRunner

    from checkout_cli.cli.app import app

    env = {name: None for name in ("CHECKOUT_PROFILE", "CHECKOUT_REMOTE", "CHECKOUT_DB")}
    return CliRunner().invoke(app, list(args), env=env)


def _pg_versions(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return []
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]


def _pg_tables(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {row[0] for row in rows}


def test_status_and_migrate_of_a_postgresql_store(pg_url):
    assert pg_checkout("--db", pg_url, "init", "--project-id", "shop-nl").exit_code == 0
    versions = _pg_versions(pg_url)
    status = pg_checkout("--db", pg_url, "--json", "db", "status")
    assert status.exit_code == 0, status.stderr
    found = json.loads(status.stdout)
    assert found["store"]["kind"] == "postgresql"
    assert found["store"]["database"] == pg_url.rsplit("/", 1)[1]
    assert found["schema_version"] == found["expected_version"] == SCHEMA_VERSION
    assert found["state"] == "current"
    assert "PostgreSQL store" in pg_checkout("--db", pg_url, "db", "status").stdout
    migrated = pg_checkout("--db", pg_url, "db", "migrate")
    assert migrated.exit_code == 0, migrated.stderr
    assert "nothing to do" in migrated.stdout
    assert _pg_versions(pg_url) == versions


@pytest.mark.parametrize("command", ["status", "migrate"])
def test_a_database_never_set_up_is_no_store_and_is_not_made_one(pg_url, command):
    result = pg_checkout("--db", pg_url, "db", command)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "no store in" in result.stderr
    assert _pg_tables(pg_url) == set()


@pytest.mark.parametrize("command", ["status", "migrate"])
def test_a_newer_postgresql_store_is_refused_and_left_alone(pg_url, command):
    import psycopg

    assert pg_checkout("--db", pg_url, "init", "--project-id", "shop-nl").exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, 'later')",
            (SCHEMA_VERSION + 1,),
        )
    result = pg_checkout("--db", pg_url, "db", command)
    assert result.exit_code == 4 and "store_too_new" not in result.stdout
    assert result.stderr.count("\n") == 1 and str(SCHEMA_VERSION + 1) in result.stderr
    assert sorted(_pg_versions(pg_url))[-1] == SCHEMA_VERSION + 1


@pytest.mark.parametrize("command", ["status", "migrate"])
def test_an_unreachable_postgresql_store_is_exit_6_without_its_password(command):
    from tests.serve_helpers import free_port

    url = f"postgresql://shop:hunter2@127.0.0.1:{free_port()}/orders?connect_timeout=2"
    result = pg_checkout("--db", url, "db", command)
    assert result.exit_code == 6, result.stderr
    assert result.stderr.count("\n") == 1 and "database" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# ---- migrate ---------------------------------------------------------------------------------


def _store_of_release_8(path: Path) -> None:
    """As tests/test_order_upgrade.py makes one: the release's own migrations, version 8."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for version in range(1, 9):
        MIGRATIONS[version](conn)
    conn.execute("PRAGMA user_version = 8")
    conn.execute("COMMIT")
    conn.close()


def test_migrate_brings_an_old_store_up_to_date(cli, db_path):
    _store_of_release_8(db_path)
    older = cli("--json", "db", "status")
    assert older.exit_code == 0
    assert older.json()["schema_version"] == 8 and older.json()["state"] == "older"
    assert "run `checkout db migrate`" in cli("db", "status").stdout

    # A backup of the old store (before migrating, say) keeps its version and migrates nothing.
    copy = db_path.with_name("before-migrate.db")
    assert cli("--json", "db", "backup", str(copy)).json()["schema_version"] == 8

    result = cli("--json", "db", "migrate")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "from_version": 8,
        "to_version": SCHEMA_VERSION,
    }
    assert cli("--json", "db", "status").json()["state"] == "current"
    again = cli("db", "migrate")
    assert f"already at schema version {SCHEMA_VERSION}" in again.stdout
    assert cli("doctor").exit_code == 0


def test_migrate_does_not_create_a_missing_store(cli, db_path):
    result = cli("db", "migrate")
    assert result.exit_code == 3 and "no store at" in result.stderr
    assert not db_path.exists()


# ---- a store from a newer release ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("db", "status"),
        ("db", "migrate"),
        ("db", "backup", "BACKUP"),
        ("doctor",),
        ("settings", "show"),
    ],
)
def test_a_newer_store_is_refused_by_every_command_alike(backend, db_path, tmp_path, cli, args):
    backend.close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before, files = dump(db_path), _files(tmp_path)
    args = tuple(str(tmp_path / "backup.db") if a == "BACKUP" else a for a in args)
    result = cli(*args)
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: the store has schema version {SCHEMA_VERSION + 1}; this checkout-cli "
        f"(0.1.0) knows versions up to {SCHEMA_VERSION} — use a newer checkout-cli, one that "
        f"knows schema version {SCHEMA_VERSION + 1}\n"
    )
    lock = {"shop.db-writer.lock"}  # the writer lock the store keeps beside it
    assert dump(db_path) == before and _files(tmp_path) - lock == files - lock
    as_json = json.loads(cli("--json", *args).stderr)
    assert as_json["error_object"]["code"] == "store_too_new"


def test_backup_refuses_a_target_that_is_no_regular_file(backend, db_path, tmp_path, cli):
    backend.close()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before, files = dump(db_path), _files(tmp_path)
    result = cli("db", "backup", str(fifo), "--force")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "not a regular file" in result.stderr
    assert dump(db_path) == before and _files(tmp_path) == files
