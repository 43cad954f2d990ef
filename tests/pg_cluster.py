"""A throwaway PostgreSQL cluster for tests: made with the system's server binaries in a fresh
temporary directory, run as the ``postgres`` OS user when the tests run as root (the server
refuses to run as root), listening on 127.0.0.1 and a private unix socket directory, with trust
authentication (local test use only) and durability switched off for speed. Stopped with
``pg_ctl stop -m immediate`` and removed at the end, or at interpreter exit at the latest.

No imports from checkout_cli: the harness must work whatever state the package is in.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PG_USER = "postgres"  # the OS user the server runs as when we are root; also the database role
PREFERRED = Path("/usr/lib/postgresql/15/bin")
NEEDED = ("initdb", "pg_ctl", "postgres")
SETTINGS = ("-c max_connections=200",)  # and listen_addresses, the cluster's host
# For tests, durability off. Not synchronous_commit=off: stop() is a crash (-m immediate), and
# commits whose WAL was still in the server's buffers are lost with it, so a test's committed
# write could vanish across a stop and start. With fsync=off a synchronous commit costs one
# write() to the kernel, no flush.
FAST = ("-c fsync=off", "-c full_page_writes=off")
NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ClusterError(RuntimeError):
    """The cluster could not be made, started or stopped; the message holds the server log."""


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in NEEDED)


def find_bindir() -> Path | None:
    """The server binaries' directory: ``CHECKOUT_PG_BINDIR`` alone if set (None if it lacks
    them), else Debian's PostgreSQL 15, ``pg_config --bindir``, the newest
    /usr/lib/postgresql/*/bin."""
    if os.environ.get("CHECKOUT_PG_BINDIR"):
        chosen = Path(os.environ["CHECKOUT_PG_BINDIR"])
        return chosen if _has_binaries(chosen) else None
    candidates: list[Path] = [PREFERRED]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))

    def version(path: str) -> tuple[int, ...]:
        found = re.search(r"/postgresql/([0-9.]+)/bin$", path)
        return tuple(int(p) for p in found.group(1).split(".") if p) if found else ()

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    ]
    return next((c for c in candidates if _has_binaries(c)), None)


def _as_root() -> bool:
    return os.geteuid() == 0


def available() -> str | None:
    """Why a cluster cannot run here, or None when it can."""
    if find_bindir() is None:
        where = os.environ.get("CHECKOUT_PG_BINDIR") or (
            f"{PREFERRED}, `pg_config --bindir` or /usr/lib/postgresql/*/bin"
        )
        return f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {where}"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if _as_root():
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no {PG_USER!r} OS user to run the server as"
        if shutil.which("runuser") is None:
            return f"running as root and there is no runuser to run the server as {PG_USER!r}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(base_dir: str | Path) -> list[Path]:
    """Stop and remove the clusters under ``base_dir`` whose owning process has died (a test run
    killed before its atexit ran leaves its server running); returns their directories."""
    swept: list[Path] = []
    for owner_file in Path(base_dir).glob("pgtest-*/owner"):
        root = owner_file.parent
        try:
            owner = int(owner_file.read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        bindir = find_bindir()
        if bindir is not None:
            stale = Cluster(bindir, root, 0)
            stale.running = True
            stale.close()
        else:
            shutil.rmtree(root, ignore_errors=True)
        swept.append(root)
    return swept


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


class Cluster:
    """One running (or stopped) server in its own directory. Make it with :meth:`start`."""

    def __init__(
        self,
        bindir: Path,
        root: Path,
        port: int,
        *,
        durable: bool = False,
        host: str = "127.0.0.1",
        netns: str | None = None,
    ) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sockdir = root / "sock"
        self.log = root / "server.log"
        self.port = port
        self.host = host
        self.netns = netns  # the network namespace the server runs in (`ip netns exec`)
        self.settings = SETTINGS if durable else (*SETTINGS, *FAST)
        self.running = False
        self.startup_seconds = 0.0  # initdb plus the first start, for reports
        self._closed = False

    # -- making and running ---------------------------------------------------------------

    @classmethod
    def start(
        cls,
        base_dir: str | Path | None = None,
        *,
        durable: bool = False,
        host: str = "127.0.0.1",
        netns: str | None = None,
    ) -> Cluster:
        """initdb into a fresh directory under ``base_dir`` (the temp dir by default), then start
        the server on a free port. Raises ClusterError if it cannot. ``durable`` keeps fsync on,
        as a real server runs (the benchmarks); tests run without it, for speed. ``host``: the
        one address it listens on; ``netns``: the network namespace it runs in, which must
        hold that address (the free port is then picked on loopback here, free there too)."""
        reason = available()
        if reason:
            raise ClusterError(reason)
        bindir = find_bindir()
        assert bindir is not None
        began = time.monotonic()
        base = Path(base_dir or tempfile.gettempdir())
        if _as_root() and not _traversable_by_others(base):
            base = Path("/tmp")  # the postgres user must reach its own directory
        sweep(base)
        root = Path(tempfile.mkdtemp(prefix="pgtest-", dir=base))
        cluster = cls(bindir, root, free_port(), durable=durable, host=host, netns=netns)
        atexit.register(cluster.close)
        try:
            (root / "owner").write_text(str(os.getpid()))
            cluster.sockdir.mkdir()
            if _as_root():
                user = pwd.getpwnam(PG_USER)
                for path in (root, cluster.sockdir):
                    os.chown(path, user.pw_uid, user.pw_gid)
            cluster._run(
                "initdb",
                "-D",
                str(cluster.data),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            if host != "127.0.0.1":  # clients on the host's own subnets (test use only)
                with (cluster.data / "pg_hba.conf").open("a") as hba:
                    hba.write("host all all samenet trust\n")
            for attempt in range(3):  # another process may take the free port before we do
                try:
                    cluster.start_again()
                    break
                except ClusterError:
                    if attempt == 2 or "could not bind" not in cluster._log_tail():
                        raise
                    cluster.port = free_port()
        except BaseException:
            cluster.close()
            raise
        cluster.startup_seconds = time.monotonic() - began
        return cluster

    def start_again(self) -> None:
        """Start the (stopped) server again on the same port and directory."""
        listen = f"-c listen_addresses={self.host}"
        options = " ".join((*self.settings, listen, f"-p {self.port}", f"-k {self.sockdir}"))
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
            "-o", options,
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``): every open connection is cut."""
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start_again()

    def close(self) -> None:
        """Stop the server if it runs and remove its directory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.data.is_dir() and (self.running or (self.data / "postmaster.pid").exists()):
                self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        except ClusterError:
            pass
        finally:
            self.running = False
            shutil.rmtree(self.root, ignore_errors=True)
            atexit.unregister(self.close)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- databases --------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """A psycopg connection to ``dbname`` (autocommit unless told otherwise)."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.url(dbname), **kwargs)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name`` (lower-case letters, digits, underscores); returns its URL."""
        from psycopg import sql

        _check_name(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE ``name`` if it exists, cutting any connection still open to it."""
        from psycopg import sql

        _check_name(name)
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if _as_root():
            command = ["runuser", "-u", PG_USER, "--", *command]
        if self.netns is not None:  # the server pg_ctl starts stays in the namespace
            command = ["ip", "netns", "exec", self.netns, *command]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{program} {' '.join(args[:2])} failed ({done.returncode}): "
                f"{done.stdout}{done.stderr}\n--- server log ---\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ValueError(f"not a plain database name: {name!r}")
