"""Batch invoicing survives being killed: SIGKILL at random points and Ctrl-C, then resume.

Afterwards every reference has exactly one order and `checkout doctor` finds no violation.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkout_cli.backends.local import LocalBackend
from checkout_cli.workflows.batch import COLUMNS
from tests.conftest import WATCH, load_fixtures
from tests.test_batch import copy_store, restore_store

pytestmark = pytest.mark.slow


def make_store(db: Path) -> None:
    local = LocalBackend(db, actor="test")
    load_fixtures(local)
    # Tracked stock for every order (so the stock ledger is checked), plenty of it.
    local.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 10_000})
    local.close()


def make_file(path: Path, count: int) -> list[str]:
    """``count`` orders, every third with a second line; returns the references."""
    references = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for i in range(count):
            reference = f"CRASH-{i:05d}"
            references.append(reference)
            base = {
                "reference": reference,
                "email": f"customer{i}@example.com",
                "name": f"Customer {i}",
                "line1": f"Damrak {i + 1}",
                "postal_code": "1012 LG",
                "city": "Amsterdam",
                "country": "NL",
            }
            writer.writerow({**base, "product_sku": "LENS-MONTH-6", "quantity": 1 + i % 3})
            if i % 3 == 0:
                writer.writerow({**base, "product_sku": "GIFT-CARD-25", "quantity": 1})
    return references


def batch_command(db: Path, source: Path, journal: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "checkout_cli",
        "--db",
        str(db),
        "batch",
        "invoice",
        str(source),
        "--journal",
        str(journal),
    ]


def start(command: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "NO_COLOR": "1"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def journal_done(journal: Path) -> int:
    if not journal.exists():
        return 0
    conn = sqlite3.connect(journal, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM refs WHERE order_number IS NOT NULL").fetchone()[
            0
        ]
    except sqlite3.OperationalError:  # the table is not there yet
        return 0
    finally:
        conn.close()


def check_exactly_one_order_each(db: Path, journal: Path, references: list[str]) -> None:
    conn = sqlite3.connect(journal)
    try:
        tokens = dict(conn.execute("SELECT reference, checkout_token FROM refs"))
    finally:
        conn.close()
    assert sorted(tokens) == sorted(references)
    assert all(tokens.values())
    store = sqlite3.connect(db)
    try:
        per_checkout = dict(
            store.execute(
                "SELECT c.token, COUNT(o.id) FROM checkouts c "
                "LEFT JOIN orders o ON o.checkout_id = c.id GROUP BY c.id"
            )
        )
        total = store.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        ordered = store.execute(
            "SELECT COALESCE(SUM(quantity), 0) FROM order_lines WHERE product_sku = 'LENS-MONTH-6'"
        ).fetchone()[0]
        stock = store.execute("SELECT stock FROM products WHERE sku = 'LENS-MONTH-6'").fetchone()[0]
    finally:
        store.close()
    assert {ref: per_checkout.get(tokens[ref]) for ref in references} == dict.fromkeys(
        references, 1
    )
    assert total == len(references)
    assert stock == 10_000 - ordered
    assert ordered == sum(1 + i % 3 for i in range(len(references)))


def doctor(db: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "checkout_cli", "--db", str(db), "--json", "doctor"],
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    WATCH.seen("checkout doctor", result.stdout + result.stderr)
    return result


def test_sigkill_at_random_points_then_resume_makes_each_order_once(tmp_path):
    db, source, journal = tmp_path / "shop.db", tmp_path / "orders.csv", tmp_path / "journal.db"
    make_store(db)
    references = make_file(source, 150)
    command = batch_command(db, source, journal)
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    kills, progress = 0, [0]
    while kills < 5:
        # Kill after a random number of further orders, then a random moment into the next
        # one (cart, checkout, customer, payment, completion, email, journal): anywhere.
        target = progress[-1] + rng.randint(3, 25)
        pause = rng.uniform(0, 0.03)
        process = start(command, tmp_path)
        deadline = time.monotonic() + 60
        while journal_done(journal) < target and process.poll() is None:
            assert time.monotonic() < deadline, f"no progress (seed {seed})"
            time.sleep(0.005)
        time.sleep(pause)
        if process.poll() is not None:  # finished before the kill: nothing left to crash
            break
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        kills += 1
        progress.append(journal_done(journal))
    assert kills >= 4, f"only {kills} kills landed (seed {seed}, progress {progress})"
    assert progress[-1] < len(references), f"nothing left to resume (seed {seed})"
    final = start([*command[:3], "--json", *command[3:]], tmp_path)
    out, err = final.communicate(timeout=120)
    WATCH.seen("checkout batch invoice", out + err)
    assert final.returncode == 0, err
    counts = json.loads(out)["counts"]
    assert counts["failed"] == 0 and counts["skipped_invalid"] == 0
    assert counts["created"] + counts["already_done"] == len(references)
    assert counts["already_done"] >= progress[-1]
    check_exactly_one_order_each(db, journal, references)
    checked = doctor(db, tmp_path)
    assert checked.returncode == 0, (seed, checked.stdout, checked.stderr)
    assert json.loads(checked.stdout)["violations"] == []


def test_ctrl_c_exits_130_says_how_to_resume_and_the_resume_completes(tmp_path):
    db, source, journal = tmp_path / "shop.db", tmp_path / "orders.csv", tmp_path / "journal.db"
    make_store(db)
    references = make_file(source, 60)
    command = batch_command(db, source, journal)
    process = start(command, tmp_path)
    deadline = time.monotonic() + 30
    while journal_done(journal) < 3:  # interrupt mid-run, after some orders
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    WATCH.seen("checkout batch invoice (interrupted)", err)
    assert process.returncode == 130, err
    assert "run the same command again to resume" in err
    assert err.count("interrupted") == 1, err
    assert str(journal) in err
    assert "Traceback" not in err
    done = journal_done(journal)
    assert 3 <= done < len(references)
    resumed = subprocess.run(
        [*command[:3], "--json", *command[3:]],
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    counts = json.loads(resumed.stdout)["counts"]
    assert counts["created"] + counts["already_done"] == len(references)
    assert counts["already_done"] >= done
    check_exactly_one_order_each(db, journal, references)
    assert doctor(db, tmp_path).returncode == 0


# -- one run of a file into a store at a time -----------------------------------------------------


def orders_per_reference(db: Path) -> dict[str, int]:
    """Orders per reference, by the customer email each reference's rows carry."""
    store = sqlite3.connect(db)
    try:
        per_email = dict(
            store.execute(
                "SELECT json_extract(customer, '$.email'), COUNT(*) FROM orders GROUP BY 1"
            )
        )
    finally:
        store.close()
    return {f"CRASH-{int(email[8:].split('@')[0]):05d}": n for email, n in per_email.items()}


def test_two_runs_started_together_make_each_order_once(tmp_path):
    db, source = tmp_path / "shop.db", tmp_path / "orders.csv"
    make_store(db)
    references = make_file(source, 200)
    # The default journal, as an operator runs it.
    command = [sys.executable, "-m", "checkout_cli", "--db", str(db), "--json"]
    command += ["batch", "invoice", str(source)]
    first, second = start(command, tmp_path), start(command, tmp_path)
    results = {p.pid: (p, *p.communicate(timeout=120)) for p in (first, second)}
    for _, out, err in results.values():
        WATCH.seen("checkout batch invoice (two at once)", out + err)
    codes = sorted(p.returncode for p, _, _ in results.values())
    assert codes == [0, 6], [err for _, _, err in results.values()]
    [(winner, out, _)] = [r for r in results.values() if r[0].returncode == 0]
    [(_, _, refused)] = [r for r in results.values() if r[0].returncode == 6]
    assert json.loads(out)["counts"]["created"] == len(references)
    error = json.loads(refused.strip().splitlines()[-1])["error_object"]
    assert error["code"] == "batch_in_progress"
    assert f"{source} into this store" in error["message"]
    assert f"pid {winner.pid} on host " in error["message"] and ", started 20" in error["message"]
    assert "--wait" in error["recovery"]
    assert orders_per_reference(db) == dict.fromkeys(references, 1)
    assert doctor(db, tmp_path).returncode == 0


def wait_for_progress(process: subprocess.Popen, journal: Path, done: int) -> None:
    deadline = time.monotonic() + 60
    while journal_done(journal) < done:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)


def test_a_second_run_is_refused_whatever_its_journal_or_waits_with_wait(tmp_path):
    db, source, journal = tmp_path / "shop.db", tmp_path / "orders.csv", tmp_path / "journal.db"
    make_store(db)
    references = make_file(source, 100)
    command = batch_command(db, source, journal)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "NO_COLOR": "1"}
    running = start(command, tmp_path)
    wait_for_progress(running, journal, 5)
    running.send_signal(signal.SIGSTOP)  # mid-run, lock held, for as long as the test needs
    try:
        # Another journal does not make it another run: the same file into the same store.
        other = tmp_path / "other-journal.db"
        refused = subprocess.run(
            batch_command(db, source, other), env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 6, refused.stderr
        assert refused.stderr.count("\n") == 1
        assert refused.stderr.startswith(f"error: another batch run is at work on {source}")
        assert f"pid {running.pid} on host" in refused.stderr
        assert not other.exists()  # refused before its journal was made
        talk = tmp_path / "waiting.err"
        with talk.open("w") as err_file:
            waiting = subprocess.Popen(
                [*command[:3], "--json", *command[3:], "--wait"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=err_file,
                text=True,
            )
        deadline = time.monotonic() + 60
        while "waiting for" not in talk.read_text():
            assert waiting.poll() is None, talk.read_text()
            assert time.monotonic() < deadline, "no word of waiting"
            time.sleep(0.02)
        said = talk.read_text()
        assert f"waiting for the run at work on {source} into this store (pid {running.pid}" in said
        time.sleep(0.3)
        assert waiting.poll() is None  # it waits, and does nothing meanwhile
    finally:
        running.send_signal(signal.SIGCONT)
    _, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    out, _ = waiting.communicate(timeout=120)
    WATCH.seen("checkout batch invoice --wait", out + talk.read_text())
    assert waiting.returncode == 0, talk.read_text()
    assert json.loads(out)["counts"]["already_done"] == len(references)
    check_exactly_one_order_each(db, journal, references)


# -- the store restored from a backup taken at any moment of a run ---------------------------------


def test_restoring_a_backup_taken_at_any_moment_then_rerunning_makes_each_order_once(tmp_path):
    db, source, journal = tmp_path / "shop.db", tmp_path / "orders.csv", tmp_path / "journal.db"
    make_store(db)
    references = make_file(source, 150)
    command = batch_command(db, source, journal)
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    backups: list[tuple[Path, int]] = []
    process = start(command, tmp_path)
    for number, target in enumerate(sorted(rng.sample(range(5, 140), 3))):
        wait_for_progress(process, journal, target)
        time.sleep(rng.uniform(0, 0.03))  # anywhere inside the next order
        backup = tmp_path / f"backup-{number}.db"
        copy_store(db, backup)
        backups.append((backup, orders_count(backup)))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    # Latest first: each backup restored is then older than all the journal has seen.
    for backup, in_backup in reversed(backups):
        restore_store(backup, db)
        rerun = start([*command[:3], "--json", *command[3:]], tmp_path)
        out, err = rerun.communicate(timeout=120)
        WATCH.seen("checkout batch invoice (after a restore)", out + err)
        assert rerun.returncode == 0, (seed, err)
        result = json.loads(out)
        assert result["counts"]["created"] == len(references) - in_backup, seed
        assert result["remade"] == len(references) - in_backup, seed
        check_exactly_one_order_each(db, journal, references)
        assert doctor(db, tmp_path).returncode == 0, seed


def orders_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    finally:
        conn.close()
