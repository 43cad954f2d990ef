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

The store is the truth, the journal only a guide: a journal is bound to one store (its
``store_id``), and what it says was made is looked up in the store before it is skipped, so a
store restored from a backup gets back exactly the orders it lost.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.endpoints import ADDRESS, CUSTOMER, QUANTITY, SKU
from checkout_cli.errors import (
    CheckoutError,
    ConflictError,
    NotFoundError,
    UsageError,
    ValidationError,
)
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
    # Made again: the journal had an order for it that this store does not have.
    remade: bool = False


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


@dataclass(frozen=True)
class StoreIdentity:
    """Which store a run works on, whatever the path or URL it is reached by."""

    key: str  # the store's store_id; for a remote that cannot say, its URL and project
    label: str  # where it is, for messages
    known: bool = True  # False: the remote has no get-store, ``key`` is its address


def store_identity(backend: Backend, where: str) -> StoreIdentity:
    """The identity of the store ``backend`` reaches (``where``: how to name it)."""
    try:
        store = backend.call("checkout-admin", "get-store", {})
    except NotFoundError as exc:
        if exc.code != "endpoint_not_supported":
            raise
        # The hosted platform: its address is the best identity there is.
        return StoreIdentity(where, where, known=False)
    return StoreIdentity(store["store_id"], where)


class Journal:
    """Per reference: the cart, checkout and order made for it, written as each step ends."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL survives a killed process (the crash that matters here) at a fraction of FULL.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS refs (reference TEXT PRIMARY KEY, cart_token TEXT, "
            "checkout_token TEXT, order_number TEXT)"
        )
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS journal_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )

    def bind(self, store: StoreIdentity) -> str | None:
        """Bind the journal to ``store``, or refuse one made for another store. Returns a
        note for the operator when an unbound journal (an earlier release's) is adopted."""
        info = dict(self.conn.execute("SELECT key, value FROM journal_info"))
        if info.get("store_id") == store.key:
            return None
        if "store_id" in info:
            raise ConflictError(
                "journal_of_another_store",
                f"journal {self.path} belongs to store {info['store_id']} "
                f"({info.get('store', '?')}), not to this one: {store.key} ({store.label})",
                recovery=f"if this store replaced that one on purpose, move {self.path} aside "
                "and run again; otherwise check --db / --remote",
            )
        adopted = self.conn.execute("SELECT 1 FROM refs LIMIT 1").fetchone() is not None
        self.conn.executemany(
            "INSERT INTO journal_info (key, value) VALUES (?, ?)",
            [("store_id", store.key), ("store", store.label)],
        )
        if adopted:
            return (
                f"journal {self.path} was bound to no store (an earlier release made it); "
                f"its entries are checked against this store, to which it is now bound"
            )
        return None

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

    def record(self, reference: str, **values: str | None) -> None:
        """Set these columns of the reference's row (None clears one), in one statement."""
        columns = list(values)
        self.conn.execute(
            f"INSERT INTO refs (reference, {', '.join(columns)}) "
            f"VALUES (?{', ?' * len(columns)}) ON CONFLICT (reference) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in columns),
            (reference, *values.values()),
        )

    def close(self) -> None:
        self.conn.close()


def default_journal(data_dir: Path, source: Path, target: str) -> Path:
    """One journal per input file and backend, in the data dir."""
    digest = hashlib.sha256(f"{source.resolve()}|{target}".encode()).hexdigest()[:16]
    return data_dir / "batches" / f"{source.stem}-{digest}.db"


def run_lock_path(data_dir: Path, source: Path, store: StoreIdentity) -> Path:
    """The lock one run of ``source`` into ``store`` holds, whichever journal it uses."""
    digest = hashlib.sha256(f"{source.resolve()}|{store.key}".encode()).hexdigest()[:16]
    return data_dir / "batches" / "running" / f"{source.stem}-{digest}.lock"


def refuse_overwriting(
    source: Path, store: Path | None, journal: Path, report: Path | None
) -> None:
    """Refuse (usage, exit 2) a journal or report that is the input file, the store or the
    journal (or a SQLite file beside them), whether by path, symlink or hard link."""

    def with_sqlite_files(name: str, path: Path) -> list[tuple[str, Path]]:
        return [(name, Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm")]

    keep = [("the input file", source)]
    if store is not None:
        keep += with_sqlite_files("the store", store)
    writes = [
        ("--journal", journal, keep),
        ("--report", report, keep + with_sqlite_files("the journal", journal)),
    ]
    for flag, written, protected in writes:
        if written is None:
            continue
        for name, path in protected:
            if _same_file(written, path):
                raise UsageError(
                    "would_overwrite",
                    f"{flag} {written} is {name} ({path}): refusing to overwrite it",
                    field=flag.removeprefix("--"),
                    recovery=f"choose another path for {flag}",
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same if it is the same name
        return a.resolve() == b.resolve()


def _order_in_store(backend: Backend, order_number: str, checkout_token: str | None) -> bool:
    """The journal's order is in this store, made by the journal's checkout."""
    try:
        order = backend.call("order-management", "get-order", {"order_id": order_number})
    except NotFoundError as exc:
        if exc.code != "order_not_found":
            raise
        return False
    return order["checkout_token"] == checkout_token


def _checkout_in_store(backend: Backend, token: str | None) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        return backend.call("checkout-flow", "get-checkout-status", {"checkout_token": token})
    except NotFoundError as exc:
        if exc.code != "checkout_not_found":
            raise
        return None


def _cart_holds(backend: Backend, token: str, order: Order) -> bool:
    """The journal's cart is in this store, open, with exactly the order's items (a store
    restored from a backup taken while the cart was being filled has only some of them)."""
    try:
        cart = backend.call("shopping-cart", "get-cart", {"cart_token": token})
    except NotFoundError as exc:
        if exc.code != "cart_not_found":
            raise
        return False
    if cart["status"] == "converted":
        # Ordered, in a checkout the journal does not know: a new cart would be a second order.
        raise ConflictError(
            "cart_already_ordered",
            f"{order.reference}: its cart {token} was ordered in a checkout the journal does "
            "not know; not invoicing it again",
            recovery=f"find the order with `checkout orders list --email {order.fields['email']}`",
        )
    wanted: Counter[str] = Counter()
    for sku, quantity in order.items:
        wanted[sku] += quantity
    held = Counter({item["product_sku"]: item["quantity"] for item in cart["items"]})
    return cart["status"] == "active" and held == wanted


def _fill_cart(backend: Backend, order: Order) -> str:
    cart: dict[str, Any] | None = None
    for sku, quantity in order.items:
        cart = backend.call(
            "shopping-cart",
            "add-item",
            {"cart_token": cart and cart["cart_token"], "product_sku": sku, "quantity": quantity},
        )
    if cart is None:  # scan() gives every order the item of its first row
        raise ValidationError(
            "order_without_items",
            f"{order.reference}: the order has no items",
            field="product_sku",
        )
    return cart["cart_token"]


def run_order(backend: Backend, journal: Journal, order: Order) -> Outcome:
    """One order through the flow, resuming from the journal where the store agrees with it;
    idempotent at every step."""
    flow = "checkout-flow"
    reference = order.reference
    state = journal.get(reference)
    remade = False
    if state.get("order_number"):
        if _order_in_store(backend, state["order_number"], state["checkout_token"]):
            return Outcome(
                reference, "already_done", state["checkout_token"], state["order_number"]
            )
        remade = True  # the store lost it (restored from an older backup?): make it again
    # A checkout the store has is carried on (never a second one); one it lacks is made anew.
    checkout = _checkout_in_store(backend, state.get("checkout_token"))
    if checkout is None:
        cart_token = state.get("cart_token")
        if cart_token is not None and not _cart_holds(backend, cart_token, order):
            cart_token = None
        if cart_token is None:
            cart_token = _fill_cart(backend, order)
            journal.record(reference, cart_token=cart_token, checkout_token=None, order_number=None)
        checkout = backend.call(flow, "initiate-checkout", {"cart_token": cart_token})
        journal.record(reference, checkout_token=checkout["checkout_token"], order_number=None)
    checkout_token = checkout["checkout_token"]
    if checkout["status"] == "active":
        backend.call(
            flow, "set-customer", {"checkout_token": checkout_token, **order.customer_body()}
        )
        backend.call(
            flow, "create-payment", {"checkout_token": checkout_token, "provider": "invoice"}
        )
    done = backend.call(flow, "complete-checkout", {"checkout_token": checkout_token})
    journal.record(reference, order_number=done["order"]["order_number"])
    return Outcome(
        reference,
        "already_done" if done["already_completed"] else "created",
        checkout_token,
        done["order"]["order_number"],
        remade=remade and not done["already_completed"],
    )


class Report:
    """The per-order report, written as orders finish (``.csv`` or ``.json``)."""

    KEYS = ("reference", "status", "checkout_token", "order_number", "error")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.json = path.suffix.lower() == ".json"
        try:
            self.handle = path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                "report_unwritable",
                f"cannot write the report {path}: {exc.strerror}",
                field="report",
            ) from None
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
