"""Engine throughput: whole checkout flows per second in one process, against the raw driver.

    python tests/benchmarks/bench_engine.py [--flows 300] [--rounds 3] [--profile]
        [--store sqlite|postgres|sqlite,postgres] [--pg-url postgresql://…]

With ``--store sqlite,postgres`` both stores run in the same rounds and print side by side.
PostgreSQL runs on a throwaway durable cluster (fsync on) unless ``--pg-url`` names a server to
make databases on; its baseline is raw psycopg doing the same statements in SERIALIZABLE
transactions, as the engine's PostgreSQL store does.

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
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import invoice_flow, load_fixtures, parse_stores, pg_server, verdict

from checkout_cli.backends.local import LocalBackend

TARGET = 1 / 3
SKU = "BENCH-SKU"
INITIAL_STOCK = 1_000_000
PRICE = 2495


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(15)}"


def engine_backend(folder: Path, target: Path | str | None = None) -> LocalBackend:
    """The engine on ``target`` (default: ``folder/engine.db``), emails into ``folder/outbox``."""
    backend = LocalBackend(target or folder / "engine.db", actor="bench")
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
    """The same writes as the engine's five endpoint transactions, in raw sqlite3 or raw
    psycopg (``?`` written ``%s``; ids by ``RETURNING id`` on both)."""

    def __init__(self, conn: Any, shape: dict[str, Any], folder: Path, *, with_outbox: bool):
        self.conn = conn
        self.pg = not isinstance(conn, sqlite3.Connection)
        self.begin = "BEGIN ISOLATION LEVEL SERIALIZABLE" if self.pg else "BEGIN IMMEDIATE"
        self.sql: dict[str, str] = {}
        self.x(
            self.conn,
            "INSERT INTO products (sku, name, price_cents, currency, stock) VALUES (?, ?, ?, ?, ?)",
            (SKU, "Benchmark lenses, 30 pack", PRICE, "EUR", INITIAL_STOCK),
        )
        self.text = "x" * shape["text_len"]
        self.html = "<p>" + "x" * max(shape["html_len"] - 7, 0) + "</p>"
        self.with_outbox = with_outbox
        self.outbox_dir = folder
        self.outbox_dir.mkdir(exist_ok=True)
        self.orders = 0

    @classmethod
    def on_sqlite(cls, path: Path, shape: dict[str, Any], **kw: Any) -> Baseline:
        """A file with the engine's own schema (copied from a fresh store) and its pragmas."""
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        for sql in shape["schema"]:
            conn.execute(sql)
        return cls(conn, shape, path.parent / f"{path.stem}-outbox", **kw)

    @classmethod
    def on_postgres(cls, url: str, shape: dict[str, Any], folder: Path, **kw: Any) -> Baseline:
        """A database whose schema the engine's own migrations made (then left alone)."""
        import psycopg

        from checkout_cli.engine.stores import open_store

        open_store(url).close()
        return cls(psycopg.connect(url, autocommit=True), shape, folder, **kw)

    def x(self, c: Any, sql: str, params: Any = ()) -> Any:
        """``c.execute`` with the driver's placeholder."""
        if self.pg:
            sql = self.sql.get(sql) or self.sql.setdefault(sql, sql.replace("?", "%s"))
        return c.execute(sql, params)

    def tx(self, work: Callable[[Any], Any]) -> Any:
        self.conn.execute(self.begin)
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
            cart = self.x(
                c,
                "INSERT INTO carts (token, status, currency, created_at, updated_at) "
                "VALUES (?, 'active', 'EUR', ?, ?) RETURNING id",
                (token("cart"), now(), now()),
            ).fetchone()[0]
            self.x(
                c,
                "INSERT INTO cart_items (cart_id, product_sku, quantity, added_at) "
                "VALUES (?, ?, 1, ?)",
                (cart, SKU, now()),
            )
            self.x(c, "UPDATE carts SET updated_at = ? WHERE id = ?", (now(), cart))
            return cart

        def initiate(c: sqlite3.Connection) -> int:
            sku, quantity, price, name = self.x(
                c,
                "SELECT i.product_sku, i.quantity, p.price_cents, p.name FROM cart_items i "
                "JOIN products p ON p.sku = i.product_sku WHERE i.cart_id = ?",
                (cart,),
            ).fetchone()
            total = price * quantity
            checkout = self.x(
                c,
                "INSERT INTO checkouts (token, cart_id, status, currency, subtotal_cents, "
                "shipping_cents, tax_cents, total_cents, created_at, updated_at, expires_at) "
                "VALUES (?, ?, 'active', 'EUR', ?, 0, 0, ?, ?, ?, ?) RETURNING id",
                (token("chk"), cart, total, total, now(), now(), now()),
            ).fetchone()[0]
            self.x(
                c,
                "INSERT INTO checkout_lines (checkout_id, line_no, product_sku, name, quantity, "
                "unit_price_cents, line_total_cents, tax_cents) VALUES (?, 1, ?, ?, ?, ?, ?, 0)",
                (checkout, sku, name, quantity, price, total),
            )
            self.event(c, checkout, None, "active")
            return checkout

        def set_customer(c: sqlite3.Connection) -> None:
            self.x(
                c, "UPDATE checkout_lines SET tax_cents = 524 WHERE checkout_id = ?", (checkout,)
            )
            self.x(
                c,
                "UPDATE checkouts SET customer = ?, shipping_address = ?, billing_address = ?, "
                "shipping_cents = 495, tax_cents = 524, total_cents = subtotal_cents + 1019, "
                "updated_at = ? WHERE id = ?",
                (customer, address, address, now(), checkout),
            )
            self.event(c, checkout, "active", "active")

        def create_payment(c: sqlite3.Connection) -> None:
            self.x(
                c,
                "INSERT INTO payments (checkout_id, provider, status, amount_cents, currency, "
                "idempotency_key, created_at, updated_at) "
                "SELECT id, 'invoice', 'pending', total_cents, currency, ?, ?, ? "
                "FROM checkouts WHERE id = ?",
                (token("idem"), now(), now(), checkout),
            )
            self.x(
                c,
                "UPDATE checkouts SET status = 'completable', updated_at = ? WHERE id = ?",
                (now(), checkout),
            )
            self.event(c, checkout, "active", "completable")

        def complete(c: sqlite3.Connection) -> int:
            year = now()[:4]
            changed = self.x(
                c, "UPDATE products SET stock = stock - 1 WHERE sku = ? AND stock >= 1", (SKU,)
            ).rowcount
            assert changed == 1
            order_id = token("ord")
            self.x(
                c,
                "INSERT INTO stock_movements (sku, delta, reason, ref, at) "
                "VALUES (?, -1, 'order', ?, ?)",
                (SKU, order_id, now()),
            )
            (number,) = self.x(
                c,
                "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) "
                "DO UPDATE SET value = counters.value + 1 RETURNING value",
                (f"order_number:{year}",),
            ).fetchone()
            order = self.x(
                c,
                "INSERT INTO orders (order_id, order_number, checkout_id, status, "
                "payment_status, currency, customer, shipping_address, billing_address, "
                "subtotal_cents, shipping_cents, tax_cents, total_cents, created_at) "
                "SELECT ?, ?, id, 'pending', 'unpaid', currency, customer, shipping_address, "
                "billing_address, subtotal_cents, shipping_cents, tax_cents, total_cents, ? "
                "FROM checkouts WHERE id = ? RETURNING id",
                (order_id, f"{year}-{number:06d}", now(), checkout),
            ).fetchone()[0]
            self.x(
                c,
                "INSERT INTO order_lines (order_id, line_no, product_sku, name, quantity, "
                "unit_price_cents, line_total_cents, tax_cents, meta) SELECT ?, line_no, "
                "product_sku, name, quantity, unit_price_cents, line_total_cents, tax_cents, "
                "meta FROM checkout_lines WHERE checkout_id = ?",
                (order, checkout),
            )
            self.x(
                c,
                "UPDATE checkouts SET status = 'completed', updated_at = ? WHERE id = ?",
                (now(), checkout),
            )
            self.event(c, checkout, "completable", "completed")
            self.x(c, "DELETE FROM stock_reservations WHERE checkout_id = ?", (checkout,))
            self.x(
                c,
                "UPDATE carts SET status = 'converted', updated_at = ? WHERE id = ?",
                (now(), cart),
            )
            return self.x(
                c,
                "INSERT INTO outbox (order_id, kind, recipient, subject, body_text, body_html, "
                "status, created_at) VALUES (?, 'order_confirmation', ?, ?, ?, ?, 'queued', ?) "
                "RETURNING id",
                (
                    order,
                    "anna@example.com",
                    f"order {number} confirmed",
                    self.text,
                    self.html,
                    now(),
                ),
            ).fetchone()[0]

        cart = self.tx(add_item)
        checkout = self.tx(initiate)
        self.tx(set_customer)
        self.tx(create_payment)
        email = self.tx(complete)
        self.orders += 1
        if self.with_outbox:  # what the engine does after commit: claim, write, mark sent
            self.tx(
                lambda c: self.x(
                    c,
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1 "
                    "WHERE id = ? AND status IN ('queued', 'failed')",
                    (email,),
                )
            )
            (self.outbox_dir / f"{email}.eml").write_text(self.text + self.html)
            self.tx(
                lambda c: self.x(
                    c, "UPDATE outbox SET status = 'sent', sent_at = ? WHERE id = ?", (now(), email)
                )
            )

    def event(self, c: Any, checkout: int, from_status: Any, to_status: str) -> None:
        self.x(
            c,
            "INSERT INTO events (checkout_id, at, actor, kind, from_status, to_status, detail) "
            "VALUES (?, ?, 'bench', 'transition', ?, ?, ?)",
            (checkout, now(), from_status, to_status, json.dumps({"by": "bench"})),
        )

    def check(self, n: int) -> list[str]:
        problems = []
        (orders,) = self.x(self.conn, "SELECT COUNT(*) FROM orders").fetchone()
        (stock,) = self.x(self.conn, "SELECT stock FROM products WHERE sku = ?", (SKU,)).fetchone()
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


def profile_engine(folder: Path, target: Path | str | None, n: int, top: int) -> None:
    folder.mkdir()
    backend = engine_backend(folder, target)
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


@dataclass
class Side:
    """One store's contenders: the engine and the two raw baselines."""

    store: str
    folder: Path
    target: Path | str | None
    backend: LocalBackend
    base5: Baseline
    base7: Baseline

    def contenders(self) -> dict[str, Callable[[], Any]]:
        return {
            "engine": lambda: invoice_flow(self.backend, SKU),
            "baseline (5 tx)": self.base5.flow,
            "baseline (7 tx + .eml)": self.base7.flow,
        }

    def check(self, n: int) -> list[str]:
        found = check_engine(self.backend, self.folder / "outbox", n)
        found += self.base5.check(n) + self.base7.check(n)
        return [f"{self.store} {p}" for p in found]

    def close(self) -> None:
        self.backend.close()
        self.base5.close()
        self.base7.close()


def make_side(
    store: str, root: Path, shape: dict[str, Any], new_db: Callable[[str], str] | None
) -> Side:
    folder = root / store
    folder.mkdir()
    if store == "postgres":
        assert new_db is not None
        target: Path | str | None = new_db("engine")
        base5 = Baseline.on_postgres(new_db("raw5"), shape, folder / "raw5", with_outbox=False)
        base7 = Baseline.on_postgres(new_db("raw7"), shape, folder / "raw7", with_outbox=True)
    else:
        target = None
        base5 = Baseline.on_sqlite(folder / "baseline.db", shape, with_outbox=False)
        base7 = Baseline.on_sqlite(folder / "baseline_outbox.db", shape, with_outbox=True)
    return Side(store, folder, target, engine_backend(folder, target), base5, base7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=300, help="flows per contender")
    parser.add_argument("--rounds", type=int, default=3, help="alternating chunks per contender")
    parser.add_argument(
        "--store", default="sqlite", help="sqlite, postgres, or both: sqlite,postgres"
    )
    parser.add_argument(
        "--pg-url", help="a PostgreSQL server to make databases on (default: start one)"
    )
    parser.add_argument("--profile", action="store_true", help="always show the cProfile")
    parser.add_argument("--top", type=int, default=25, help="rows in the profile")
    args = parser.parse_args()
    n, rounds = args.flows, max(1, min(args.rounds, args.flows))
    stores = parse_stores(args.store)

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        (root / "shape").mkdir()
        shape = engine_shape(root / "shape")
        print(f"temp dir: {root}")
        print(
            f"engine, per flow: {shape['commits']} commits, {shape['writes']} writes, "
            f"{shape['reads']} reads; email bodies {shape['text_len']} + {shape['html_len']} chars"
        )
        new_db = stack.enter_context(pg_server(args.pg_url)) if "postgres" in stores else None
        sides = [make_side(store, root, shape, new_db) for store in stores]
        contenders = {
            (side.store, name): flow for side in sides for name, flow in side.contenders().items()
        }
        elapsed = dict.fromkeys(contenders, 0.0)
        for round_no in range(rounds):
            chunk = n // rounds + (1 if round_no < n % rounds else 0)
            for key, flow in contenders.items():
                started = time.perf_counter()
                for _ in range(chunk):
                    flow()
                elapsed[key] += time.perf_counter() - started

        rate = {key: n / elapsed[key] for key in contenders}
        print(f"\n== {n} flows each, in {rounds} alternating rounds, durable commits")
        for store, name in contenders:
            per_flow = elapsed[store, name] / n * 1000
            print(
                f"  {store:<9}{name:<24} {rate[store, name]:8.1f} flows/s   "
                f"{per_flow:6.2f} ms/flow   ({elapsed[store, name]:.2f} s)"
            )
        missed = []
        for side in sides:
            ratio = rate[side.store, "engine"] / rate[side.store, "baseline (5 tx)"]
            context = rate[side.store, "engine"] / rate[side.store, "baseline (7 tx + .eml)"]
            print(
                f"  {side.store}: engine / raw {'psycopg' if side.target else 'sqlite3'} (5 tx) "
                f"{ratio:.3f}  target >= {TARGET:.3f}  "
                f"{verdict(ratio, TARGET, higher_is_better=True)};  "
                f"/ (7 tx + .eml) {context:.3f} (context)"
            )
            if ratio < TARGET:
                missed.append(side)
        if len(sides) == 2:
            across = rate["postgres", "engine"] / rate["sqlite", "engine"]
            print(f"  engine on postgres / engine on sqlite: {across:.3f}  (context)")

        problems = [p for side in sides for p in side.check(n)]
        for side in sides:
            side.close()
        print("\n== invariants after the run")
        if problems:
            for problem in problems:
                print(f"  FAILED: {problem}")
        else:
            print(
                f"  ok on {' and '.join(stores)}: exactly {n} orders, stock {INITIAL_STOCK} - "
                f"{n} = {INITIAL_STOCK - n}, {n} emails sent ({n} .eml files), "
                "check_invariants() clean; baselines exact"
            )

        for side in sides if args.profile else missed:
            profile_engine(
                root / f"profile-{side.store}",
                side.target and new_db and new_db("profile"),
                min(n, 200),
                args.top,
            )
        if problems:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
