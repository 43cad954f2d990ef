"""What an Idempotency-Key costs a served write: CPU per update-item, with and without a key.

    python tests/benchmarks/bench_idempotent_write.py [--writes 2000] [--rounds 5] [--dir DIR]

The server's own request path without HTTP (``server.app._idempotent`` against
``LocalBackend.call``, one store, this process), taking turns for ``--rounds`` rounds so a
machine whose load changes mid-run slows both alike. CPU time (``time.process_time``), not wall
time: the figure is the work a write adds, whatever else the machine is doing; the flushes
(fdatasync) are in both and mostly wait, not work.

Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import load_fixtures

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SKU = "GIFT-CARD-25"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()

    from checkout_cli.backends.local import LocalBackend
    from checkout_cli.endpoints import get_endpoint
    from checkout_cli.server.app import Service, _idempotent

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-idem-"))
    db = root / "shop.db"
    local = LocalBackend(db, actor="bench")
    load_fixtures(local, root / "outbox")
    cart = local.call("shopping-cart", "add-item", {"product_sku": SKU, "quantity": 1})
    local.close()

    service = Service(db)
    backend = service.backend("api:bench")
    endpoint = get_endpoint("shopping-cart", "update-item")  # one write transaction
    body = {"cart_token": cart["cart_token"], "product_sku": SKU, "quantity": 2}

    def plain() -> None:
        backend.call(endpoint.service, endpoint.name, body)

    def keyed() -> None:
        _idempotent(service, "bench", str(uuid.uuid4()), endpoint, body)

    figures: dict[str, list[float]] = {"without a key": [], "with a key": []}
    for _ in range(args.rounds):
        for name, write in (("without a key", plain), ("with a key", keyed)):
            started = time.process_time()
            for _ in range(args.writes):
                write()
            figures[name].append((time.process_time() - started) / args.writes * 1e6)
    base = statistics.median(figures["without a key"])
    print(f"store {db}; {args.rounds} rounds of {args.writes} writes")
    for name, per_round in figures.items():
        turns = ", ".join(f"{t:.0f}" for t in per_round)
        print(f"{name:14} {statistics.median(per_round):7.0f} us CPU  (turns: {turns})")
    keyed_cost = statistics.median(figures["with a key"]) - base
    print(f"the key adds {keyed_cost:.0f} us CPU per write ({keyed_cost / base:+.0%})")


if __name__ == "__main__":
    main()
