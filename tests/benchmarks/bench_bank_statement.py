"""Bank statements in bulk: ``checkout batch payments`` lines/s beside ``batch invoice``
orders/s in the same run, and flat memory.

    python tests/benchmarks/bench_bank_statement.py [--lines 10000] [--orders 10000]
        [--invoice-orders 2000] [--chunks 5] [--memory-sizes 1000,10000]
        [--skip-throughput] [--skip-memory] [--tracemalloc]

The store: ``--orders`` open invoice orders. One is made through the checkout flow; the rest
are copies of its rows (checkout, order, lines) made directly in SQL with their own tokens and
order numbers, because the flow makes ~100 orders/s and setup is not what is measured.

Throughput (one process, this one): a generated statement of ``--lines`` lines (CSV, Dutch
amounts "1.234,56"; 80 % pay an order's balance, 10 % pay half of one, 5 % name no order,
5 % are debits) run in-process through the CLI app with a ``--report``, split into
``--chunks`` files; between the chunks, ``checkout batch invoice`` runs on its share of
``--invoice-orders`` generated orders on its own store, so a machine whose load changes
mid-run slows both alike. Printed: lines/s, orders/s, and seconds per line over seconds per
invoiced order.

Memory: for each size a fresh child ``python -m checkout_cli batch payments FILE`` on a copy
of the same 10,000-order store; its peak RSS from ``os.wait4``. Target: peak(10,000 lines)
<= 1.2 × peak(1,000 lines): the statement is streamed (a counting pass, then the run), never
held. ``--tracemalloc`` also runs each size in a child that traces Python allocations.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench_batch import CHILD_TRACEMALLOC, child_peak, write_file
from bench_batch import make_store as make_invoice_store
from common import invoice_flow, isolated_env, load_fixtures, verdict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_orders_store(db: Path, count: int) -> list[tuple[str, int]]:
    """A store with ``count`` open invoice orders; returns (order number, total) of each."""
    from checkout_cli.backends.local import LocalBackend

    backend = LocalBackend(db, actor="bench")
    load_fixtures(backend, db.parent / f"{db.stem}-outbox")
    backend.call("checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": True})
    first = invoice_flow(backend, "GIFT-CARD-25", 1)["order"]["order_number"]
    backend.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.row_factory = sqlite3.Row
        order = conn.execute("SELECT * FROM orders WHERE order_number = ?", (first,)).fetchone()
        checkout = conn.execute(
            "SELECT * FROM checkouts WHERE id = ?", (order["checkout_id"],)
        ).fetchone()
        lines = conn.execute(
            "SELECT * FROM order_lines WHERE order_id = ?", (order["id"],)
        ).fetchall()
        year = first.split("-")[0]
        co_cols = [k for k in checkout.keys() if k != "id"]  # noqa: SIM118 (a Row)
        or_cols = [k for k in order.keys() if k != "id"]  # noqa: SIM118
        li_cols = [k for k in lines[0].keys() if k not in ("id", "order_id")]  # noqa: SIM118
        for n in range(2, count + 1):
            co = dict(checkout)
            co["token"] = f"chk_bench{n:08d}"
            cur = conn.execute(
                f"INSERT INTO checkouts ({', '.join(co_cols)}) "
                f"VALUES ({', '.join('?' * len(co_cols))})",
                [co[k] for k in co_cols],
            )
            row = dict(order)
            # Totals differ from order to order, so amounts alone rarely single one out.
            row.update(
                order_id=f"ord_bench{n:08d}",
                order_number=f"{year}-{n:06d}",
                checkout_id=cur.lastrowid,
                total_cents=order["total_cents"] + n,
                subtotal_cents=order["subtotal_cents"] + n,
            )
            cur = conn.execute(
                f"INSERT INTO orders ({', '.join(or_cols)}) "
                f"VALUES ({', '.join('?' * len(or_cols))})",
                [row[k] for k in or_cols],
            )
            conn.executemany(
                f"INSERT INTO order_lines (order_id, {', '.join(li_cols)}) "
                f"VALUES (?, {', '.join('?' * len(li_cols))})",
                [[cur.lastrowid, *(line[k] for k in li_cols)] for line in lines],
            )
        conn.execute(
            "UPDATE counters SET value = ? WHERE name = ?", (count, f"order_number:{year}")
        )
        made = [
            (r[0], r[1])
            for r in conn.execute("SELECT order_number, total_cents FROM orders ORDER BY id")
        ]
    conn.close()
    return made


def dutch(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return f"{whole:,}".replace(",", ".") + f",{part:02d}"


def write_statement(path: Path, orders: list[tuple[str, int]], count: int, start: int = 0) -> None:
    """``count`` statement lines from line ``start`` on, one order per line (cycling)."""
    with path.open("w", encoding="utf-8") as out:
        out.write("date;amount;currency;counterparty;description;bank_id\n")
        for i in range(start, start + count):
            number, total = orders[i % len(orders)]
            kind = i % 20
            if kind == 0:
                amount, text = f"-{dutch(1200 + i)}", "fees"
            elif kind == 1:
                amount, text = dutch(7 + i), f"donation {i}"
            elif kind in (2, 3):
                amount, text = dutch(total // 2), f"half of order {number}"
            else:
                amount, text = dutch(total), f"Invoice {number} thank you"
            out.write(f"2026-12-01;{amount};EUR;Customer {i};{text};BANK-{i:08d}\n")


def payments_in_process(db: Path, source: Path, report: Path) -> float:
    from checkout_cli.cli.app import app

    args = ["--db", str(db), "--json", "batch", "payments", str(source), "--report", str(report)]
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        started = time.perf_counter()
        code = app(args, prog_name="checkout", standalone_mode=False)
        elapsed = time.perf_counter() - started
    if code not in (None, 0):
        raise SystemExit(f"batch payments failed with exit code {code}")
    return elapsed


def invoice_in_process(db: Path, source: Path, journal: Path, report: Path) -> float:
    from checkout_cli.cli.app import app

    args = ["--db", str(db), "--json", "batch", "invoice", str(source)]
    args += ["--journal", str(journal), "--report", str(report)]
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        started = time.perf_counter()
        code = app(args, prog_name="checkout", standalone_mode=False)
        elapsed = time.perf_counter() - started
    if code not in (None, 0):
        raise SystemExit(f"batch invoice failed with exit code {code}")
    return elapsed


def recorded(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT COUNT(*) FROM order_payments WHERE reference IS NOT NULL"
        ).fetchone()[0]
    finally:
        conn.close()


def throughput(
    root: Path, base: Path, orders: list[tuple[str, int]], o: argparse.Namespace
) -> None:
    print(
        f"throughput: {o.lines:,} statement lines against {len(orders):,} orders, and "
        f"{o.invoice_orders:,} invoiced orders, in {o.chunks} alternating chunk(s)",
        flush=True,
    )
    db = root / "payments.db"
    shutil.copy(base, db)
    invoice_db = root / "invoice.db"
    make_invoice_store(invoice_db)
    pay_s = inv_s = 0.0
    size, inv_size = -(-o.lines // o.chunks), -(-o.invoice_orders // o.chunks)
    for chunk, (start, inv_start) in enumerate(
        zip(range(0, o.lines, size), range(0, o.invoice_orders, inv_size), strict=False), 1
    ):
        n, m = min(size, o.lines - start), min(inv_size, o.invoice_orders - inv_start)
        statement, invoices = root / f"statement-{chunk}.csv", root / f"orders-{chunk}.csv"
        write_statement(statement, orders, n, start)
        write_file(invoices, m, inv_start)
        pay_report, inv_report = root / f"pay-{chunk}.csv", root / f"inv-{chunk}.csv"
        journal = root / "journal.db"
        if chunk % 2:
            pay_s += payments_in_process(db, statement, pay_report)
            inv_s += invoice_in_process(invoice_db, invoices, journal, inv_report)
        else:
            inv_s += invoice_in_process(invoice_db, invoices, journal, inv_report)
            pay_s += payments_in_process(db, statement, pay_report)
        statement.unlink()
        invoices.unlink()
        print(
            f"  after chunk {chunk}: payments {(start + n) / pay_s:7.1f} lines/s, "
            f"invoice {(inv_start + m) / inv_s:7.1f} orders/s",
            flush=True,
        )
    lines_rate, orders_rate = o.lines / pay_s, o.invoice_orders / inv_s
    print(f"  checkout batch payments : {pay_s:8.2f} s  {lines_rate:8.1f} lines/s")
    print(f"  checkout batch invoice  : {inv_s:8.2f} s  {orders_rate:8.1f} orders/s")
    print(
        f"  per line / per invoiced order: {(pay_s / o.lines) / (inv_s / o.invoice_orders):.3f} "
        f"(lines/s over orders/s: {lines_rate / orders_rate:.2f})"
    )
    print(f"  payments recorded: {recorded(db):,}")


def memory(
    root: Path, base: Path, orders: list[tuple[str, int]], sizes: list[int], traced: bool
) -> None:
    print(f"memory: peak of a fresh `checkout batch payments` process per size {sizes}", flush=True)
    env = isolated_env(root)
    rss: dict[int, int] = {}
    peaks: dict[int, int] = {}
    for size in sizes:
        for mode in ("rss", "tracemalloc") if traced else ("rss",):
            folder = root / f"mem-{size}-{mode}"
            folder.mkdir()
            db, source = folder / "shop.db", folder / "statement.csv"
            shutil.copy(base, db)
            write_statement(source, orders, size)
            args = ["--db", str(db), "batch", "payments", str(source)]
            args += ["--report", str(folder / "report.csv")]
            if mode == "rss":
                print(f"  {size:>7,} lines, peak RSS ...", flush=True)
                code, peak, err = child_peak([sys.executable, "-m", "checkout_cli", *args], env)
                assert code == 0, err
                rss[size] = peak
            else:
                print(f"  {size:>7,} lines, tracemalloc ...", flush=True)
                code, _, err = child_peak([sys.executable, "-c", CHILD_TRACEMALLOC, *args], env)
                assert code == 0, err
                peaks[size] = json.loads(err.strip().splitlines()[-1])["peak"]
    for size in sizes:
        line = f"  {size:>7,} lines: peak RSS {rss[size] / 2**20:7.1f} MiB"
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
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--invoice-orders", type=int, default=2_000)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--memory-sizes", default="1000,10000")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-statement-") as tmp:
        root = Path(tmp)
        os.environ.update(isolated_env(root))
        base = root / "orders.db"
        started = time.perf_counter()
        orders = make_orders_store(base, options.orders)
        print(
            f"store: {len(orders):,} open invoice orders in {time.perf_counter() - started:.1f} s"
        )
        if not options.skip_throughput:
            throughput(root, base, orders, options)
        if not options.skip_memory:
            sizes = [int(s) for s in options.memory_sizes.split(",")]
            memory(root, base, orders, sizes, options.tracemalloc)


if __name__ == "__main__":
    main()
