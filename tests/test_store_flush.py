"""Group commit, seen in the system calls: a durable write commits under the writer lock,
flushes the WAL after releasing it, and returns only once the flush is done; a bookkeeping
write never flushes. Traced with strace on a real store in a subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from checkout_cli.engine.store import Store

    store = Store(sys.argv[1])
    with store.write() as conn:  # the first commit of a new WAL also syncs its header
        conn.execute("INSERT INTO settings (key, value) VALUES ('warm_up', '1')")
    os.write(1, b"opened\\n")
    with store.write() as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES ('durable_probe', '1')")
    os.write(1, b"durable returned\\n")
    with store.write(durable=False) as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES ('bookkeeping_probe', '1')")
    os.write(1, b"bookkeeping returned\\n")
    store.close()
    """
)


ATOMIC_REQUEST = textwrap.dedent(
    """
    import os, sys
    from checkout_cli.engine.store import Store

    store = Store(sys.argv[1])
    with store.write() as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES ('warm_up', '1')")
    os.write(1, b"opened\\n")
    with store.request(lambda conn: None, atomic=True):
        with store.write() as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES ('the_work', '1')")
        with store.write(durable=False) as conn:
            conn.execute("INSERT INTO settings (key, value) VALUES ('the_answer', '1')")
        os.write(1, b"writes done\\n")
    os.write(1, b"request returned\\n")
    store.close()
    """
)


def _trace(
    db: Path, tmp_path: Path, script: str = SCRIPT, last: str = "bookkeeping returned"
) -> list[str]:
    strace = shutil.which("strace")
    if strace is None:  # .ci/run installs it; a developer machine may lack it
        pytest.skip("strace is not installed")
    log = tmp_path / "trace.log"
    traced = ["-f", "-y", "-e", "trace=flock,fsync,fdatasync,write", "-o", str(log)]
    subprocess.run(
        [strace, *traced, sys.executable, "-c", script, str(db)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if '"opened\\n"' in line)
    events = []
    for line in lines[start + 1 :]:
        if m := re.search(r"flock\(\d+<[^>]*-writer\.lock>, (LOCK_EX|LOCK_UN)\)", line):
            events.append(m.group(1))
        elif m := re.search(r"f(?:data)?sync\(\d+<([^>]*)>\)", line):
            events.append("sync " + Path(m.group(1)).name)
        elif m := re.search(r'write\(1<[^>]*>, "([a-z ]+)\\n"', line):
            events.append(m.group(1))
            if m.group(1) == last:
                break  # closing the store checkpoints, which syncs
    return events


@pytest.mark.parametrize("linked", [False, True], ids=["plain", "symlinked"])
def test_a_durable_write_flushes_the_wal_after_the_lock_and_before_returning(tmp_path, linked):
    from checkout_cli.engine.store import Store

    real = tmp_path / "real" / "shop-2024.db"
    Store(real).close()  # created and migrated before the trace
    db = real
    if linked:  # e.g. CHECKOUT_DB=/srv/shop.db -> /data/shop-2024.db: SQLite's WAL is beside
        db = tmp_path / "shop.db"  # the real file, and so is the one flushed
        db.symlink_to(real)
    events = _trace(db, tmp_path)
    assert events == [
        "LOCK_EX",
        "LOCK_UN",  # SQLite's COMMIT itself did not sync: nothing between these two
        "sync shop-2024.db-wal",
        "durable returned",
        "LOCK_EX",
        "LOCK_UN",
        "bookkeeping returned",
    ], events


def test_an_atomic_request_holds_the_lock_once_and_flushes_once_after_it(tmp_path):
    """A served request's writes and its remembered answer: one transaction, one lock, one
    flush after the lock is released (the group commit kept)."""
    from checkout_cli.engine.store import Store

    db = tmp_path / "shop.db"
    Store(db).close()
    events = _trace(db, tmp_path, ATOMIC_REQUEST, "request returned")
    assert events == [
        "LOCK_EX",
        "writes done",
        "LOCK_UN",
        "sync shop.db-wal",
        "request returned",
    ], events
