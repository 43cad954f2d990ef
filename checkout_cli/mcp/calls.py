"""How `checkout mcp` runs tool calls: on a pool of threads, each with its own local backend.

Assistants call tools in parallel. A ``LocalBackend`` holds one SQLite connection and one
writer-lock handle; shared between threads, one call's COMMIT ends another's transaction and
the lock (an ``flock`` on one file description) excludes nobody. So every worker thread opens
its own, as `checkout serve` does: parallel calls then queue on the store's writer lock exactly
as separate processes do, reads run side by side, and a call waiting on a payment provider
holds up no other. The remote client is thread-safe (its httpx transport pools connections
under a lock; every call builds its own request), so one is shared.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.backends.local import LocalBackend

CALL_THREADS = 8  # tool calls running at once; more wait for a free thread


class ToolCalls:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="mcp-call")
        self._local = threading.local()
        self._opened: list[LocalBackend] = []
        self._opened_lock = threading.Lock()

    async def call(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """One endpoint call on a worker thread (the event loop keeps serving the others)."""
        future = self._pool.submit(self._call, service, name, body)
        return await asyncio.wrap_future(future)

    def _call(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._thread_backend().call(service, name, body)

    def _thread_backend(self) -> Backend:
        if not isinstance(self._backend, LocalBackend):
            return self._backend
        own: LocalBackend | None = getattr(self._local, "backend", None)
        if own is None:
            own = LocalBackend(self._backend.db_path, actor=self._backend.actor)
            self._local.backend = own
            with self._opened_lock:
                self._opened.append(own)
        return own

    def close(self) -> None:
        """After the last call: wait for running calls, then close every thread's store."""
        self._pool.shutdown(wait=True)
        for backend in self._opened:
            backend.close()
