"""A control for bench_remote's "4 clients / 1 client": what this machine gives any server.

    python tests/benchmarks/bench_scaling_control.py [--seconds 3] [--rounds 2]
                                                     [--sizes 16,2048,8192] [--clients 4]

No checkout code runs here. A synthetic request/response server is laid out as bench_remote
lays out ``checkout serve``: 4 server processes (asyncio) sharing one listening socket on
127.0.0.1, and 1 or ``--clients`` client processes on the same machine, each with one
connection, sending a request as soon as the last answer came. Every message costs the same
interpreted work on both sides (a fixed number of list-element visits); ``--sizes`` sets how
much distinct memory, in KiB, each process walks doing it.

With a compact working set the ratio shows what the CPUs can do; with larger ones, what CPU
caches shared by many processes take away. bench_remote's processes (Python, httpx or
Starlette, SQLite) each walk megabytes per request.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import time
from typing import Any

SERVERS = 4
CLIENT_VISITS = 4_000  # per message; about 0.2 ms of CPU with a compact working set
SERVER_VISITS = 8_000
OBJECT_BYTES = 64  # about what a small two-element list and its int take


class Walk:
    """Fixed interpreted work over a working set of ``kib`` KiB of small objects."""

    def __init__(self, kib: int) -> None:
        self.items = [[i, i] for i in range(max(1, kib * 1024 // OBJECT_BYTES))]
        self.stride = max(1, len(self.items) // 1000)  # cover the whole set, not one corner
        self.position = 0

    def run(self, visits: int) -> int:
        items, stride, n = self.items, self.stride, len(self.items)
        position, total = self.position, 0
        for _ in range(visits):
            total += items[position][0]
            position += stride
            if position >= n:
                position -= n - 1
        self.position = position
        return total


def serve(sock: socket.socket, kib: int) -> None:
    walk = Walk(kib)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(100):
            walk.run(SERVER_VISITS)
            writer.write(b"y" * 100)

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


def client(port: int, kib: int, seconds: float, barrier: Any, out: Any) -> None:
    walk = Walk(kib)
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(b"x" * 100)  # warm: the connection accepted, the server's set touched
    conn.recv(100)
    barrier.wait()
    done, until = 0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        walk.run(CLIENT_VISITS)
        conn.sendall(b"x" * 100)
        conn.recv(100)
        done += 1
    out.put(done)
    conn.close()


def messages_per_second(port: int, kib: int, clients: int, seconds: float) -> float:
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(port, kib, seconds, barrier, out)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    done = sum(out.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each turn")
    parser.add_argument("--rounds", type=int, default=2, help="turns per size")
    parser.add_argument("--sizes", default="16,2048,8192", help="working sets in KiB")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    ctx = mp.get_context("fork")
    print(f"{SERVERS} server processes, {mp.cpu_count()} CPUs")
    for kib in (int(size) for size in args.sizes.split(",")):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            servers = [ctx.Process(target=serve, args=(sock, kib)) for _ in range(SERVERS)]
            for p in servers:
                p.start()
            try:
                port = sock.getsockname()[1]
                rates: dict[int, list[float]] = {1: [], args.clients: []}
                for _ in range(args.rounds):
                    for clients in rates:
                        rates[clients].append(messages_per_second(port, kib, clients, args.seconds))
            finally:
                for p in servers:
                    p.kill()
                    p.join()
        one, many = (sum(rates[n]) / len(rates[n]) for n in (1, args.clients))
        print(
            f"working set {kib:6} KiB per process: 1 client {one:7.0f} msgs/s, "
            f"{args.clients} clients {many:7.0f} msgs/s, {many / one:.2f}x"
        )


if __name__ == "__main__":
    main()
