"""Batch invoicing: throughput against the engine's own in-process flow, and flat memory.

    python tests/benchmarks/bench_batch.py [--orders 10000] [--memory-sizes 1000,10000]
                                           [--skip-throughput] [--skip-memory] [--tracemalloc]

Throughput (one process, this one): ``checkout batch invoice FILE`` run in-process through the
CLI app on ``--orders`` generated orders (validation pass, journal, report and all), and the
same orders through the engine directly (``LocalBackend``: add-item per line,
initiate-checkout, set-customer, create-payment invoice, complete-checkout), each on its own
fresh store, in the same run. The orders are split into ``--chunks`` files and the two take
turns chunk by chunk (the batch journal shared across chunks), so a machine whose load
changes mid-run slows both alike; ``--chunks 1`` is one file of all the orders. Target:
batch orders/s >= 0.8 × engine orders/s.

Memory: for each size a fresh child process ``python -m checkout_cli batch invoice FILE`` on a
fresh store; its peak RSS comes from ``os.wait4``. Target: peak(10,000) <= 1.2 × peak(1,000)
(the file is streamed twice, never held). ``--tracemalloc`` also runs each size in a child
that traces Python allocations (slower) and reports the traced peak.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import isolated_env, load_fixtures, verdict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def orders(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` orders: one tracked-stock line each, every third with a second line."""
    for i in range(start, start + count):
        items = [("LENS-MONTH-6", 1 + i % 3)]
        if i % 3 == 0:
            items.append(("GIFT-CARD-25", 1))
        yield {
            "reference": f"BENCH-{i:06d}",
            "items": items,
            "customer": {"email": f"customer{i}@example.com", "name": f"Customer {i}"},
            "shipping_address": {
                "line1": f"Damrak {i % 500 + 1}",
                "postal_code": "1012 LG",
                "city": "Amsterdam",
                "country": "NL",
            },
        }


def write_file(path: Path, count: int, start: int = 0) -> None:
    from checkout_cli.workflows.batch import REQUIRED  # exactly the required columns

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=REQUIRED)
        writer.writeheader()
        for order in orders(count, start):
            for sku, quantity in order["items"]:
                writer.writerow(
                    {
                        "reference": order["reference"],
                        "product_sku": sku,
                        "quantity": quantity,
                        **order["customer"],
                        **order["shipping_address"],
                    }
                )


def make_store(db: Path) -> None:
    from checkout_cli.backends.local import LocalBackend

    backend = LocalBackend(db, actor="bench")
    load_fixtures(backend, db.parent / f"{db.stem}-outbox")
    backend.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 10**9})
    backend.close()


def engine_flow(db: Path, count: int, start: int = 0) -> float:
    """The same orders straight through the engine; returns seconds."""
    from checkout_cli.backends.local import LocalBackend

    backend = LocalBackend(db, actor="bench")
    flow = "checkout-flow"
    started = time.perf_counter()
    for order in orders(count, start):
        cart = None
        for sku, quantity in order["items"]:
            cart = backend.call(
                "shopping-cart",
                "add-item",
                {
                    "cart_token": cart and cart["cart_token"],
                    "product_sku": sku,
                    "quantity": quantity,
                },
            )
        token = backend.call(flow, "initiate-checkout", {"cart_token": cart["cart_token"]})[
            "checkout_token"
        ]
        backend.call(
            flow,
            "set-customer",
            {
                "checkout_token": token,
                "customer": order["customer"],
                "shipping_address": order["shipping_address"],
            },
        )
        backend.call(flow, "create-payment", {"checkout_token": token, "provider": "invoice"})
        backend.call(flow, "complete-checkout", {"checkout_token": token})
    elapsed = time.perf_counter() - started
    backend.close()
    return elapsed


def batch_in_process(db: Path, source: Path, journal: Path, report: Path) -> float:
    """``checkout batch invoice`` through the CLI app in this process; returns seconds."""
    from checkout_cli.cli.app import app

    args = ["--db", str(db), "--json", "batch", "invoice", str(source)]
    args += ["--journal", str(journal), "--report", str(report)]
    # The summary JSON goes nowhere: it is not part of the figures.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        started = time.perf_counter()
        code = app(args, prog_name="checkout", standalone_mode=False)
        elapsed = time.perf_counter() - started
    if code not in (None, 0):
        raise SystemExit(f"batch failed with exit code {code}")
    return elapsed


def count_orders(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    finally:
        conn.close()


def throughput(root: Path, count: int, chunks: int) -> None:
    """Engine and batch take turns, chunk by chunk, so a busy machine slows both alike."""
    size = -(-count // chunks)
    print(
        f"throughput: {count:,} generated orders in one process, "
        f"{chunks} alternating chunk(s) of <= {size:,}",
        flush=True,
    )
    engine_db, batch_db = root / "engine.db", root / "batch.db"
    make_store(engine_db)
    make_store(batch_db)
    engine_s = batch_s = 0.0
    for number, start in enumerate(range(0, count, size), 1):
        n = min(size, count - start)
        source = root / f"orders-{number}.csv"
        write_file(source, n, start)
        if number % 2:
            engine_s += engine_flow(engine_db, n, start)
            batch_s += batch_in_process(
                batch_db, source, root / "journal.db", root / f"report-{number}.csv"
            )
        else:
            batch_s += batch_in_process(
                batch_db, source, root / "journal.db", root / f"report-{number}.csv"
            )
            engine_s += engine_flow(engine_db, n, start)
        source.unlink()
        print(
            f"  after {start + n:>7,}: engine {(start + n) / engine_s:7.1f} orders/s, "
            f"batch {(start + n) / batch_s:7.1f} orders/s",
            flush=True,
        )
    assert count_orders(engine_db) == count_orders(batch_db) == count
    engine_rate, batch_rate = count / engine_s, count / batch_s
    print(f"  engine in-process flow : {engine_s:8.2f} s  {engine_rate:8.1f} orders/s")
    print(f"  checkout batch invoice : {batch_s:8.2f} s  {batch_rate:8.1f} orders/s")
    ratio = batch_rate / engine_rate
    print(f"  ratio batch/engine     : {ratio:.3f}  (target >= 0.8: {verdict(ratio, 0.8, True)})")


CHILD_TRACEMALLOC = """
import json, sys, tracemalloc
tracemalloc.start()
from checkout_cli.cli.app import app
code = app(sys.argv[1:], prog_name="checkout", standalone_mode=False)
current, peak = tracemalloc.get_traced_memory()
sys.stderr.write(json.dumps({"code": code, "peak": peak}) + "\\n")
"""


def child_peak(command: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    """Run ``command``; (exit status, peak RSS in bytes, stderr) via os.wait4."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        err.seek(0)
        text = err.read().decode(errors="replace")
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(f"    ({elapsed:.1f} s)", flush=True)
    return process.returncode, rss, text


def memory(root: Path, sizes: list[int], traced: bool) -> None:
    print(f"memory: peak of a fresh `checkout batch invoice` process per size {sizes}", flush=True)
    env = isolated_env(root)
    rss: dict[int, int] = {}
    peaks: dict[int, int] = {}
    for size in sizes:
        for mode in ("rss", "tracemalloc") if traced else ("rss",):
            folder = root / f"mem-{size}-{mode}"
            folder.mkdir()
            db, source = folder / "shop.db", folder / "orders.csv"
            make_store(db)
            write_file(source, size)
            args = ["--db", str(db), "batch", "invoice", str(source)]
            args += ["--journal", str(folder / "journal.db")]
            if mode == "rss":
                print(f"  {size:>7,} orders, peak RSS ...", flush=True)
                code, peak, err = child_peak([sys.executable, "-m", "checkout_cli", *args], env)
                assert code == 0, err
                rss[size] = peak
            else:
                print(f"  {size:>7,} orders, tracemalloc ...", flush=True)
                code, _, err = child_peak([sys.executable, "-c", CHILD_TRACEMALLOC, *args], env)
                assert code == 0, err
                peaks[size] = json.loads(err.strip().splitlines()[-1])["peak"]
            assert count_orders(db) == size
    for size in sizes:
        line = f"  {size:>7,} orders: peak RSS {rss[size] / 2**20:7.1f} MiB"
        if size in peaks:
            line += f", Python heap peak (tracemalloc) {peaks[size] / 2**20:6.2f} MiB"
        print(line)
    small, large = min(sizes), max(sizes)
    ratio = rss[large] / rss[small]
    print(f"  RSS ratio {large:,}/{small:,}: {ratio:.3f}  (target <= 1.2: {verdict(ratio, 1.2)})")
    if peaks:
        print(f"  tracemalloc ratio {large:,}/{small:,}: {peaks[large] / peaks[small]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument(
        "--chunks",
        type=int,
        default=10,
        help="files the orders are split into, engine and batch alternating (1: one file)",
    )
    parser.add_argument("--memory-sizes", default="1000,10000")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        os.environ.update(isolated_env(root))  # the in-process CLI's data dir, too
        if not options.skip_throughput:
            throughput(root, options.orders, options.chunks)
        if not options.skip_memory:
            sizes = [int(s) for s in options.memory_sizes.split(",")]
            memory(root, sizes, options.tracemalloc)


if __name__ == "__main__":
    main()
