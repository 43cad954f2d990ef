"""A PostgreSQL store reached by libpq's own conventions: the password from the URL,
PGPASSWORD, PGPASSFILE or ~/.pgpass, and TLS by ``sslmode``. A cluster of its own (password
authentication for one role, TLS with a certificate from a throwaway CA) so the other tests'
cluster stays as it is. A wrong password or an unverifiable certificate is exit 6 in one line
that never shows the password."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pg_cluster import PG_USER, Cluster, ClusterError, available

ROLE = "shopper"
PASSWORD = "correct-horse-7Q"  # test-only; asserted absent from every output
DATABASE = "shopdb"


@dataclass(frozen=True)
class Secured:
    cluster: Cluster
    ca_file: Path  # the CA that signed the server's certificate
    other_ca_file: Path  # a CA that did not

    def url(self, *, password: str | None = None, host: str = "127.0.0.1", query: str = "") -> str:
        auth = f"{ROLE}:{password}" if password is not None else ROLE
        tail = f"?{query}" if query else ""
        return f"postgresql://{auth}@{host}:{self.cluster.port}/{DATABASE}{tail}"


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(PG_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    reason = available()
    if reason:
        if os.environ.get("CHECKOUT_REQUIRE_PG") == "1":
            pytest.fail(f"CHECKOUT_REQUIRE_PG=1 but PostgreSQL cannot run: {reason}")
        pytest.skip(f"PostgreSQL: {reason}")
    import trustme

    try:
        cluster = Cluster.start()
    except ClusterError as exc:
        pytest.fail(f"the PostgreSQL test cluster did not start: {exc}")
    try:
        ca, other = trustme.CA(), trustme.CA()
        server = ca.issue_cert("localhost", "127.0.0.1")
        for name, blob in (
            ("server.crt", server.cert_chain_pems[0]),
            ("server.key", server.private_key_pem),
        ):
            target = cluster.data / name
            blob.write_to_path(str(target))
            target.chmod(0o600)
            _own(target)
        files = tmp_path_factory.mktemp("tls")
        ca_file, other_ca_file = files / "ca.pem", files / "other-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        other.cert_pem.write_to_path(str(other_ca_file))
        hba = cluster.data / "pg_hba.conf"  # first match wins: the role needs its password
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with cluster.connect() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")
        yield Secured(cluster, ca_file, other_ca_file)
    finally:
        cluster.close()


def checkout(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``checkout ARGS`` as its own process: libpq reads HOME and the PG* variables there."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKOUT_", "PG"))}
    clean |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}
    clean |= {"XDG_DATA_HOME": str(home / "data"), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "checkout_cli", *args],
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_no_password(done: subprocess.CompletedProcess) -> None:
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def made(secured: Secured, tmp_path_factory: pytest.TempPathFactory) -> Secured:
    """The shop's store, made once through the URL's password."""
    home = tmp_path_factory.mktemp("maker")
    done = checkout(home, "--db", secured.url(password=PASSWORD), "init", "--project-id", "shop-nl")
    assert done.returncode == 0, done.stderr
    assert_no_password(done)
    return secured


def status_ok(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "current"
    assert_no_password(done)


def test_the_password_in_the_url(made: Secured, tmp_path: Path) -> None:
    status_ok(checkout(tmp_path, "--db", made.url(password=PASSWORD), "--json", "db", "status"))


def test_the_password_from_pgpassword(made: Secured, tmp_path: Path) -> None:
    done = checkout(
        tmp_path, "--db", made.url(), "--json", "db", "status", env={"PGPASSWORD": PASSWORD}
    )
    status_ok(done)


def test_the_password_from_pgpassfile(made: Secured, tmp_path: Path) -> None:
    passfile = tmp_path / "shop.pgpass"
    passfile.write_text(f"127.0.0.1:{made.cluster.port}:{DATABASE}:{ROLE}:{PASSWORD}\n")
    passfile.chmod(0o600)
    done = checkout(
        tmp_path, "--db", made.url(), "--json", "db", "status", env={"PGPASSFILE": str(passfile)}
    )
    status_ok(done)


def test_the_password_from_the_home_pgpass(made: Secured, tmp_path: Path) -> None:
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"*:{made.cluster.port}:*:{ROLE}:{PASSWORD}\n")
    pgpass.chmod(0o600)
    status_ok(checkout(tmp_path, "--db", made.url(), "--json", "db", "status"))


@pytest.mark.parametrize("how", ["url", "PGPASSWORD", "none"])
def test_a_wrong_or_missing_password_is_exit_6_and_never_shown(
    made: Secured, tmp_path: Path, how: str
) -> None:
    wrong = "Wrong-" + PASSWORD
    url = made.url(password=wrong) if how == "url" else made.url()
    env = {"PGPASSWORD": wrong} if how == "PGPASSWORD" else {}
    done = checkout(tmp_path, "--db", url, "db", "status", env=env)
    assert done.returncode == 6, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "password" in lines[0]
    assert "PGPASSWORD" in lines[0]  # the hint names where a password comes from
    assert wrong not in done.stdout + done.stderr
    assert_no_password(done)


def test_sslmode_require_encrypts_the_connection(made: Secured, tmp_path: Path) -> None:
    status_ok(
        checkout(
            tmp_path,
            "--db",
            made.url(password=PASSWORD, query="sslmode=require"),
            "--json",
            "db",
            "status",
        )
    )
    import psycopg

    with psycopg.connect(made.url(password=PASSWORD, query="sslmode=require")) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)


def test_sslmode_verify_full_checks_the_server_certificate(made: Secured, tmp_path: Path) -> None:
    trusted = f"sslmode=verify-full&sslrootcert={made.ca_file}"
    done = checkout(
        tmp_path,
        "--db",
        made.url(password=PASSWORD, host="localhost", query=trusted),
        "--json",
        "db",
        "status",
    )
    status_ok(done)
    untrusted = f"sslmode=verify-full&sslrootcert={made.other_ca_file}"
    refused = checkout(
        tmp_path,
        "--db",
        made.url(password=PASSWORD, host="localhost", query=untrusted),
        "db",
        "status",
    )
    assert refused.returncode == 6, (refused.stdout, refused.stderr)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate" in lines[0]
    assert "sslrootcert" in lines[0]
    assert_no_password(refused)
