"""Order events out: signed webhooks to a real receiver on 127.0.0.1, retried until delivered."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from checkout_cli.errors import CheckoutError
from tests.conftest import dump, ready_checkout
from tests.engine_helpers import ORDERS, complete, invoice, scalar, setting
from tests.serve_helpers import create_token, served_fixture  # noqa: F401
from tests.webhook_receiver import Receiver

EVENTS = "order-events"


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def subscribe(backend: Any, receiver: Receiver, events: list[str]) -> dict[str, Any]:
    sub = backend.call(EVENTS, "subscribe", {"url": receiver.url, "events": events})
    receiver.secret = sub["secret"]
    return sub


def invoice_order(backend: Any) -> dict[str, Any]:
    token = ready_checkout(backend)
    invoice(backend, token)
    order: dict[str, Any] = complete(backend, token)["order"]
    return order


def pay_in_full(backend: Any, order: dict[str, Any]) -> None:
    full = backend.call(ORDERS, "get-order", {"order_id": order["order_number"]})
    backend.call(
        ORDERS,
        "record-payment",
        {
            "order_id": order["order_number"],
            "amount_cents": full["totals"]["total_cents"],
            "method": "bank_transfer",
            "reference": "BANK-1",
        },
    )


def deliveries(backend: Any, **filters: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = backend.call(EVENTS, "list-deliveries", filters)["deliveries"]
    return rows


def deliver(backend: Any) -> dict[str, Any]:
    result: dict[str, Any] = backend.call(EVENTS, "deliver-events", {})
    return result


def execute(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def doctor_violations(backend: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = backend.call("checkout-admin", "check-invariants", {})[
        "violations"
    ]
    return found


def test_paid_order_is_delivered_signed_with_ids(backend, receiver):
    subscribe(backend, receiver, ["order.created", "order.paid"])
    order = invoice_order(backend)
    assert receiver.types() == ["order.created"]  # unpaid invoice: no order.paid yet
    pay_in_full(backend, order)
    assert receiver.types() == ["order.created", "order.paid"]
    paid = receiver.got[1]
    assert paid.signed
    assert paid.event_id.startswith("evt_") and paid.delivery_id.startswith("whd_")
    assert paid.body["id"] == paid.event_id
    assert paid.body["data"]["object"]["order_number"] == order["order_number"]
    assert paid.body["data"]["object"]["payment_status"] == "paid"
    row = deliveries(backend, event_type="order.paid")[0]
    assert (row["delivery_id"], row["status"], row["response_status"], row["response_body"]) == (
        paid.delivery_id,
        "delivered",
        200,
        "ok",
    )
    assert doctor_violations(backend) == []


def test_a_tampered_body_or_other_secret_fails_verification(backend, receiver):
    from checkout_cli.engine import webhook_signing

    sub = subscribe(backend, receiver, ["*"])
    header = webhook_signing.sign(sub["secret"], '{"a":1}')
    assert webhook_signing.verify(sub["secret"], header, '{"a":1}')
    assert not webhook_signing.verify(sub["secret"], header, '{"a":2}')
    assert not webhook_signing.verify("whsec_other", header, '{"a":1}')
    old = webhook_signing.sign(sub["secret"], "{}", timestamp=1_000_000)
    assert not webhook_signing.verify(sub["secret"], old, "{}")


def test_only_the_subscribed_types_are_queued(backend, receiver, db_path):
    subscribe(backend, receiver, ["order.paid"])
    order = invoice_order(backend)
    assert scalar(db_path, "SELECT COUNT(*) FROM webhook_events") == 0
    pay_in_full(backend, order)
    assert receiver.types() == ["order.paid"]
    assert scalar(db_path, "SELECT COUNT(*) FROM webhook_deliveries") == 1


def test_a_500_is_retried_with_the_same_delivery_id(backend, receiver, db_path):
    setting(backend, "webhook_retry_base_seconds", 0)  # retry as soon as asked
    subscribe(backend, receiver, ["checkout.completed"])
    receiver.answers = [500]
    invoice_order(backend)
    first = deliveries(backend)[0]
    assert (first["status"], first["response_status"], first["attempts"]) == ("failed", 500, 1)
    run = deliver(backend)
    assert run["delivered"] == 1
    assert [r.delivery_id for r in receiver.got] == [first["delivery_id"]] * 2
    assert deliveries(backend)[0]["status"] == "delivered"


def test_failures_back_off_exponentially(backend, receiver, db_path):
    from checkout_cli.engine.core import parse_iso

    subscribe(backend, receiver, ["checkout.completed"])
    receiver.answers = [500, 500]
    invoice_order(backend)
    first = deliveries(backend)[0]
    waits = [parse_iso(first["next_attempt_at"])]
    assert deliver(backend)["attempted"] == 0  # not due yet
    execute(db_path, "UPDATE webhook_deliveries SET next_attempt_at = '2000-01-01T00:00:00Z'")
    before = datetime.now(UTC)
    deliver(backend)
    second = deliveries(backend)[0]
    assert second["attempts"] == 2
    # 10 s after the first failure, 20 s after the second.
    assert 10 <= (waits[0] - parse_iso(first["created_at"])).total_seconds() <= 60
    assert (parse_iso(second["next_attempt_at"]) - before).total_seconds() >= 20


def test_dead_after_max_attempts_and_doctor_lists_it(backend, receiver):
    setting(backend, "webhook_retry_base_seconds", 0)
    setting(backend, "webhook_max_attempts", 2)
    subscribe(backend, receiver, ["checkout.completed"])
    receiver.answers = [500, 500]
    invoice_order(backend)
    deliver(backend)
    row = deliveries(backend)[0]
    assert (row["status"], row["attempts"]) == ("dead", 2)
    assert deliver(backend)["attempted"] == 0
    lost = doctor_violations(backend)
    assert [v["name"] for v in lost] == ["no_webhook_event_lost"]
    assert row["delivery_id"] in lost[0]["message"]
    resent = backend.call(EVENTS, "resend-delivery", {"delivery_id": row["delivery_id"]})
    assert resent["status"] == "delivered" and resent["resend_of"] == row["delivery_id"]
    assert doctor_violations(backend) == []


def test_a_receiver_that_is_down_gets_it_once_started(backend, db_path):
    setting(backend, "webhook_retry_base_seconds", 0)
    later = Receiver().start()
    port = later.port
    later.stop()  # the port is free: nothing listens there now
    sub = backend.call(
        EVENTS, "subscribe", {"url": f"http://127.0.0.1:{port}/hooks", "events": ["*"]}
    )
    invoice_order(backend)
    assert {d["status"] for d in deliveries(backend)} == {"failed"}
    assert "Connect" in deliveries(backend)[0]["last_error"]
    up = Receiver(secret=sub["secret"], port=port).start()
    try:
        assert deliver(backend)["delivered"] == 2
        assert sorted(up.types()) == ["checkout.completed", "order.created"]
        assert all(r.signed for r in up.got)
    finally:
        up.stop()


def test_a_slow_receiver_times_out_and_is_retried(backend, receiver):
    setting(backend, "webhook_retry_base_seconds", 0)
    setting(backend, "webhook_timeout_seconds", 1)
    subscribe(backend, receiver, ["checkout.completed"])
    receiver.hold = threading.Event()  # answers only once released
    invoice_order(backend)
    row = deliveries(backend)[0]
    assert row["status"] == "failed" and "timed out" in row["last_error"]
    receiver.hold.set()
    assert deliver(backend)["delivered"] == 1
    ids = {r.delivery_id for r in receiver.got}
    assert ids == {row["delivery_id"]}  # twice, one id: the receiver drops the duplicate


def test_410_unsubscribes(backend, receiver):
    sub = subscribe(backend, receiver, ["*"])
    receiver.answers = [410]
    order = invoice_order(backend)
    listed = backend.call(EVENTS, "list-subscriptions", {})["subscriptions"]
    assert (listed[0]["status"], listed[0]["subscription_id"]) == (
        "disabled",
        sub["subscription_id"],
    )
    assert "410" in listed[0]["disabled_reason"]
    assert deliveries(backend, status="dead")[0]["response_status"] == 410
    pay_in_full(backend, order)
    assert len(receiver.got) == 1  # nothing more goes to it
    assert doctor_violations(backend) == []


def test_receiver_killed_and_restarted_mid_run(backend, db_path):
    setting(backend, "webhook_retry_base_seconds", 0)
    first = Receiver().start()
    sub = backend.call(EVENTS, "subscribe", {"url": first.url, "events": ["*"]})
    first.secret = sub["secret"]
    order = invoice_order(backend)
    assert len(first.got) == 2
    port = first.port
    first.stop()
    pay_in_full(backend, order)  # order.paid finds nobody listening
    assert deliveries(backend, event_type="order.paid")[0]["status"] == "failed"
    again = Receiver(secret=sub["secret"], port=port).start()
    try:
        deliver(backend)
        assert again.types() == ["order.paid"] and again.got[0].signed
    finally:
        again.stop()
    assert {d["status"] for d in deliveries(backend)} == {"delivered"}
    assert doctor_violations(backend) == []


def test_trigger_dry_run_writes_nothing(backend, receiver, db_path):
    sub = subscribe(backend, receiver, ["order.refunded"])
    order = invoice_order(backend)
    before = dump(db_path)
    result = backend.call(EVENTS, "fire-event", {"type": "order.refunded", "dry_run": True})
    assert result["subscriptions"] == [sub["subscription_id"]]
    assert result["payload"]["data"]["object"]["order_number"] == order["order_number"]
    assert dump(db_path) == before and receiver.got == []


def test_trigger_queues_and_delivers_a_test_event(backend, receiver):
    subscribe(backend, receiver, ["order.refunded"])
    order = invoice_order(backend)
    fired = backend.call(
        EVENTS, "fire-event", {"type": "order.refunded", "order_id": order["order_number"]}
    )
    assert [r.event_id for r in receiver.got] == [fired["event_id"]]
    assert receiver.got[0].signed
    # the order is unpaid and not refunded: the body says it is a test, real events do not
    assert receiver.got[0].body["test"] is True
    assert fired["payload"]["test"] is True


def test_real_events_are_not_marked_test(backend, receiver):
    subscribe(backend, receiver, ["checkout.completed"])
    invoice_order(backend)
    assert receiver.got and all("test" not in r.body for r in receiver.got)


def test_an_operate_token_cannot_trigger_a_test_event(served):
    """A triggered event is signed like a real one and reaches every subscriber: it needs
    admin, as resend-delivery does."""
    operate = create_token(served.db, "trigger-operate", scope="operate")
    for body in ({"type": "order.paid"}, {"type": "order.paid", "dry_run": True}):
        answer = httpx.post(
            served.endpoint_url(EVENTS, "fire-event"),
            headers={"Authorization": f"Bearer {operate}"},
            json=body,
        )
        assert answer.status_code == 403
        assert answer.json()["error_object"]["code"] == "forbidden_scope"


def test_resend_is_a_new_delivery_of_the_same_event(backend, receiver):
    subscribe(backend, receiver, ["checkout.completed"])
    invoice_order(backend)
    first = deliveries(backend)[0]
    again = backend.call(EVENTS, "resend-delivery", {"delivery_id": first["delivery_id"]})
    assert again["resend_of"] == first["delivery_id"]
    assert again["delivery_id"] != first["delivery_id"]
    assert [r.event_id for r in receiver.got] == [first["event_id"]] * 2


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://shop.example/hooks", "events": ["order.paid"]},
        {"url": "not a url", "events": ["order.paid"]},
        {"url": "https://shop.example/hooks", "events": ["order.nope"]},
        {"url": "https://shop.example/hooks", "events": []},
        {"url": "http://[::1", "events": ["order.paid"]},
        {"url": "http://shop.example/\u0000", "events": ["order.paid"]},
        {"url": "http://shop.example:99999/hooks", "events": ["order.paid"]},
    ],
)
def test_bad_subscriptions_are_refused_and_nothing_written(backend, db_path, body):
    before = dump(db_path)
    with pytest.raises(CheckoutError) as refused:
        backend.call(EVENTS, "subscribe", body)
    assert refused.value.exit_code == 4
    assert dump(db_path) == before


def test_an_unparseable_url_fails_its_delivery_and_the_others_are_still_sent(
    backend, receiver, db_path
):
    """A subscription stored before its URL was checked (or edited by hand) that httpx cannot
    parse: its delivery fails like a refused connection, and the run goes on to the others."""
    bad = backend.call(EVENTS, "subscribe", {"url": receiver.url, "events": ["*"]})
    execute(
        db_path,
        "UPDATE webhook_subscriptions SET url = ? WHERE public_id = ?",
        ("http://[::1", bad["subscription_id"]),
    )
    subscribe(backend, receiver, ["checkout.completed"])
    invoice_order(backend)
    deliver(backend)
    assert receiver.types() == ["checkout.completed"]
    failed = deliveries(backend, subscription_id=bad["subscription_id"])
    assert failed and {d["status"] for d in failed} == {"failed"}
    assert all("InvalidURL" in (d["last_error"] or "") for d in failed)


def test_the_secret_is_shown_once(backend, receiver, cli, db_path: Path):
    made = cli("events", "subscribe", "--url", receiver.url, "--event", "*")
    assert made.exit_code == 0
    secret = made.stdout.strip()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 64
    receiver.secret = secret
    invoice_order(backend)
    assert receiver.got and all(r.signed for r in receiver.got)
    for args in (
        ("events", "subscriptions"),
        ("--json", "events", "subscriptions"),
        ("events", "deliveries"),
        ("--json", "events", "deliveries"),
        ("--json", "call", "order-events", "list-deliveries"),
    ):
        shown = cli(*args)
        assert shown.exit_code == 0, shown.stderr
        assert secret not in shown.stdout + shown.stderr
    assert secret.encode() not in db_path.read_bytes()  # sealed in the vault


def test_cli_bad_input_exits_4(cli, db_path):
    cli("init")
    before = dump(db_path)
    for event in ("order.nope", "order.paid"):
        url = "ftp://x" if event == "order.paid" else "https://shop.example/h"
        refused = cli("events", "subscribe", "--url", url, "--event", event)
        assert refused.exit_code == 4
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "Traceback" not in refused.stderr
    assert dump(db_path) == before
