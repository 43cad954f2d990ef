"""Batch invoicing: throughput against the engine's own in-process flow, and flat memory.

    python tests/benchmarks/bench_batch.py [--orders 10000] [--memory-sizes 1000,10000]
                                           [--skip-throughput] [--skip-memory] [--tracemalloc]
                                           [--store sqlite|postgres|sqlite,postgres]
                                           [--pg-url postgresql://…]

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

With ``--store sqlite,postgres`` both run on each store in the same rounds (PostgreSQL on a
throwaway durable cluster unless ``--pg-url``), and memory is measured on each store.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import isolated_env, load_fixtures, parse_stores, pg_server, verdict

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


def make_store(db: Path | str, outbox: Path) -> None:
    from checkout_cli.backends.local import LocalBackend

    backend = LocalBackend(db, actor="bench")
    load_fixtures(backend, outbox)
    backend.call("product-catalog", "set-stock", {"sku": "LENS-MONTH-6", "stock": 10**9})
    backend.close()


def engine_flow(db: Path | str, count: int, start: int = 0) -> float:
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


def batch_in_process(db: Path | str, source: Path, journal: Path, report: Path) -> float:
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


def count_orders(db: Path | str) -> int:
    from checkout_cli.engine.stores import open_store

    store = open_store(db)
    try:
        return store.conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    finally:
        store.close()


class Stores:
    """Fresh stores of the kinds asked for: SQLite files under ``root``, PostgreSQL databases
    from ``new_database``."""

    def __init__(self, root: Path, new_database: Callable[[str], str] | None) -> None:
        self.root, self.new_database = root, new_database

    def make(self, store: str, name: str) -> Path | str:
        if store == "sqlite":
            target: Path | str = self.root / f"{name}.db"
        else:
            assert self.new_database is not None
            target = self.new_database(name)
        make_store(target, self.root / f"{store}-{name}-outbox")
        return target


def throughput(stores: Stores, kinds: list[str], count: int, chunks: int) -> None:
    """Engine and batch take turns, chunk by chunk (and store by store), so a busy machine
    slows them all alike."""
    root = stores.root
    size = -(-count // chunks)
    print(
        f"throughput: {count:,} generated orders in one process, "
        f"{chunks} alternating chunk(s) of <= {size:,}; stores: {', '.join(kinds)}",
        flush=True,
    )
    targets = {(k, who): stores.make(k, f"{who}") for k in kinds for who in ("engine", "batch")}
    seconds = {key: 0.0 for key in targets}
    for number, start in enumerate(range(0, count, size), 1):
        n = min(size, count - start)
        source = root / f"orders-{number}.csv"
        write_file(source, n, start)
        for kind in kinds:
            runs = ("engine", "batch") if number % 2 else ("batch", "engine")
            for who in runs:
                target = targets[kind, who]
                if who == "engine":
                    seconds[kind, who] += engine_flow(target, n, start)
                else:
                    journal, report = root / f"journal-{kind}.db", root / f"report-{number}.csv"
                    seconds[kind, who] += batch_in_process(target, source, journal, report)
            print(
                f"  {kind:8} after {start + n:>7,}: engine "
                f"{(start + n) / seconds[kind, 'engine']:7.1f} orders/s, batch "
                f"{(start + n) / seconds[kind, 'batch']:7.1f} orders/s",
                flush=True,
            )
        source.unlink()
    rate = {key: count / s for key, s in seconds.items()}
    for kind in kinds:
        assert (
            count_orders(targets[kind, "engine"]) == count_orders(targets[kind, "batch"]) == count
        )
        engine, batch = seconds[kind, "engine"], seconds[kind, "batch"]
        print(
            f"  {kind:8} engine in-process flow : {engine:8.2f} s  {count / engine:8.1f} orders/s"
        )
        print(f"  {kind:8} checkout batch invoice : {batch:8.2f} s  {count / batch:8.1f} orders/s")
        ratio = rate[kind, "batch"] / rate[kind, "engine"]
        print(
            f"  {kind:8} ratio batch/engine     : {ratio:.3f}  "
            f"(target >= 0.8: {verdict(ratio, 0.8, True)})"
        )
    if len(kinds) == 2:
        print(
            "  PostgreSQL / SQLite, batch orders/s: "
            f"{rate['postgres', 'batch'] / rate['sqlite', 'batch']:.2f}x (context)"
        )


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


def memory(stores: Stores, kind: str, sizes: list[int], traced: bool) -> None:
    root = stores.root
    print(
        f"memory ({kind}): peak of a fresh `checkout batch invoice` process per size {sizes}",
        flush=True,
    )
    env = isolated_env(root)
    rss: dict[int, int] = {}
    peaks: dict[int, int] = {}
    for size in sizes:
        for mode in ("rss", "tracemalloc") if traced else ("rss",):
            folder = root / f"mem-{kind}-{size}-{mode}"
            folder.mkdir()
            db, source = stores.make(kind, f"mem_{size}_{mode}"), folder / "orders.csv"
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
    parser.add_argument("--store", default="sqlite", help="sqlite, postgres, or sqlite,postgres")
    parser.add_argument("--pg-url", help="a PostgreSQL server to make databases on")
    options = parser.parse_args()
    kinds = parse_stores(options.store)
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-batch-")))
        os.environ.update(isolated_env(root))  # the in-process CLI's data dir, too
        new_database = None
        if "postgres" in kinds:
            new_database = stack.enter_context(pg_server(options.pg_url))
        stores = Stores(root, new_database)
        if not options.skip_throughput:
            throughput(stores, kinds, options.orders, options.chunks)
        if not options.skip_memory:
            sizes = [int(s) for s in options.memory_sizes.split(",")]
            for kind in kinds:
                memory(stores, kind, sizes, options.tracemalloc)


if __name__ == "__main__":
    main()
