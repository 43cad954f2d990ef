"""The order views: paid, refunded and due, three statuses, payments, shipments, timeline —
readable on an 80-column terminal, one tab-separated record per line when piped."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import ready_checkout
from tests.engine_helpers import FLOW, ORDERS, complete, invoice
from tests.terminal import ANSI, Terminal, starter

URL = "https://postnl.example/track/3SABC1234567890"


@pytest.fixture
def terminal(db_path, tmp_path):
    yield from starter(lambda *args, **kw: Terminal(db_path, tmp_path, *args, **kw))


def paid_and_shipped(backend) -> dict:
    token = ready_checkout(backend, [("LENS-DAILY-30", 2), ("CASE-TRAVEL", 1)])
    backend.call(
        FLOW,
        "set-payment",
        {"checkout_token": token, "provider": "bank", "reference": "NL-4711", "status": "paid"},
    )
    order = complete(backend, token)["order"]
    backend.call(
        ORDERS,
        "fulfil-order",
        {
            "order_id": order["order_number"],
            "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 2}],
            "carrier": "PostNL",
            "tracking_number": "3SABC1234567890",
            "tracking_url": URL,
        },
    )
    return backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})


def unpaid(backend) -> dict:
    token = ready_checkout(backend, [("CASE-TRAVEL", 1)])
    invoice(backend, token)
    return complete(backend, token)["order"]


def _section(lines: list[str], title: str) -> list[str]:
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if "\t" not in lines[i]), len(lines))
    return lines[start:end]


def test_piped_order_view_is_tab_separated_records(backend, cli):
    order = paid_and_shipped(backend)
    shown = cli("orders", "show", order["order_number"])
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    text = shown.stdout
    assert "status paid · payment paid · shipping partially_fulfilled" in text
    assert "Paid" in text and "Balance due" in text and "€ 0.00" in text
    assert "Refunds: none" in lines
    [payment] = _section(lines, "Payments")
    when, method, amount, reference, who = payment.split("\t")
    # the checkout's own payment: its method, who completed it (its reference is the checkout's)
    assert (method, reference, who) == ("bank", "", "test")
    assert when.endswith("Z") and amount.startswith("€ ")
    [shipment] = _section(lines, "Shipments")
    when, ident, what, carrier, tracking = shipment.split("\t")
    assert ident == order["fulfilments"][0]["fulfilment_id"]
    assert (what, carrier) == ("LENS-DAILY-30 × 2", "PostNL")
    assert tracking == f"3SABC1234567890 / {URL}"  # whole, never folded or cut
    timeline = _section(lines, "Timeline")
    kinds = [row.split("\t")[2] for row in timeline]
    assert kinds[0] == "checkout_completed" and "order_fulfilled" in kinds
    changed = next(r for r in timeline if "\torder_fulfilment_status_changed\t" in r)
    assert changed.split("\t")[3] == "unfulfilled → partially_fulfilled"
    assert "…" not in text


def test_json_order_view_is_the_order_exactly(backend, cli):
    order = paid_and_shipped(backend)
    shown = cli("--json", "orders", "show", order["order_number"])
    assert shown.json() == order


def test_order_view_fits_80_columns(backend, terminal):
    order = paid_and_shipped(backend)
    term = terminal("orders", "show", order["order_number"], dimensions=(200, 80))
    assert term.finish() == 0
    lines = ANSI.sub("", term.transcript.getvalue()).replace("\r", "").splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    text = "\n".join(lines)
    assert "…" not in text
    assert f"Order {order['order_number']}  status paid · payment paid" in text
    assert any(line.startswith("Payments") for line in lines)
    # identifiers and times stay whole on their line
    assert order["fulfilments"][0]["fulfilment_id"] in text
    assert order["checkout_token"] in text and order["order_id"] in text
    assert order["payments"][0]["recorded_at"] in text
    # a long tracking link folds in its column: every character is there, in order
    shipments = lines[next(i for i, line in enumerate(lines) if line.startswith("Shipments")) :]
    cells = "".join(line.split("│")[-1].strip() for line in shipments[2:8] if "│" in line)
    assert URL in cells


def test_orders_list_table_and_csv_show_money_due_and_shipping(backend, cli):
    shipped = paid_and_shipped(backend)
    owing = unpaid(backend)
    rows = {
        line.split("\t")[0]: line.split("\t") for line in cli("orders", "list").stdout.splitlines()
    }
    assert rows[shipped["order_number"]][1:4] == ["paid", "paid", "partially_fulfilled"]
    assert rows[owing["order_number"]][1:4] == ["pending", "unpaid", "unfulfilled"]
    assert rows[owing["order_number"]][6] == rows[owing["order_number"]][5]  # all of it due
    as_csv = cli("orders", "list", "--format", "csv")
    records = {r["order_number"]: r for r in csv.DictReader(io.StringIO(as_csv.stdout))}
    due = records[owing["order_number"]]
    assert (due["amount_paid_cents"], due["balance_due_cents"]) == ("0", due["total_cents"])
    assert due["fulfilment_status"] == "unfulfilled"
    paid = records[shipped["order_number"]]
    assert paid["amount_paid_cents"] == paid["total_cents"] and paid["balance_due_cents"] == "0"
    assert paid["fulfilment_status"] == "partially_fulfilled"
