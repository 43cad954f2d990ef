"""Plumbing shared by the fake payment providers: a threaded HTTP server on 127.0.0.1.

``FakeProviderServer`` binds ``127.0.0.1`` on a free port (port 0), serves routes declared by a
subclass from a daemon thread, records every request (method, path, headers, raw body, status)
in ``requests``, and applies the fault injection queues (``fail_next`` / ``delay_next``).
A subclass provides ``ROUTES`` (method, path regex, handler name) and three hooks:
``_authenticate`` (None when allowed, else an error ``Response``), ``_error`` (the provider's
error shape for a status and message) and ``_fault_body`` (the default body of an injected
failure).

``WebhookReceiver`` is a tiny recording HTTP server for tests that need to receive what a fake
posts (Mollie's webhook). ``loopback_only()`` makes any DNS lookup of a non-loopback host fail
while it is active, so a test that forgot to point an SDK at a fake fails fast instead of
calling a real provider.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import string
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

LOOPBACK = "127.0.0.1"
_ALNUM = string.ascii_letters + string.digits


def words(text: str) -> list[str]:
    """``"a b  c"`` -> ``["a", "b", "c"]``: long constant lists stay readable."""
    return text.split()


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def iso_utc(epoch: float) -> str:
    """Mollie's timestamp format: ``2018-03-20T09:13:37+00:00``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


@dataclass
class RecordedRequest:
    """One request as the fake received it. ``headers`` keep the client's spelling."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    response: bytes = b""  # the body the fake answered with

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    @property
    def query(self) -> str:
        return urlsplit(self.path).query

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.text, keep_blank_values=True)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    status: int, obj: Any, content_type: str = "application/json", **headers: str
) -> Response:
    body = json.dumps(obj, indent=2).encode("utf-8")
    return Response(status, body, {"Content-Type": content_type, **headers})


@dataclass
class _Fault:
    status: int
    body: Any


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at shutdown

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.fake._serve(self.command, self.path, dict(self.headers), body)
        try:
            self.send_response(response.status)
            for name, value in {
                "Content-Length": str(len(response.body)),
                **response.headers,
            }.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. a timeout provoked by delay_next)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: Any, handler: type[BaseHTTPRequestHandler]) -> None:
        self.fake = fake
        super().__init__((LOOPBACK, 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # a client hanging up is expected


class _Listener:
    """Start/stop and ``url`` for a loopback ``_Server`` serving ``self`` from a thread."""

    _handler: type[BaseHTTPRequestHandler] = _Handler

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(
                f"{type(self).__name__} is not started (use it as a context manager)"
            )
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Any:
        if self._server is None:
            self._closing.clear()
            self._server = _Server(self, self._handler)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
                name=f"{type(self).__name__}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._closing.set()  # wakes handlers sleeping in delay_next
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        raise NotImplementedError


Route = tuple[str, str, str]  # (HTTP method, path regex, handler method name)


class FakeProviderServer(_Listener):
    ROUTES: tuple[Route, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._delays: deque[float] = deque()
        self._refund_delays: deque[float] = deque()
        self.errors: list[Exception] = []  # exceptions raised inside the fake (should stay empty)
        self._routes = [(m, re.compile(p + r"\Z"), h) for m, p, h in self.ROUTES]

    # -- control ------------------------------------------------------------------------------

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests are handled normally (a create really creates, and is
        stored under its idempotency key), then the answer waits ``seconds`` before it is sent:
        a client with a shorter timeout sees a timeout although the provider acted."""
        with self._lock:
            self._delays.extend([float(seconds)] * times)

    def delay_next_refund(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` refund creates are done (and stored under their idempotency key),
        then answered ``seconds`` late: a refund whose answer the client never sees."""
        with self._lock:
            self._refund_delays.extend([float(seconds)] * times)

    def _late(self, response: Response) -> Response:
        with self._lock:
            delay = self._refund_delays.popleft() if self._refund_delays else 0.0
        if delay:
            self._closing.wait(delay)
        return response

    def _queue_fault(self, status: int, times: int, body: Any) -> None:
        with self._lock:
            self._faults.extend(_Fault(status, body) for _ in range(times))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path (without query) matches exactly."""
        with self._lock:
            return [
                r for r in self.requests if r.method == method and urlsplit(r.path).path == path
            ]

    # -- hooks for subclasses -----------------------------------------------------------------

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        return None

    def _error(self, status: int, message: str) -> Response:
        raise NotImplementedError

    def _fault_body(self, status: int) -> Any:
        raise NotImplementedError

    def _decorate(self, request: RecordedRequest, response: Response) -> Response:
        return response

    # -- serving ------------------------------------------------------------------------------

    def _serve(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        request = RecordedRequest(method, raw_path, headers, body)
        with self._lock:
            self.requests.append(request)
        try:
            response = self._decorate(request, self._route(request))
        except Exception as exc:  # a bug in the fake: say so loudly instead of hanging up
            self.errors.append(exc)
            text = "".join(traceback.format_exception(exc)).encode()
            response = Response(500, text, {"Content-Type": "text/plain"})
        with self._lock:
            delay = self._delays.popleft() if self._delays else 0.0
        if delay:
            self._closing.wait(delay)
        request.status, request.response = response.status, response.body
        return response

    def _route(self, request: RecordedRequest) -> Response:
        path = urlsplit(request.path).path
        for method, pattern, handler_name in self._routes:
            match = pattern.match(path)
            if match and method == request.method:
                denied = self._authenticate(request)
                if denied is not None:
                    return denied
                with self._lock:
                    fault = self._faults.popleft() if self._faults else None
                if fault is not None:
                    body = fault.body if fault.body is not None else self._fault_body(fault.status)
                    return json_response(fault.status, body)
                handler: Callable[..., Response] = getattr(self, handler_name)
                return handler(request, *match.groups())
        return self._error(404, f"Unrecognized request URL ({request.method}: {path}).")


# -- a receiver for webhooks ------------------------------------------------------------------


class WebhookReceiver(_Listener):
    """Records every request it receives and answers ``status`` (200 unless told otherwise).

    ``url`` is ``http://127.0.0.1:PORT/webhook``; ``received`` holds ``RecordedRequest``s;
    ``wait_for(n)`` blocks until ``n`` requests arrived (or a timeout)."""

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status = status
        self.received: list[RecordedRequest] = []
        self._arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"{self.base_url}/webhook"

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def _serve(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        request = RecordedRequest(method, raw_path, headers, body, status=self.status)
        with self._arrived:
            self.received.append(request)
            self._arrived.notify_all()
        return Response(self.status, b"", {"Content-Type": "text/plain"})


# -- a guard against real network calls -------------------------------------------------------

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While active, resolving any host but loopback raises ``OSError``: an SDK that was not
    pointed at a fake fails at once instead of reaching api.stripe.com or api.mollie.com."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in _LOOPBACK_HOSTS:
            raise OSError(f"loopback_only: refusing to resolve {name!r} in a test")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo
