"""Rendering: stdout is data (tables, JSON), stderr is talk (hints, errors).

Data consoles use ``markup=False`` so a customer named ``[red]x`` prints as typed, and they
print control characters as visible escapes: text from customers and providers (a name holding
``ESC ] 0 ;``) never reaches a terminal as a command to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from checkout_cli.cli.safe_text import visible
from checkout_cli.endpoints import OPEN_CHECKOUT_STATES
from checkout_cli.money import format_money

_out: Console | None = None
_err: Console | None = None


class _SafeConsole(Console):
    """Escapes control characters in what it prints. Rich's own codes (colours, cursor moves)
    are made from styles and control segments, never from a segment's text, so only content
    is escaped."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            Segment(visible(s.text), s.style, s.control) if s.control is None else s for s in buffer
        )


class _DataConsole(_SafeConsole):
    """Off a terminal, lines are never cropped to a width: a pipe has none."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.is_terminal:
            kwargs.setdefault("crop", False)
        super().print(*objects, **kwargs)


def out() -> Console:
    global _out
    if _out is None:
        _out = _DataConsole(markup=False, highlight=False, emoji=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        _err = _SafeConsole(stderr=True, markup=False, highlight=False, emoji=False)
    return _err


def reset_consoles() -> None:
    """Forget the consoles (the test runner swaps the streams between invocations)."""
    global _out, _err
    _out = _err = None


def say(message: str, style: str | None = None) -> None:
    """One message on stderr. Never hard-wrapped: paths and commands in it copy whole."""
    err().print(Text(message, style=style or ""), soft_wrap=True)


# Columns of values people copy or grep for: kept whole on a terminal while they fit.
_IDENTIFIERS = frozenset(
    {"SKU", "Checkout", "Order", "Token", "Id", "Setting", "Key", "Customer", "To"}
    | {"When", "Created", "Updated", "Sent", "Set at", "Revoked"}
)


class DataTable(Table):
    """A table that never cuts a value.

    Printed off a terminal (a pipe, a file), it is one record per line, cells separated by
    tabs and no header, as gh does, so `grep` and `cut` see whole values. On a terminal, and
    nested in a panel, it is a table whose cells fold instead of ending in "…", with
    identifier columns kept whole on one line.
    """

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        nested = options.max_width < console.width
        if console.is_terminal or nested:
            yield from self._folded(console, options)
            return
        if self.title:
            yield Segment(str(self.title))
            yield Segment.line()
        for row in zip(*(column.cells for column in self.columns), strict=True):
            # A tab inside a value would split it into two columns.
            yield Segment("\t".join(_plain(cell).replace("\t", "\\t") for cell in row))
            yield Segment.line()

    def _folded(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for column in self.columns:
            if str(column.header) in _IDENTIFIERS:
                # Values up to two fifths of the width stay whole on one line; longer ones fold.
                cap = options.max_width * 2 // 5
                lengths = [len(_plain(c)) for c in column.cells]
                column.no_wrap = all(n <= cap for n in lengths)
                fitting = max((n for n in lengths if n <= cap), default=0)
                column.min_width = max(column.min_width or 0, fitting)
        yield from super().__rich_console__(console, options)


def _plain(cell: Any) -> str:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return " / ".join(text.splitlines())


def table(*columns: str, title: str | None = None) -> DataTable:
    t = DataTable(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        right = column.endswith(
            ("Qty", "Price", "Total", "Tax", "Stock", "Amount", "Attempts", "Due")
        )
        t.add_column(column, justify="right" if right else "left", overflow="fold")
    return t


def _address(a: dict[str, Any] | None) -> str:
    if not a:
        return "—"
    city = " ".join(p for p in (a.get("postal_code"), a.get("city")) if p)
    return "\n".join(
        p for p in (a.get("line1"), a.get("line2"), city, a.get("region"), a.get("country")) if p
    )


def _customer(c: dict[str, Any] | None) -> str:
    if not c:
        return "—"
    return "\n".join(
        p for p in (c.get("name"), c.get("email"), c.get("phone"), c.get("company")) if p
    )


def people_grid(record: dict[str, Any]) -> Table:
    """Customer, shipping and billing address side by side (a checkout or an order)."""
    grid = Table.grid(padding=(0, 4))
    for title in ("Customer", "Shipping address", "Billing address"):
        grid.add_column(header=title)
    grid.add_row(
        *(Text(t, style="bold") for t in ("Customer", "Shipping address", "Billing address"))
    )
    grid.add_row(
        _customer(record["customer"]),
        _address(record["shipping_address"]),
        _address(record["billing_address"]),
    )
    return grid


def items_table(items: list[dict[str, Any]], currency: str, *, with_line: bool = True) -> Table:
    t = (
        table("Line", "SKU", "Name", "Qty", "Price", "Total", "Tax")
        if with_line
        else table("SKU", "Name", "Qty", "Price", "Total")
    )
    for item in items:
        row = [
            item["product_sku"],
            item["name"],
            str(item["quantity"]),
            format_money(item["unit_price_cents"], currency),
            format_money(item["line_total_cents"], currency),
        ]
        if with_line:
            row = [str(item["line_id"]), *row, format_money(item["tax_cents"], currency)]
        t.add_row(*row)
    return t


def meta_table(items: list[dict[str, Any]]) -> Table | None:
    """The line meta under the lines, one row per line and definition; None when there is none."""
    rows = [
        (item, key, values) for item in items for key, values in (item.get("meta") or {}).items()
    ]
    if not rows:
        return None
    t = table("Line", "SKU", "Meta", "Values", title="Line meta")
    for item, key, values in rows:
        t.add_row(
            str(item["line_id"]),
            item["product_sku"],
            key,
            "  ".join(f"{k}={v}" for k, v in values.items()),
        )
    return t


def lines_group(items: list[dict[str, Any]], currency: str) -> Group:
    meta = meta_table(items)
    parts: list[Any] = [items_table(items, currency)]
    if meta is not None:
        parts += [Text(""), meta]
    return Group(*parts)


def totals_table(totals: dict[str, int], currency: str) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column()
    t.add_column(justify="right")
    for label, key in (
        ("Subtotal", "subtotal_cents"),
        ("Shipping", "shipping_cents"),
        ("Tax", "tax_cents"),
    ):
        t.add_row(label, format_money(totals[key], currency))
    t.add_row(
        Text("Total", style="bold"),
        Text(format_money(totals["total_cents"], currency), style="bold"),
    )
    return t


def checkout_view(co: dict[str, Any]) -> None:
    """The status view: everything about one checkout on one screen."""
    currency = co["currency"]
    # Only an open checkout can still expire; a completed or cancelled one never will.
    expiry = f"  expires {co['expires_at']}" if co["status"] in OPEN_CHECKOUT_STATES else ""
    header = Text.assemble(
        (co["checkout_token"], "bold"),
        "  ",
        (co["status"], "cyan"),
        f"  cart {co['cart_token']}{expiry}",
    )
    people = people_grid(co)
    payment = co["payment"]
    pay_text = (
        "— none yet"
        if not payment
        else (
            f"{payment['provider']}: {payment['status']}  "
            f"{format_money(payment['amount_cents'], currency)}"
            + (f"  ref {payment['reference']}" if payment.get("reference") else "")
            + (
                f"  id {payment['provider_payment_id']}"
                if payment.get("provider_payment_id")
                else ""
            )
            + (f"\nlink: {payment['redirect_url']}" if payment.get("redirect_url") else "")
        )
    )
    order = co["order"]
    order_text = (
        "— not completed"
        if not order
        else (
            f"{order['order_number']}  {order['status']} / payment {order['payment_status']}"
            f"  ({order['order_id']})"
        )
    )
    bottom = Table.grid(padding=(0, 4))
    bottom.add_column()
    bottom.add_column()
    bottom.add_row(
        Group(
            Text("Payment", style="bold"),
            Text(pay_text),
            Text("Order", style="bold"),
            Text(order_text),
        ),
        totals_table(co["totals"], currency),
    )
    out().print(
        Panel(
            Group(
                header,
                Text(""),
                lines_group(co["items"], currency),
                Text(""),
                people,
                Text(""),
                bottom,
            ),
            title="Checkout",
            title_align="left",
        )
    )


def cart_view(cart: dict[str, Any]) -> None:
    out().print(
        Text.assemble(
            ("Cart ", "bold"),
            (cart["cart_token"], "bold"),
            "  ",
            (cart["status"], "cyan"),
            f"  visitor {cart['visitor_id']}" if cart.get("visitor_id") else "",
            "  (already merged)" if cart.get("already_merged") else "",
        )
    )
    out().print(items_table(cart["items"], cart["currency"], with_line=False))
    out().print(
        Text(f"Subtotal: {format_money(cart['subtotal_cents'], cart['currency'])}", style="bold")
    )


def products_view(products: list[dict[str, Any]]) -> None:
    t = table("SKU", "Name", "Price", "Stock", "Backorder", "Status", "Meta")
    for p in products:
        t.add_row(
            p["sku"],
            p["name"],
            format_money(p["price_cents"], p["currency"]),
            "untracked" if p["stock"] is None else str(p["stock"]),
            "yes" if p["allow_backorder"] else "no",
            p["status"],
            ", ".join(d["def_key"] + ("*" if d.get("required") else "") for d in p["meta_defs"]),
        )
    out().print(t)


def order_view(order: dict[str, Any]) -> None:
    """One order: what was ordered and by whom, what it was paid, refunded and still owes,
    its three statuses; then its payments, refunds, shipments and timeline, each a table
    (on a terminal folded to its width, piped one tab-separated record per line)."""
    currency = order["currency"]
    # Short lines, each under 80 columns: ids and times are never folded mid-value.
    header: RenderableType = Group(
        Text.assemble(
            ("Order ", "bold"),
            (order["order_number"], "bold"),
            "  status ",
            (order["status"], "cyan"),
            " · payment ",
            (order["payment_status"], "cyan"),
            " · shipping ",
            (order["fulfilment_status"], "cyan"),
        ),
        Text(f"{order['order_id']}  checkout {order['checkout_token']}"),
        Text(f"created {order['created_at']}  updated {order['updated_at']}"),
    )
    if order.get("cancelled_at"):
        reason = f": {order['cancel_reason']}" if order.get("cancel_reason") else ""
        header = Group(header, Text(f"cancelled {order['cancelled_at']}{reason}", style="red"))
    if order.get("external_reference"):  # its own line: a reference is never cut
        header = Group(header, Text(f"reference {order['external_reference']}"))
    people = people_grid(order)
    out().print(
        Panel(
            Group(
                header,
                Text(""),
                lines_group(order["items"], currency),
                Text(""),
                people,
                Text(""),
                money_table(order),
            ),
            title="Order",
            title_align="left",
        )
    )
    for part in (
        payments_table(order),
        refunds_table(order),
        shipments_table(order),
        timeline_table(order["timeline"], known=("order_number",)),
    ):
        out().print(part)


def order_life(order: dict[str, Any]) -> None:
    """An order's life after completion, under a checkout's view (``inspect``): its statuses
    and money in one line, then its payments, refunds and shipments."""
    currency = order["currency"]
    out().print(
        Text.assemble(
            ("Order ", "bold"),
            (order["order_number"], "bold"),
            f"  status {order['status']} · payment {order['payment_status']} · shipping "
            f"{order['fulfilment_status']}",
        )
    )
    out().print(
        Text(
            f"paid {format_money(order['amount_paid_cents'], currency)} · refunded "
            f"{format_money(order['amount_refunded_cents'], currency)} · balance due "
            f"{format_money(order['balance_due_cents'], currency)}"
        )
    )
    for part in (payments_table(order), refunds_table(order), shipments_table(order)):
        out().print(part)


def money_table(order: dict[str, Any]) -> Table:
    """The totals, then what was paid and refunded and what is still due."""
    currency = order["currency"]
    t = totals_table(order["totals"], currency)
    t.add_row("Paid", format_money(order["amount_paid_cents"], currency))
    if order["amount_refunded_cents"]:
        t.add_row("Refunded", format_money(-order["amount_refunded_cents"], currency))
    due = order["balance_due_cents"]
    t.add_row(
        Text("Balance due", style="bold"),
        Text(format_money(due, currency), style="bold red" if due else "bold"),
    )
    return t


def _none(title: str) -> Text:
    return Text(f"{title}: none")


def payments_table(order: dict[str, Any]) -> RenderableType:
    if not order["payments"]:
        return _none("Payments")
    t = table("When", "Method", "Amount", "Reference", "Who", title="Payments")
    for p in order["payments"]:
        reference = p["reference"] or p["provider_payment_id"] or ""
        if p["paid_on"]:
            reference = f"{reference}\npaid on {p['paid_on']}".strip()
        if p["forced"]:
            reference = f"{reference}\nmore than was due (forced)".strip()
        t.add_row(
            p["recorded_at"],
            p["method"],
            format_money(p["amount_cents"], p["currency"]),
            reference,
            p["recorded_by"] or "",
        )
    return t


def refunds_table(order: dict[str, Any]) -> RenderableType:
    if not order["refunds"]:
        return _none("Refunds")
    t = table("When", "Status", "Amount", "Refund", "Why", title="Refunds")
    for r in order["refunds"]:
        what = r["provider_refund_id"] or r["kind"]
        if r["restocked"]:
            what += "\nrestocked"
        t.add_row(
            r["created_at"],
            r["status"],
            format_money(r["amount_cents"], r["currency"]),
            f"{r['provider']}: {what}" if r["kind"] == "provider" else what,
            r["reason"] or "",
        )
    return t


def shipments_table(order: dict[str, Any]) -> RenderableType:
    if not order["fulfilments"]:
        return _none("Shipments")
    skus = {item["line_id"]: item["product_sku"] for item in order["items"]}
    t = table("When", "Id", "Lines", "Carrier", "Tracking", title="Shipments")
    for f in order["fulfilments"]:
        lines = "\n".join(
            f"{skus.get(li['line_id'], li['line_id'])} × {li['quantity']}" for li in f["lines"]
        )
        tracking = "\n".join(p for p in (f["tracking_number"], f["tracking_url"]) if p)
        t.add_row(f["created_at"], f["fulfilment_id"], lines, f["carrier"] or "", tracking)
    return t


def timeline_table(timeline: list[dict[str, Any]], *, known: tuple[str, ...] = ()) -> DataTable:
    """Five columns, one detail per line: readable in an 80-column terminal. ``known``:
    detail keys the view already shows (an order's own number), left out."""
    t = table("When", "Who", "What", "Change", "Detail", title="Timeline")
    for e in timeline:
        change = (
            f"{e['from_status'] or '·'} → {e['to_status']}"
            if e["to_status"] and e["to_status"] != e["from_status"]
            else ""
        )
        detail = "\n".join(f"{k}={v}" for k, v in (e["detail"] or {}).items() if k not in known)
        t.add_row(e["at"], e["actor"] or "", e["kind"], change, detail)
    return t


def orders_view(orders: list[dict[str, Any]]) -> None:
    t = table("Order", "Status", "Payment", "Shipping", "Customer", "Total", "Due", "Created")
    for o in orders:
        t.add_row(
            o["order_number"],
            o["status"],
            o["payment_status"],
            o["fulfilment_status"],
            (o["customer"] or {}).get("email", ""),
            format_money(o["totals"]["total_cents"], o["currency"]),
            format_money(o["balance_due_cents"], o["currency"]),
            o["created_at"],
        )
    out().print(t)
