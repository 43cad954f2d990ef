"""Remote mode: whole checkout flows per second over HTTP against the engine in-process.

    python tests/benchmarks/bench_remote.py [--seconds 3] [--rounds 4] [--clients 4]
                                            [--workers 4] [--warmup 1] [--dir DIR]

A flow is add-item → initiate-checkout → set-customer → create-payment invoice →
complete-checkout (five writes, a tracked-stock product, the confirmation email written as a
file). One store is served by a real ``python -m checkout_cli serve --workers W`` on
127.0.0.1; another is used in-process.

1. One client: ``RemoteBackend`` → ``checkout serve`` against ``LocalBackend`` in this process,
   taking turns for ``--rounds`` rounds of ``--seconds`` each, so a machine whose load changes
   mid-run slows both alike. Target: remote >= 35% of local.
2. ``--clients`` concurrent clients (one process each, a RemoteBackend each) against one
   client, on the same server (``--workers`` workers), also taking turns. Target: >= 1.5x.

Afterwards the served store's invariants are checked (``check_invariants``) and counted in SQL:
one order and one confirmation per completed flow, stock down by exactly the flows ordered.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import invoice_flow, isolated_env, load_fixtures, verdict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROJECT = "bench"
SKU = "LENS-DAILY-30"
STOCK = 10_000_000


def prepare(db: Path, *, token: bool) -> str | None:
    from checkout_cli.backends.local import LocalBackend

    local = LocalBackend(db, actor="bench")
    try:
        local.call("checkout-admin", "set-setting", {"key": "project_id", "value": PROJECT})
        load_fixtures(local, db.parent / "outbox")
        local.call(
            "checkout-admin", "set-setting", {"key": "allow_invoice_checkout", "value": True}
        )
        local.call("product-catalog", "set-stock", {"sku": SKU, "stock": STOCK})
        if token:
            return local.call("checkout-admin", "create-token", {"name": "bench"})["token"]
        return None
    finally:
        local.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db: Path, workers: int, root: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "checkout_cli",
            "--db",
            str(db),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=isolated_env(root),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, (root / "serve.log").read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("checkout serve did not start")


def flows_for(backend: Any, seconds: float) -> int:
    done = 0
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        result = invoice_flow(backend, SKU, 1)
        assert result["status"] == "completed" and not result["already_completed"]
        done += 1
    return done


def _client(url: str, token: str, seconds: float, barrier: Any, out: Any) -> None:
    from checkout_cli.backends.remote import RemoteBackend

    remote = RemoteBackend(url, PROJECT, token)
    invoice_flow(remote, SKU, 1)  # warm: connection open, server paths loaded
    barrier.wait()
    started = time.perf_counter()
    done = flows_for(remote, seconds)
    out.put((done + 1, time.perf_counter() - started))
    remote.close()


def concurrent_run(url: str, token: str, clients: int, seconds: float) -> tuple[int, float]:
    """``clients`` processes for ``seconds``: (flows measured, flows incl. warm-up)."""
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(url, token, seconds, barrier, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    measured = sum(done - 1 for done, _ in results)
    elapsed = max(t for _, t in results)
    return measured, measured / elapsed


def check_store(db: Path, flows: int) -> list[str]:
    from checkout_cli.engine.invariants import check_invariants

    conn = sqlite3.connect(db)
    try:
        problems = [v.message for v in check_invariants(conn)]
        orders = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        completed = conn.execute(
            "SELECT COUNT(*) FROM checkouts WHERE status = 'completed'"
        ).fetchone()[0]
        confirmations = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation'"
        ).fetchone()[0]
        stock = conn.execute("SELECT stock FROM products WHERE sku = ?", (SKU,)).fetchone()[0]
    finally:
        conn.close()
    if not orders == completed == confirmations == flows:
        problems.append(
            f"flows {flows}, orders {orders}, completed {completed}, confirmations {confirmations}"
        )
    if stock != STOCK - flows:
        problems.append(f"stock {stock}, expected {STOCK - flows}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each turn")
    parser.add_argument("--rounds", type=int, default=4, help="turns per comparison")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first")
    parser.add_argument("--dir", help="where the stores live (default: the system temp dir)")
    args = parser.parse_args()

    from checkout_cli.backends.local import LocalBackend
    from checkout_cli.backends.remote import RemoteBackend

    with tempfile.TemporaryDirectory(prefix="bench-remote-", dir=args.dir) as tmp:
        root = Path(tmp)
        os.environ.update(isolated_env(root))
        (root / "served").mkdir()
        (root / "local").mkdir()
        served_db, local_db = root / "served" / "shop.db", root / "local" / "shop.db"
        token = prepare(served_db, token=True)
        prepare(local_db, token=False)
        assert token
        server, url = start_server(served_db, args.workers, root)
        served_flows = 0
        try:
            print(
                f"server: checkout serve --workers {args.workers} at {url}; "
                f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
            )

            # 1. one client: remote against local, taking turns
            local = LocalBackend(local_db, actor="bench")
            remote = RemoteBackend(url, PROJECT, token)
            flows_for(local, args.warmup)  # warm: caches, connections, the worker's threads
            served_flows += flows_for(remote, args.warmup)
            totals = {"local": [0, 0.0], "remote": [0, 0.0]}
            turns: dict[str, list[float]] = {"local": [], "remote": []}
            for _ in range(args.rounds):
                for name, backend in (("local", local), ("remote", remote)):
                    started = time.perf_counter()
                    done = flows_for(backend, args.seconds)
                    elapsed = time.perf_counter() - started
                    totals[name][0] += done
                    totals[name][1] += elapsed
                    turns[name].append(done / elapsed)
            served_flows += totals["remote"][0]
            local.close()
            remote.close()
            local_rate = totals["local"][0] / totals["local"][1]
            remote_rate = totals["remote"][0] / totals["remote"][1]
            ratio = remote_rate / local_rate
            for name, rate in (("local", local_rate), ("remote", remote_rate)):
                print(
                    f"one client   {name:6} {rate:8.1f} flows/s  ({totals[name][0]} flows; "
                    f"turns: {', '.join(f'{r:.1f}' for r in turns[name])})"
                )
            print(f"  remote/local = {ratio:.0%}  (target >= 35%: {verdict(ratio, 0.35, True)})")

            # 2. N clients against 1, taking turns
            rates: dict[int, list[float]] = {1: [], args.clients: []}
            for _ in range(max(1, args.rounds // 2)):
                for clients in (1, args.clients):
                    measured, rate = concurrent_run(url, token, clients, args.seconds)
                    served_flows += measured + clients
                    rates[clients].append(rate)
            one = sum(rates[1]) / len(rates[1])
            many = sum(rates[args.clients]) / len(rates[args.clients])
            scale = many / one
            print(
                f"1 client     remote {one:8.1f} flows/s  (turns: "
                f"{', '.join(f'{r:.1f}' for r in rates[1])})"
            )
            print(
                f"{args.clients} clients    remote {many:8.1f} flows/s  (turns: "
                f"{', '.join(f'{r:.1f}' for r in rates[args.clients])})"
            )
            print(
                f"  {args.clients} clients / 1 client = {scale:.2f}x  "
                f"(target >= 1.5x: {verdict(scale, 1.5, True)})"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        problems = check_store(served_db, served_flows)
        print(
            f"served store after {served_flows} flows: "
            + (
                "invariants hold; orders, confirmations and stock exact"
                if not problems
                else "PROBLEMS: " + "; ".join(problems[:10])
            )
        )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
