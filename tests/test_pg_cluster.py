"""The PostgreSQL test harness itself (tests/pg_cluster.py and the conftest fixtures): a real
server, a fresh database per test, stop and start mid-test, loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.pg_cluster import Cluster, sweep

ROOT = Path(__file__).resolve().parent.parent


def dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return sorted(r[0] for r in rows)


def test_pg_url_is_a_fresh_database_reachable_through_psycopg(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://postgres@127.0.0.1:")
    assert "test_pg_url_is_a_fresh" in dbname(pg_url)
    assert tables(pg_url) == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (dbname(pg_url),)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        conn.execute("CREATE TABLE note (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
        conn.execute("INSERT INTO note VALUES (1, 'hello')")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT body FROM note").fetchall() == [("hello",)]


def test_two_databases_of_one_test_are_distinct(pg_url: str, pg_new_database) -> None:
    other = pg_new_database()
    assert dbname(other) != dbname(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE only_here (x INT)")
    assert tables(pg_url) == ["only_here"]
    assert tables(other) == []


def test_drop_database_cuts_open_connections_and_removes_it(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database("t_harness_drop_check")
    with psycopg.connect(url) as conn:  # an open connection does not block the drop
        pg_cluster.drop_database("t_harness_drop_check")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with psycopg.connect(pg_cluster.url("postgres")) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 't_harness_drop_check'"
        ).fetchone()
    assert found == (0,)


def test_stop_cuts_connections_and_start_again_brings_the_server_back(
    pg_cluster: Cluster, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x INT)")
        conn.execute("INSERT INTO kept VALUES (7)")
    held = psycopg.connect(pg_url, autocommit=True)
    try:
        pg_cluster.stop()
        assert not pg_cluster.running
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_url, connect_timeout=3)
    finally:
        held.close()
        pg_cluster.start_again()
    assert pg_cluster.running
    with psycopg.connect(pg_url) as conn:  # same port, same data: committed rows survive
        assert conn.execute("SELECT x FROM kept").fetchall() == [(7,)]


def test_the_server_listens_on_127_0_0_1_only(pg_cluster: Cluster) -> None:
    with psycopg.connect(pg_cluster.url()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW port").fetchone() == (str(pg_cluster.port),)
    with socket.create_connection(("127.0.0.1", pg_cluster.port), timeout=3):
        pass
    # Another loopback address (all of 127/8 is local on Linux) is not listened on.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", pg_cluster.port), timeout=3).close()
    if socket.has_ipv6:
        with pytest.raises(OSError):
            socket.create_connection(("::1", pg_cluster.port), timeout=3).close()


def test_a_cluster_of_its_own_is_stopped_and_removed_on_close() -> None:
    cluster = Cluster.start()
    root, port = cluster.root, cluster.port
    assert (root / "data" / "PG_VERSION").exists()
    assert (root / "sock" / f".s.PGSQL.{port}").exists()
    with psycopg.connect(cluster.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    cluster.close()
    cluster.close()  # twice is harmless
    assert not root.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=3).close()


def test_a_cluster_whose_owner_died_is_swept_by_the_next_start() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    orphan = Cluster.start()
    mine = Cluster.start()
    try:
        assert orphan.root.parent == mine.root.parent
        (orphan.root / "owner").write_text(dead)
        assert sweep(orphan.root.parent) == [orphan.root]
        assert not orphan.root.exists()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", orphan.port), timeout=3).close()
        with psycopg.connect(mine.url()) as conn:  # a live owner's cluster is left alone
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        mine.close()
        orphan.close()


@pytest.mark.slow  # a pytest run of its own each
@pytest.mark.parametrize(
    ("require", "outcome"), [("", "1 skipped"), ("1", "1 error")], ids=["skips", "fails"]
)
def test_without_binaries_pg_tests_skip_unless_postgresql_is_required(
    require: str, outcome: str, tmp_path: Path
) -> None:
    env = {**os.environ, "CHECKOUT_PG_BINDIR": str(tmp_path), "CHECKOUT_REQUIRE_PG": require}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "tests/test_pg_cluster.py::test_the_server_listens_on_127_0_0_1_only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert outcome in done.stdout, done.stdout + done.stderr
    assert (done.returncode == 0) == (require != "1")
    assert f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {tmp_path}" in (
        done.stdout
    )
