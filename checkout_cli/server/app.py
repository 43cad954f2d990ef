"""The ASGI app (Starlette): IAPI routes, bearer auth, webhooks, /openapi.json, /healthz.

Every registry endpoint is served at ``/iapi/project/{project_id}/{service}/{endpoint}``:
POST with the JSON request object, or GET with query parameters for ``get-*``/``list-*``.
Success is ``{"success": true, "result": …}``; every failure, including 401, 404, 405, 413,
malformed JSON and 500, is ``{"success": false, "error_object": …}``.

Store-only requests run on the worker's event loop itself, one at a time: writers queue on the
store's lock anyway, and a hop to a thread and back would cost about a fifth of such a request.
Endpoints marked ``calls_out`` (they may wait on a payment provider or a mail server) and the
webhooks run on a small thread pool instead, so a slow provider never holds up the worker's
other connections; the engine refuses network calls from the loop (``engine.network``). Each
thread has its own SQLite connection; workers share the store through its locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkout_cli import access
from checkout_cli.backends.local import LocalBackend
from checkout_cli.config import StoreTarget, is_pg_url
from checkout_cli.endpoints import ENDPOINTS, HTTP, get_endpoint
from checkout_cli.engine import network, webhook_delivery
from checkout_cli.engine.core import REMOTE_ACTOR_PREFIX
from checkout_cli.engine.store import WriteConflict
from checkout_cli.engine.tokens import Caller
from checkout_cli.errors import (
    AuthError,
    CheckoutError,
    InternalError,
    NotFoundError,
    ValidationError,
)
from checkout_cli.schema import from_query
from checkout_cli.server.openapi import API_VERSION, openapi
from checkout_cli.values import JSONRefused, load_json, parse_int

MAX_BODY_BYTES = 1024 * 1024
CALL_OUT_THREADS = 8  # requests per worker that may wait on a provider or mail server at once
access_log = logging.getLogger("checkout.access")


def failure(exc: CheckoutError) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error_object": exc.to_error_object()}, status_code=exc.http_status
    )


class _Backends(threading.local):
    backend: LocalBackend | None = None


class Service:
    """The store behind the app: a LocalBackend per thread (the event loop's, the pool's)."""

    def __init__(self, db_path: StoreTarget) -> None:
        self.db_path = db_path
        self._local = _Backends()
        self._call_out = ThreadPoolExecutor(CALL_OUT_THREADS, thread_name_prefix="call-out")
        self.project_id = self.backend().call("checkout-admin", "get-settings")["settings"][
            "project_id"
        ]

    def backend(self, actor: str = "server") -> LocalBackend:
        if self._local.backend is None:
            # PostgreSQL: connections from the process's pool, checked and replaced when lost.
            self._local.backend = LocalBackend(self.db_path, actor=actor, pooled=True)
        self._local.backend.engine.actor = actor
        return self._local.backend

    async def run(self, calls_out: bool, work: Callable[..., Any], *args: Any) -> Any:
        """``work`` on the pool if it may wait on the network, else here on the event loop."""
        if calls_out:
            return await asyncio.get_running_loop().run_in_executor(self._call_out, work, *args)
        with network.forbidden():
            return work(*args)

    def authenticate(self, request: Request) -> Caller:
        from checkout_cli.engine.tokens import verify

        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                "missing_token",
                "an Authorization: Bearer token is required",
                recovery="create one with `checkout tokens create --name NAME`",
            )
        caller = verify(self.backend().engine, token.strip())
        if caller is None:
            raise AuthError(
                "invalid_token",
                "the bearer token is not valid or was revoked",
                recovery="ask for a new token (`checkout tokens create`)",
            )
        return caller


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    size_declared = parse_int(declared) if declared else None
    if size_declared is not None and size_declared > MAX_BODY_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> CheckoutError:
    return ValidationError(
        "body_too_large", f"the request body is over {MAX_BODY_BYTES} bytes", http_status=413
    )


def _parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        # NaN, Infinity, overflowing numbers and lone surrogates are no data (RFC 8259); stored,
        # they would make every later answer that contains them unserializable.
        body = load_json(raw)
    except JSONRefused as exc:
        raise ValidationError("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("invalid_json", "the body must be a JSON object")
    return body


def build_app(db_path: StoreTarget) -> ASGIApp:
    service = Service(db_path)

    async def iapi(request: Request) -> Response:
        params = request.path_params
        if params["project_id"] != service.project_id:
            raise NotFoundError("project_not_found", f"no project {params['project_id']!r} here")
        endpoint = get_endpoint(params["service"], params["endpoint"])
        raw, too_large = b"", None
        if request.method != "GET":
            try:
                raw = await _read_body(request)
            except CheckoutError as exc:  # reported after authentication, as before
                too_large = exc
        return await service.run(
            endpoint.calls_out, _serve_call, service, request, endpoint, raw, too_large
        )

    async def webhook(request: Request) -> Response:
        from checkout_cli.engine.payment_sync import handle_webhook

        raw = await _read_body(request)
        provider = request.path_params["provider"]

        def handle() -> dict[str, Any]:  # asks the provider: on the pool, its own connection
            backend = service.backend(f"webhook:{provider}")
            return handle_webhook(backend.engine, provider, dict(request.headers), raw)

        result = await service.run(True, handle)
        return JSONResponse({"success": True, "result": result})

    async def meta(request: Request) -> Response:
        services: dict[str, list[str]] = {}
        for (service_name, name), endpoint in ENDPOINTS.items():
            if HTTP in endpoint.faces:
                services.setdefault(service_name, []).append(name)
        return JSONResponse(
            {"api_version": API_VERSION, "project_id": service.project_id, "services": services}
        )

    async def healthz(request: Request) -> Response:
        service.backend().engine.conn.execute("SELECT 1")  # 503 database_unavailable if not
        return JSONResponse({"status": "ok", "database": "reachable"})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi(service.project_id))

    async def on_checkout_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CheckoutError)
        return failure(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        messages = {
            404: ("not_found", NotFoundError, "no such route"),
            405: ("method_not_allowed", ValidationError, "method not allowed here"),
        }
        code, cls, message = messages.get(
            exc.status_code, ("http_error", ValidationError, str(exc.detail))
        )
        return failure(
            cls(
                code, f"{message}: {request.method} {request.url.path}", http_status=exc.status_code
            )
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        logging.getLogger("checkout.server").exception("unhandled error")
        return failure(InternalError("internal_error", "the server hit a bug; see its log"))

    routes = [
        Route("/iapi/project/{project_id}/{service}/{endpoint}", iapi, methods=["GET", "POST"]),
        Route("/iapi/meta", meta, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Webhook deliveries leave from a thread of their own, never inside a request.
        sender = webhook_delivery.DeliveryThread(db_path)
        sender.start()
        try:
            yield
        finally:
            sender.stop()

    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        exception_handlers={
            CheckoutError: on_checkout_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
    )
    return AccessLog(app)


def _serve_call(
    service: Service,
    request: Request,
    endpoint: Any,
    raw: bytes,
    too_large: CheckoutError | None,
) -> Response:
    """Authenticate, check access, parse and run one IAPI request."""
    caller = service.authenticate(request)
    access.check_face(endpoint, HTTP)  # before reading what it asks for
    access.check_scope(endpoint, caller.scope)
    if request.method == "GET":
        if not endpoint.reads_only:
            raise HTTPException(405)
        body = from_query(endpoint.request, dict(request.query_params))
    else:
        if too_large is not None:
            raise too_large
        body = _parse_json(raw)
    access.check_body(endpoint, HTTP, body)  # before anything runs or is remembered
    access.check_scope(endpoint, caller.scope, body)  # a flag may need more than the endpoint
    actor = caller.name
    key = request.headers.get("idempotency-key")
    if key and not endpoint.reads_only:
        return _idempotent(service, actor, key, endpoint, body)
    backend = service.backend(f"{REMOTE_ACTOR_PREFIX}{actor}")
    result = backend.call(endpoint.service, endpoint.name, body)
    return JSONResponse({"success": True, "result": result})


def _idempotent(
    service: Service, actor: str, key: str, endpoint: Any, body: dict[str, Any]
) -> Response:
    from checkout_cli.engine.idempotency import IdempotentCall, KeyConflict, Replay, request_hash

    backend = service.backend(f"{REMOTE_ACTOR_PREFIX}{actor}")
    digest = request_hash(endpoint.service, endpoint.name, body)
    # Atomic unless the endpoint may wait on the network (see engine/idempotency.py).
    call = IdempotentCall(backend.engine, f"{actor}:{key}", digest, atomic=not endpoint.calls_out)
    try:
        remembered = _remembered_or_run(call, backend, endpoint, body)
        if isinstance(remembered, Response):
            return remembered
    except Replay as replay:
        remembered = replay.answer
    except KeyConflict as conflict:  # the key's claim refuses it: no answer to keep
        response = failure(conflict)
        if conflict.retry_after is not None:
            response.headers["Retry-After"] = str(conflict.retry_after)
        return response
    status, payload = remembered
    return JSONResponse(payload, status_code=status, headers={"Idempotent-Replayed": "true"})


def _remembered_or_run(
    call: Any, backend: LocalBackend, endpoint: Any, body: dict[str, Any]
) -> Any:
    """The remembered answer, or the request run under its claim. An atomic request whose
    transaction PostgreSQL aborted for a concurrent one left nothing: it runs again whole."""
    from checkout_cli.backends.local import WRITE_CONFLICT_ATTEMPTS, too_busy

    for attempt in range(WRITE_CONFLICT_ATTEMPTS):
        try:
            remembered = call.remembered()
            if remembered is None:
                return _run_once(call, backend, endpoint, body)
            return remembered
        except WriteConflict:
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
    raise too_busy()


def _run_once(call: Any, backend: LocalBackend, endpoint: Any, body: dict[str, Any]) -> Response:
    """Run the request under its claim and keep its answer; a 4xx is an answer too, kept (and
    committed) with whatever the request legitimately committed before refusing."""
    from checkout_cli.engine.idempotency import KeyConflict, Replay, without_secrets

    engine = backend.engine
    engine.request_key = call.key  # its events carry it: a retry finds what it did
    refusal: CheckoutError | None = None
    try:
        with call.running():
            try:
                result = backend.call(endpoint.service, endpoint.name, body)
            except KeyConflict:
                raise
            except CheckoutError as exc:
                if exc.http_status >= 500:
                    raise
                refusal = exc
                call.remember(
                    exc.http_status, {"success": False, "error_object": exc.to_error_object()}
                )
            else:
                answer = {"success": True, "result": result}
                kept = {"success": True, "result": without_secrets(result, endpoint.secret_fields)}
                text = call.remember(200, answer, kept if endpoint.secret_fields else None)
    except (Replay, KeyConflict):
        raise
    except BaseException:
        call.forget()  # a bug, or a provider that was unavailable: a retry runs it again
        raise
    finally:
        engine.request_key = None
    if refusal is not None:
        raise refusal
    return Response(text, media_type="application/json")


class AccessLog:
    """method, path, status and duration per request; never headers, queries or bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status[0],
                (time.perf_counter() - started) * 1000,
            )


def app_from_env() -> Any:
    """The uvicorn factory for ``checkout serve`` (workers read the store path from env)."""
    if not access_log.handlers:  # each worker process logs to stderr on its own
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
    target = os.environ["CHECKOUT_SERVE_DB"]
    return build_app(target if is_pg_url(target) else Path(target))
