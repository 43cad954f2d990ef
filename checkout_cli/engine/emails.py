"""The order confirmation email, as plain text and HTML, built from the order object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid
from html import escape
from typing import Any

from checkout_cli.money import format_money


def payment_line(order: dict[str, Any]) -> str:
    if order["payment_status"] == "paid":
        return "Payment: paid"
    return "Payment: to be invoiced — you will receive an invoice"


def _address_lines(address: dict[str, Any] | None) -> list[str]:
    if not address:
        return []
    city = " ".join(p for p in (address["postal_code"], address["city"]) if p)
    parts = [
        address["line1"],
        address.get("line2"),
        city,
        address.get("region"),
        address["country"],
    ]
    return [p for p in parts if p]


def one_line(text: str) -> str:
    """A header value: line breaks and other whitespace runs become one space.

    The email package refuses a header with a line break (header injection); a shop name
    typed with one must not make every confirmation undeliverable.
    """
    return " ".join(text.split())


def subject(shop_name: str, order: dict[str, Any]) -> str:
    return one_line(f"{shop_name}: order {order['order_number']} confirmed")


def payment_link_subject(shop_name: str) -> str:
    return one_line(f"{shop_name}: your payment link")


def render_text(shop_name: str, order: dict[str, Any]) -> str:
    cur = order["currency"]
    out = [
        f"Dear {order['customer']['name']},",
        "",
        f"Thank you for your order at {shop_name}.",
        "",
        f"Order number: {order['order_number']}",
        "",
    ]
    for item in order["items"]:
        out.append(
            f"  {item['quantity']} x {item['name']} ({item['product_sku']})"
            f"  {format_money(item['line_total_cents'], cur)}"
        )
    totals = order["totals"]
    out += [
        "",
        f"Subtotal: {format_money(totals['subtotal_cents'], cur)}",
        f"Shipping: {format_money(totals['shipping_cents'], cur)}",
        f"Tax:      {format_money(totals['tax_cents'], cur)}",
        f"Total:    {format_money(totals['total_cents'], cur)}",
        "",
        payment_line(order),
        "",
        "Shipping address:",
        *(f"  {line}" for line in _address_lines(order["shipping_address"])),
        "",
        "Billing address:",
        *(f"  {line}" for line in _address_lines(order["billing_address"])),
        "",
        f"— {shop_name}",
    ]
    return "\n".join(out) + "\n"


def render_html(shop_name: str, order: dict[str, Any]) -> str:
    cur = order["currency"]
    rows = "".join(
        f"<tr><td>{item['quantity']}</td><td>{escape(item['name'])} "
        f"({escape(item['product_sku'])})</td>"
        f'<td align="right">{escape(format_money(item["line_total_cents"], cur))}</td></tr>'
        for item in order["items"]
    )
    totals = order["totals"]
    total_rows = "".join(
        f'<tr><td></td><td>{label}</td><td align="right">'
        f"{escape(format_money(totals[key], cur))}</td></tr>"
        for label, key in (
            ("Subtotal", "subtotal_cents"),
            ("Shipping", "shipping_cents"),
            ("Tax", "tax_cents"),
            ("<b>Total</b>", "total_cents"),
        )
    )

    def address(a: dict[str, Any] | None) -> str:
        return "<br>".join(escape(line) for line in _address_lines(a))

    return (
        "<!doctype html><html><body>"
        f"<p>Dear {escape(order['customer']['name'])},</p>"
        f"<p>Thank you for your order at {escape(shop_name)}.</p>"
        f"<h2>Order {escape(order['order_number'])}</h2>"
        f"<table>{rows}{total_rows}</table>"
        f"<p>{escape(payment_line(order))}</p>"
        f"<h3>Shipping address</h3><p>{address(order['shipping_address'])}</p>"
        f"<h3>Billing address</h3><p>{address(order['billing_address'])}</p>"
        "</body></html>"
    )


def payment_link_text(shop_name: str, name: str, url: str, total_cents: int, currency: str) -> str:
    return (
        f"Dear {name},\n\nThank you for your order at {shop_name}. Please pay "
        f"{format_money(total_cents, currency)} with this link:\n\n{url}\n\n"
        f"— {shop_name}\n"
    )


def payment_link_html(shop_name: str, name: str, url: str, total_cents: int, currency: str) -> str:
    return (
        f"<!doctype html><html><body><p>Dear {escape(name)},</p>"
        f"<p>Thank you for your order at {escape(shop_name)}. Please pay "
        f"{escape(format_money(total_cents, currency))} with this link:</p>"
        f'<p><a href="{escape(url)}">{escape(url)}</a></p></body></html>'
    )


@dataclass(frozen=True)
class OrderMessage:
    subject: str
    text: str
    html: str


def order_message(
    shop_name: str,
    order: dict[str, Any],
    title: str,
    paragraphs: list[str],
    link: str | None = None,
) -> OrderMessage:
    """An email of an order's life after its confirmation: a title and a few paragraphs
    (plain text; escaped for the HTML part), and optionally a link (a tracking page)."""
    name = order["customer"]["name"] if order.get("customer") else "customer"
    number = order["order_number"]
    text = f"Dear {one_line(name)},\n\n" + "\n\n".join(paragraphs)
    html = f"<!doctype html><html><body><p>Dear {escape(name)},</p>" + "".join(
        f"<p>{escape(p)}</p>" for p in paragraphs
    )
    if link:
        text += f"\n\n{link}"
        html += f'<p><a href="{escape(link)}">{escape(link)}</a></p>'
    text += f"\n\n— {shop_name}\n"
    html += "</body></html>"
    return OrderMessage(one_line(f"{shop_name}: {title} (order {number})"), text, html)


def build_message(
    sender: str,
    shop_name: str,
    recipient: str,
    subject_text: str,
    body_text: str,
    body_html: str,
    sent_at: datetime,
) -> Message:
    # The classic MIME classes: a third of the cost of EmailMessage's header parsing, which
    # was half of a whole checkout flow's time.
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((one_line(shop_name), one_line(sender)))
    message["To"] = one_line(recipient)
    # The compat32 Message takes a Header as a header's value; typeshed's Message types
    # every value as str.
    message["Subject"] = Header(one_line(subject_text), "utf-8")  # type: ignore[assignment]
    message["Date"] = format_datetime(sent_at)  # RFC 5322 requires it; mail clients sort by it
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.attach(MIMEText(body_text, "plain", "utf-8"))
    message.attach(MIMEText(body_html, "html", "utf-8"))
    return message
