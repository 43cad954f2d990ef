"""Batch invoicing: orders from a CSV or JSON Lines file, each run through the checkout flow
with provider ``invoice``, on any backend.

The file is streamed twice and never held in memory: pass 1 validates every row (and every
SKU, once) before anything is written; pass 2 runs the orders. Rows that share a
``reference`` form one order and must be next to each other.

Each reference is an idempotency key: a journal (a small SQLite file) records, durably and
step by step, the cart, the checkout and the order made for it. A re-run, or a resume after
a crash or Ctrl-C, continues each reference from its last recorded step, and every step it
repeats is idempotent on the backend (initiate reuses the open checkout, complete returns the
same order), so no reference ever gets a second order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.endpoints import ADDRESS, CUSTOMER, QUANTITY, SKU
from checkout_cli.errors import CheckoutError, UsageError
from checkout_cli.schema import Cents, Str

COLUMNS = (
    "reference",
    "product_sku",
    "quantity",
    "email",
    "name",
    "phone",
    "company",
    "line1",
    "line2",
    "postal_code",
    "city",
    "region",
    "country",
    "shipping_cents",
)
REQUIRED = (
    "reference",
    "product_sku",
    "quantity",
    "email",
    "name",
    "line1",
    "postal_code",
    "city",
    "country",
)
ORDER_FIELDS = tuple(c for c in COLUMNS if c not in ("reference", "product_sku", "quantity"))
REFERENCE = Str(max_length=100, pattern=r"[A-Za-z0-9][A-Za-z0-9._:/\-]*", code="invalid_reference")
SHIPPING = Cents("shipping in minor units")


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str
    reference: str | None = None


@dataclass
class Order:
    reference: str
    first_line: int
    fields: dict[str, Any]
    items: list[tuple[str, int]] = field(default_factory=list)

    def customer_body(self) -> dict[str, Any]:
        f = self.fields
        body: dict[str, Any] = {
            "customer": {k: f[k] for k in ("email", "name", "phone", "company") if f.get(k)},
            "shipping_address": {
                k: f[k]
                for k in ("line1", "line2", "postal_code", "city", "region", "country")
                if f.get(k)
            },
        }
        if f.get("shipping_cents") is not None:
            body["shipping_cents"] = f["shipping_cents"]
        return body


@dataclass
class Outcome:
    reference: str
    status: str  # created | already_done | failed | skipped_invalid | would_create
    checkout_token: str | None = None
    order_number: str | None = None
    error: str | None = None
    exit_code: int = 0


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a ``.csv`` or ``.jsonl`` file, one at a time."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise UsageError("file_unreadable", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield number, {"__error__": f"not valid JSON: {exc.msg}"}
                    continue
                yield (
                    number,
                    row
                    if isinstance(row, dict)
                    else {"__error__": "each line must be a JSON object"},
                )
        elif path.suffix.lower() == ".csv":
            # An unknown column is reported on each row that has a value in it (by line and
            # column, like every other problem), so no value is ever silently dropped.
            reader = csv.DictReader(handle, restkey="(extra values)")
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "", [])}
        else:
            raise UsageError("unknown_format", f"{path}: expected a .csv or .jsonl file")


def _check_row(number: int, row: dict[str, Any]) -> tuple[dict[str, Any], list[RowError]]:
    if "__error__" in row:
        return {}, [RowError(number, "line", row["__error__"])]
    errors: list[RowError] = []
    clean: dict[str, Any] = {}
    reference = row.get("reference")
    for key in row:
        if key not in COLUMNS:
            errors.append(RowError(number, key, "unknown column", reference))
    for key in REQUIRED:
        if row.get(key) in (None, ""):
            errors.append(RowError(number, key, "is required", reference))
    checks: dict[str, Any] = {
        "reference": REFERENCE,
        "product_sku": SKU,
        "quantity": QUANTITY,
        "shipping_cents": SHIPPING,
        **{k: CUSTOMER.props[k].node for k in CUSTOMER.props},
        **{k: ADDRESS.props[k].node for k in ADDRESS.props},
    }
    for key, node in checks.items():
        value = row.get(key)
        if value in (None, ""):
            continue
        if key in ("quantity", "shipping_cents") and isinstance(value, str):
            value = int(value) if value.strip().lstrip("-").isdigit() else value
        try:
            clean[key] = node.check(value, key)
        except CheckoutError as exc:
            errors.append(RowError(number, key, exc.message.removeprefix(f"{key}: "), reference))
    return clean, errors


def scan(path: Path, known_sku: Callable[[str], bool]) -> Iterator[Order | RowError]:
    """Stream the file as orders, each followed by its errors (if any)."""
    current: Order | None = None
    current_errors: list[RowError] = []
    seen: set[str] = set()

    def flush() -> Iterator[Order | RowError]:
        if current is not None:
            yield current
        yield from current_errors

    for number, row in read_rows(path):
        clean, errors = _check_row(number, row)
        reference = clean.get("reference")
        if reference is None:
            # No usable reference: the row is an order of its own, under a name no valid
            # reference can have, so --skip-invalid skips it instead of invoicing it.
            reference = f"(line {number})"
        if "product_sku" in clean and not known_sku(clean["product_sku"]):
            errors.append(
                RowError(
                    number,
                    "product_sku",
                    f"no product with SKU {clean['product_sku']!r}",
                    reference,
                )
            )
        if current is None or reference != current.reference:
            yield from flush()
            current_errors = []
            if reference in seen:
                errors.append(
                    RowError(
                        number,
                        "reference",
                        f"{reference!r} appeared earlier; rows of one order must be together",
                        reference,
                    )
                )
            seen.add(reference)
            current = Order(reference, number, {k: clean.get(k) for k in ORDER_FIELDS})
        else:
            for key in ORDER_FIELDS:
                if key in clean and current.fields.get(key) not in (None, clean[key]):
                    errors.append(
                        RowError(
                            number,
                            key,
                            f"differs from the order's first row (line {current.first_line})",
                            reference,
                        )
                    )
        if "product_sku" in clean and "quantity" in clean:
            current.items.append((clean["product_sku"], clean["quantity"]))
        # Every problem belongs to the order its row is part of (the one --skip-invalid skips).
        current_errors.extend(replace(e, reference=current.reference) for e in errors)
    yield from flush()


class Journal:
    """Per reference: the cart, checkout and order made for it, written as each step ends."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL survives a killed process (the crash that matters here) at a fraction of FULL.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS refs (reference TEXT PRIMARY KEY, cart_token TEXT, "
            "checkout_token TEXT, order_number TEXT)"
        )

    def get(self, reference: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT cart_token, checkout_token, order_number FROM refs WHERE reference = ?",
            (reference,),
        ).fetchone()
        return (
            dict(zip(("cart_token", "checkout_token", "order_number"), row, strict=True))
            if row
            else {}
        )

    def record(self, reference: str, **values: str) -> None:
        self.conn.execute(
            "INSERT INTO refs (reference) VALUES (?) ON CONFLICT DO NOTHING", (reference,)
        )
        for column, value in values.items():
            self.conn.execute(
                f"UPDATE refs SET {column} = ? WHERE reference = ?", (value, reference)
            )

    def close(self) -> None:
        self.conn.close()


def default_journal(data_dir: Path, source: Path, target: str) -> Path:
    """One journal per input file and backend, in the data dir."""
    digest = hashlib.sha256(f"{source.resolve()}|{target}".encode()).hexdigest()[:16]
    return data_dir / "batches" / f"{source.stem}-{digest}.db"


def run_order(backend: Backend, journal: Journal, order: Order) -> Outcome:
    """One order through the flow, resuming from the journal; idempotent at every step."""
    flow = "checkout-flow"
    state = journal.get(order.reference)
    if state.get("order_number"):
        return Outcome(
            order.reference, "already_done", state.get("checkout_token"), state["order_number"]
        )
    checkout_token = state.get("checkout_token")
    if checkout_token is None:
        cart_token = state.get("cart_token")
        if cart_token is None:
            cart = None
            for sku, quantity in order.items:
                cart = backend.call(
                    "shopping-cart",
                    "add-item",
                    {
                        "cart_token": cart and cart["cart_token"],
                        "product_sku": sku,
                        "quantity": quantity,
                    },
                )
            cart_token = cart["cart_token"]
            journal.record(order.reference, cart_token=cart_token)
        checkout_token = backend.call(flow, "initiate-checkout", {"cart_token": cart_token})[
            "checkout_token"
        ]
        journal.record(order.reference, checkout_token=checkout_token)
    status = backend.call(flow, "get-checkout-status", {"checkout_token": checkout_token})
    if status["status"] == "active":
        backend.call(
            flow, "set-customer", {"checkout_token": checkout_token, **order.customer_body()}
        )
        backend.call(
            flow, "create-payment", {"checkout_token": checkout_token, "provider": "invoice"}
        )
    done = backend.call(flow, "complete-checkout", {"checkout_token": checkout_token})
    journal.record(order.reference, order_number=done["order"]["order_number"])
    return Outcome(
        order.reference,
        "already_done" if done["already_completed"] else "created",
        checkout_token,
        done["order"]["order_number"],
    )


class Report:
    """The per-order report, written as orders finish (``.csv`` or ``.json``)."""

    KEYS = ("reference", "status", "checkout_token", "order_number", "error")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.json = path.suffix.lower() == ".json"
        self.handle = path.open("w", newline="", encoding="utf-8")
        self.count = 0
        if self.json:
            self.handle.write("[")
        else:
            self.writer = csv.DictWriter(self.handle, fieldnames=self.KEYS)
            self.writer.writeheader()

    def add(self, outcome: Outcome) -> None:
        row = {k: getattr(outcome, k) for k in self.KEYS}
        if self.json:
            self.handle.write(("," if self.count else "") + "\n  " + json.dumps(row))
        else:
            self.writer.writerow(row)
        self.count += 1

    def close(self) -> None:
        if self.json:
            self.handle.write("\n]\n")
        self.handle.close()
