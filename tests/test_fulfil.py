"""fulfil-order: shipments add up, never past what was ordered; one email per shipment."""

from __future__ import annotations

import email
import sqlite3
from datetime import timedelta

import pytest

from checkout_cli.engine.invariants import check_invariants
from checkout_cli.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import dump, ready_checkout
from tests.engine_helpers import (
    FLOW,
    ORDERS,
    assert_invariants,
    complete,
    invoice,
    query,
    refused,
    scalar,
    setting,
    shift_clock,
    stock,
)

ITEMS = [("LENS-DAILY-30", 3), ("CASE-TRAVEL", 1)]
URL = "https://postnl.example/track/3SABC123"


def placed(backend, items=None, *, paid=False) -> dict:
    token = ready_checkout(backend, items or ITEMS)
    if paid:
        backend.call(
            FLOW,
            "set-payment",
            {"checkout_token": token, "provider": "bank", "reference": "B1", "status": "paid"},
        )
    else:
        invoice(backend, token)
    return complete(backend, token)["order"]


def fulfil(backend, order, **body):
    return backend.call(ORDERS, "fulfil-order", {"order_id": order["order_number"], **body})


def shipped_emails(db_path, order) -> list[tuple[str, str, str]]:
    return query(
        db_path,
        "SELECT x.kind, x.subject, x.body_text FROM outbox x JOIN orders o ON o.id = x.order_id "
        "WHERE o.order_id = ? AND x.kind LIKE 'shipped:%' ORDER BY x.id",
        (order["order_id"],),
    )


def test_ship_everything_at_once(backend, db_path):
    order = placed(backend, paid=True)
    done = fulfil(backend, order, carrier="PostNL", tracking_number="3SABC123", tracking_url=URL)
    assert done["already_fulfilled"] is False
    assert done["fulfilment"]["lines"] == [
        {"line_id": 1, "quantity": 3},
        {"line_id": 2, "quantity": 1},
    ]
    assert (done["fulfilment"]["carrier"], done["fulfilment"]["tracking_url"]) == ("PostNL", URL)
    shown = done["order"]
    assert (shown["status"], shown["payment_status"], shown["fulfilment_status"]) == (
        "completed",
        "paid",
        "fulfilled",
    )
    assert backend.call(ORDERS, "get-order", {"order_id": order["order_id"]}) == shown
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in shown["timeline"]]
    assert ("order_fulfilled", None, None) in kinds
    assert ("order_fulfilment_status_changed", "unfulfilled", "fulfilled") in kinds
    assert ("order_status_changed", "paid", "completed") in kinds
    assert_invariants(db_path)


def test_partial_shipments_add_up(backend, db_path):
    order = placed(backend)
    first = fulfil(backend, order, lines=[{"product_sku": "LENS-DAILY-30", "quantity": 2}])
    assert first["order"]["fulfilment_status"] == "partially_fulfilled"
    assert first["order"]["status"] == "pending"  # an invoice order not paid yet
    second = fulfil(backend, order, lines=[{"product_sku": "LENS-DAILY-30", "quantity": 1}])
    assert second["order"]["fulfilment_status"] == "partially_fulfilled"
    last = fulfil(backend, order)  # the rest: only what is left
    assert last["fulfilment"]["lines"] == [{"line_id": 2, "quantity": 1}]
    assert last["order"]["fulfilment_status"] == "fulfilled"
    assert last["order"]["status"] == "pending"  # shipped, still owed: not completed
    assert [f["lines"] for f in last["order"]["fulfilments"]] == [
        [{"line_id": 1, "quantity": 2}],
        [{"line_id": 1, "quantity": 1}],
        [{"line_id": 2, "quantity": 1}],
    ]
    assert scalar(db_path, "SELECT SUM(quantity) FROM fulfilment_lines") == 4
    assert_invariants(db_path)


def test_a_sku_on_several_lines_fills_them_in_order(backend):
    from tests.engine_helpers import prescription

    token = ready_checkout(backend, [("LENS-TORIC-6", 1)])
    # a second line of the same SKU: one per eye, told apart by their meta
    backend.call(
        FLOW,
        "set-line-meta",
        {
            "checkout_token": token,
            "product_sku": "LENS-TORIC-6",
            "def_key": "lens_prescription",
            "values": prescription(),
        },
    )
    invoice(backend, token)
    order = complete(backend, token)["order"]
    done = fulfil(backend, order, lines=[{"product_sku": "LENS-TORIC-6", "quantity": 1}])
    assert done["order"]["fulfilment_status"] == "fulfilled"


def test_more_than_ordered_is_refused_and_nothing_is_written(backend, db_path):
    order = placed(backend)
    fulfil(backend, order, lines=[{"product_sku": "LENS-DAILY-30", "quantity": 2}])
    error = refused(
        backend,
        ORDERS,
        "fulfil-order",
        {
            "order_id": order["order_number"],
            "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 2}],
        },
        ConflictError,
        "quantity_exceeds_unshipped",
        "lines",
    )
    assert "only 1 of 3" in error.message
    # one line too many refuses the whole request: the good line is not shipped either
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {
            "order_id": order["order_number"],
            "lines": [
                {"product_sku": "CASE-TRAVEL", "quantity": 1},
                {"product_sku": "LENS-DAILY-30", "quantity": 1},
                {"product_sku": "LENS-DAILY-30", "quantity": 1},
            ],
        },
        ConflictError,
        "quantity_exceeds_unshipped",
    )
    assert_invariants(db_path)


@pytest.mark.parametrize(
    ("body", "cls", "code", "field"),
    [
        (
            {"lines": [{"product_sku": "GIFT-CARD-25", "quantity": 1}]},
            ValidationError,
            "sku_not_on_order",
            "lines",
        ),
        (
            {"lines": [{"product_sku": "CASE-TRAVEL", "quantity": 0}]},
            ValidationError,
            "invalid_quantity",
            "lines[0].quantity",
        ),
        ({"lines": []}, ValidationError, "no_lines", "lines"),
        ({"tracking_number": "3S1"}, ValidationError, "carrier_required", "carrier"),
        (
            {"carrier": "DHL", "tracking_url": URL},
            ValidationError,
            "tracking_number_required",
            "tracking_number",
        ),
        (
            {"carrier": "DHL", "tracking_number": "1", "tracking_url": "ftp://x.example/1"},
            ValidationError,
            "invalid_url",
            "tracking_url",
        ),
        (
            {"lines": [{"product_sku": "CASE-TRAVEL", "quantity": 1, "line_id": 1}]},
            ValidationError,
            "line_not_on_order",
            "lines",
        ),
    ],
)
def test_bad_requests_are_refused(backend, body, cls, code, field):
    order = placed(backend)
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": order["order_number"], **body},
        cls,
        code,
        field,
    )


def test_unknown_cancelled_and_fully_shipped_orders_are_refused(backend, db_path):
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": "2026-999999"},
        NotFoundError,
        "order_not_found",
    )
    order = placed(backend)
    fulfil(backend, order)
    error = refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": order["order_number"]},
        ConflictError,
        "order_already_fulfilled",
        "order_id",
    )
    assert "shipped in full already" in error.message
    other = placed(backend)
    # cancel-order is its own endpoint; an order cancelled by it carries cancelled_at
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE orders SET cancelled_at = '2026-01-01T00:00:00Z', status = 'cancelled' "
            "WHERE order_id = ?",
            (other["order_id"],),
        )
    conn.close()
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": other["order_number"]},
        ConflictError,
        "order_cancelled",
        "order_id",
    )


def test_the_same_tracking_number_again_ships_nothing(backend, db_path):
    order = placed(backend, paid=True)
    body = {
        "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 1}],
        "carrier": "PostNL",
        "tracking_number": "3SABC123",
        "tracking_url": URL,
    }
    first = fulfil(backend, order, **body)
    before = dump(db_path)
    again = fulfil(backend, order, **body)
    assert again["already_fulfilled"] is True
    assert again["fulfilment"] == first["fulfilment"]
    assert again["order"] == first["order"]
    assert dump(db_path) == before  # nothing written: no second shipment, email or event
    # the order shipped in full: the first shipment's tracking number still answers it
    last = fulfil(backend, order, carrier="DHL", tracking_number="JVGL1")
    assert last["order"]["status"] == "completed"
    retry = fulfil(backend, order, carrier="DHL", tracking_number="JVGL1")
    assert (retry["already_fulfilled"], retry["fulfilment"]) == (True, last["fulfilment"])
    # the same tracking number for other lines is another shipment's: refused
    other = placed(backend)
    fulfil(
        backend,
        other,
        lines=[{"product_sku": "CASE-TRAVEL", "quantity": 1}],
        carrier="DHL",
        tracking_number="T9",
    )
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {
            "order_id": other["order_number"],
            "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 1}],
            "carrier": "DHL",
            "tracking_number": "T9",
        },
        ConflictError,
        "tracking_number_used",
        "tracking_number",
    )
    assert len(shipped_emails(db_path, order)) == 2
    assert_invariants(db_path)


def test_one_shipped_email_per_shipment_with_the_tracking_link(backend, db_path):
    order = placed(backend, paid=True)
    done = fulfil(
        backend,
        order,
        lines=[{"product_sku": "CASE-TRAVEL", "quantity": 1}],
        carrier="PostNL",
        tracking_number="3SABC123",
        tracking_url=URL,
    )
    again = fulfil(
        backend,
        order,
        lines=[{"product_sku": "CASE-TRAVEL", "quantity": 1}],
        carrier="PostNL",
        tracking_number="3SABC123",
        tracking_url=URL,
    )
    assert again["already_fulfilled"] is True
    emails = shipped_emails(db_path, order)
    number = done["fulfilment"]["fulfilment_id"].removeprefix("ful_")
    assert [kind for kind, _, _ in emails] == [f"shipped:{number}"]
    _, subject, text = emails[0]
    assert subject == f"Lens Shop Amsterdam: shipped (order {order['order_number']})"
    assert URL in text and "3SABC123" in text and "PostNL" in text
    assert "later shipment" in text  # the lenses follow
    # delivered after the commit, as a file of its own next to the confirmation
    outbox = db_path.parent / "outbox"
    files = sorted(p.name for p in outbox.glob("*.eml"))
    assert files == [
        f"{order['order_number']}-shipped-{number}.eml",
        f"{order['order_number']}.eml",
    ]
    sent = scalar(db_path, "SELECT status FROM outbox WHERE kind = ?", (f"shipped:{number}",))
    assert sent == "sent"
    message = email.message_from_bytes(
        (outbox / f"{order['order_number']}-shipped-{number}.eml").read_bytes()
    )
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in message.walk()
        if not p.is_multipart()
    }
    assert URL in parts["text/plain"] and f'href="{URL}"' in parts["text/html"]


def test_shipped_email_switched_off(backend, db_path):
    setting(backend, "email_shipped", False)
    order = placed(backend, paid=True)
    done = fulfil(backend, order, carrier="PostNL", tracking_number="3S1", tracking_url=URL)
    assert done["order"]["status"] == "completed"
    assert shipped_emails(db_path, order) == []
    event = next(e for e in done["order"]["timeline"] if e["kind"] == "order_fulfilled")
    assert "email" not in event["detail"]
    assert_invariants(db_path)  # an email switched off is not missing


def test_doctor_finds_a_shipment_whose_email_is_missing(backend, db_path):
    order = placed(backend, paid=True)
    fulfil(backend, order)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("DELETE FROM outbox WHERE kind LIKE 'shipped:%'")
    violations = check_invariants(conn)
    conn.close()
    assert [(v.invariant, v.records["order_number"], v.records["event"]) for v in violations] == [
        (11, order["order_number"], "order_fulfilled")
    ]
    assert violations[0].as_dict()["name"] == "one_email_per_event"


def test_refunded_units_may_ship_and_are_named(backend, db_path):
    order = placed(backend, paid=True)
    lens = [{"product_sku": "LENS-DAILY-30", "quantity": 1}]
    backend.call(ORDERS, "refund-order", {"order_id": order["order_number"], "lines": lens})
    two = fulfil(backend, order, lines=[{"product_sku": "LENS-DAILY-30", "quantity": 2}])
    assert two["refunded_units_shipped"] == []  # 2 of the 2 not refunded
    last = fulfil(backend, order)
    assert last["refunded_units_shipped"] == [{"line_id": 1, "quantity": 1}]
    assert_invariants(db_path)


def test_restocked_units_are_not_shipped(backend, db_path):
    """Refunded and put back in stock, a unit is on the shelf: shipping it too would send
    goods the stock counts as there."""
    order = placed(backend, paid=True)
    number = order["order_number"]
    before = stock(backend, "LENS-DAILY-30")
    lenses = [{"product_sku": "LENS-DAILY-30", "quantity": 2}]
    backend.call(ORDERS, "refund-order", {"order_id": number, "lines": lenses, "restock": True})
    assert stock(backend, "LENS-DAILY-30") == before + 2
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": number, "lines": [{"product_sku": "LENS-DAILY-30", "quantity": 2}]},
        ConflictError,
        "quantity_exceeds_unshipped",
        "lines",
    )
    done = fulfil(backend, order)  # what is left: 1 lens and the case
    assert [(x["line_id"], x["quantity"]) for x in done["fulfilment"]["lines"]] == [
        (1, 1),
        (2, 1),
    ]
    refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": number},
        ConflictError,
        "order_already_fulfilled",
        "order_id",
    )
    assert stock(backend, "LENS-DAILY-30") == before + 2  # shipping takes no stock twice
    assert_invariants(db_path)


def test_an_order_refunded_and_restocked_in_full_is_not_waiting_to_ship(backend, db_path):
    order = placed(backend, paid=True)
    number = order["order_number"]
    backend.call(ORDERS, "refund-order", {"order_id": number, "restock": True})
    shift_clock(backend, timedelta(days=30))
    stuck = backend.call("checkout-admin", "list-checkouts", {"stuck": True})["checkouts"]
    assert not [c for c in stuck if "paid_not_shipped" in c["stuck_reasons"]]
    exc = refused(
        backend,
        ORDERS,
        "fulfil-order",
        {"order_id": number},
        ConflictError,
        "order_already_fulfilled",
        "order_id",
    )
    assert "put back in stock" in exc.message


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_fulfil_and_exit_codes(backend, cli, db_path):
    order = placed(backend, paid=True)
    number = order["order_number"]
    before = dump(db_path)
    for args, code in [
        (("--line", "LENS-DAILY-30=x"), 2),
        (("--line", "LENS-DAILY-30"), 2),
        (("--line", "=2"), 2),
        (("--line", "LENS-DAILY-30=0"), 4),
        (("--line", "LENS-DAILY-30=4"), 4),
        (("--line", "NOPE=1"), 4),
        (("--tracking", "3S1"), 4),
        (("--carrier", "X", "--tracking", "3S1", "--tracking-url", "javascript:alert(1)"), 4),
    ]:
        result = cli("orders", "fulfil", number, *args)
        assert result.exit_code == code, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert cli("orders", "fulfil", "2026-999999").exit_code == 3
    assert dump(db_path) == before
    shipped = cli(
        "orders",
        "fulfil",
        number,
        "--line",
        "LENS-DAILY-30=2",
        "--carrier",
        "PostNL",
        "--tracking",
        "3S1",
        "--tracking-url",
        URL,
    )
    assert shipped.exit_code == 0, shipped.stderr
    assert (
        f"order {number}: shipment ful_" in shipped.stderr and "LENS-DAILY-30 × 2" in shipped.stderr
    )
    assert "partially fulfilled" in shipped.stderr
    again = cli(
        "--json",
        "orders",
        "fulfil",
        number,
        "--line",
        "LENS-DAILY-30=2",
        "--carrier",
        "PostNL",
        "--tracking",
        "3S1",
    )
    assert again.exit_code == 0 and again.json()["already_fulfilled"] is True
    rest = cli("--json", "orders", "fulfil", number)
    assert rest.json()["order"]["status"] == "completed"
    done = cli("orders", "fulfil", number)
    assert done.exit_code == 4 and "shipped in full already" in done.stderr
    assert_invariants(db_path)


def test_a_retried_http_request_answers_the_shipment_it_made(backend, db_path):
    """A worker killed after the commit, before its answer: the retry (same Idempotency-Key,
    seen by the engine as its request key) finds the shipment by its event, ships nothing."""
    order = placed(backend)
    body = {"lines": [{"product_sku": "LENS-DAILY-30", "quantity": 1}]}  # no tracking number
    backend.engine.request_key = "caller:key-1"
    try:
        first = fulfil(backend, order, **body)
        before = dump(db_path)
        again = fulfil(backend, order, **body)
    finally:
        backend.engine.request_key = None
    assert again["already_fulfilled"] is True
    assert again["fulfilment"] == first["fulfilment"]
    assert dump(db_path) == before
    other = fulfil(backend, order, **body)  # another request: another shipment
    assert other["fulfilment"]["fulfilment_id"] != first["fulfilment"]["fulfilment_id"]


def test_two_operators_shipping_the_same_order_at_once(backend, db_path):
    """Both ship "everything left" from their own process: one ships it, the other is told it
    has shipped in full; never a unit past what was ordered, one email."""
    import subprocess
    import sys

    order = placed(backend, paid=True)
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "checkout_cli",
                "--db",
                str(db_path),
                "orders",
                "fulfil",
                order["order_number"],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = sorted((run.wait(timeout=60), run.stderr.read()) for run in runs)
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    assert [code for code, _ in results] == [0, 4], results
    assert "shipped in full already" in results[1][1]
    assert scalar(db_path, "SELECT COUNT(*) FROM fulfilments") == 1
    assert scalar(db_path, "SELECT SUM(quantity) FROM fulfilment_lines") == 4
    assert len(shipped_emails(db_path, order)) == 1
    assert_invariants(db_path)
