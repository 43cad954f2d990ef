"""A real webhook receiver on 127.0.0.1 for the webhook tests: it checks each delivery's
signature with the subscription's secret and records what it got."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from checkout_cli.engine import webhook_signing


@dataclass
class Received:
    delivery_id: str
    event_id: str
    type: str
    signed: bool
    body: dict[str, Any]


@dataclass
class Receiver:
    """Answers each POST with the next of ``answers`` (then 200); ``hold`` keeps a request
    open until released. ``port`` may be given to come back on the same port."""

    secret: str | None = None
    port: int = 0
    answers: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    hold_seconds: float = 30
    answered: int = 0

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                signed = receiver.secret is not None and webhook_signing.verify(
                    receiver.secret, self.headers.get("Checkout-Signature", ""), raw
                )
                body = json.loads(raw)
                receiver.got.append(
                    Received(
                        self.headers["Checkout-Delivery-Id"],
                        self.headers["Checkout-Event-Id"],
                        body["type"],
                        signed,
                        body,
                    )
                )
                receiver.arrived.set()
                if receiver.hold is not None:
                    receiver.hold.wait(receiver.hold_seconds)
                status = receiver.answers.pop(0) if receiver.answers else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    receiver.answered += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def types(self) -> list[str]:
        return [r.type for r in self.got]
