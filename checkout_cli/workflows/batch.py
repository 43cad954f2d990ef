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
import difflib
import hashlib
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from checkout_cli.backends.base import Backend
from checkout_cli.countries import parse_country
from checkout_cli.endpoints import OPEN_CHECKOUT_STATES
from checkout_cli.errors import (
    CheckoutError,
    ConflictError,
    NotFoundError,
    UsageError,
    ValidationError,
)
from checkout_cli.requests import Address, Customer, DefKey, ExternalReference, Quantity, Sku
from checkout_cli.schema import Cents, Request, check, field_type, validate
from checkout_cli.values import JSONRefused, load_json, parse_int
from checkout_cli.workflows.report_file import ReportFile

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


class RowLine(Request):
    """A row's own fields; its customer and address are checked as set-customer's are."""

    reference: ExternalReference
    product_sku: Sku
    quantity: Quantity
    shipping_cents: Annotated[int, Cents("shipping in minor units")] | None = None


# Each part of a row, with the request model that checks it.
_ROW_PARTS: tuple[tuple[type[Request], tuple[str, ...]], ...] = tuple(
    (model, tuple(model.model_fields)) for model in (RowLine, Customer, Address)
)


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
    # Per SKU: the line meta its rows give, {def_key: {field: value}}.
    meta: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

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
    # created | already_done | conflict | failed | skipped_invalid; in the report of a run
    # refused by validation: invalid | not_run
    status: str
    checkout_token: str | None = None
    order_number: str | None = None
    error: str | None = None
    exit_code: int = 0
    # Made again: the journal had an order for it that this store does not have.
    remade: bool = False


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a ``.csv`` or ``.jsonl`` file, one at a time. A UTF-8 BOM and
    CRLF line ends are accepted, and a CSV's separator (``,``, ``;`` or tab) is read from its
    header, as spreadsheets save them. A file that is not UTF-8 is refused whole: its rows
    cannot be read as meant."""
    try:
        yield from _rows(path)
    except UnicodeDecodeError:  # read ahead in blocks: which line is not known
        raise UsageError(
            "invalid_utf8",
            f"{path}: not UTF-8 text",
            recovery="save the file as UTF-8 (in a spreadsheet: CSV UTF-8)",
        ) from None


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError("file_unreadable", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    row = load_json(text)
                except JSONRefused as exc:
                    yield number, {"__error__": f"not valid JSON: {exc}"}
                    continue
                yield (
                    number,
                    row
                    if isinstance(row, dict)
                    else {"__error__": "each line must be a JSON object"},
                )
        elif path.suffix.lower() == ".csv":
            header = handle.readline()
            handle.seek(0)
            separator = max((",", ";", "\t"), key=header.count)
            # A value beyond the header's columns is reported on its row, never dropped.
            reader = csv.DictReader(handle, delimiter=separator, restkey="(extra values)")
            _check_header(path, reader.fieldnames or [])
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "", [])}
        else:
            raise UsageError("unknown_format", f"{path}: expected a .csv or .jsonl file")


def _check_header(path: Path, names: Sequence[str]) -> None:
    """A wrong header is one error about the header (not one per row), whatever
    --skip-invalid says: no row of the file could be read as meant."""
    problems = []
    for name in names:
        if name not in COLUMNS and name != "meta_json" and not name.startswith("meta."):
            close = difflib.get_close_matches(name.strip().lower(), COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown column {name!r}{hint}")
    problems += [f"no {name!r} column" for name in REQUIRED if name not in names]
    if problems:
        raise ValidationError(
            "invalid_header",
            f"{path}:1: header: " + "; ".join(problems),
            field="header",
            recovery="columns: " + ", ".join(COLUMNS) + ", meta.<definition>.<field>, meta_json",
        )


def _check_row(number: int, row: dict[str, Any]) -> tuple[dict[str, Any], list[RowError]]:
    if "__error__" in row:
        return {}, [RowError(number, "line", row["__error__"])]
    errors: list[RowError] = []
    clean: dict[str, Any] = {}
    reference = row.get("reference")
    meta, meta_errors = _row_meta(number, row, reference)
    errors.extend(meta_errors)
    if meta:
        clean["meta"] = meta
    for key in row:
        if key not in COLUMNS and key != "meta_json" and not key.startswith("meta."):
            errors.append(RowError(number, key, "unknown column", reference))
    given = {k: v for k, v in row.items() if k in COLUMNS and v not in (None, "")}
    for key in ("quantity", "shipping_cents"):  # a CSV's numbers are text
        if isinstance(given.get(key), str) and (whole := parse_int(given[key])) is not None:
            given[key] = whole
    if isinstance(given.get("country"), str):  # "nl", "Netherlands": NL
        given["country"] = parse_country(given["country"]) or given["country"]
    for model, columns in _ROW_PARTS:
        try:
            part = validate(model, {k: given[k] for k in columns if k in given})
        except ValidationError as exc:
            problems = exc.errors or []
            errors += [RowError(number, p["field"], p["message"], reference) for p in problems]
            # The part's good fields still count: a row with a bad quantity keeps its
            # reference, so the skip is reported under it.
            bad = {p["field"] for p in problems}
            for name in columns:
                if name in given and name not in bad:
                    clean[name] = check(field_type(model, name), given[name], name)
        else:
            clean.update(part.model_dump(exclude_none=True))
    return clean, errors


def _row_meta(
    number: int, row: dict[str, Any], reference: Any
) -> tuple[dict[str, dict[str, Any]], list[RowError]]:
    """The row's line meta, from ``meta.<def>.<field>`` columns and a ``meta_json`` column
    (a JSON object ``{def: {field: value}}``; in JSON Lines it may be the object itself)."""
    meta: dict[str, dict[str, Any]] = {}
    errors: list[RowError] = []
    given = row.get("meta_json")
    if given not in (None, ""):
        if isinstance(given, str):
            try:
                given = load_json(given)
            except JSONRefused as exc:
                given = None
                errors.append(RowError(number, "meta_json", f"not valid JSON: {exc}"))
        if given is not None and not (
            isinstance(given, dict) and all(isinstance(v, dict) for v in given.values())
        ):
            errors.append(RowError(number, "meta_json", 'must be {"definition": {"field": value}}'))
        elif given:
            meta = {k: dict(v) for k, v in given.items()}
    for key, value in row.items():
        if not key.startswith("meta."):
            continue
        parts = key.split(".")
        if len(parts) != 3 or not all(parts[1:]):
            errors.append(RowError(number, key, "meta columns are meta.<definition>.<field>"))
            continue
        meta.setdefault(parts[1], {})[parts[2]] = value
    for def_key in meta:
        try:
            check(DefKey, def_key, "meta")
        except CheckoutError as exc:
            errors.append(RowError(number, f"meta.{def_key}", exc.message))
    return meta, [replace(e, reference=reference) for e in errors]


def _meta_errors(number: int, clean: dict[str, Any], product: dict[str, Any]) -> list[RowError]:
    """Meta the product requires but the row lacks, or gives but the product does not take."""
    sku = clean["product_sku"]
    given = clean.get("meta", {})
    refs = {ref["def_key"]: ref for ref in product.get("meta_defs", [])}
    errors = [
        RowError(
            number,
            f"meta.{def_key}",
            f"{sku} needs {def_key} meta: add meta.{def_key}.<field> columns or meta_json",
        )
        for def_key, ref in refs.items()
        if ref.get("required") and def_key not in given
    ]
    errors += [
        RowError(
            number,
            f"meta.{def_key}",
            f"{sku} does not take {def_key} meta (it takes: {', '.join(refs) or 'none'})",
        )
        for def_key in given
        if def_key not in refs
    ]
    return errors


def scan(path: Path, product: Callable[[str], dict[str, Any] | None]) -> Iterator[Order | RowError]:
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
        found = product(clean["product_sku"]) if "product_sku" in clean else None
        if "product_sku" in clean and found is None:
            errors.append(
                RowError(
                    number,
                    "product_sku",
                    f"no product with SKU {clean['product_sku']!r}",
                    reference,
                )
            )
        elif found is not None:
            errors += _meta_errors(number, clean, found)
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
            sku = clean["product_sku"]
            if clean.get("meta") and any(s == sku for s, _ in current.items):
                # The cart adds one SKU's rows into one line, which holds one set of meta.
                errors.append(
                    RowError(number, "product_sku", f"{sku} with meta is on one row per order")
                )
            current.items.append((sku, clean["quantity"]))
            if clean.get("meta"):
                current.meta[sku] = clean["meta"]
        # Every problem belongs to the order its row is part of (the one --skip-invalid skips).
        current_errors.extend(replace(e, reference=current.reference) for e in errors)
    yield from flush()


WOULD = ("create", "resume", "already_done", "conflict", "skipped_invalid")


@dataclass
class Plan:
    """Pass 1: every problem in the file, and what a real run would do with each order."""

    errors: list[RowError] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)
    orders: int = 0
    rows: int = 0
    # create | resume | already_done | conflict | skipped_invalid → orders
    would: Counter[str] = field(default_factory=Counter)


def plan(
    path: Path,
    backend: Backend,
    product: Callable[[str], dict[str, Any] | None],
    journal: Journal | None,
) -> Plan:
    """Check the whole file against the store before anything is written: rows, SKUs, line
    meta, which references the store has done, and stock the file's own orders would exhaust
    (orders already made took theirs; each new one is counted in file order)."""
    result = Plan()
    needed: Counter[str] = Counter()
    last: Order | None = None

    def settle(order: Order) -> None:
        if order.reference in result.invalid:
            result.would["skipped_invalid"] += 1
            return
        made = order_for_reference(backend, order.reference)
        if made is not None:
            result.would[_done(order, made).status] += 1
            return
        wanted: Counter[str] = Counter()
        for sku, quantity in order.items:
            wanted[sku] += quantity
        short = [
            RowError(
                order.first_line,
                "quantity",
                f"{sku}: the file's orders need {needed[sku] + quantity} up to this one; "
                f"{stock} in stock",
                order.reference,
            )
            for sku, quantity in wanted.items()
            if (stock := _limit(product(sku))) is not None and needed[sku] + quantity > stock
        ]
        if short:
            result.errors.extend(short)
            result.invalid.add(order.reference)
            result.would["skipped_invalid"] += 1
            return
        needed.update(wanted)
        state = journal.get(order.reference) if journal is not None else {}
        started = state.get("checkout_token") or state.get("cart_token")
        result.would["resume" if started else "create"] += 1

    for item in scan(path, product):
        if isinstance(item, RowError):
            result.errors.append(item)
            result.invalid.add(item.reference or "")
            continue
        if last is not None:
            settle(last)
        last = item
        result.orders += 1
        result.rows += len(item.items)
    if last is not None:
        settle(last)
    return result


def _limit(product: dict[str, Any] | None) -> int | None:
    """The most of a product orders can take, or None for no limit."""
    if not product or product.get("stock") is None or product.get("allow_backorder"):
        return None
    return product["stock"]


@dataclass(frozen=True)
class StoreIdentity:
    """Which store a run works on, whatever the path or URL it is reached by."""

    key: str  # the store's store_id; for a remote that cannot say, its URL and project
    label: str  # where it is, for messages
    known: bool = True  # False: the remote has no get-store, ``key`` is its address


def store_identity(backend: Backend, where: str) -> StoreIdentity:
    """The identity of the store ``backend`` reaches (``where``: how to name it)."""
    store = _found(backend, "checkout-admin", "get-store", {}, "endpoint_not_supported")
    if store is None:  # the hosted platform: its address is the best identity there is
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

    @classmethod
    def peek(cls, path: Path) -> Journal | None:
        """An existing journal, opened read-only (for --dry-run), or None."""
        if not path.exists():
            return None
        journal = cls.__new__(cls)
        journal.path = path
        journal.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        return journal

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


def _found(
    backend: Backend, service: str, name: str, body: dict[str, Any], missing: str
) -> dict[str, Any] | None:
    """What a get-* endpoint returns, or None when it says the record is ``missing`` (any
    other not-found, e.g. an unknown endpoint, is an error)."""
    try:
        return backend.call(service, name, body)
    except NotFoundError as exc:
        if exc.code != missing:
            raise
        return None


def _order_in_store(backend: Backend, order_number: str, checkout_token: str | None) -> bool:
    """The journal's order is in this store, made by the journal's checkout."""
    order = _found(
        backend, "order-management", "get-order", {"order_id": order_number}, "order_not_found"
    )
    return order is not None and order["checkout_token"] == checkout_token


def _checkout_in_store(backend: Backend, token: str | None) -> dict[str, Any] | None:
    if token is None:
        return None
    return _found(
        backend,
        "checkout-flow",
        "get-checkout-status",
        {"checkout_token": token},
        "checkout_not_found",
    )


def _cart_holds(backend: Backend, token: str, order: Order) -> bool:
    """The journal's cart is in this store, open, with exactly the order's items (a store
    restored from a backup taken while the cart was being filled has only some of them)."""
    cart = _found(backend, "shopping-cart", "get-cart", {"cart_token": token}, "cart_not_found")
    if cart is None:
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


def order_for_reference(backend: Backend, reference: str) -> dict[str, Any] | None:
    """The store's order for ``reference`` (orders carry it; one per store), if any."""
    body = {"reference": reference, "limit": 1}
    found = backend.call("order-management", "list-orders", body)["orders"]
    # A remote that ignores the filter answers with its newest order: only the one that
    # carries the reference counts.
    return next((o for o in found if o.get("external_reference") == reference), None)


def differences(order: Order, made: dict[str, Any]) -> list[str]:
    """What the file's order says that the store's order for its reference does not."""
    wanted: Counter[str] = Counter()
    for sku, quantity in order.items:
        wanted[sku] += quantity
    held: Counter[str] = Counter()
    for item in made["items"]:
        held[item["product_sku"]] += item["quantity"]
    changed = ["items"] if wanted != held else []
    customer = made.get("customer") or {}
    address = made.get("shipping_address") or {}
    for key in ORDER_FIELDS:
        value = order.fields.get(key)
        if key == "shipping_cents":
            stored = made["totals"]["shipping_cents"]
        else:
            stored = (customer if key in Customer.model_fields else address).get(key)
        if value is not None and value != stored:
            changed.append(key)
    return changed


def _done(order: Order, made: dict[str, Any]) -> Outcome:
    """A reference the store has an order for: done, or a conflict if the file changed it."""
    number = made["order_number"]
    changed = differences(order, made)
    if not changed:
        return Outcome(order.reference, "already_done", made["checkout_token"], number)
    return Outcome(
        order.reference,
        "conflict",
        made["checkout_token"],
        number,
        error=f"order {number} was made for this reference with other {', '.join(changed)}; "
        "not invoicing it again",
        exit_code=ConflictError.exit_code,
    )


def run_order(backend: Backend, journal: Journal, order: Order) -> Outcome:
    """One order through the flow. The store decides whether its reference is done (orders
    carry it, one per store); the journal only says where an unfinished one stands."""
    made = order_for_reference(backend, order.reference)
    if made is not None:
        return _done(order, made)
    try:
        return _make_order(backend, journal, order)
    except CheckoutError as exc:
        if exc.code == "reference_already_ordered":
            # Another run (a copy of the file, another machine) ordered it first.
            made = order_for_reference(backend, order.reference)
            if made is not None:
                _abandon(backend, journal, order.reference)
                return _done(order, made)
        left = _abandon(backend, journal, order.reference)
        return Outcome(
            order.reference,
            "failed",
            journal.get(order.reference).get("checkout_token") or left[1],
            error=f"{exc.message} ({left[0]})" if left[0] else exc.message,
            exit_code=exc.exit_code,
        )


def _abandon(backend: Backend, journal: Journal, reference: str) -> tuple[str, str | None]:
    """Cancel the open checkout a failed order left, so it holds no stock and cannot be
    completed by mistake; say what is left, and the checkout's token, for the report."""
    state = journal.get(reference)
    token = state.get("checkout_token")
    try:
        checkout = _checkout_in_store(backend, token)
        if checkout is None or checkout["status"] not in OPEN_CHECKOUT_STATES:
            cart = state.get("cart_token")
            return (f"its cart {cart} is left; the next run reuses it" if cart else ""), token
        backend.call("checkout-flow", "cancel-checkout", {"checkout_token": token})
    except CheckoutError as exc:
        return f"its checkout {token} is left open: {exc.message}", token
    journal.record(reference, checkout_token=None)
    return f"its checkout {token} was cancelled", token


def _initiate(backend: Backend, cart_token: str, reference: str) -> dict[str, Any]:
    """The cart's checkout, carrying the reference that its order copies as it is made."""
    return backend.call(
        "checkout-flow",
        "initiate-checkout",
        {"cart_token": cart_token, "external_reference": reference},
    )


def _make_order(backend: Backend, journal: Journal, order: Order) -> Outcome:
    """Resume from the journal where the store agrees with it; idempotent at every step."""
    flow = "checkout-flow"
    reference = order.reference
    state = journal.get(reference)
    remade = False
    if state.get("order_number"):
        # An order an earlier release made carries no reference: the journal names it.
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
        checkout = _initiate(backend, cart_token, reference)
        journal.record(reference, checkout_token=checkout["checkout_token"], order_number=None)
    elif (
        checkout["status"] in OPEN_CHECKOUT_STATES
        and checkout.get("external_reference") != reference
    ):
        # Opened by an earlier release: the reused checkout takes the reference.
        checkout = _initiate(backend, checkout["cart_token"], reference)
    checkout_token = checkout["checkout_token"]
    if checkout["status"] == "active":
        backend.call(
            flow, "set-customer", {"checkout_token": checkout_token, **order.customer_body()}
        )
        for sku, meta in order.meta.items():
            for def_key, values in meta.items():
                backend.call(
                    flow,
                    "set-line-meta",
                    {
                        "checkout_token": checkout_token,
                        "product_sku": sku,
                        "def_key": def_key,
                        "values": values,
                    },
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


def reasons(errors: list[RowError]) -> dict[str, str]:
    """Per invalid reference, its problems as one line: ``line 3: name: is required; …``."""
    found: dict[str, list[str]] = {}
    for e in errors:
        found.setdefault(e.reference or "", []).append(f"line {e.line}: {e.field}: {e.message}")
    return {reference: "; ".join(problems) for reference, problems in found.items()}


class ProgressLines:
    """Off a terminal (a log, CI), a progress line every ``every`` orders or ``seconds``,
    where a terminal has the progress bar."""

    def __init__(
        self,
        total: int,
        every: int,
        on_terminal: bool,
        say: Callable[[str], None],
        seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.every, self.seconds = total, every, seconds
        self.enabled, self.say, self.clock = not on_terminal, say, clock
        self.done = 0
        self.started = self.last = clock()

    def tick(self, counts: dict[str, int]) -> None:
        self.done += 1
        now = self.clock()
        due = self.done % self.every == 0 or now - self.last >= self.seconds
        if not self.enabled or not (due or self.done == self.total):
            return
        self.last = now
        rate = self.done / max(now - self.started, 1e-9)
        self.say(
            f"invoicing: {self.done}/{self.total} orders ({rate:.1f}/s): "
            f"{counts['created']} created, {counts['already_done']} already done, "
            f"{counts['conflict']} conflict, {counts['failed']} failed"
        )


class Report(ReportFile):
    """The per-order report, written as orders finish (``.csv`` or ``.json``)."""

    KEYS = ("reference", "status", "checkout_token", "order_number", "error")

    def __init__(self, path: Path) -> None:
        super().__init__(path, self.KEYS)

    def add(self, outcome: Outcome) -> None:
        self.write({k: getattr(outcome, k) for k in self.KEYS})
