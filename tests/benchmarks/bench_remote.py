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
   Printed with it, from /proc: CPU per flow (all client processes, all server workers) and
   how busy the machine was. Their quotients account for the ratio: on a machine where the
   clients share the server's CPUs, it is how much busier the machine got, divided by how much
   more CPU each flow took (``bench_scaling_control.py`` shows the second for any server).

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
from dataclasses import dataclass
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
    started, cpu = time.perf_counter(), time.process_time()
    done = flows_for(remote, seconds)
    out.put((done, time.perf_counter() - started, time.process_time() - cpu))
    remote.close()


@dataclass
class Run:
    flows: int  # measured flows, warm-up flows aside
    rate: float  # flows per second
    client_ms: float  # client CPU per flow, all client processes
    server_ms: float | None  # server CPU per flow, all workers (None: no /proc)
    busy: float | None  # share of the machine's CPU time busy (None: no /proc)


def concurrent_run(url: str, server_pid: int, token: str, clients: int, seconds: float) -> Run:
    """``clients`` processes (a RemoteBackend each) running flows for ``seconds``."""
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(url, token, seconds, barrier, out))
        for _ in range(clients)
    ]
    server_before, stat_before = tree_cpu_seconds(server_pid), cpu_stat()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    server_after, stat_after = tree_cpu_seconds(server_pid), cpu_stat()
    flows = sum(done for done, _, _ in results)
    server_ms = busy = None
    if server_before is not None and server_after is not None:
        # the server also served each client's warm-up flow
        server_ms = (server_after - server_before) / (flows + clients) * 1000
    if stat_before and stat_after:
        spent = [after - before for before, after in zip(stat_before, stat_after, strict=True)]
        busy = 1 - (spent[3] + spent[4]) / sum(spent)  # idle and iowait
    return Run(
        flows=flows,
        rate=flows / max(elapsed for _, elapsed, _ in results),
        client_ms=sum(cpu for _, _, cpu in results) / flows * 1000,
        server_ms=server_ms,
        busy=busy,
    )


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by ``pid`` and its descendants, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    for child in children:
        total += tree_cpu_seconds(int(child)) or 0.0
    return total


def cpu_stat() -> list[int] | None:
    """user, nice, system, idle, iowait, irq, softirq, steal from /proc/stat (None elsewhere).

    The guest fields after them are already counted in user and nice.
    """
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
        return [int(v) for v in line.split()[1:9]]
    except OSError:
        return None


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


def print_cpu(runs: dict[int, list[Run]], clients: int) -> None:
    """CPU per flow, 1 client against N: where the scaling goes on a machine this size."""
    per_flow: dict[int, float] = {}
    busy_of: dict[int, float] = {}
    for n, label in ((1, "1 client "), (clients, f"{clients} clients")):
        flows = sum(r.flows for r in runs[n])
        client_ms = sum(r.client_ms * r.flows for r in runs[n]) / flows
        server = [(r.server_ms, r.flows) for r in runs[n] if r.server_ms is not None]
        busies = [r.busy for r in runs[n] if r.busy is not None]
        if len(server) < len(runs[n]) or len(busies) < len(runs[n]):
            print(f"  CPU per flow, {label}: client {client_ms:.2f} ms (no /proc for the rest)")
            return
        server_ms = sum(ms * f for ms, f in server) / flows
        busy = sum(busies) / len(busies)
        per_flow[n], busy_of[n] = client_ms + server_ms, busy
        growth = f" ({per_flow[n] / per_flow[1] - 1:+.0%})" if n != 1 else ""
        print(
            f"  CPU per flow, {label}: client {client_ms:.2f} + server {server_ms:.2f} = "
            f"{per_flow[n]:.2f} ms{growth}; machine {busy:.0%} busy of {os.cpu_count()} CPUs"
        )
    busier, costlier = busy_of[clients] / busy_of[1], per_flow[clients] / per_flow[1]
    print(
        f"  so {clients} clients / 1 client ~ {busier:.2f}x busier / {costlier:.2f}x the CPU "
        f"per flow = {busier / costlier:.2f}x"
    )


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
            runs: dict[int, list[Run]] = {1: [], args.clients: []}
            for _ in range(max(1, args.rounds // 2)):
                for clients in (1, args.clients):
                    run = concurrent_run(url, server.pid, token, clients, args.seconds)
                    served_flows += run.flows + clients
                    runs[clients].append(run)
            rate = {n: sum(r.rate for r in rs) / len(rs) for n, rs in runs.items()}
            for n, label in ((1, "1 client "), (args.clients, f"{args.clients} clients")):
                print(
                    f"{label}    remote {rate[n]:8.1f} flows/s  (turns: "
                    f"{', '.join(f'{r.rate:.1f}' for r in runs[n])})"
                )
            scale = rate[args.clients] / rate[1]
            print(
                f"  {args.clients} clients / 1 client = {scale:.2f}x  "
                f"(target >= 1.5x: {verdict(scale, 1.5, True)})"
            )
            print_cpu(runs, args.clients)
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
