"""Several OS processes on one store file at once: each completes the same checkouts (or
initiates on the same cart) in its own order. A busy store must make a writer wait, never
fail it, and nothing may happen twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import ready_checkout
from tests.engine_helpers import assert_invariants, cart_with, invoice, query, scalar, stock

PROCESSES = 4
CHECKOUTS = 50
REPO = Path(__file__).resolve().parent.parent

# One worker: open the store, say ready, wait for the start signal, then call the endpoint for
# every token in its own shuffled order; print what each call returned as JSON.
WORKER = r"""
import json, random, sys, time
from pathlib import Path

from checkout_cli.backends.local import LocalBackend
from checkout_cli.config import store_target

db, tokens_file, ready_dir, go_file, seed, action = sys.argv[1:7]
tokens = json.loads(Path(tokens_file).read_text())
random.Random(int(seed)).shuffle(tokens)
backend = LocalBackend(store_target(db), actor=f"worker-{seed}")
backend.engine  # open the store and import the engine before the start
Path(ready_dir, seed).touch()
deadline = time.monotonic() + 30
while not Path(go_file).exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.001)
results = []
for token in tokens:
    if action == "complete":
        done = backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})
        results.append({
            "token": token,
            "order_number": done["order"]["order_number"],
            "already_completed": done["already_completed"],
        })
    else:
        co = backend.call("checkout-flow", "initiate-checkout", {"cart_token": token})
        results.append({"token": co["checkout_token"], "reused": co["reused"]})
backend.close()
print(json.dumps(results))
"""


def run_at_once(db_path: Path, tokens: list[str], action: str, tmp: Path) -> list[list[dict]]:
    """Start ``PROCESSES`` workers, release them together, return each one's results."""
    tokens_file = tmp / f"{action}-tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    ready_dir = tmp / f"{action}-ready"
    ready_dir.mkdir()
    go_file = tmp / f"{action}-go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(db_path),
                str(tokens_file),
                str(ready_dir),
                str(go_file),
                str(seed),
                action,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(list(ready_dir.iterdir())) < PROCESSES:
            failed = [w for w in workers if w.poll() not in (None, 0)]
            assert not failed, failed[0].communicate()[1]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        go_file.touch()
        outputs = [w.communicate(timeout=45) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    return [json.loads(stdout) for stdout, _ in outputs]


def test_processes_complete_the_same_checkouts_once(backend, tmp_path):
    tokens = []
    for i in range(CHECKOUTS):
        items = [("LENS-DAILY-30", 1), ("GIFT-CARD-25", 1)]
        if i % 2 == 0:
            items.append(("CASE-TRAVEL", 1))  # backorder: ends below zero
        if i < 40:
            items.append(("LENS-MONTH-6", 1))  # exactly the 40 in stock
        token = ready_checkout(backend, items)
        invoice(backend, token)
        tokens.append(token)
    backend.close()  # the workers are the only users while they run

    results = run_at_once(backend.db_path, tokens, "complete", tmp_path)

    # Every process got an answer for every checkout, and they all agree on its order.
    numbers: dict[str, set[str]] = {}
    for per_process in results:
        assert sorted(r["token"] for r in per_process) == sorted(tokens)
        for r in per_process:
            numbers.setdefault(r["token"], set()).add(r["order_number"])
    assert all(len(found) == 1 for found in numbers.values())
    # Each checkout was completed by exactly one process; the others saw it done.
    fresh = Counter(r["token"] for p in results for r in p if not r["already_completed"])
    assert fresh == Counter(tokens)
    year = datetime.now(UTC).year
    assert sorted(n for (n,) in map(tuple, numbers.values())) == [
        f"{year}-{i:06d}" for i in range(1, CHECKOUTS + 1)
    ]

    db = backend.db_path
    assert scalar(db, "SELECT COUNT(*) FROM orders") == CHECKOUTS
    assert scalar(db, "SELECT COUNT(*) FROM checkouts WHERE status = 'completed'") == CHECKOUTS
    assert stock(backend, "LENS-DAILY-30") == 100 - CHECKOUTS
    assert stock(backend, "LENS-MONTH-6") == 0
    assert stock(backend, "CASE-TRAVEL") == 2 - CHECKOUTS // 2
    assert stock(backend, "GIFT-CARD-25") is None
    assert query(db, "SELECT kind, status, COUNT(*) FROM outbox GROUP BY kind, status") == [
        ("order_confirmation", "sent", CHECKOUTS)
    ]
    assert len(list(backend.outbox_dir.glob("*.eml"))) == CHECKOUTS
    assert scalar(db, "SELECT COUNT(*) FROM events WHERE kind = 'checkout_completed'") == CHECKOUTS
    # They really ran side by side: more than one process completed some of them.
    actors = query(db, "SELECT DISTINCT actor FROM events WHERE kind = 'checkout_completed'")
    assert len(actors) > 1
    assert_invariants(db)


def test_processes_initiate_on_the_same_cart_get_one_checkout(backend, tmp_path):
    carts = [cart_with(backend, [("LENS-DAILY-30", 1), ("CASE-TRAVEL", 1)]) for _ in range(3)]
    backend.close()

    results = run_at_once(backend.db_path, carts, "initiate", tmp_path)

    db = backend.db_path
    for cart in carts:
        rows = query(
            db,
            "SELECT c.token FROM checkouts c JOIN carts k ON k.id = c.cart_id WHERE k.token = ?",
            (cart,),
        )
        assert len(rows) == 1  # one checkout per cart, however many processes asked
        answers = [r for p in results for r in p if r["token"] == rows[0][0]]
        assert len(answers) == PROCESSES  # every process got that same token back
        assert sorted(r["reused"] for r in answers) == [False] + [True] * (PROCESSES - 1)
    assert scalar(db, "SELECT COUNT(*) FROM checkouts") == len(carts)
    assert_invariants(db)
