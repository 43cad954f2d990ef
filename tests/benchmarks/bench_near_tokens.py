""" "Did you mean": what finding the tokens close to a mistyped one costs on a big store.

    python tests/benchmarks/bench_near_tokens.py [--sizes 10000,100000] [--rounds 20]

For each size, a fresh store (``LocalBackend`` in a temp dir) with one real checkout, copied
with new random tokens to ``size`` checkouts (cancelled, so no cart has two open ones). Timed,
median of ``--rounds``, each through the backend as the CLI calls it:

- ``near``: ``list-checkouts {"near": TYPO, "limit": 3}`` for a one-character typo of a
  token in the store (what a mistyped token costs on top of its not-found answer);
- ``miss``: ``get-checkout-status`` of that typo (the not-found answer itself);
- ``hit``: ``get-checkout-status`` of the right token.

It also counts the rows SQLite's half-token filter lets through to Python (the rest of the
store is never loaded). Target: ``near`` under 50 ms at 10,000 checkouts.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import CUSTOMER, load_fixtures, verdict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from checkout_cli.backends.local import LocalBackend  # noqa: E402
from checkout_cli.engine.core import new_token  # noqa: E402
from checkout_cli.engine.near_tokens import near_clause  # noqa: E402
from checkout_cli.errors import NotFoundError  # noqa: E402


def make_store(root: Path, size: int) -> tuple[LocalBackend, str]:
    backend = LocalBackend(root / "shop.db", actor="bench")
    load_fixtures(backend, root / "outbox")
    item = {"product_sku": "LENS-DAILY-30", "quantity": 1}
    cart = backend.call("shopping-cart", "add-item", item)
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    backend.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    conn = sqlite3.connect(root / "shop.db")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(checkouts)") if r[1] != "id"]
    copied = ", ".join(c for c in columns if c not in ("token", "status"))
    with conn:
        conn.executemany(
            f"INSERT INTO checkouts (token, status, {copied}) "
            f"SELECT ?, 'cancelled', {copied} FROM checkouts WHERE token = ?",
            ((new_token("chk"), token) for _ in range(size - 1)),
        )
    conn.close()
    return backend, token


def median_ms(run: Callable[[], Any], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def passed_filter(db: Path, typed: str) -> int:
    clause, params = near_clause(typed)
    conn = sqlite3.connect(db)
    try:
        sql = "SELECT count(*) FROM checkouts WHERE 1 = 1" + clause
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


def measure(size: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        backend, token = make_store(Path(tmp), size)
        typo = token[:10] + token[11:]  # one character missing

        def near() -> None:
            found = backend.call("checkout-admin", "list-checkouts", {"near": typo, "limit": 3})
            assert [c["checkout_token"] for c in found["checkouts"]] == [token]

        def miss() -> None:
            try:
                backend.call("checkout-flow", "get-checkout-status", {"checkout_token": typo})
            except NotFoundError:
                return
            raise AssertionError("the typo was found")

        def hit() -> None:
            backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})

        near_ms = median_ms(near, rounds)
        print(
            f"{size:>9,} checkouts: near {near_ms:7.2f} ms   miss {median_ms(miss, rounds):6.2f} ms"
            f"   hit {median_ms(hit, rounds):6.2f} ms   rows past the SQL filter: "
            f"{passed_filter(Path(tmp) / 'shop.db', typo)}"
        )
        backend.close()
        return near_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    results = {size: measure(size, args.rounds) for size in map(int, args.sizes.split(","))}
    if 10_000 in results:
        print(f"target near < 50 ms at 10,000: {verdict(results[10_000], 50)}")


if __name__ == "__main__":
    main()
