"""The invariants of DESIGN §3 and §9, checked on a store (``checkout doctor``).

``check_invariants(conn)`` only reads: it runs every check inside one read transaction (a
consistent snapshot, even while other processes write) and returns a list of
``Violation``s, each naming the invariant, saying what is wrong in words an operator can act
on, and listing the records involved (checkout token, order number, SKU, line number).

1. one order per checkout: a completed checkout has exactly one order, no other checkout has one;
2. at most one open checkout (``active``/``payment_pending``/``completable``) per cart;
3. a tracked product's stock equals the sum of its stock movements and is not below zero
   unless it allows backorder; its ``order`` movements match the quantities ordered, and its
   ``restock`` movements (refunds, cancellations) give back at most what was ordered;
4. exactly one ``order_confirmation`` outbox row per order;
5. totals add up, on checkouts and orders alike: ``total = subtotal + shipping + tax``,
   ``subtotal = Σ line_total``, ``tax = Σ line tax``, ``line_total = unit_price × quantity``;
6. every order line carries its checkout line's meta unchanged (same ``line_no``);
7. no paid provider payment without an order or a refund: a Stripe/Mollie payment recorded
   paid is the payment of an open checkout, or the payment its checkout's order was
   completed by, or counted among its order's payments (a paid payment link), or has a
   refund the provider accepted; and no order holds a paid payment link's money beyond what
   it is owed (cancelled, or paid twice over) without a refund of the surplus
   (``engine/strays.py``);
8. an order's amounts and statuses agree with its rows: ``amount_paid_cents`` = Σ its
   payments, ``amount_refunded_cents`` = Σ its succeeded refunds, its three statuses what
   those and its shipments make them (``engine/order_state.py``), and every provider payment
   it counts is paid;
9. never refunded more than paid: Σ refunds recorded, under way or done ≤ Σ payments;
10. never shipped more than ordered, per order line;
11. one email per event: an order event that says it queued an email (its detail's
    ``email``: the outbox kind, e.g. ``shipped:3``) has that email in the outbox, and no order
    has an email of one kind twice (the outbox's UNIQUE (order_id, kind), checked in case it
    was lost); an event whose email was switched off by its setting names none, so nothing
    is expected of it;
12. no webhook event lost: every webhook event has a delivery for each subscription that was
    active and wanted its type when it was made; no delivery is left ``sending`` past its
    lease (a killed sender: the next `checkout events deliver` retakes it); and every
    delivery given up (``dead``) to a subscription still active is listed, to be resent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import order_state, smoke_runs, strays

OPEN_STATES = ("active", "payment_pending", "completable")


# Each invariant's name, as `doctor` prints it (the numbers are DESIGN §3 and §9's).
NAMES = {
    0: "store_file_intact",
    1: "one_order_per_checkout",
    2: "one_open_checkout_per_cart",
    3: "stock_matches_ledger",
    4: "one_confirmation_per_order",
    5: "totals_add_up",
    6: "meta_copied_unchanged",
    7: "no_stray_paid_payment",
    8: "order_amounts_agree",
    9: "refunded_within_paid",
    10: "shipped_within_ordered",
    11: "one_email_per_event",
    12: "no_webhook_event_lost",
}


@dataclass(frozen=True)
class Violation:
    invariant: int
    message: str
    records: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"name": NAMES.get(self.invariant, str(self.invariant))}


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row  # whatever the connection's own row factory is
    try:
        return cursor.execute(sql, params).fetchall()
    finally:
        cursor.close()


# ---- 1. one order per checkout -----------------------------------------------------------------


def _one_order_per_checkout(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT c.token, c.status, COUNT(o.id) AS orders, GROUP_CONCAT(o.order_number, ', ') "
        "AS numbers FROM checkouts c LEFT JOIN orders o ON o.checkout_id = c.id "
        "GROUP BY c.id HAVING (c.status = 'completed' AND COUNT(o.id) != 1) "
        "OR (c.status != 'completed' AND COUNT(o.id) > 0) ORDER BY c.id",
    ):
        records = {"checkout_token": row["token"], "status": row["status"]}
        if row["numbers"]:
            records["order_numbers"] = row["numbers"]
        if row["status"] == "completed" and row["orders"] == 0:
            message = f"checkout {row['token']} is completed but has no order"
        elif row["status"] == "completed":
            message = (
                f"checkout {row['token']} has {row['orders']} orders ({row['numbers']}); "
                "a checkout has exactly one"
            )
        else:
            message = (
                f"checkout {row['token']} is {row['status']} but has order {row['numbers']}; "
                "only a completed checkout has an order"
            )
        yield Violation(1, message, records)
    for row in _rows(
        conn,
        "SELECT o.order_number, o.checkout_id FROM orders o "
        "LEFT JOIN checkouts c ON c.id = o.checkout_id WHERE c.id IS NULL ORDER BY o.id",
    ):
        yield Violation(
            1,
            f"order {row['order_number']} belongs to no checkout (checkout id "
            f"{row['checkout_id']} does not exist)",
            {"order_number": row["order_number"], "checkout_id": row["checkout_id"]},
        )


# ---- 2. at most one open checkout per cart -----------------------------------------------------


def _one_open_checkout_per_cart(conn: sqlite3.Connection) -> Iterator[Violation]:
    marks = ", ".join("?" * len(OPEN_STATES))
    for row in _rows(
        conn,
        "SELECT k.token AS cart_token, COUNT(*) AS n, "
        "GROUP_CONCAT(c.token || ' (' || c.status || ')', ', ') AS checkouts "
        f"FROM checkouts c JOIN carts k ON k.id = c.cart_id WHERE c.status IN ({marks}) "
        "GROUP BY c.cart_id, k.id HAVING COUNT(*) > 1 ORDER BY c.cart_id",
        OPEN_STATES,
    ):
        yield Violation(
            2,
            f"cart {row['cart_token']} has {row['n']} open checkouts ({row['checkouts']}); "
            "at most one may be open",
            {"cart_token": row["cart_token"], "checkout_tokens": row["checkouts"]},
        )


# ---- 3. stock ----------------------------------------------------------------------------------


def _stock(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT p.sku, p.stock, p.allow_backorder, "
        "(SELECT COALESCE(SUM(m.delta), 0) FROM stock_movements m WHERE m.sku = p.sku) AS ledger "
        "FROM products p WHERE p.stock IS NOT NULL ORDER BY p.sku",
    ):
        sku, stock = row["sku"], row["stock"]
        if stock != row["ledger"]:
            yield Violation(
                3,
                f"product {sku}: stock is {stock} but its stock movements add up to "
                f"{row['ledger']}",
                {"sku": sku, "stock": stock, "ledger_sum": row["ledger"]},
            )
        if stock < 0 and not row["allow_backorder"]:
            yield Violation(
                3,
                f"product {sku}: stock is {stock}, below zero, and it does not allow backorder",
                {"sku": sku, "stock": stock},
            )
    yield from _order_movements(conn)


def _order_movements(conn: sqlite3.Connection) -> Iterator[Violation]:
    """Each order's ``order`` movements of a SKU take exactly the quantity the order has of it.

    An order of a product that was not tracked when it was placed has no movement: a line
    without one is only a violation when the product's ledger started before the order.
    """
    ordered = {
        (row["order_id"], row["sku"]): row
        for row in _rows(
            conn,
            "SELECT o.order_id, o.order_number, o.created_at, l.product_sku AS sku, "
            "SUM(l.quantity) AS quantity FROM order_lines l JOIN orders o ON o.id = l.order_id "
            "GROUP BY o.id, l.product_sku",
        )
    }
    moved = {
        (row["ref"], row["sku"]): -row["delta"]
        for row in _rows(
            conn,
            "SELECT ref, sku, SUM(delta) AS delta FROM stock_movements WHERE reason = 'order' "
            "GROUP BY ref, sku",
        )
    }
    ledger_start = {
        row["sku"]: row["start"]
        for row in _rows(
            conn,
            "SELECT p.sku, MIN(m.at) AS start FROM products p "
            "JOIN stock_movements m ON m.sku = p.sku WHERE p.stock IS NOT NULL GROUP BY p.sku",
        )
    }
    for (order_id, sku), taken in sorted(moved.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        line = ordered.get((order_id, sku))
        if line is None:
            yield Violation(
                3,
                f"product {sku}: a stock movement takes {taken} for order {order_id}, "
                "which has no line of that SKU",
                {"sku": sku, "order_id": order_id, "moved": taken},
            )
        elif taken != line["quantity"]:
            yield Violation(
                3,
                f"product {sku}: order {line['order_number']} has {line['quantity']} but its "
                f"stock movements take {taken}",
                {
                    "sku": sku,
                    "order_number": line["order_number"],
                    "ordered": line["quantity"],
                    "moved": taken,
                },
            )
    yield from _restock_movements(conn, ordered)
    for (order_id, sku), line in sorted(ordered.items(), key=lambda kv: kv[1]["order_number"]):
        start = ledger_start.get(sku)
        if (order_id, sku) in moved or start is None or line["created_at"] < start:
            continue  # moved, not tracked now, or not tracked when ordered
        yield Violation(
            3,
            f"product {sku}: order {line['order_number']} has {line['quantity']} but no stock "
            "movement took them",
            {
                "sku": sku,
                "order_number": line["order_number"],
                "ordered": line["quantity"],
                "moved": 0,
            },
        )


def _restock_movements(
    conn: sqlite3.Connection, ordered: dict[tuple[str, str], sqlite3.Row]
) -> Iterator[Violation]:
    """An order's ``restock`` movements (a refund's or a cancel's) give back at most what it
    ordered of each SKU, and only SKUs it has."""
    for row in _rows(
        conn,
        "SELECT ref, sku, SUM(delta) AS delta FROM stock_movements WHERE reason = 'restock' "
        "GROUP BY ref, sku ORDER BY ref, sku",
    ):
        order_id, sku, back = row["ref"], row["sku"], row["delta"]
        line = ordered.get((order_id, sku))
        if line is None:
            yield Violation(
                3,
                f"product {sku}: a restock gives back {back} for order {order_id}, which has no "
                "line of that SKU",
                {"sku": sku, "order_id": order_id, "restocked": back},
            )
        elif back > line["quantity"] or back < 0:
            yield Violation(
                3,
                f"product {sku}: order {line['order_number']} has {line['quantity']} but its "
                f"restocks give back {back}",
                {
                    "sku": sku,
                    "order_number": line["order_number"],
                    "ordered": line["quantity"],
                    "restocked": back,
                },
            )


# ---- 4. one confirmation email per order -------------------------------------------------------


def _one_confirmation_per_order(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT o.order_number, c.token, COUNT(b.id) AS n FROM orders o "
        "LEFT JOIN checkouts c ON c.id = o.checkout_id "
        "LEFT JOIN outbox b ON b.order_id = o.id AND b.kind = 'order_confirmation' "
        "GROUP BY o.id, c.id HAVING COUNT(b.id) != 1 ORDER BY o.id",
    ):
        what = "no confirmation email" if row["n"] == 0 else f"{row['n']} confirmation emails"
        yield Violation(
            4,
            f"order {row['order_number']} has {what} in the outbox; it needs exactly one",
            {
                "order_number": row["order_number"],
                "checkout_token": row["token"],
                "emails": row["n"],
            },
        )
    for row in _rows(
        conn,
        "SELECT b.id, b.order_id FROM outbox b LEFT JOIN orders o ON o.id = b.order_id "
        "WHERE b.kind = 'order_confirmation' AND o.id IS NULL ORDER BY b.id",
    ):
        yield Violation(
            4,
            f"outbox email {row['id']} confirms an order that does not exist "
            f"(order id {row['order_id']})",
            {"outbox_id": row["id"], "order_id": row["order_id"]},
        )


# ---- 5. totals ---------------------------------------------------------------------------------


def _totals(conn: sqlite3.Connection) -> Iterator[Violation]:
    for kind, table, lines, key, label in (
        ("checkout", "checkouts", "checkout_lines", "checkout_id", "token"),
        ("order", "orders", "order_lines", "order_id", "order_number"),
    ):
        name_key = "checkout_token" if kind == "checkout" else "order_number"
        for row in _rows(
            conn,
            f"SELECT h.{label} AS name, h.subtotal_cents, h.shipping_cents, h.tax_cents, "
            "h.total_cents, COUNT(l.id) AS n, COALESCE(SUM(l.line_total_cents), 0) AS lines_sum, "
            f"COALESCE(SUM(l.tax_cents), 0) AS tax_sum FROM {table} h "
            f"LEFT JOIN {lines} l ON l.{key} = h.id GROUP BY h.id ORDER BY h.id",
        ):
            name = row["name"]
            records = {name_key: name}
            parts = row["subtotal_cents"] + row["shipping_cents"] + row["tax_cents"]
            if row["total_cents"] != parts:
                yield Violation(
                    5,
                    f"{kind} {name}: total {row['total_cents']} is not subtotal "
                    f"{row['subtotal_cents']} + shipping {row['shipping_cents']} + tax "
                    f"{row['tax_cents']} = {parts}",
                    {**records, "total_cents": row["total_cents"], "expected": parts},
                )
            if row["subtotal_cents"] != row["lines_sum"]:
                yield Violation(
                    5,
                    f"{kind} {name}: subtotal {row['subtotal_cents']} is not the sum of its "
                    f"{row['n']} line totals, {row['lines_sum']}",
                    {
                        **records,
                        "subtotal_cents": row["subtotal_cents"],
                        "expected": row["lines_sum"],
                    },
                )
            if row["tax_cents"] != row["tax_sum"]:
                yield Violation(
                    5,
                    f"{kind} {name}: tax {row['tax_cents']} is not the sum of its lines' tax, "
                    f"{row['tax_sum']}",
                    {**records, "tax_cents": row["tax_cents"], "expected": row["tax_sum"]},
                )
        for row in _rows(
            conn,
            f"SELECT h.{label} AS name, l.line_no, l.product_sku, l.quantity, "
            f"l.unit_price_cents, l.line_total_cents FROM {lines} l "
            f"JOIN {table} h ON h.id = l.{key} "
            "WHERE l.line_total_cents IS NOT l.unit_price_cents * l.quantity "
            "ORDER BY h.id, l.line_no",
        ):
            expected = (
                None
                if row["unit_price_cents"] is None
                else row["unit_price_cents"] * row["quantity"]
            )
            yield Violation(
                5,
                f"{kind} {row['name']} line {row['line_no']} ({row['product_sku']}): line total "
                f"{row['line_total_cents']} is not {row['quantity']} × "
                f"{row['unit_price_cents']} = {expected}",
                {
                    name_key: row["name"],
                    "line_no": row["line_no"],
                    "sku": row["product_sku"],
                    "line_total_cents": row["line_total_cents"],
                    "expected": expected,
                },
            )


# ---- 6. order lines carry the checkout lines' meta ---------------------------------------------


def _meta_copied(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT o.order_number, c.token, ol.line_no, ol.product_sku, ol.meta AS order_meta, "
        "cl.id AS checkout_line, cl.meta AS checkout_meta FROM order_lines ol "
        "JOIN orders o ON o.id = ol.order_id JOIN checkouts c ON c.id = o.checkout_id "
        "LEFT JOIN checkout_lines cl ON cl.checkout_id = c.id AND cl.line_no = ol.line_no "
        "WHERE cl.id IS NULL OR ol.meta IS NOT cl.meta ORDER BY o.id, ol.line_no",
    ):
        records = {
            "order_number": row["order_number"],
            "checkout_token": row["token"],
            "line_no": row["line_no"],
            "sku": row["product_sku"],
        }
        if row["checkout_line"] is None:
            message = (
                f"order {row['order_number']} line {row['line_no']} ({row['product_sku']}) has "
                f"no line {row['line_no']} on checkout {row['token']}"
            )
        else:
            message = (
                f"order {row['order_number']} line {row['line_no']} ({row['product_sku']}): meta "
                f"differs from checkout {row['token']}'s line: order has {row['order_meta']}, "
                f"checkout has {row['checkout_meta']}"
            )
        yield Violation(6, message, records)
    for row in _rows(
        conn,
        "SELECT o.order_number, c.token, cl.line_no, cl.product_sku FROM orders o "
        "JOIN checkouts c ON c.id = o.checkout_id "
        "JOIN checkout_lines cl ON cl.checkout_id = c.id "
        "LEFT JOIN order_lines ol ON ol.order_id = o.id AND ol.line_no = cl.line_no "
        "WHERE ol.id IS NULL ORDER BY o.id, cl.line_no",
    ):
        yield Violation(
            6,
            f"checkout {row['token']} line {row['line_no']} ({row['product_sku']}) is missing "
            f"from order {row['order_number']}",
            {
                "order_number": row["order_number"],
                "checkout_token": row["token"],
                "line_no": row["line_no"],
                "sku": row["product_sku"],
            },
        )


# ---- 7. no paid provider payment without an order or a refund ---------------------------------


def _no_stray_paid_payment(conn: sqlite3.Connection) -> Iterator[Violation]:
    for finding in strays.findings(conn):
        yield Violation(
            7,
            f"{finding['message']}; fix: {finding['fix']}",
            {
                "checkout_token": finding["checkout_token"],
                "checkout_status": finding["checkout_status"],
                "provider": finding["provider"],
                "provider_payment_id": finding["provider_payment_id"],
                "amount_cents": finding["amount_cents"],
            },
        )


# ---- 8. an order's amounts and statuses agree with its rows -----------------------------------


def _order_amounts(conn: sqlite3.Connection) -> Iterator[Violation]:
    for order in _rows(conn, "SELECT * FROM orders ORDER BY id"):
        records = {"order_number": order["order_number"]}
        now = order_state.amounts(conn, order)
        if order["amount_paid_cents"] != now.paid:
            yield Violation(
                8,
                f"order {order['order_number']} says {order['amount_paid_cents']} paid, but its "
                f"payments add up to {now.paid}",
                {**records, "amount_paid_cents": order["amount_paid_cents"], "sum": now.paid},
            )
        if order["amount_refunded_cents"] != now.refunded:
            yield Violation(
                8,
                f"order {order['order_number']} says {order['amount_refunded_cents']} refunded, "
                f"but its succeeded refunds add up to {now.refunded}",
                {
                    **records,
                    "amount_refunded_cents": order["amount_refunded_cents"],
                    "sum": now.refunded,
                },
            )
        derived = order_state.derive(now)
        for column in ("status", "payment_status", "fulfilment_status"):
            if order[column] != getattr(derived, column):
                yield Violation(
                    8,
                    f"order {order['order_number']} has {column} {order[column]}, but its "
                    f"payments, refunds and shipments make it {getattr(derived, column)}",
                    {**records, column: order[column], "expected": getattr(derived, column)},
                )
    for row in _rows(
        conn,
        "SELECT o.order_number, p.provider, p.provider_payment_id, p.status FROM order_payments q "
        "JOIN orders o ON o.id = q.order_id JOIN payments p ON p.id = q.payment_id "
        "WHERE p.status != 'paid' ORDER BY q.id",
    ):
        yield Violation(
            8,
            f"order {row['order_number']} counts {row['provider']} payment "
            f"{row['provider_payment_id'] or '(linked)'} as received, but it is {row['status']}",
            {
                "order_number": row["order_number"],
                "provider": row["provider"],
                "payment_status": row["status"],
            },
        )


# ---- 9. never refunded more than was paid ------------------------------------------------------


def _refunded_within_paid(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT o.order_number, o.currency, (SELECT COALESCE(SUM(amount_cents), 0) FROM "
        "order_payments q WHERE q.order_id = o.id) AS paid, (SELECT COALESCE(SUM(amount_cents), "
        "0) FROM refunds r WHERE r.order_id = o.id AND r.status IN ('creating', 'pending', "
        "'succeeded')) AS refunding FROM orders o ORDER BY o.id",
    ):
        if row["refunding"] > row["paid"]:
            yield Violation(
                9,
                f"order {row['order_number']} has {row['refunding']} refunded or being refunded, "
                f"more than the {row['paid']} paid",
                {
                    "order_number": row["order_number"],
                    "paid": row["paid"],
                    "refunded": row["refunding"],
                },
            )


# ---- 10. never shipped more than was ordered ----------------------------------------------------


def _shipped_within_ordered(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT o.order_number, l.line_no, l.product_sku, l.quantity, SUM(f.quantity) AS shipped "
        "FROM fulfilment_lines f JOIN orders o ON o.id = f.order_id JOIN order_lines l ON "
        "l.order_id = f.order_id AND l.line_no = f.line_no "
        "GROUP BY f.order_id, f.line_no, o.id, l.id HAVING SUM(f.quantity) > l.quantity "
        "ORDER BY o.id, l.line_no",
    ):
        yield Violation(
            10,
            f"order {row['order_number']} line {row['line_no']} ({row['product_sku']}) shipped "
            f"{row['shipped']} of {row['quantity']} ordered",
            {
                "order_number": row["order_number"],
                "line_no": row["line_no"],
                "sku": row["product_sku"],
                "ordered": row["quantity"],
                "shipped": row["shipped"],
            },
        )


# ---- 11. one email per event ----------------------------------------------------------------


def _one_email_per_event(conn: sqlite3.Connection) -> Iterator[Violation]:
    for row in _rows(
        conn,
        "SELECT e.kind AS event, o.order_number, json_extract(e.detail, '$.email') AS email "
        "FROM events e JOIN orders o ON o.id = e.order_id WHERE e.order_id IS NOT NULL "
        "AND json_extract(e.detail, '$.email') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
        "outbox x WHERE x.order_id = e.order_id AND x.kind = json_extract(e.detail, '$.email')) "
        "ORDER BY e.id",
    ):
        yield Violation(
            11,
            f"order {row['order_number']}: its {row['event']} event queued email "
            f"{row['email']}, which is not in the outbox",
            {"order_number": row["order_number"], "event": row["event"], "email": row["email"]},
        )
    # ... and at most one: the outbox's UNIQUE (order_id, kind) says so, unless it was lost
    # (a copy restored without its indexes, a hand-made row). The confirmation is invariant 4.
    for row in _rows(
        conn,
        "SELECT o.order_number, x.kind AS email, COUNT(*) AS emails FROM outbox x "
        "JOIN orders o ON o.id = x.order_id WHERE x.kind != 'order_confirmation' "
        "GROUP BY x.order_id, x.kind, o.id HAVING COUNT(*) > 1 ORDER BY o.order_number, x.kind",
    ):
        yield Violation(
            11,
            f"order {row['order_number']}: email {row['email']} is in the outbox "
            f"{row['emails']} times; the customer is told once",
            {"order_number": row["order_number"], "email": row["email"], "emails": row["emails"]},
        )


def _no_webhook_event_lost(conn: sqlite3.Connection) -> Iterator[Violation]:
    from checkout_cli.engine import webhook_delivery
    from checkout_cli.engine.core import iso, utc_now

    for row in _rows(
        conn,
        "SELECT e.public_id AS event, e.type, s.public_id AS subscription FROM webhook_events e "
        "JOIN webhook_subscriptions s ON s.created_at <= e.created_at AND (s.disabled_at IS NULL "
        "OR s.disabled_at > e.created_at) AND EXISTS (SELECT 1 FROM json_each(s.events) j "
        "WHERE j.value IN ('*', e.type)) WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d "
        "WHERE d.event_id = e.id AND d.subscription_id = s.id) ORDER BY e.id, s.id",
    ):
        yield Violation(
            12,
            f"webhook event {row['event']} ({row['type']}) has no delivery to subscription "
            f"{row['subscription']}",
            dict(row),
        )
    stale = iso(utc_now() - webhook_delivery.lease(conn))
    for row in _rows(
        conn,
        "SELECT d.public_id AS delivery, d.claimed_at FROM webhook_deliveries d "
        "WHERE d.status = 'sending' AND d.claimed_at <= ? ORDER BY d.id",
        (stale,),
    ):
        yield Violation(
            12,
            f"webhook delivery {row['delivery']} was left sending at {row['claimed_at']} "
            "(its sender died); `checkout events deliver` sends it again",
            dict(row),
        )
    for row in _rows(
        conn,
        "SELECT d.public_id AS delivery, e.type, d.last_error FROM webhook_deliveries d "
        "JOIN webhook_events e ON e.id = d.event_id JOIN webhook_subscriptions s "
        "ON s.id = d.subscription_id WHERE d.status = 'dead' AND s.status = 'active' "
        "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries r WHERE r.resend_of = d.id "
        "AND r.status = 'delivered') ORDER BY d.id",
    ):
        yield Violation(
            12,
            f"webhook delivery {row['delivery']} ({row['type']}) was given up: "
            f"{row['last_error']}; resend it with `checkout events resend {row['delivery']}`",
            dict(row),
        )


CHECKS: tuple[Callable[[sqlite3.Connection], Iterator[Violation]], ...] = (
    _one_order_per_checkout,
    _one_open_checkout_per_cart,
    _stock,
    _one_confirmation_per_order,
    _totals,
    _meta_copied,
    _no_stray_paid_payment,
    _order_amounts,
    _refunded_within_paid,
    _shipped_within_ordered,
    _one_email_per_event,
    _no_webhook_event_lost,
)


def check_invariants(conn: sqlite3.Connection) -> list[Violation]:
    """Every violation of the invariants in the store behind ``conn`` (reads only).

    Outside a transaction the checks share one read snapshot, so a concurrent writer's
    half-visible work can never show up as a false violation.
    """
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        return [violation for check in CHECKS for violation in check(conn)]
    finally:
        if own:
            conn.execute("ROLLBACK")


def file_damage(conn: sqlite3.Connection, shown: int = 5) -> list[Violation]:
    """SQLite's own check of every page and index (``PRAGMA integrity_check``)."""
    problems = [row[0] for row in conn.execute(f"PRAGMA integrity_check({shown})").fetchall()]
    if problems == ["ok"]:
        return []
    return [
        Violation(0, f"the store file is damaged: {problem}".replace("\n", " "))
        for problem in problems
    ]


def check_store(engine: Any, body: requests.NoFields) -> dict[str, Any]:
    """checkout-admin/check-invariants (``checkout doctor``)."""
    damage = file_damage(engine.conn)
    # On a damaged file the other checks would read wrong rows or fail: the damage is the news.
    violations = damage or check_invariants(engine.conn)
    stuck = _rows(
        engine.conn,
        "SELECT id, recipient, claimed_at FROM outbox WHERE status = 'sending' ORDER BY id",
    )
    return {
        "ok": not violations,
        "violations": [v.as_dict() for v in violations],
        # not a violation (a process may be sending it now), but support must see it
        "emails_sending": [dict(r) for r in stuck],
        # a smoke run in progress, killed (the next `checkout smoke` removes it), or kept
        "smoke_runs": smoke_runs.leftover_runs(engine.conn),
    }
