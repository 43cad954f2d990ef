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
