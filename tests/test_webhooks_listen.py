"""`checkout events listen --forward-to URL`: a temporary subscription for a developer."""

from __future__ import annotations

import re
import signal
import sys

import pexpect

from checkout_cli.engine import network
from tests.conftest import ready_checkout
from tests.engine_helpers import complete, invoice
from tests.webhook_receiver import Receiver

EVENTS = "order-events"


def test_listen_forwards_signed_events_until_ctrl_c(backend, db_path):
    receiver = Receiver().start()
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "checkout_cli",
            "--db",
            str(db_path),
            "events",
            "listen",
            "--forward-to",
            receiver.url,
        ],
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect(r"signing secret is (whsec_[0-9a-f]{64})")
        receiver.secret = child.match.group(1)
        child.expect("Ctrl-C to stop")
        listed = backend.call(EVENTS, "list-subscriptions", {})["subscriptions"]
        assert [(s["url"], s["events"], s["status"]) for s in listed] == [
            (receiver.url, ["*"], "active")
        ]
        token = ready_checkout(backend)
        invoice(backend, token)
        with network.forbidden():  # this process leaves the sending to `listen`
            complete(backend, token)
        child.expect(r"(checkout\.completed|order\.created) evt_\w+ (whd_\w+) -> delivered \[200\]")
        child.expect(r"(checkout\.completed|order\.created) evt_\w+ (whd_\w+) -> delivered \[200\]")
        assert sorted(receiver.types()) == ["checkout.completed", "order.created"]
        assert all(r.signed for r in receiver.got)
        child.kill(signal.SIGINT)
        child.expect("removed")
        child.expect(pexpect.EOF)
        listed = backend.call(EVENTS, "list-subscriptions", {})["subscriptions"]
        assert [s["status"] for s in listed] == ["disabled"]
        shown = child.before or ""
        assert not re.search(r"whsec_[0-9a-f]{64}", shown)  # the secret: once, at the start
    finally:
        child.close(force=True)
        receiver.stop()
