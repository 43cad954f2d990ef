"""order-management/refund-order: money back for an order, never more than it was paid.

One request is: transaction 1 checks what is asked against ``order_state.refundable`` (paid,
less every refund recorded, under way or done) and records the refund(s) — spread over the
order's Stripe/Mollie payments, each up to what it has left, then as a credit for money paid
outside a provider (bank transfer, invoice, by hand: recorded ``succeeded``, nothing to
call) — with the request itself (``refunds.request``) and its lines (``refund_lines``). Two
operators at once are serialized by that transaction: the second sees what the first holds.
Then each provider refund is made by ``refunds.run_attempt`` (its idempotency key, no lock
held, its result recorded); a result landing recomputes the order and tells the customer
(``order_refund_effects``). The same request again, after a crash or a timeout left one of
its refunds ``creating``, resumes those with their own keys and answers with them: the
provider hands back the refund it already made.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import events, order_refund_effects, order_state, outbox, refunds
from checkout_cli.engine.core import Engine, dumps, new_token
from checkout_cli.engine.orders import load_order, order_object, refund_objects
from checkout_cli.engine.provider_payments import PROVIDERS, provider_for
from checkout_cli.errors import ConflictError, PaymentError, ValidationError
from checkout_cli.money import format_money

HOLDING = order_state.HOLDING


def refund_order(engine: Engine, body: requests.RefundOrder) -> dict[str, Any]:
    with engine.read() as conn:
        order = load_order(conn, body.order_id)
    ask = _asked(body)
    ids, resumed = start(engine, order["id"], ask)
    return finish(engine, order, ids, resumed)


def _asked(body: requests.RefundOrder) -> dict[str, Any]:
    """What the request asks, in the form stored with its refunds (to match a retry)."""
    if body.amount_cents is not None and body.lines is not None:
        raise ValidationError(
            "amount_or_lines",
            "give an amount or lines to refund, not both",
            field="lines",
            recovery="use --amount-cents N, or --line SKU=QTY, or neither for a full refund",
        )
    if body.amount_cents == 0:
        raise ValidationError(
            "invalid_amount", "amount_cents must be at least 1, got 0", field="amount_cents"
        )
    if body.lines is not None and not body.lines:
        raise ValidationError("invalid_lines", "lines is empty", field="lines")
    if body.restock and body.amount_cents is not None:
        raise ValidationError(
            "restock_needs_lines",
            "--restock puts refunded lines back in stock; an amount names no lines",
            field="restock",
            recovery="refund by lines (--line SKU=QTY --restock), or in full (--restock)",
        )
    lines = None
    if body.lines is not None:
        merged: dict[str, int] = {}
        for line in body.lines:
            merged[line.product_sku] = merged.get(line.product_sku, 0) + line.quantity
        lines = [[sku, quantity] for sku, quantity in merged.items()]
    return {
        "amount_cents": body.amount_cents,
        "lines": lines,
        "restock": bool(body.restock),
        "reason": body.reason,
        "cancel": False,
    }


def start(engine: Engine, order_row_id: int, ask: dict[str, Any]) -> tuple[list[int], bool]:
    """Transaction 1: the refund(s) recorded, or the unfinished ones of the same request.

    Returns the refunds' row ids (empty: a cancel's full refund of an order with nothing
    refundable) and whether they were resumed.
    """
    with engine.write() as conn:
        order = conn.execute("SELECT * FROM orders WHERE id = ?", (order_row_id,)).fetchone()
        unfinished = _unfinished(conn, order, ask)
        if unfinished:
            return unfinished, True
        lines, amount = _lines_and_amount(conn, order, ask)
        refundable = order_state.refundable(conn, order)
        if amount is None:  # in full: whatever is refundable
            amount = refundable
            if amount == 0:
                if ask["cancel"]:
                    return [], False
                raise _nothing_left(conn, order)
        if amount > refundable:
            raise _exceeds(conn, order, amount, refundable, ask)
        plan = _spread(conn, order, amount)
        group = new_token("rfg")
        stored = dumps({**ask, "group": group})
        reason = ask["reason"] or f"order {order['order_number']}"
        ids: list[int] = []
        for payment, part, method in plan:
            if payment is not None:
                provider_for(conn, payment["provider"])  # configured, or nothing is written
                _check_part(payment["provider"], part, order)
                co = conn.execute(
                    "SELECT * FROM checkouts WHERE id = ?", (payment["checkout_id"],)
                ).fetchone()
                row = refunds._record_attempt(
                    engine, conn, co, payment, reason, part, order["id"], stored
                )
                ids.append(row["id"])
            else:
                ids.append(_record_credit(engine, conn, order, part, method, reason, stored))
        conn.executemany(
            "INSERT INTO refund_lines (refund_id, order_id, line_no, quantity) VALUES (?, ?, ?, ?)",
            [(ids[0], order["id"], line_no, quantity) for line_no, quantity in lines],
        )
        for refund_id in ids:  # a credit is done already: its effects land now
            if (
                conn.execute("SELECT kind FROM refunds WHERE id = ?", (refund_id,)).fetchone()[0]
                == "credit"
            ):
                order_refund_effects.landed(engine, conn, refund_id)
        return ids, False


def finish(engine: Engine, order: sqlite3.Row, ids: list[int], resumed: bool) -> dict[str, Any]:
    """Phases 2 and 3 of every provider refund still ``creating``; the answer."""
    failure: PaymentError | None = None
    for refund_id in ids:
        row = engine.conn.execute("SELECT * FROM refunds WHERE id = ?", (refund_id,)).fetchone()
        if row["status"] != "creating":
            continue
        try:
            refunds.run_attempt(engine, refund_id)
        except PaymentError as exc:  # recorded failed; the others are still made
            failure = failure or exc
    outbox.deliver_for_order(engine, order["order_id"])
    if failure is not None:
        raise failure
    return answer(engine, order["id"], ids, resumed)


def answer(engine: Engine, order_row_id: int, ids: list[int], resumed: bool) -> dict[str, Any]:
    with engine.read() as conn:
        row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_row_id,)).fetchone()
        wanted = {f"ref_{i}" for i in ids}
        made = [r for r in refund_objects(conn, order_row_id) if r["refund_id"] in wanted]
        return {
            "order": order_object(conn, row),
            "amount_cents": sum(r["amount_cents"] for r in made),
            "refunds": made,
            "resumed": resumed,
        }


def _unfinished(conn: sqlite3.Connection, order: sqlite3.Row, ask: dict[str, Any]) -> list[int]:
    """The refunds of an earlier run of this same request, if one of them is unfinished."""
    for row in conn.execute(
        "SELECT * FROM refunds WHERE order_id = ? AND status = 'creating' AND request IS NOT NULL "
        "ORDER BY id",
        (order["id"],),
    ).fetchall():
        stored = order_refund_effects.asked(row)
        if {k: v for k, v in stored.items() if k != "group"} == ask:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM refunds WHERE order_id = ? "
                    "AND json_extract(request, '$.group') = ? ORDER BY id",
                    (order["id"], stored.get("group")),
                )
            ]
    return []


def refunded_units(conn: sqlite3.Connection, order_row_id: int, line_no: int) -> int:
    """Units of an order line refunded, or held by a refund under way."""
    value: int = conn.execute(
        "SELECT COALESCE(SUM(l.quantity), 0) FROM refund_lines l JOIN refunds r "
        "ON r.id = l.refund_id WHERE l.order_id = ? AND l.line_no = ? "
        f"AND r.status IN ({', '.join('?' * len(HOLDING))})",
        (order_row_id, line_no, *HOLDING),
    ).fetchone()[0]
    return value


def line_refund_cents(line: sqlite3.Row, units: int) -> int:
    """(line total + tax) × units / quantity, rounded half up."""
    gross = (line["line_total_cents"] or 0) + (line["tax_cents"] or 0)
    quantity = line["quantity"]
    return (2 * gross * units + quantity) // (2 * quantity)


def _lines_and_amount(
    conn: sqlite3.Connection, order: sqlite3.Row, ask: dict[str, Any]
) -> tuple[list[tuple[int, int]], int | None]:
    """The (line_no, units) refunded and their amount (None: in full, whatever is left)."""
    rows = conn.execute(
        "SELECT * FROM order_lines WHERE order_id = ? ORDER BY line_no", (order["id"],)
    ).fetchall()
    left = {
        r["line_no"]: r["quantity"] - refunded_units(conn, order["id"], r["line_no"]) for r in rows
    }
    if ask["amount_cents"] is not None:  # an amount names no lines
        return [], ask["amount_cents"]
    if ask["lines"] is None:  # in full: every unit not refunded yet, for whatever is left
        return [(no, units) for no, units in left.items() if units > 0], None
    taken: list[tuple[int, int]] = []
    amount = 0
    for sku, wanted in ask["lines"]:
        of_sku = [r for r in rows if r["product_sku"] == sku]
        if not of_sku:
            raise ValidationError(
                "line_not_found",
                f"order {order['order_number']} has no line of {sku}",
                field="lines",
                recovery=f"see its lines with `checkout orders show {order['order_number']}`",
            )
        available = sum(max(left[r["line_no"]], 0) for r in of_sku)
        if wanted > available:
            ordered = sum(r["quantity"] for r in of_sku)
            raise ConflictError(
                "refund_exceeds_ordered",
                f"order {order['order_number']}: {wanted} × {sku} asked, but {ordered} were "
                f"ordered and {ordered - available} already refunded or being refunded",
                field="lines",
                recovery=f"refund at most {available} × {sku}" if available else None,
            )
        for r in of_sku:
            units = min(wanted, max(left[r["line_no"]], 0))
            if units:
                taken.append((r["line_no"], units))
                amount += line_refund_cents(r, units)
                wanted -= units
    return taken, amount


def _spread(
    conn: sqlite3.Connection, order: sqlite3.Row, amount: int
) -> list[tuple[sqlite3.Row | None, int, str]]:
    """Which payments the amount goes back through: (provider payment or None for a credit,
    part, method). Provider payments first, each up to what it has left, in the order paid."""
    plan: list[tuple[sqlite3.Row | None, int, str]] = []
    outside, method = 0, "manual"
    marks = ", ".join("?" * len(HOLDING))
    for q in conn.execute(
        "SELECT q.amount_cents, q.method, p.id AS pid FROM order_payments q LEFT JOIN payments p "
        f"ON p.id = q.payment_id AND p.provider IN ({', '.join('?' * len(PROVIDERS))}) "
        "AND p.provider_payment_id IS NOT NULL WHERE q.order_id = ? ORDER BY q.id",
        (*PROVIDERS, order["id"]),
    ).fetchall():
        if q["pid"] is None:
            outside += q["amount_cents"]
            method = q["method"]
            continue
        held = conn.execute(
            "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE payment_id = ? "
            f"AND status IN ({marks})",
            (q["pid"], *HOLDING),
        ).fetchone()[0]
        part = min(amount, q["amount_cents"] - held)
        if part > 0:
            payment = conn.execute("SELECT * FROM payments WHERE id = ?", (q["pid"],)).fetchone()
            plan.append((payment, part, payment["provider"]))
            amount -= part
    credited = conn.execute(
        "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE order_id = ? AND kind = 'credit' "
        f"AND status IN ({marks})",
        (order["id"], *HOLDING),
    ).fetchone()[0]
    part = min(amount, outside - credited)
    if part > 0:
        plan.append((None, part, method))
        amount -= part
    if amount > 0:  # what the payments have left is less than the order's refundable
        raise _exceeds(conn, order, sum(p for _, p, _ in plan) + amount, sum(p for _, p, _ in plan))
    return plan


def _check_part(provider: str, part: int, order: sqlite3.Row) -> None:
    """Refuse, before anything is written, a part the provider cannot take exactly (KWD at
    Stripe only in steps of 0.010): sent, it would be refused with the refund left
    ``creating``, holding the amount, and every retry refused the same way."""
    from checkout_cli.payments import mollie, stripe  # the SDKs load only when called

    try:
        if provider == "stripe":
            stripe.to_stripe_amount(part, order["currency"], "the refund")
        elif provider == "mollie":
            mollie.to_mollie_value(part, order["currency"])
    except ValidationError as exc:
        raise ValidationError(
            exc.code,
            f"order {order['order_number']}: {exc.message}",
            field="amount_cents",
            recovery="refund an amount the provider takes, e.g. the order in full",
        ) from None


def _record_credit(
    engine: Engine,
    conn: sqlite3.Connection,
    order: sqlite3.Row,
    amount: int,
    method: str,
    reason: str,
    stored: str | None,
) -> int:
    """Money paid outside a provider, returned by the shop itself: recorded, nothing called."""
    now = engine.now()
    cur = conn.execute(
        "INSERT INTO refunds (payment_id, checkout_id, order_id, provider, status, amount_cents, "
        "currency, reason, created_at, updated_at, kind, request) "
        "VALUES (NULL, ?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, 'credit', ?)",
        (
            order["checkout_id"],
            order["id"],
            method,
            amount,
            order["currency"],
            reason,
            now,
            now,
            stored,
        ),
    )
    events.record(
        engine,
        conn,
        order["checkout_id"],
        "refund_credited",
        detail={
            "order_number": order["order_number"],
            "method": method,
            "amount_cents": amount,
            "reason": reason,
        },
        order_id=order["id"],
    )
    return cur.lastrowid or 0


def _nothing_left(conn: sqlite3.Connection, order: sqlite3.Row) -> ConflictError:
    number = order["order_number"]
    return ConflictError(
        "refund_exceeds_paid",
        f"order {number} has nothing left to refund: "
        f"{format_money(order_state.amounts(conn, order).paid, order['currency'])} paid, all of "
        "it refunded or being refunded",
        field="order_id",
        recovery=f"see its refunds with `checkout orders show {number}`",
    )


def _exceeds(
    conn: sqlite3.Connection,
    order: sqlite3.Row,
    amount: int,
    refundable: int,
    ask: dict[str, Any] | None = None,
) -> ConflictError:
    number, currency = order["order_number"], order["currency"]
    paid = order_state.amounts(conn, order).paid
    unfinished = conn.execute(
        "SELECT COUNT(*) FROM refunds WHERE order_id = ? AND status = 'creating'", (order["id"],)
    ).fetchone()[0]
    held = f"; {unfinished} unfinished refund(s) hold part of it" if unfinished else ""
    by_lines = bool(ask and ask.get("lines"))
    return ConflictError(
        "refund_exceeds_paid",
        f"order {number}: a refund of {format_money(amount, currency)} is more than the "
        f"{format_money(refundable, currency)} still refundable ({format_money(paid, currency)} "
        f"paid, {format_money(paid - refundable, currency)} refunded or being refunded{held})",
        field="lines" if by_lines else "amount_cents",
        recovery=(
            f"refund at most that: `checkout orders refund {number} --amount-cents {refundable}`"
            if refundable
            else f"see its refunds with `checkout orders show {number}`"
        ),
    )
