"""One run at a time: an OS file lock (``flock``) held for as long as a run works.

The kernel drops the lock when its process ends, however it ends (exit, crash, SIGKILL), so
a run that was killed never blocks the next one. The lock file also says who holds it (pid,
host, start time), for the message the next run gives; it is never deleted, because deleting
a lock file that another process has open lets two processes hold "the" lock at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkout_cli.errors import UsageError


class Busy(Exception):
    """The lock is held by another run, described by ``holder``."""

    def __init__(self, holder: dict[str, Any]) -> None:
        super().__init__(holder)
        self.holder = holder


class RunLock:
    def __init__(self, path: Path, **about: str) -> None:
        self.path = path
        self.about = about  # written into the lock file beside the pid, host and start
        self._fd: int | None = None

    def acquire(self, *, wait: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Take the lock; if another run holds it, raise ``Busy``, or with ``wait`` call it
        once with the holder and block until the lock is free."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(
                "lock_unavailable", f"cannot create the lock file {self.path}: {exc.strerror}"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                if wait is None:
                    raise Busy(holder) from None
                wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                **self.about,
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the next run finds no stale holder
            os.close(self._fd)  # closing the last descriptor drops the lock
            self._fd = None


def _holder(fd: int) -> dict[str, Any]:
    """Who holds the lock, read from its file; {} if it does not say (it may be just
    starting: the holder writes itself in right after taking the lock)."""
    for _ in range(25):
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            holder = None
        if isinstance(holder, dict):
            return holder
        time.sleep(0.02)
    return {}


def describe(holder: dict[str, Any]) -> str:
    """``pid 4242 on host till-2, started 2026-05-04T09:12:03Z``"""
    if not holder.get("pid"):
        return "a run that is just starting"
    return (
        f"pid {holder['pid']} on host {holder.get('host', '?')}, "
        f"started {holder.get('started_at', '?')}"
    )
