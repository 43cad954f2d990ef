"""fulfil-order: an order's lines shipped, all at once or in parts that add up.

One transaction does it all: the shipment row and its lines, the order's statuses
(``order_state.refresh``: ``completed`` once it is paid and every unit shipped), the event,
and the customer's "shipped" email with its tracking link (kind ``shipped:FULFILMENT``, so
one email per shipment); the email is delivered after the commit.

What may be shipped is what was ordered minus what was shipped, per line; asking for more
is refused and writes nothing. A tracking number names a shipment: the same request again
(the same tracking number; the same lines, or none given) answers the shipment it made,
``already_fulfilled: true``, and ships nothing twice. So does a retry of an HTTP request
whose first attempt committed (its event carries the request's Idempotency-Key).

Units refunded and put back in stock (``--restock``) are on the shelf again and are not
shipped: that would send goods the stock already counts (a restocked unit is taken to be one
not shipped yet, while any is). Other refunded units may still be shipped: whether goods
refunded before they left go out anyway (a goodwill refund, a price correction) is the
operator's call, and an order is fulfilled only when every unit it ordered has shipped. The
answer names such units (``refunded_units_shipped``) so the operator sees it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from checkout_cli import requests
from checkout_cli.engine import events, order_state, outbox, settings
from checkout_cli.engine.core import Engine
from checkout_cli.engine.orders import fulfilment_objects, load_order, order_object
from checkout_cli.errors import ConflictError, ValidationError

EVENT = "order_fulfilled"


@dataclass(frozen=True)
class Line:
    line_no: int
    sku: str
    ordered: int
    shipped: int
    refunded: int
    restocked: int  # refunded and put back in stock: back on the shelf, not to be shipped

    @property
    def unshipped(self) -> int:
        return max(self.ordered - self.shipped - self.restocked, 0)


def order_lines(conn: sqlite3.Connection, order_row_id: int) -> list[Line]:
    """Each line's units ordered, shipped so far and refunded (by line refunds)."""
    rows = conn.execute(
        "SELECT l.line_no, l.product_sku, l.quantity, "
        "(SELECT COALESCE(SUM(f.quantity), 0) FROM fulfilment_lines f "
        " WHERE f.order_id = l.order_id AND f.line_no = l.line_no) AS shipped, "
        "(SELECT COALESCE(SUM(r.quantity), 0) FROM refund_lines r JOIN refunds x "
        " ON x.id = r.refund_id WHERE r.order_id = l.order_id AND r.line_no = l.line_no "
        " AND x.status IN ('creating', 'pending', 'succeeded')) AS refunded, "
        "(SELECT COALESCE(SUM(r.quantity), 0) FROM refund_lines r JOIN refunds x "
        " ON x.id = r.refund_id WHERE r.order_id = l.order_id AND r.line_no = l.line_no "
        " AND x.restocked = 1) AS restocked "
        "FROM order_lines l WHERE l.order_id = ? ORDER BY l.line_no",
        (order_row_id,),
    ).fetchall()
    return [
        Line(
            r["line_no"],
            r["product_sku"],
            r["quantity"],
            r["shipped"],
            r["refunded"],
            r["restocked"],
        )
        for r in rows
    ]


def _check_request(body: requests.FulfilOrder) -> None:
    if body.lines is not None and not body.lines:
        raise ValidationError(
            "no_lines",
            "no lines to ship: give at least one, or leave lines out to ship every one",
            field="lines",
            recovery="e.g. --line LENS-DAILY-30=2, or no --line at all",
        )
    if body.tracking_number is not None and body.carrier is None:
        raise ValidationError(
            "carrier_required",
            "a tracking number needs the carrier it is with",
            field="carrier",
            recovery="add --carrier, e.g. --carrier PostNL",
        )
    if body.tracking_url is not None and body.tracking_number is None:
        raise ValidationError(
            "tracking_number_required",
            "a tracking link needs its tracking number",
            field="tracking_number",
            recovery="add --tracking with the carrier's tracking number",
        )


def _wanted(lines: list[Line], asked: list[requests.FulfilLine] | None) -> dict[int, int]:
    """Units to ship per line number: every unshipped unit, or what was asked for."""
    if not asked:
        return {line.line_no: line.unshipped for line in lines if line.unshipped > 0}
    by_sku: dict[str, int] = {}
    by_line: dict[int, int] = {}
    for item in asked:
        if item.line_id is not None:
            by_line[item.line_id] = by_line.get(item.line_id, 0) + item.quantity
        else:
            by_sku[item.product_sku] = by_sku.get(item.product_sku, 0) + item.quantity
    known = {line.line_no: line for line in lines}
    wanted: dict[int, int] = {}
    for number, quantity in by_line.items():
        line = known.get(number)
        sku = next(i.product_sku for i in asked if i.line_id == number)
        if line is None or line.sku != sku:
            raise ValidationError(
                "line_not_on_order",
                f"the order has no line {number} of {sku}",
                field="lines",
                recovery="see its lines with `checkout orders show ORDER`",
            )
        _refuse_too_many(sku, quantity, line.unshipped, line.ordered)
        wanted[number] = quantity
    for sku, quantity in by_sku.items():
        of_sku = [line for line in lines if line.sku == sku]
        if not of_sku:
            on_order = ", ".join(dict.fromkeys(line.sku for line in lines))
            raise ValidationError(
                "sku_not_on_order",
                f"{sku} is not on this order (it has {on_order})",
                field="lines",
                recovery="give a SKU of the order's lines",
            )
        left = sum(line.unshipped - wanted.get(line.line_no, 0) for line in of_sku)
        _refuse_too_many(sku, quantity, left, sum(line.ordered for line in of_sku))
        for line in of_sku:  # several lines of one SKU fill in line order
            take = min(quantity, line.unshipped - wanted.get(line.line_no, 0))
            if take > 0:
                wanted[line.line_no] = wanted.get(line.line_no, 0) + take
                quantity -= take
    return wanted


def _refuse_too_many(sku: str, quantity: int, left: int, ordered: int) -> None:
    if quantity > left:
        raise ConflictError(
            "quantity_exceeds_unshipped",
            f"{sku}: {quantity} to ship, but only {left} of {ordered} ordered are not shipped "
            "yet (nor refunded and put back in stock)",
            field="lines",
            recovery=f"ship at most {left}" if left else f"{sku} has shipped in full already",
        )


def _same_shipment(
    conn: sqlite3.Connection, order: sqlite3.Row, body: requests.FulfilOrder
) -> sqlite3.Row | None:
    """The shipment an earlier attempt of this request made, if one did."""
    if body.tracking_number is None:
        return None
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM fulfilments WHERE order_id = ? AND tracking_number = ? "
        "AND carrier IS ? ORDER BY id LIMIT 1",
        (order["id"], body.tracking_number, body.carrier),
    ).fetchone()
    return row


def _shipped_by_sku(conn: sqlite3.Connection, shipment: sqlite3.Row) -> dict[str, int]:
    rows = conn.execute(
        "SELECT l.product_sku, SUM(f.quantity) FROM fulfilment_lines f JOIN order_lines l "
        "ON l.order_id = f.order_id AND l.line_no = f.line_no WHERE f.fulfilment_id = ? "
        "GROUP BY l.product_sku",
        (shipment["id"],),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _asked_by_sku(asked: list[requests.FulfilLine]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for item in asked:
        totals[item.product_sku] = totals.get(item.product_sku, 0) + item.quantity
    return totals


def _answer(
    conn: sqlite3.Connection, order_row_id: int, shipment_id: int, again: bool, lines: list[Line]
) -> dict[str, Any]:
    order = conn.execute("SELECT * FROM orders WHERE id = ?", (order_row_id,)).fetchone()
    shown = order_object(conn, order)
    fulfilment = next(
        f
        for f in fulfilment_objects(conn, order_row_id)
        if f["fulfilment_id"] == f"ful_{shipment_id}"
    )
    shipped_now = {item["line_id"]: item["quantity"] for item in fulfilment["lines"]}
    # Units of this shipment past what was ordered and not refunded: the operator's call.
    refunded = []
    for line in lines:
        if line.line_no in shipped_now and line.refunded:
            over = line.shipped + shipped_now[line.line_no] - (line.ordered - line.refunded)
            if over > 0:
                refunded.append({"line_id": line.line_no, "quantity": min(over, line.refunded)})
    return {
        "order": shown,
        "fulfilment": fulfilment,
        "already_fulfilled": again,
        "refunded_units_shipped": [] if again else refunded,
    }


def fulfil_order(engine: Engine, body: requests.FulfilOrder) -> dict[str, Any]:
    _check_request(body)
    with engine.write() as conn:
        order = load_order(conn, body.order_id)
        done = _done_by_this_request(engine, conn, order)
        if done is not None:
            return _answer(conn, order["id"], done, True, [])
        if order["cancelled_at"] is not None:
            raise ConflictError(
                "order_cancelled",
                f"order {order['order_number']} is cancelled: nothing ships",
                field="order_id",
                recovery=f"see it with `checkout orders show {order['order_number']}`",
            )
        lines = order_lines(conn, order["id"])
        earlier = _same_shipment(conn, order, body)
        if earlier is not None:
            if not body.lines or _shipped_by_sku(conn, earlier) == _asked_by_sku(body.lines):
                return _answer(conn, order["id"], earlier["id"], True, lines)
            raise ConflictError(
                "tracking_number_used",
                f"tracking number {body.tracking_number} is shipment ful_{earlier['id']} of "
                f"order {order['order_number']}, with other lines",
                field="tracking_number",
                recovery="give this shipment its own tracking number",
            )
        if all(line.unshipped == 0 for line in lines):
            restocked = any(line.restocked for line in lines)
            raise ConflictError(
                "order_already_fulfilled",
                f"order {order['order_number']} has "
                + (
                    "nothing left to ship: what did not ship was refunded and put back in stock"
                    if restocked
                    else "shipped in full already"
                ),
                field="order_id",
                recovery=f"see its shipments with `checkout orders show {order['order_number']}`",
            )
        wanted = _wanted(lines, body.lines)
        shipment_id = _ship(engine, conn, order, body, wanted)
        answer = _answer(conn, order["id"], shipment_id, False, lines)
    outbox.deliver_for_order(engine, order["order_id"])
    return answer


def _done_by_this_request(
    engine: Engine, conn: sqlite3.Connection, order: sqlite3.Row
) -> int | None:
    event = events.by_this_request(engine, conn, order["checkout_id"], EVENT)
    if event is None or event["order_id"] != order["id"]:
        return None
    from checkout_cli.engine.core import loads

    shipment: str = loads(event["detail"])["fulfilment_id"]
    return int(shipment.removeprefix("ful_"))


def _ship(
    engine: Engine,
    conn: sqlite3.Connection,
    order: sqlite3.Row,
    body: requests.FulfilOrder,
    wanted: dict[int, int],
) -> int:
    cur = conn.execute(
        "INSERT INTO fulfilments (order_id, carrier, tracking_number, tracking_url, created_at, "
        "actor) VALUES (?, ?, ?, ?, ?, ?)",
        (
            order["id"],
            body.carrier,
            body.tracking_number,
            body.tracking_url,
            engine.now(),
            engine.actor,
        ),
    )
    shipment_id = cur.lastrowid or 0
    conn.executemany(
        "INSERT INTO fulfilment_lines (fulfilment_id, order_id, line_no, quantity) "
        "VALUES (?, ?, ?, ?)",
        [(shipment_id, order["id"], number, quantity) for number, quantity in wanted.items()],
    )
    # The event names the email it queues (doctor's "one email per event" looks for it).
    emailed = bool(settings.read(conn, "email_shipped"))
    events.record(
        engine,
        conn,
        order["checkout_id"],
        EVENT,
        detail={
            "order_number": order["order_number"],
            "fulfilment_id": f"ful_{shipment_id}",
            "units": sum(wanted.values()),
            **({"carrier": body.carrier} if body.carrier else {}),
            **({"tracking_number": body.tracking_number} if body.tracking_number else {}),
            **({"email": f"shipped:{shipment_id}"} if emailed else {}),
        },
        order_id=order["id"],
    )
    after = order_state.refresh(engine, conn, order["id"])
    if emailed:
        _queue_email(engine, conn, after, body, shipment_id)
    return shipment_id


def _queue_email(
    engine: Engine,
    conn: sqlite3.Connection,
    order: sqlite3.Row,
    body: requests.FulfilOrder,
    shipment_id: int,
) -> None:
    from checkout_cli.engine import emails

    shown = order_object(conn, order)
    shipment = next(f for f in shown["fulfilments"] if f["fulfilment_id"] == f"ful_{shipment_id}")
    names = {item["line_id"]: item for item in shown["items"]}
    what = ", ".join(
        f"{line['quantity']} × {names[line['line_id']]['name']}" for line in shipment["lines"]
    )
    said = [f"Your order {order['order_number']} is on its way: {what}."]
    if order["fulfilment_status"] != "fulfilled":
        said.append("The rest of your order follows in a later shipment.")
    if body.carrier and body.tracking_number:
        said.append(f"It travels with {body.carrier}, tracking number {body.tracking_number}.")
    elif body.carrier:
        said.append(f"It travels with {body.carrier}.")
    if body.tracking_url:
        said.append("Follow it here:")
    message = emails.order_message(
        settings.read(conn, "shop_name"), shown, "shipped", said, link=body.tracking_url
    )
    outbox.queue_order_email(engine, conn, order["id"], "shipped", str(shipment_id), message)
