"""RemoteBackend: the same endpoints over HTTP (the hosted platform, or `checkout serve`).

Failures come back as ``error_object`` and are raised as the same exception classes the
local engine raises, so a command prints the same message and exits with the same code on
either backend. Every write carries an ``Idempotency-Key``, so a write is retried after a
network error only as a replay of the same request, never as a second one.

Requests go straight to an httpx transport (its connection pool, timeouts and TLS) rather
than through ``httpx.Client``: a bearer-token JSON API has no use for the client's cookie
jar, redirect and auth layers, which cost more CPU per call than the call's own HTTP work.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import httpx

from checkout_cli import access
from checkout_cli.endpoints import ENDPOINTS, HTTP
from checkout_cli.errors import (
    CheckoutError,
    ConflictError,
    NotFoundError,
    UnavailableError,
    UsageError,
    from_error_object,
)

ATTEMPTS = 3  # tries to reach a server that takes no connection
# A write that may have reached the server and got no answer (a worker killed mid-request,
# the server restarting, a timeout) is retried under its key for this long after the first
# such failure: a retry gets the first answer, waits for it, or runs it if it never ran.
RETRY_SECONDS = 20.0
# How long a retry waits while the server says its first attempt is still running.
IN_PROGRESS_WAIT_SECONDS = 120.0
# How long a call waits in all, as a rate-limited server asks (HTTP 429, Retry-After), before
# it gives up with `rate_limited` (exit 6). A 429 ran nothing, so the retry is the same call.
RATE_LIMIT_WAIT_SECONDS = 60.0


class RemoteBackend:
    def __init__(
        self,
        base_url: str,
        project_id: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project_id = project_id
        self.description = f"remote {self.base_url} (project {project_id})"
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "checkout-cli",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = httpx.Timeout(timeout, connect=5.0).as_dict()
        self._transport = transport or _transport_for(self.base_url)
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        # Starts every Idempotency-Key: a smoke run's name its run, so the server's
        # remembered answers to them are removed with the run (engine/smoke_runs.py).
        self.idempotency_key_prefix = ""

    def call(self, service: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        endpoint = ENDPOINTS.get((service, name))
        if endpoint is not None:
            # Local-only calls are refused here, before anything is sent: a vault value or a
            # token never leaves this machine. The token's scope is the server's to judge.
            access.check_face(endpoint, HTTP)
            access.check_body(endpoint, HTTP, body or {})
        reads_only = endpoint.reads_only if endpoint else name.startswith(("get-", "list-"))
        headers = self._headers
        if not reads_only:
            key = f"{self.idempotency_key_prefix}{uuid.uuid4()}"
            headers = {**headers, "Idempotency-Key": key}
        content = json.dumps(
            body or {}, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        url = self._url(service, name)
        retry = _Retry(keyed=not reads_only)
        while True:
            request = httpx.Request(
                "POST", url, headers=headers, content=content, extensions={"timeout": self._timeout}
            )
            try:
                response = self._send(request)
            except httpx.TransportError as exc:
                # Safe to repeat: reads change nothing, writes replay under the same key.
                if not retry.after_transport_error(exc):
                    raise self._unreachable(exc, retry.maybe_ran) from None
                continue
            if response.status_code == 429:
                if retry.after_rate_limit(response):
                    continue
                raise UnavailableError(
                    "rate_limited",
                    f"{self.base_url} is limiting the rate of requests (HTTP 429) and asks to "
                    f"wait longer than this call waits ({RATE_LIMIT_WAIT_SECONDS:.0f} s in all)",
                    recovery="wait a minute and run it again; a batch resumes where it stopped",
                )
            try:
                return self._result(response, service, name)
            except CheckoutError as exc:
                if exc.code != "request_in_progress":
                    raise
                if not retry.while_in_progress(response):
                    raise ConflictError(
                        "request_in_progress",
                        f"{self.base_url} is still running this request after "
                        f"{IN_PROGRESS_WAIT_SECONDS:.0f} s; it may yet complete",
                        recovery="check its result before doing it again",
                    ) from None

    def _unreachable(self, exc: httpx.TransportError, maybe_ran: bool) -> UnavailableError:
        if maybe_ran:  # an attempt reached the server and got no answer
            return UnavailableError(
                "remote_unreachable",
                f"no answer from {self.base_url}: {exc}; the request may have run",
                recovery="check its result before doing it again",
            )
        return UnavailableError(
            "remote_unreachable",
            f"cannot reach {self.base_url}: {exc}",
            recovery="check --remote and that the server is running",
        )

    def _url(self, service: str, name: str) -> httpx.URL:
        url = self._urls.get((service, name))
        if url is None:
            url = httpx.URL(f"{self.base_url}/iapi/project/{self.project_id}/{service}/{name}")
            self._urls[service, name] = url
        return url

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = self._transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response

    def _result(self, response: httpx.Response, service: str, name: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("success") is True:
            return payload["result"]
        error = payload.get("error_object") if isinstance(payload, dict) else None
        if response.status_code == 404 and (
            not isinstance(error, dict) or error.get("code") in ("endpoint_not_found", "not_found")
        ):
            raise NotFoundError(
                "endpoint_not_supported",
                f"{service}/{name} is not supported by this remote ({self.base_url})",
            )
        if isinstance(error, dict):
            raise from_error_object(error, response.status_code)
        if response.status_code in (401, 403):
            raise from_error_object(
                {
                    "type": "auth",
                    "code": "invalid_token",
                    "message": f"{self.base_url} refused the token",
                }
            )
        raise UnavailableError(
            "remote_error",
            f"{self.base_url} answered HTTP {response.status_code} without an error object",
        )

    def close(self) -> None:
        self._transport.close()


class _Retry:
    """When to try a request again, and after how long a pause."""

    def __init__(self, *, keyed: bool) -> None:
        self.keyed = keyed
        self.maybe_ran = False
        self._failures = 0
        self._first_failure = 0.0
        self._waited = 0.0
        self._rate_waited = 0.0

    def after_transport_error(self, exc: httpx.TransportError) -> bool:
        """Sleep and say True if the request is to be sent again."""
        self._failures += 1
        if self._failures == 1:
            self._first_failure = time.monotonic()
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        self.maybe_ran = self.maybe_ran or not never_sent
        if self.keyed and self.maybe_ran:
            pause = min(0.2 * 2 ** (self._failures - 1), 2.0)
            if time.monotonic() + pause - self._first_failure > RETRY_SECONDS:
                return False
        else:
            if self._failures >= ATTEMPTS:
                return False
            pause = 0.2 * self._failures
        time.sleep(pause)
        return True

    def after_rate_limit(self, response: httpx.Response) -> bool:
        """HTTP 429: sleep as long as Retry-After says (seconds or an HTTP date; 1 s when it
        says nothing readable) and say True, unless that would pass the call's budget."""
        pause = _retry_after_seconds(response.headers.get("retry-after"))
        if self._rate_waited + pause > RATE_LIMIT_WAIT_SECONDS:
            return False
        time.sleep(pause)
        self._rate_waited += pause
        return True

    def while_in_progress(self, response: httpx.Response) -> bool:
        """Our earlier attempt is still running: sleep as the server asks, within bounds."""
        try:
            pause = min(max(float(response.headers.get("retry-after", "1")), 0.1), 5.0)
        except ValueError:
            pause = 1.0
        if self._waited + pause > IN_PROGRESS_WAIT_SECONDS:
            return False
        time.sleep(pause)
        self._waited += pause
        return True


def _retry_after_seconds(value: str | None) -> float:
    """Retry-After as RFC 9110 has it: delay-seconds or an HTTP date."""
    if value is None:
        return 1.0
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    from email.utils import parsedate_to_datetime

    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return 1.0
    import datetime as dt

    if at.tzinfo is None:
        return 1.0
    return max((at - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def _transport_for(base_url: str) -> httpx.HTTPTransport:
    """Through HTTP_PROXY/HTTPS_PROXY/ALL_PROXY unless NO_PROXY names the host, as httpx.Client
    does by default."""
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(url.host):
        return httpx.HTTPTransport(proxy=proxy)
    return httpx.HTTPTransport()


def require_remote_settings(remote: str, project: str | None) -> str:
    if not project:
        raise UsageError(
            "missing_input",
            "--remote needs a project id",
            recovery="pass --project ID or set CHECKOUT_PROJECT (or a profile)",
        )
    return project
