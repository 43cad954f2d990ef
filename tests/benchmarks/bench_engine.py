"""Engine throughput: whole checkout flows per second in one process, against raw sqlite3.

    python tests/benchmarks/bench_engine.py [--flows 300] [--rounds 3] [--profile]

Engine: ``LocalBackend`` on a fresh store in a temp dir (WAL; every durable commit on disk
before it returns, as ``Store.write`` does it), confirmation emails through the ``file``
transport into the same temp dir. One flow is
add-item → initiate-checkout → set-customer → create-payment (invoice) → complete-checkout.

Baseline: plain ``sqlite3`` on a file in the same temp dir, same pragmas (WAL,
``synchronous=FULL``, foreign keys), the engine's own schema (tables and indexes copied from a
fresh store, so index upkeep is the same), and per flow the same 5 ``BEGIN IMMEDIATE … COMMIT``
transactions with the same inserts and updates the engine's endpoints make (rows of similar
size; the outbox row carries bodies as long as the engine's). It validates nothing, renders
nothing, reads back only what it must.

The engine additionally runs 2 short transactions per flow to claim and mark its email and writes
the ``.eml`` file; a second baseline that does that too is printed for context. The target
(engine >= 1/3 of the 5-transaction baseline's flows per second) is about the first.

Runs alternate in rounds (engine chunk, baseline chunk, …) so a busy machine slows both alike.
Afterwards the invariants are checked: exactly N orders, stock exact, one sent email (and one
``.eml`` file) per order, and the engine's own ``check_invariants`` finds nothing.
With ``--profile`` (or when the target is missed) cProfile shows where the engine's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import invoice_flow, load_fixtures, verdict

from checkout_cli.backends.local import LocalBackend

TARGET = 1 / 3
SKU = "BENCH-SKU"
INITIAL_STOCK = 1_000_000
PRICE = 2495


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(15)}"


def engine_backend(folder: Path) -> LocalBackend:
    backend = LocalBackend(folder / "engine.db", actor="bench")
    load_fixtures(backend, folder / "outbox")
    backend.call(
        "product-catalog",
        "upsert-product",
        {
            "sku": SKU,
            "name": "Benchmark lenses, 30 pack",
            "price_cents": PRICE,
            "currency": "EUR",
            "stock": INITIAL_STOCK,
        },
    )
    return backend


def engine_shape(folder: Path) -> dict[str, Any]:
    """On a throwaway store: the schema, and what one flow writes (commits, body sizes)."""
    backend = engine_backend(folder)
    try:
        invoice_flow(backend, SKU)  # first flow: caches warm
        statements: list[str] = []
        backend.engine.conn.set_trace_callback(statements.append)
        invoice_flow(backend, SKU)
        backend.engine.conn.set_trace_callback(None)
        conn = backend.engine.conn
        schema = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
        body = conn.execute(
            "SELECT LENGTH(body_text), LENGTH(body_html) FROM outbox ORDER BY id DESC"
        ).fetchone()
    finally:
        backend.close()
    verbs = [s.split()[0].upper() for s in statements]
    return {
        "schema": schema,
        "commits": verbs.count("COMMIT"),
        "writes": sum(v in ("INSERT", "UPDATE", "DELETE") for v in verbs),
        "reads": verbs.count("SELECT"),
        "text_len": body[0],
        "html_len": body[1],
    }


class Baseline:
    """The same writes as the engine's five endpoint transactions, in raw sqlite3."""

    def __init__(self, path: Path, shape: dict[str, Any], *, with_outbox: bool) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        for sql in shape["schema"]:
            self.conn.execute(sql)
        self.conn.execute(
            "INSERT INTO products (sku, name, price_cents, currency, stock) VALUES (?, ?, ?, ?, ?)",
            (SKU, "Benchmark lenses, 30 pack", PRICE, "EUR", INITIAL_STOCK),
        )
        self.text = "x" * shape["text_len"]
        self.html = "<p>" + "x" * max(shape["html_len"] - 7, 0) + "</p>"
        self.with_outbox = with_outbox
        self.outbox_dir = path.parent / f"{path.stem}-outbox"
        self.outbox_dir.mkdir(exist_ok=True)
        self.orders = 0

    def tx(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return result

    def flow(self) -> None:
        customer = json.dumps({"email": "anna@example.com", "name": "Anna de Vries"})
        address = json.dumps(
            {"line1": "Prinsengracht 263", "postal_code": "1016 GV", "city": "Amsterdam"}
        )

        def add_item(c: sqlite3.Connection) -> int:
            cart = c.execute(
                "INSERT INTO carts (token, status, currency, created_at, updated_at) "
                "VALUES (?, 'active', 'EUR', ?, ?)",
                (token("cart"), now(), now()),
            ).lastrowid
            c.execute(
                "INSERT INTO cart_items (cart_id, product_sku, quantity, added_at) "
                "VALUES (?, ?, 1, ?)",
                (cart, SKU, now()),
            )
            c.execute("UPDATE carts SET updated_at = ? WHERE id = ?", (now(), cart))
            return cart

        def initiate(c: sqlite3.Connection) -> int:
            sku, quantity, price, name = c.execute(
                "SELECT i.product_sku, i.quantity, p.price_cents, p.name FROM cart_items i "
                "JOIN products p ON p.sku = i.product_sku WHERE i.cart_id = ?",
                (cart,),
            ).fetchone()
            total = price * quantity
            checkout = c.execute(
                "INSERT INTO checkouts (token, cart_id, status, currency, subtotal_cents, "
                "shipping_cents, tax_cents, total_cents, created_at, updated_at, expires_at) "
                "VALUES (?, ?, 'active', 'EUR', ?, 0, 0, ?, ?, ?, ?)",
                (token("chk"), cart, total, total, now(), now(), now()),
            ).lastrowid
            c.execute(
                "INSERT INTO checkout_lines (checkout_id, line_no, product_sku, name, quantity, "
                "unit_price_cents, line_total_cents, tax_cents) VALUES (?, 1, ?, ?, ?, ?, ?, 0)",
                (checkout, sku, name, quantity, price, total),
            )
            self.event(c, checkout, None, "active")
            return checkout

        def set_customer(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE checkout_lines SET tax_cents = 524 WHERE checkout_id = ?", (checkout,)
            )
            c.execute(
                "UPDATE checkouts SET customer = ?, shipping_address = ?, billing_address = ?, "
                "shipping_cents = 495, tax_cents = 524, total_cents = subtotal_cents + 1019, "
                "updated_at = ? WHERE id = ?",
                (customer, address, address, now(), checkout),
            )
            self.event(c, checkout, "active", "active")

        def create_payment(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO payments (checkout_id, provider, status, amount_cents, currency, "
                "idempotency_key, created_at, updated_at) "
                "SELECT id, 'invoice', 'pending', total_cents, currency, ?, ?, ? "
                "FROM checkouts WHERE id = ?",
                (token("idem"), now(), now(), checkout),
            )
            c.execute(
                "UPDATE checkouts SET status = 'completable', updated_at = ? WHERE id = ?",
                (now(), checkout),
            )
            self.event(c, checkout, "active", "completable")

        def complete(c: sqlite3.Connection) -> int:
            year = now()[:4]
            changed = c.execute(
                "UPDATE products SET stock = stock - 1 WHERE sku = ? AND stock >= 1", (SKU,)
            ).rowcount
            assert changed == 1
            order_id = token("ord")
            c.execute(
                "INSERT INTO stock_movements (sku, delta, reason, ref, at) "
                "VALUES (?, -1, 'order', ?, ?)",
                (SKU, order_id, now()),
            )
            (number,) = c.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) "
                "DO UPDATE SET value = value + 1 RETURNING value",
                (f"order_number:{year}",),
            ).fetchone()
            order = c.execute(
                "INSERT INTO orders (order_id, order_number, checkout_id, status, "
                "payment_status, currency, customer, shipping_address, billing_address, "
                "subtotal_cents, shipping_cents, tax_cents, total_cents, created_at) "
                "SELECT ?, ?, id, 'pending', 'unpaid', currency, customer, shipping_address, "
                "billing_address, subtotal_cents, shipping_cents, tax_cents, total_cents, ? "
                "FROM checkouts WHERE id = ?",
                (order_id, f"{year}-{number:06d}", now(), checkout),
            ).lastrowid
            c.execute(
                "INSERT INTO order_lines (order_id, line_no, product_sku, name, quantity, "
                "unit_price_cents, line_total_cents, tax_cents, meta) SELECT ?, line_no, "
                "product_sku, name, quantity, unit_price_cents, line_total_cents, tax_cents, "
                "meta FROM checkout_lines WHERE checkout_id = ?",
                (order, checkout),
            )
            c.execute(
                "UPDATE checkouts SET status = 'completed', updated_at = ? WHERE id = ?",
                (now(), checkout),
            )
            self.event(c, checkout, "completable", "completed")
            c.execute("DELETE FROM stock_reservations WHERE checkout_id = ?", (checkout,))
            c.execute(
                "UPDATE carts SET status = 'converted', updated_at = ? WHERE id = ?",
                (now(), cart),
            )
            return c.execute(
                "INSERT INTO outbox (order_id, kind, recipient, subject, body_text, body_html, "
                "status, created_at) VALUES (?, 'order_confirmation', ?, ?, ?, ?, 'queued', ?)",
                (
                    order,
                    "anna@example.com",
                    f"order {number} confirmed",
                    self.text,
                    self.html,
                    now(),
                ),
            ).lastrowid

        cart = self.tx(add_item)
        checkout = self.tx(initiate)
        self.tx(set_customer)
        self.tx(create_payment)
        email = self.tx(complete)
        self.orders += 1
        if self.with_outbox:  # what the engine does after commit: claim, write, mark sent
            self.tx(
                lambda c: c.execute(
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1 "
                    "WHERE id = ? AND status IN ('queued', 'failed')",
                    (email,),
                )
            )
            (self.outbox_dir / f"{email}.eml").write_text(self.text + self.html)
            self.tx(
                lambda c: c.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ? WHERE id = ?", (now(), email)
                )
            )

    @staticmethod
    def event(c: sqlite3.Connection, checkout: int, from_status: Any, to_status: str) -> None:
        c.execute(
            "INSERT INTO events (checkout_id, at, actor, kind, from_status, to_status, detail) "
            "VALUES (?, ?, 'bench', 'transition', ?, ?, ?)",
            (checkout, now(), from_status, to_status, json.dumps({"by": "bench"})),
        )

    def check(self, n: int) -> list[str]:
        problems = []
        (orders,) = self.conn.execute("SELECT COUNT(*) FROM orders").fetchone()
        (stock,) = self.conn.execute("SELECT stock FROM products WHERE sku = ?", (SKU,)).fetchone()
        if orders != n:
            problems.append(f"baseline: {orders} orders, expected {n}")
        if stock != INITIAL_STOCK - n:
            problems.append(f"baseline: stock {stock}, expected {INITIAL_STOCK - n}")
        return problems

    def close(self) -> None:
        self.conn.close()


def check_engine(backend: LocalBackend, outbox_dir: Path, n: int) -> list[str]:
    conn = backend.engine.conn
    problems = []
    (orders,) = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
    (stock,) = conn.execute("SELECT stock FROM products WHERE sku = ?", (SKU,)).fetchone()
    (ordered,) = conn.execute(
        "SELECT COALESCE(SUM(quantity), 0) FROM order_lines WHERE product_sku = ?", (SKU,)
    ).fetchone()
    (sent,) = conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation' AND status = 'sent'"
    ).fetchone()
    (completed,) = conn.execute(
        "SELECT COUNT(*) FROM checkouts WHERE status = 'completed'"
    ).fetchone()
    files = len(list(outbox_dir.glob("*.eml")))
    if orders != n:
        problems.append(f"engine: {orders} orders, expected exactly {n}")
    if completed != n:
        problems.append(f"engine: {completed} completed checkouts, expected {n}")
    if ordered != n or stock != INITIAL_STOCK - n:
        problems.append(
            f"engine: stock {stock} after ordering {ordered}, expected {INITIAL_STOCK - n}"
        )
    if sent != n or files != n:
        problems.append(f"engine: {sent} emails sent and {files} .eml files, expected {n}")
    try:
        from checkout_cli.engine.invariants import check_invariants
    except ImportError:
        problems.append("engine: checkout_cli.engine.invariants.check_invariants not found")
    else:
        problems += [f"engine invariant {v.invariant}: {v.message}" for v in check_invariants(conn)]
    return problems


def profile_engine(folder: Path, n: int, top: int) -> None:
    folder.mkdir()
    backend = engine_backend(folder)
    invoice_flow(backend, SKU)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        invoice_flow(backend, SKU)
    profiler.disable()
    backend.close()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"\n== cProfile of {n} engine flows, top {top} by {order}")
        print("\n".join(lines[start - 2 : start + top + 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=300, help="flows per contender")
    parser.add_argument("--rounds", type=int, default=3, help="alternating chunks per contender")
    parser.add_argument("--profile", action="store_true", help="always show the cProfile")
    parser.add_argument("--top", type=int, default=25, help="rows in the profile")
    args = parser.parse_args()
    n, rounds = args.flows, max(1, min(args.rounds, args.flows))

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        root = Path(tmp)
        (root / "shape").mkdir()
        shape = engine_shape(root / "shape")
        print(f"temp dir: {root}")
        print(
            f"engine, per flow: {shape['commits']} commits, {shape['writes']} writes, "
            f"{shape['reads']} reads; email bodies {shape['text_len']} + {shape['html_len']} chars"
        )

        backend = engine_backend(root)
        base5 = Baseline(root / "baseline.db", shape, with_outbox=False)
        base7 = Baseline(root / "baseline_outbox.db", shape, with_outbox=True)
        contenders: dict[str, Callable[[], Any]] = {
            "engine": lambda: invoice_flow(backend, SKU),
            "baseline (5 tx)": base5.flow,
            "baseline (7 tx + .eml)": base7.flow,
        }
        elapsed = dict.fromkeys(contenders, 0.0)
        done = dict.fromkeys(contenders, 0)
        for round_no in range(rounds):
            chunk = n // rounds + (1 if round_no < n % rounds else 0)
            for name, flow in contenders.items():
                started = time.perf_counter()
                for _ in range(chunk):
                    flow()
                elapsed[name] += time.perf_counter() - started
                done[name] += chunk

        rate = {name: done[name] / elapsed[name] for name in contenders}
        print(f"\n== {n} flows each, in {rounds} alternating rounds, durable commits")
        for name in contenders:
            per_flow = elapsed[name] / done[name] * 1000
            print(
                f"  {name:<24} {rate[name]:8.1f} flows/s   {per_flow:6.2f} ms/flow   "
                f"({elapsed[name]:.2f} s)"
            )
        ratio = rate["engine"] / rate["baseline (5 tx)"]
        print(
            f"  ratio engine / baseline (5 tx): {ratio:.3f}  target >= {TARGET:.3f}  "
            f"{verdict(ratio, TARGET, higher_is_better=True)}"
        )
        context = rate["engine"] / rate["baseline (7 tx + .eml)"]
        print(f"  ratio engine / baseline (7 tx + .eml): {context:.3f}  (context)")

        problems = check_engine(backend, root / "outbox", n)
        problems += base5.check(n) + base7.check(n)
        backend.close()
        base5.close()
        base7.close()
        print("\n== invariants after the run")
        if problems:
            for problem in problems:
                print(f"  FAILED: {problem}")
        else:
            print(
                f"  ok: exactly {n} orders, stock {INITIAL_STOCK} - {n} = {INITIAL_STOCK - n}, "
                f"{n} emails sent ({n} .eml files), check_invariants() clean; baselines exact"
            )

        if args.profile or ratio < TARGET:
            profile_engine(root / "profile", min(n, 200), args.top)
        if problems:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
