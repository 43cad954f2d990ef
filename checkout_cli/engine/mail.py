"""Email transports: ``file`` writes ``.eml`` files, ``smtp`` talks to a mail server."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from email.message import Message
from pathlib import Path
from typing import Any, Protocol

from checkout_cli.engine import network


class Transport(Protocol):
    def send(self, message: Message, name: str) -> str:
        """Deliver one message; return where it went. Raise on failure."""


class FileTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: Message, name: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{name}.eml"
        # Written whole or not at all: a temp file renamed into place.
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(message.as_bytes())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(target)


class SmtpTransport:
    def __init__(
        self, host: str, port: int, *, starttls: bool, user: str, password: str | None
    ) -> None:
        self.host, self.port, self.starttls = host, port, starttls
        self.user, self._password = user, password

    def __repr__(self) -> str:  # never show the password, even in a debug traceback
        return f"SmtpTransport({self.host}:{self.port}, user={self.user!r})"

    def send(self, message: Message, name: str) -> str:
        with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                if self._password is None:
                    raise RuntimeError(
                        "smtp_password is not in the vault (`checkout vault set smtp_password`)"
                    )
                smtp.login(self.user, self._password)
            smtp.send_message(message)
        return f"smtp://{self.host}:{self.port}"


def transport_for(settings: dict[str, Any], password: str | None, data_dir: Path) -> Transport:
    if settings["email_transport"] == "smtp":
        network.check("the mail server")
        return SmtpTransport(
            settings["smtp_host"],
            settings["smtp_port"],
            starttls=settings["smtp_starttls"],
            user=settings["smtp_user"],
            password=password,
        )
    folder = Path(settings["email_outbox_dir"] or data_dir / "outbox")
    return FileTransport(folder)
