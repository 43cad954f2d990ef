"""Webhook delivery across processes: a sender SIGKILLed mid-send, and `checkout serve`'s
delivery thread (never inside the request)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import ready_checkout
from tests.engine_helpers import complete, invoice, setting
from tests.serve_helpers import prepare_store, serving
from tests.webhook_receiver import Receiver

EVENTS = "order-events"


def checkout(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkout_cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_sender_killed_mid_send_is_retaken_with_the_same_delivery_id(backend, db_path):
    setting(backend, "webhook_retry_base_seconds", 0)
    setting(backend, "webhook_timeout_seconds", 30)  # the receiver holds it: the kill comes first
    receiver = Receiver(answers=[500]).start()
    try:
        sub = backend.call(
            EVENTS, "subscribe", {"url": receiver.url, "events": ["checkout.completed"]}
        )
        receiver.secret = sub["secret"]
        token = ready_checkout(backend)
        invoice(backend, token)
        complete(backend, token)  # sent after the commit: the receiver answers 500
        assert len(receiver.got) == 1
        receiver.hold, receiver.arrived = threading.Event(), threading.Event()
        sender = subprocess.Popen(
            [sys.executable, "-m", "checkout_cli", "--db", str(db_path), "events", "deliver"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert receiver.arrived.wait(30), "the sender never reached the receiver"
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=10)
        receiver.hold.set()  # its answer goes nowhere
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("SELECT status FROM webhook_deliveries").fetchone()[0] == "sending"
            # Its lease (3× the timeout) has run out:
            with conn:
                conn.execute(
                    "UPDATE webhook_deliveries SET claimed_at = '2000-01-01T00:00:00.000000Z'"
                )
        finally:
            conn.close()
        doctor = checkout(db_path, "--json", "doctor")
        assert doctor.returncode != 0 and "left sending" in doctor.stdout
        receiver.hold = None
        again = checkout(db_path, "events", "deliver")
        assert again.returncode == 0, again.stderr
        assert "1 delivered" in again.stderr + again.stdout
        ids = [r.delivery_id for r in receiver.got]
        assert len(ids) == 3 and len(set(ids)) == 1  # one id: the receiver drops duplicates
        assert all(r.signed for r in receiver.got)
        doctor = checkout(db_path, "--json", "doctor")
        assert doctor.returncode == 0, doctor.stdout
    finally:
        receiver.stop()


def test_serve_delivers_from_its_own_thread_never_in_the_request(tmp_path):
    db = tmp_path / "shop.db"
    token = prepare_store(db)
    from checkout_cli.backends.local import LocalBackend

    local = LocalBackend(db, actor="test")
    receiver = Receiver(hold=threading.Event(), hold_seconds=120).start()
    try:
        # A request that sent webhooks itself would wait on the held receiver this long.
        local.call(
            "checkout-admin", "set-setting", {"key": "webhook_timeout_seconds", "value": 600}
        )
        sub = local.call(EVENTS, "subscribe", {"url": receiver.url, "events": ["*"]})
        receiver.secret = sub["secret"]
        local.close()
        with serving(db, token, workers=1) as served:
            remote: Any = served.remote()
            checkout_token = ready_checkout(remote)
            invoice(remote, checkout_token)
            # The receiver holds the first delivery open: the request answers all the same.
            done = complete(remote, checkout_token)
            assert done["status"] == "completed"
            assert receiver.arrived.wait(30), "serve's delivery thread never sent"
            assert receiver.answered == 0  # still held: the request did not wait on it
            receiver.hold.set()
            deadline = time.monotonic() + 30
            while len(receiver.got) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(receiver.types()) == ["checkout.completed", "order.created"]
            assert all(r.signed for r in receiver.got)
    finally:
        receiver.stop()
