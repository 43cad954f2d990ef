"""Remote mode: whole checkout flows per second over HTTP against the engine in-process.

    python tests/benchmarks/bench_remote.py [--seconds 3] [--rounds 4] [--clients 4]
                                            [--workers 4] [--warmup 1] [--dir DIR]
                                            [--store sqlite|postgres|sqlite,postgres]
                                            [--pg-url postgresql://…]

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

With ``--store sqlite,postgres`` every comparison runs for both stores in the same rounds and
the PostgreSQL-backed server's rates are printed against the SQLite-backed one's. PostgreSQL
(a throwaway durable cluster unless ``--pg-url``) also gets a second replica on the same
database:

3. ``--clients`` clients spread over two replicas against all of them on one, taking turns;
   CPU per flow counts both replicas' workers and PostgreSQL's processes.

Afterwards the served store's invariants are checked (``check_invariants``) and counted in SQL:
one order and one confirmation per completed flow, stock down by exactly the flows ordered.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import invoice_flow, isolated_env, load_fixtures, parse_stores, pg_server, verdict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PROJECT = "bench"
SKU = "LENS-DAILY-30"
STOCK = 10_000_000


def prepare(target: Path | str, outbox: Path, *, token: bool) -> str | None:
    from checkout_cli.backends.local import LocalBackend

    local = LocalBackend(target, actor="bench")
    try:
        local.call("checkout-admin", "set-setting", {"key": "project_id", "value": PROJECT})
        load_fixtures(local, outbox)
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


def start_server(
    target: Path | str, workers: int, root: Path, name: str
) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / f"serve-{name}.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "checkout_cli",
            "--db",
            str(target),
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
        assert server.poll() is None, log_path.read_text()
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
    server_ms: float | None  # server CPU per flow, all workers of all replicas (None: no /proc)
    db_ms: float | None  # PostgreSQL's CPU per flow, all its processes (None: SQLite, no /proc)
    busy: float | None  # share of the machine's CPU time busy (None: no /proc)


@dataclass
class Served:
    """One store served by one or more replicas of ``checkout serve``."""

    store: str  # "sqlite" or "postgres"
    target: Path | str
    local: Path | str  # a second store of the same kind, for the in-process engine
    token: str
    replicas: list[tuple[subprocess.Popen, str]]
    db_pid: int | None  # the PostgreSQL postmaster (its backends are its children)
    flows: int = 0  # flows the replicas served, warm-ups included

    @property
    def urls(self) -> list[str]:
        return [url for _, url in self.replicas]


def concurrent_run(served: Served, replicas: int, clients: int, seconds: float) -> Run:
    """``clients`` processes (a RemoteBackend each, spread over the first ``replicas``
    replicas) running flows for ``seconds``."""
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    urls = served.urls[:replicas]
    procs = [
        ctx.Process(target=_client, args=(urls[i % len(urls)], served.token, seconds, barrier, out))
        for i in range(clients)
    ]
    pids = [server.pid for server, _ in served.replicas[:replicas]]
    server_before, db_before = cpu_of(pids), cpu_of([served.db_pid])
    stat_before = cpu_stat()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    server_after, db_after, stat_after = cpu_of(pids), cpu_of([served.db_pid]), cpu_stat()
    flows = sum(done for done, _, _ in results)
    served.flows += flows + clients  # the servers also served each client's warm-up flow
    busy = None
    if stat_before and stat_after:
        spent = [after - before for before, after in zip(stat_before, stat_after, strict=True)]
        busy = 1 - (spent[3] + spent[4]) / sum(spent)  # idle and iowait

    def per_flow(before: float | None, after: float | None) -> float | None:
        if before is None or after is None:
            return None
        return (after - before) / (flows + clients) * 1000

    return Run(
        flows=flows,
        rate=flows / max(elapsed for _, elapsed, _ in results),
        client_ms=sum(cpu for _, _, cpu in results) / flows * 1000,
        server_ms=per_flow(server_before, server_after),
        db_ms=per_flow(db_before, db_after) if served.db_pid else None,
        busy=busy,
    )


def cpu_of(pids: list[int | None]) -> float | None:
    """CPU seconds used so far by these processes and their descendants (None: no /proc)."""
    total = 0.0
    for pid in pids:
        if pid is None:
            continue
        used = tree_cpu_seconds(pid)
        if used is None:
            return None
        total += used
    return total


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


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, if it runs on this machine: our backend's parent."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    try:
        stat = Path(f"/proc/{row[0]}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def cpu_stat() -> list[int] | None:
    """user, nice, system, idle, iowait, irq, softirq, steal from /proc/stat (None elsewhere).

    The guest fields after them are already counted in user and nice.
    """
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
        return [int(v) for v in line.split()[1:9]]
    except OSError:
        return None


def check_store(target: Path | str, flows: int) -> list[str]:
    from checkout_cli.engine.invariants import check_invariants
    from checkout_cli.engine.stores import open_store

    store = open_store(target)
    try:
        conn = store.conn

        def count(sql: str, *params: Any) -> int:
            return conn.execute(sql, params).fetchone()[0]

        problems = [v.message for v in check_invariants(conn)]
        orders = count("SELECT COUNT(*) FROM orders")
        completed = count("SELECT COUNT(*) FROM checkouts WHERE status = 'completed'")
        confirmations = count("SELECT COUNT(*) FROM outbox WHERE kind = 'order_confirmation'")
        stock = count("SELECT stock FROM products WHERE sku = ?", SKU)
    finally:
        store.close()
    if not orders == completed == confirmations == flows:
        problems.append(
            f"flows {flows}, orders {orders}, completed {completed}, confirmations {confirmations}"
        )
    if stock != STOCK - flows:
        problems.append(f"stock {stock}, expected {STOCK - flows}")
    return problems


def cpu_line(label: str, runs: list[Run], base: float | None) -> float | None:
    """Prints CPU per flow over ``runs``; returns client + server + database ms per flow."""
    flows = sum(r.flows for r in runs)
    client_ms = sum(r.client_ms * r.flows for r in runs) / flows
    if any(r.server_ms is None or r.busy is None for r in runs):
        print(f"  CPU per flow, {label}: client {client_ms:.2f} ms (no /proc for the rest)")
        return None
    server_ms = sum((r.server_ms or 0) * r.flows for r in runs) / flows
    db_ms = sum((r.db_ms or 0) * r.flows for r in runs) / flows
    busy = sum(r.busy or 0 for r in runs) / len(runs)
    total = client_ms + server_ms + db_ms
    db = f" + PostgreSQL {db_ms:.2f}" if any(r.db_ms is not None for r in runs) else ""
    growth = f" ({total / base - 1:+.0%})" if base else ""
    print(
        f"  CPU per flow, {label}: client {client_ms:.2f} + server {server_ms:.2f}{db} = "
        f"{total:.2f} ms{growth}; machine {busy:.0%} busy of {os.cpu_count()} CPUs"
    )
    return total


def print_cpu(one: list[Run], many: list[Run], label_one: str, label_many: str) -> None:
    """CPU per flow, one against many: where the scaling goes on a machine this size."""
    base = cpu_line(label_one, one, None)
    more = cpu_line(label_many, many, base)
    if base is None or more is None:
        return
    busier = (sum(r.busy or 0 for r in many) / len(many)) / (
        sum(r.busy or 0 for r in one) / len(one)
    )
    costlier = more / base
    print(
        f"  so {label_many} / {label_one} ~ {busier:.2f}x busier / {costlier:.2f}x the CPU "
        f"per flow = {busier / costlier:.2f}x"
    )


def turns(rates: list[float]) -> str:
    return ", ".join(f"{r:.1f}" for r in rates)


def one_client(sides: list[Served], rounds: int, seconds: float, warmup: float) -> None:
    """1. One client: remote against the engine in-process, per store, all taking turns."""
    from checkout_cli.backends.local import LocalBackend
    from checkout_cli.backends.remote import RemoteBackend

    backends: dict[tuple[str, str], Any] = {}
    for side in sides:
        backends[side.store, "local"] = LocalBackend(side.local, actor="bench")
        backends[side.store, "remote"] = RemoteBackend(side.urls[0], PROJECT, side.token)
    totals = {key: [0, 0.0] for key in backends}
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in backends}
    for key, backend in backends.items():
        done = flows_for(backend, warmup)  # warm: caches, connections, the worker's threads
        if key[1] == "remote":
            next(s for s in sides if s.store == key[0]).flows += done
    for _ in range(rounds):
        for key, backend in backends.items():
            started = time.perf_counter()
            done = flows_for(backend, seconds)
            elapsed = time.perf_counter() - started
            totals[key][0] += done
            totals[key][1] += elapsed
            rates[key].append(done / elapsed)
            if key[1] == "remote":
                next(s for s in sides if s.store == key[0]).flows += done
    for backend in backends.values():
        backend.close()
    rate = {key: n / t for key, (n, t) in totals.items()}
    for side in sides:
        for kind in ("local", "remote"):
            key = (side.store, kind)
            print(
                f"one client   {side.store:8} {kind:6} {rate[key]:8.1f} flows/s  "
                f"({totals[key][0]} flows; turns: {turns(rates[key])})"
            )
        ratio = rate[side.store, "remote"] / rate[side.store, "local"]
        print(
            f"  {side.store}: remote/local = {ratio:.0%}  "
            f"(target >= 35%: {verdict(ratio, 0.35, True)})"
        )
    if len(sides) == 2:
        print(
            "  PostgreSQL-backed / SQLite-backed server, one client = "
            f"{rate['postgres', 'remote'] / rate['sqlite', 'remote']:.2f}x (context)"
        )


def many_clients(sides: list[Served], clients: int, rounds: int, seconds: float) -> None:
    """2. N clients against one, per store, on one replica, all taking turns."""
    runs: dict[tuple[str, int], list[Run]] = {
        (side.store, n): [] for side in sides for n in (1, clients)
    }
    for _ in range(max(1, rounds // 2)):
        for side in sides:
            for n in (1, clients):
                runs[side.store, n].append(concurrent_run(side, 1, n, seconds))
    rate = {key: sum(r.rate for r in rs) / len(rs) for key, rs in runs.items()}
    for side in sides:
        for n in (1, clients):
            label = f"{n} client{'s' if n > 1 else ' '}"
            print(
                f"{label:11}  {side.store:8} remote {rate[side.store, n]:8.1f} flows/s  "
                f"(turns: {turns([r.rate for r in runs[side.store, n]])})"
            )
        scale = rate[side.store, clients] / rate[side.store, 1]
        print(
            f"  {side.store}: {clients} clients / 1 client = {scale:.2f}x  "
            f"(target >= 1.5x: {verdict(scale, 1.5, True)})"
        )
        print_cpu(runs[side.store, 1], runs[side.store, clients], "1 client", f"{clients} clients")
    if len(sides) == 2:
        print(
            f"  PostgreSQL-backed / SQLite-backed server, {clients} clients = "
            f"{rate['postgres', clients] / rate['sqlite', clients]:.2f}x (context)"
        )


def two_replicas(side: Served, clients: int, rounds: int, seconds: float) -> None:
    """3. PostgreSQL: the same clients spread over two replicas against all on one."""
    runs: dict[int, list[Run]] = {1: [], 2: []}
    for _ in range(max(1, rounds // 2)):
        for replicas in (1, 2):
            runs[replicas].append(concurrent_run(side, replicas, clients, seconds))
    rate = {n: sum(r.rate for r in rs) / len(rs) for n, rs in runs.items()}
    for n in (1, 2):
        print(
            f"{clients} clients, {n} replica{'s' if n > 1 else ' '}  {rate[n]:8.1f} flows/s  "
            f"(turns: {turns([r.rate for r in runs[n]])})"
        )
    print(
        f"  2 replicas / 1 replica = {rate[2] / rate[1]:.2f}x  (capped by the machine's "
        f"{os.cpu_count()} CPUs: the replicas, PostgreSQL and the clients share them)"
    )
    print_cpu(runs[1], runs[2], "1 replica", "2 replicas")


def serve_side(store: str, root: Path, workers: int, new_database: Any, replicas: int) -> Served:
    folder = root / store
    folder.mkdir()
    if store == "sqlite":
        target: Path | str = folder / "served.db"
        local: Path | str = folder / "local.db"
    else:
        target, local = new_database("served"), new_database("local")
    token = prepare(target, folder / "outbox-served", token=True)
    prepare(local, folder / "outbox-local", token=False)
    assert token
    side = Served(
        store=store,
        target=target,
        local=local,
        token=token,
        replicas=[],
        db_pid=postmaster_pid(str(target)) if store == "postgres" else None,
    )
    for i in range(replicas):
        side.replicas.append(start_server(target, workers, root, f"{store}-{i}"))
    return side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each turn")
    parser.add_argument("--rounds", type=int, default=4, help="turns per comparison")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="workers per replica")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds first")
    parser.add_argument("--dir", help="where the stores live (default: the system temp dir)")
    parser.add_argument("--store", default="sqlite", help="sqlite, postgres, or sqlite,postgres")
    parser.add_argument("--pg-url", help="a PostgreSQL server to make databases on")
    args = parser.parse_args()
    stores = parse_stores(args.store)

    with ExitStack() as stack:
        root = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-remote-", dir=args.dir))
        )
        os.environ.update(isolated_env(root))
        new_database = stack.enter_context(pg_server(args.pg_url)) if "postgres" in stores else None
        sides: list[Served] = []
        try:
            for store in stores:
                sides.append(
                    serve_side(
                        store, root, args.workers, new_database, 2 if store == "postgres" else 1
                    )
                )
            print(
                f"servers: checkout serve --workers {args.workers} per replica; "
                + "; ".join(f"{s.store} at {', '.join(s.urls)}" for s in sides)
                + f"; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
            )
            one_client(sides, args.rounds, args.seconds, args.warmup)
            many_clients(sides, args.clients, args.rounds, args.seconds)
            for side in sides:
                if side.store == "postgres":
                    two_replicas(side, args.clients, args.rounds, args.seconds)
        finally:
            for side in sides:
                for server, _ in side.replicas:
                    server.terminate()
                    server.wait(timeout=30)
        for side in sides:
            problems = check_store(side.target, side.flows)
            print(
                f"served {side.store} store after {side.flows} flows: "
                + (
                    "invariants hold; orders, confirmations and stock exact"
                    if not problems
                    else "PROBLEMS: " + "; ".join(problems[:10])
                )
            )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
