"""The store's schema, versioned by ``PRAGMA user_version`` with forward-only migrations.

Tables are made with sqlite-utils (imported only here, when a store is created or upgraded).
Each migration runs inside the caller's write transaction; the version is bumped with it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from checkout_cli.errors import ConflictError

SCHEMA_VERSION = 10


def _v1(conn: sqlite3.Connection) -> None:
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    db.table("settings").create({"key": str, "value": str}, pk="key")
    db.table("vault").create(
        {"name": str, "value": str, "set_at": str}, pk="name", not_null={"value"}
    )
    db.table("counters").create({"name": str, "value": int}, pk="name", not_null={"value"})
    db.table("products").create(
        {
            "sku": str,
            "name": str,
            "price_cents": int,
            "currency": str,
            "stock": int,
            "allow_backorder": int,
            "status": str,
            "meta_defs": str,
            "config": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="sku",
        not_null={"name", "price_cents", "currency", "allow_backorder", "status"},
        defaults={"allow_backorder": 0, "status": "active", "meta_defs": "[]", "config": "{}"},
    )
    # Every change of a tracked product's stock, so stock = sum(delta) can be checked.
    db.table("stock_movements").create(
        {"id": int, "sku": str, "delta": int, "reason": str, "ref": str, "at": str},
        pk="id",
        not_null={"sku", "delta", "reason", "at"},
        foreign_keys=[("sku", "products")],
    )
    db.table("carts").create(
        {
            "id": int,
            "token": str,
            "status": str,
            "currency": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"token", "status", "currency"},
    )
    db.table("cart_items").create(
        {"id": int, "cart_id": int, "product_sku": str, "quantity": int, "added_at": str},
        pk="id",
        not_null={"cart_id", "product_sku", "quantity"},
        foreign_keys=[("cart_id", "carts"), ("product_sku", "products")],
    )
    db.table("checkouts").create(
        {
            "id": int,
            "token": str,
            "cart_id": int,
            "status": str,
            "currency": str,
            "customer": str,
            "shipping_address": str,
            "billing_address": str,
            "subtotal_cents": int,
            "shipping_cents": int,
            "tax_cents": int,
            "total_cents": int,
            "cancel_reason": str,
            "created_at": str,
            "updated_at": str,
            "expires_at": str,
        },
        pk="id",
        not_null={
            "token",
            "cart_id",
            "status",
            "currency",
            "subtotal_cents",
            "shipping_cents",
            "tax_cents",
            "total_cents",
        },
        foreign_keys=[("cart_id", "carts")],
    )
    db.table("checkout_lines").create(
        {
            "id": int,
            "checkout_id": int,
            "line_no": int,
            "product_sku": str,
            "name": str,
            "quantity": int,
            "unit_price_cents": int,
            "line_total_cents": int,
            "tax_cents": int,
            "meta": str,
        },
        pk="id",
        not_null={"checkout_id", "line_no", "product_sku", "quantity"},
        foreign_keys=[("checkout_id", "checkouts")],
        defaults={"meta": "{}", "tax_cents": 0},
    )
    db.table("payments").create(
        {
            "id": int,
            "checkout_id": int,
            "provider": str,
            "provider_payment_id": str,
            "status": str,
            "redirect_url": str,
            "amount_cents": int,
            "currency": str,
            "reference": str,
            "idempotency_key": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"checkout_id", "provider", "status", "amount_cents", "currency"},
        foreign_keys=[("checkout_id", "checkouts")],
    )
    db.table("orders").create(
        {
            "id": int,
            "order_id": str,
            "order_number": str,
            "checkout_id": int,
            "status": str,
            "payment_status": str,
            "currency": str,
            "customer": str,
            "shipping_address": str,
            "billing_address": str,
            "subtotal_cents": int,
            "shipping_cents": int,
            "tax_cents": int,
            "total_cents": int,
            "created_at": str,
        },
        pk="id",
        not_null={"order_id", "order_number", "checkout_id", "status", "payment_status"},
        foreign_keys=[("checkout_id", "checkouts")],
    )
    db.table("order_lines").create(
        {
            "id": int,
            "order_id": int,
            "line_no": int,
            "product_sku": str,
            "name": str,
            "quantity": int,
            "unit_price_cents": int,
            "line_total_cents": int,
            "tax_cents": int,
            "meta": str,
        },
        pk="id",
        not_null={"order_id", "line_no", "product_sku", "quantity"},
        foreign_keys=[("order_id", "orders")],
    )
    db.table("outbox").create(
        {
            "id": int,
            "order_id": int,
            "kind": str,
            "recipient": str,
            "subject": str,
            "body_text": str,
            "body_html": str,
            "status": str,
            "attempts": int,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
        },
        pk="id",
        not_null={"order_id", "kind", "recipient", "status"},
        defaults={"attempts": 0},
        foreign_keys=[("order_id", "orders")],
    )
    db.table("events").create(
        {
            "id": int,
            "checkout_id": int,
            "at": str,
            "actor": str,
            "kind": str,
            "from_status": str,
            "to_status": str,
            "detail": str,
        },
        pk="id",
        not_null={"checkout_id", "at", "kind"},
        foreign_keys=[("checkout_id", "checkouts")],
    )
    db.table("carts").create_index(["token"], unique=True)
    db.table("cart_items").create_index(["cart_id", "product_sku"], unique=True)
    db.table("checkouts").create_index(["token"], unique=True)
    db.table("checkouts").create_index(["status", "updated_at"])
    db.table("checkout_lines").create_index(["checkout_id", "line_no"], unique=True)
    db.table("payments").create_index(["checkout_id"])
    db.table("orders").create_index(["order_id"], unique=True)
    db.table("orders").create_index(["order_number"], unique=True)
    db.table("orders").create_index(["checkout_id"], unique=True)  # invariant 1
    db.table("order_lines").create_index(["order_id", "line_no"], unique=True)
    db.table("outbox").create_index(["order_id", "kind"], unique=True)  # invariant 4
    db.table("events").create_index(["checkout_id", "id"])
    db.table("stock_movements").create_index(["sku"])
    # Invariant 2: at most one open checkout per cart (a partial index sqlite-utils can't make).
    conn.execute(
        "CREATE UNIQUE INDEX one_open_checkout_per_cart ON checkouts(cart_id) "
        "WHERE status IN ('active', 'payment_pending', 'completable')"
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Versioned line meta definitions."""
    import sqlite_utils

    sqlite_utils.Database(conn).table("meta_definitions").create(
        {"def_key": str, "version": int, "title": str, "fields": str, "created_at": str},
        pk=("def_key", "version"),
        not_null={"title", "fields"},
    )


def _v3(conn: sqlite3.Connection) -> None:
    """Stock reservations for pending provider payments."""
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    db.table("stock_reservations").create(
        {"id": int, "checkout_id": int, "sku": str, "quantity": int, "created_at": str},
        pk="id",
        not_null={"checkout_id", "sku", "quantity"},
        foreign_keys=[("checkout_id", "checkouts"), ("sku", "products")],
    )
    db.table("stock_reservations").create_index(["checkout_id", "sku"], unique=True)
    db.table("stock_reservations").create_index(["sku"])
    db.table("payments").create_index(["provider", "provider_payment_id"])


def _v4(conn: sqlite3.Connection) -> None:
    """API tokens and the remembered responses of idempotent HTTP requests."""
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    db.table("api_tokens").create(
        {
            "id": int,
            "name": str,
            "token_hash": str,
            "created_at": str,
            "revoked_at": str,
        },
        pk="id",
        not_null={"name", "token_hash"},
    )
    db.table("api_tokens").create_index(["token_hash"], unique=True)
    db.table("idempotent_requests").create(
        {
            "key": str,
            "request_hash": str,
            "status": str,
            "http_status": int,
            "response": str,
            "created_at": str,
        },
        pk="key",
        not_null={"request_hash", "status"},
    )


def _v5(conn: sqlite3.Connection) -> None:
    """Outbox rows for a checkout before there is an order (payment link emails)."""
    import sqlite_utils

    outbox = sqlite_utils.Database(conn).table("outbox")
    # transform_sql, not transform: the rebuild must run inside this migration's transaction.
    for sql in outbox.transform_sql(not_null={"order_id": False}):
        conn.execute(sql)
    conn.execute("ALTER TABLE outbox ADD COLUMN checkout_id INTEGER REFERENCES checkouts(id)")


def _v6(conn: sqlite3.Connection) -> None:
    """When an outbox row was claimed, to find deliveries cut off mid-send."""
    conn.execute("ALTER TABLE outbox ADD COLUMN claimed_at TEXT")


def _v7(conn: sqlite3.Connection) -> None:
    """Token scopes, idempotency leases, refunds at the provider, and the store's identity."""
    import secrets

    import sqlite_utils

    db = sqlite_utils.Database(conn)
    # Tokens made before scopes existed get `operate`: the checkout flow keeps working, and
    # nothing that changes the shop's catalog or settings is granted without being asked for.
    conn.execute("ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'operate'")
    # A claim names the process running it and until when it may (lease), so a claim whose
    # process died can be taken over instead of blocking its key for good.
    conn.execute("ALTER TABLE idempotent_requests ADD COLUMN owner TEXT")
    conn.execute("ALTER TABLE idempotent_requests ADD COLUMN lease_until TEXT")
    db.table("idempotent_requests").create_index(["created_at"])
    # A refund is made in two phases like a payment: the attempt (with its idempotency key)
    # is recorded before the provider is called, its result after.
    db.table("refunds").create(
        {
            "id": int,
            "payment_id": int,
            "checkout_id": int,
            "order_id": int,
            "provider": str,
            "provider_refund_id": str,
            "status": str,
            "amount_cents": int,
            "currency": str,
            "reason": str,
            "idempotency_key": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"payment_id", "checkout_id", "provider", "status", "amount_cents", "currency"},
        foreign_keys=[
            ("payment_id", "payments"),
            ("checkout_id", "checkouts"),
            ("order_id", "orders"),
        ],
    )
    db.table("refunds").create_index(["idempotency_key"], unique=True)
    db.table("refunds").create_index(["payment_id"])
    # Who this store is, whatever its path: a batch journal or a vault key is bound to it.
    db.table("store_info").create({"key": str, "value": str}, pk="key", not_null={"value"})
    conn.execute(
        "INSERT INTO store_info (key, value) VALUES ('store_id', ?)",
        (f"store_{secrets.token_hex(16)}",),
    )
    # What a provider payment attempt asked for, so an attempt left `creating` by a timeout
    # can be replayed exactly (same key, same parameters) to find what it made.
    conn.execute("ALTER TABLE payments ADD COLUMN request TEXT")
    # The payment an order was completed by: any other paid one of its checkout is a stray.
    conn.execute("ALTER TABLE orders ADD COLUMN payment_id INTEGER REFERENCES payments(id)")
    # The Idempotency-Key of the HTTP request that made an event: a retry of a request whose
    # worker died finds what its earlier attempt did, and answers as it would have.
    conn.execute("ALTER TABLE events ADD COLUMN request_key TEXT")
    # The vault is encrypted at rest from this version on: older plaintext values are sealed
    # here, under this store's key (see engine/vault_keys.py), after the SMTP password is
    # blanked from errors stored by releases that leaked it; `after_upgrade` then rewrites
    # the file so no freed page keeps the plaintext.
    # Imported here: only this one-time upgrade needs them, not every store open.
    from checkout_cli.engine import mail, vault_rows

    mail.redact_stored_password(conn)
    vault_rows.seal_plaintext(conn)
    # A batch reference, carried from initiate to the order it makes: the UNIQUE index is
    # what makes two runs of one reference (a copied file, another machine) one order.
    conn.execute("ALTER TABLE checkouts ADD COLUMN external_reference TEXT")
    conn.execute("ALTER TABLE orders ADD COLUMN external_reference TEXT")
    conn.execute(
        "CREATE UNIQUE INDEX orders_external_reference ON orders (external_reference) "
        "WHERE external_reference IS NOT NULL"
    )


def _v8(conn: sqlite3.Connection) -> None:
    """Smoke runs: the product, cart and checkout `checkout smoke` makes carry its run id.

    Everything else a run makes (cart items, payments, an order, its email, events, stock
    movements) belongs to its checkout or product, so is a test row through them. Only the
    smoke endpoints set the id (engine/smoke_runs.py); lists, numbering and delivery skip
    such rows, and the run removes them when it ends.
    """
    for table in ("products", "carts", "checkouts"):
        conn.execute(f"ALTER TABLE {table} ADD COLUMN test_run TEXT")
        conn.execute(
            f"CREATE INDEX {table}_test_run ON {table} (test_run) WHERE test_run IS NOT NULL"
        )


def _v9(conn: sqlite3.Connection) -> None:
    """An order's life after completion: payments received, refunds, shipments, cancelling.

    The order keeps its amounts and statuses in columns (what lists filter on); they are
    recomputed from the rows below in every transaction that changes one of them
    (engine/order_state.py), and doctor checks they still agree.
    """
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for sql in (
        "ALTER TABLE orders ADD COLUMN amount_paid_cents INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE orders ADD COLUMN amount_refunded_cents INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE orders ADD COLUMN fulfilment_status TEXT NOT NULL DEFAULT 'unfulfilled'",
        "ALTER TABLE orders ADD COLUMN cancelled_at TEXT",
        "ALTER TABLE orders ADD COLUMN cancel_reason TEXT",
        "ALTER TABLE orders ADD COLUMN updated_at TEXT",
        # An event of an order's life is on its checkout's timeline and names the order.
        "ALTER TABLE events ADD COLUMN order_id INTEGER REFERENCES orders(id)",
        # A payment link for an order's balance is a provider payment of the order's checkout
        # that names the order: paid, it becomes one of the order's payments.
        "ALTER TABLE payments ADD COLUMN order_id INTEGER REFERENCES orders(id)",
        # A refund is at the provider, or a credit recorded for money paid outside one.
        "ALTER TABLE refunds ADD COLUMN kind TEXT NOT NULL DEFAULT 'provider'",
        # What was asked (amount, lines, restock), so a retry of an unfinished one is matched.
        "ALTER TABLE refunds ADD COLUMN request TEXT",
        "ALTER TABLE refunds ADD COLUMN restocked INTEGER NOT NULL DEFAULT 0",
    ):
        conn.execute(sql)
    # A credit (money paid outside a provider, returned by hand) is no provider payment's.
    db.table("refunds").transform(not_null={"payment_id": False})
    db.table("order_payments").create(
        {
            "id": int,
            "order_id": int,
            "payment_id": int,
            "method": str,
            "amount_cents": int,
            "currency": str,
            "reference": str,
            "paid_on": str,
            "forced": int,
            "note": str,
            "created_at": str,
            "actor": str,
        },
        pk="id",
        not_null={"order_id", "method", "amount_cents", "currency", "created_at"},
        defaults={"forced": 0},
        foreign_keys=[("order_id", "orders"), ("payment_id", "payments")],
    )
    db.table("order_payments").create_index(["order_id"])
    # A payment received is recorded once: a bank transaction id, or a provider payment.
    conn.execute(
        "CREATE UNIQUE INDEX order_payments_reference ON order_payments (reference) "
        "WHERE reference IS NOT NULL"
    )
    conn.execute(
        "CREATE UNIQUE INDEX order_payments_payment ON order_payments (payment_id) "
        "WHERE payment_id IS NOT NULL"
    )
    db.table("refund_lines").create(
        {"id": int, "refund_id": int, "order_id": int, "line_no": int, "quantity": int},
        pk="id",
        not_null={"refund_id", "order_id", "line_no", "quantity"},
        foreign_keys=[("refund_id", "refunds"), ("order_id", "orders")],
    )
    db.table("refund_lines").create_index(["order_id", "line_no"])
    db.table("refunds").create_index(["order_id"])
    db.table("fulfilments").create(
        {
            "id": int,
            "order_id": int,
            "carrier": str,
            "tracking_number": str,
            "tracking_url": str,
            "created_at": str,
            "actor": str,
        },
        pk="id",
        not_null={"order_id", "created_at"},
        foreign_keys=[("order_id", "orders")],
    )
    db.table("fulfilments").create_index(["order_id"])
    db.table("fulfilment_lines").create(
        {"id": int, "fulfilment_id": int, "order_id": int, "line_no": int, "quantity": int},
        pk="id",
        not_null={"fulfilment_id", "order_id", "line_no", "quantity"},
        foreign_keys=[("fulfilment_id", "fulfilments"), ("order_id", "orders")],
    )
    db.table("fulfilment_lines").create_index(["order_id", "line_no"])
    db.table("orders").create_index(["status", "payment_status"])
    # What the orders of earlier releases were paid: the payment they were completed by.
    conn.execute(
        "INSERT INTO order_payments (order_id, payment_id, method, amount_cents, currency, "
        "created_at, actor) SELECT o.id, o.payment_id, p.provider, p.amount_cents, p.currency, "
        "o.created_at, 'upgrade' FROM orders o JOIN payments p ON p.id = COALESCE(o.payment_id, "
        "(SELECT MAX(q.id) FROM payments q WHERE q.checkout_id = o.checkout_id "
        "AND q.status NOT IN ('creating', 'create_failed'))) WHERE o.payment_status = 'paid'"
    )
    conn.execute(
        "UPDATE orders SET updated_at = created_at, amount_paid_cents = COALESCE((SELECT "
        "SUM(amount_cents) FROM order_payments q WHERE q.order_id = orders.id), 0)"
    )


def _v10(conn: sqlite3.Connection) -> None:
    """Carts a visitor is linked to and merged into; order events sent out as webhooks.

    A change that should tell subscribers queues one ``webhook_events`` row (its payload fixed
    at that moment) and one ``webhook_deliveries`` row per subscription in the same
    transaction; delivery runs after the commit (engine/webhook_delivery.py), so an event is
    delivered at least once whatever process dies when.
    """
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for sql in (
        "ALTER TABLE carts ADD COLUMN visitor_id TEXT",
        # A merged cart is abandoned; it names the cart its items went to.
        "ALTER TABLE carts ADD COLUMN merged_into INTEGER REFERENCES carts(id)",
    ):
        conn.execute(sql)
    db.table("carts").create_index(["visitor_id"])
    db.table("webhook_subscriptions").create(
        {
            "id": int,
            "public_id": str,
            "url": str,
            "events": str,  # JSON list of event types, or ["*"]
            "status": str,  # active, disabled (unsubscribed: the receiver answered 410)
            "description": str,
            "secret_name": str,  # the vault entry holding its signing secret
            "created_at": str,
            "disabled_at": str,
            "disabled_reason": str,
        },
        pk="id",
        not_null={"public_id", "url", "events", "status", "secret_name", "created_at"},
        defaults={"status": "active"},
    )
    db.table("webhook_subscriptions").create_index(["public_id"], unique=True)
    db.table("webhook_events").create(
        {
            "id": int,
            "public_id": str,
            "type": str,
            "event_row_id": int,  # the timeline event it tells of (null: a trigger's test event)
            "order_id": int,
            "checkout_id": int,
            "payload": str,
            "created_at": str,
        },
        pk="id",
        not_null={"public_id", "type", "payload", "created_at"},
        foreign_keys=[
            ("event_row_id", "events"),
            ("order_id", "orders"),
            ("checkout_id", "checkouts"),
        ],
    )
    db.table("webhook_events").create_index(["public_id"], unique=True)
    # One webhook event per timeline event and type.
    db.table("webhook_events").create_index(["event_row_id", "type"], unique=True)
    db.table("webhook_deliveries").create(
        {
            "id": int,
            "public_id": str,
            "event_id": int,
            "subscription_id": int,
            "status": str,  # queued, sending, delivered, failed (retrying), dead (gave up)
            "attempts": int,
            "next_attempt_at": str,
            "claimed_at": str,
            "response_status": int,
            "response_body": str,
            "last_error": str,
            "delivered_at": str,
            "created_at": str,
            "resend_of": int,
        },
        pk="id",
        not_null={"public_id", "event_id", "subscription_id", "status", "attempts", "created_at"},
        defaults={"attempts": 0},
        foreign_keys=[
            ("event_id", "webhook_events"),
            ("subscription_id", "webhook_subscriptions"),
            ("resend_of", "webhook_deliveries", "id"),
        ],
    )
    db.table("webhook_deliveries").create_index(["public_id"], unique=True)
    db.table("webhook_deliveries").create_index(["status", "next_attempt_at"])
    # Exactly once per event and subscription (a resend is its own row, naming the first).
    conn.execute(
        "CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries "
        "(event_id, subscription_id) WHERE resend_of IS NULL"
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
    6: _v6,
    7: _v7,
    8: _v8,
    9: _v9,
    10: _v10,
}


VAULT_SEALED_SINCE = 7


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; refuse a store made by a newer release.
    Returns the version the store had (read inside the caller's transaction)."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise too_new_error(current)
    for version in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {version}")
    return current


def too_new_error(found: int) -> ConflictError:
    """The one refusal of a store written by a newer release: every command gives it."""
    from checkout_cli import __version__

    return ConflictError(
        "store_too_new",
        f"the store has schema version {found}; this checkout-cli ({__version__}) knows "
        f"versions up to {SCHEMA_VERSION}",
        recovery=f"use a newer checkout-cli, one that knows schema version {found}",
    )


def after_upgrade(conn: sqlite3.Connection, from_version: int) -> bool:
    """What an upgrade needs outside its transaction; True if it rewrote the file.

    A store from before the vault was sealed kept plaintext values, and pages its SQLite
    freed (without ``secure_delete``) may still hold old ones: VACUUM rewrites the file from
    the live, now sealed, rows alone. Once per store, and only if its vault has values.
    """
    if not 0 < from_version < VAULT_SEALED_SINCE:
        return False
    if conn.execute("SELECT 1 FROM vault LIMIT 1").fetchone() is None:
        return False
    conn.execute("VACUUM")
    return True
