"""Shared by the benchmark scripts (not a test module: pytest collects only ``test_*.py``)."""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CUSTOMER = {
    "customer": {"email": "anna@example.com", "name": "Anna de Vries"},
    "shipping_address": {
        "line1": "Prinsengracht 263",
        "postal_code": "1016 GV",
        "city": "Amsterdam",
        "country": "NL",
    },
}


def fixture(name: str) -> dict[str, Any]:
    return json.loads(files("checkout_cli").joinpath("fixtures", name).read_text())


def load_fixtures(backend: Any, outbox_dir: Path) -> None:
    """The shipped settings, meta definitions and catalog; emails as files in outbox_dir."""
    settings = {
        **fixture("settings.json"),
        "email_transport": "file",
        "email_outbox_dir": str(outbox_dir),
    }
    for key, value in settings.items():
        backend.call("checkout-admin", "set-setting", {"key": key, "value": value})
    for definition in fixture("meta_definitions.json")["definitions"]:
        backend.call("product-catalog", "upsert-meta-definition", definition)
    for product in fixture("catalog.json")["products"]:
        backend.call("product-catalog", "upsert-product", product)


def invoice_flow(backend: Any, sku: str = "LENS-DAILY-30", quantity: int = 1) -> dict[str, Any]:
    """add-item → initiate-checkout → set-customer → create-payment invoice → complete."""
    cart = backend.call("shopping-cart", "add-item", {"product_sku": sku, "quantity": quantity})
    token = backend.call("checkout-flow", "initiate-checkout", {"cart_token": cart["cart_token"]})[
        "checkout_token"
    ]
    backend.call("checkout-flow", "set-customer", {"checkout_token": token, **CUSTOMER})
    backend.call(
        "checkout-flow", "create-payment", {"checkout_token": token, "provider": "invoice"}
    )
    return backend.call("checkout-flow", "complete-checkout", {"checkout_token": token})


def isolated_env(root: Path) -> dict[str, str]:
    """The environment for child processes: no user config or data dir, no colour.

    Bytecode is cached under ``root/pycache`` for every contender alike: with
    ``PYTHONDONTWRITEBYTECODE`` set (as in some sandboxes) and sources newer than their
    ``__pycache__``, each run would recompile the project's edited modules from source, which
    an installed CLI never does. The warm-up runs fill the cache.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_DATA_HOME=str(root / "data"),
        PYTHONPYCACHEPREFIX=str(root / "pycache"),
        NO_COLOR="1",
        COLUMNS="100",
    )
    for name in ("CHECKOUT_DB", "CHECKOUT_PROFILE", "CHECKOUT_REMOTE", "CHECKOUT_TOKEN"):
        env.pop(name, None)
    return env


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def verdict(ratio: float, target: float, higher_is_better: bool = False) -> str:
    ok = ratio >= target if higher_is_better else ratio <= target
    return "ok" if ok else "MISSED"


def parse_stores(text: str) -> list[str]:
    """``--store sqlite,postgres`` → ["sqlite", "postgres"]; anything else is refused."""
    stores = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(stores) - {"sqlite", "postgres"})
    if unknown or not stores:
        raise SystemExit(f"--store takes sqlite, postgres or both (comma-separated), not {text!r}")
    return list(dict.fromkeys(stores))


@contextmanager
def pg_server(url: str | None) -> Iterator[Callable[[str], str]]:
    """Makes PostgreSQL databases for a benchmark: on the server at ``url`` (one we may CREATE
    DATABASE on; each is dropped afterwards), or else on a throwaway cluster started for the run
    with durability on (fsync, full page writes), as a production server runs. Yields
    ``new(name) -> url``."""
    import psycopg
    from psycopg import sql

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pg_cluster import Cluster

    cluster = None if url else Cluster.start(durable=True)
    base = url or cluster.url()
    made: list[str] = []

    def new(name: str) -> str:
        dbname = f"bench_{name}_{secrets.token_hex(4)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        made.append(dbname)
        return urlunsplit(urlsplit(base)._replace(path=f"/{dbname}"))

    try:
        yield new
    finally:
        if cluster is not None:
            cluster.close()
        else:
            with psycopg.connect(base, autocommit=True) as conn:
                for dbname in made:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(dbname)
                        )
                    )
