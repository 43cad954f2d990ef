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
        self,
        host: str,
        port: int,
        *,
        implicit_tls: bool,
        starttls: bool,
        user: str,
        password: str | None,
    ) -> None:
        self.host, self.port = host, port
        self.implicit_tls, self.starttls = implicit_tls, starttls
        self.user, self._password = user, password

    def __repr__(self) -> str:  # never show the password, even in a debug traceback
        return f"SmtpTransport({self.host}:{self.port}, user={self.user!r})"

    def send(self, message: Message, name: str) -> str:
        with self._connect() as smtp:
            if self.user:
                if self._password is None:
                    raise RuntimeError(
                        "smtp_password is not in the vault (`checkout vault set smtp_password`)"
                    )
                smtp.login(self.user, self._password)
            smtp.send_message(message)
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP:
        """A session that is already encrypted if the settings ask for TLS either way."""
        if self.implicit_tls:
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(self.host, self.port, timeout=30, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=30)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
        return smtp


def transport_for(settings: dict[str, Any], password: str | None, data_dir: Path) -> Transport:
    if settings["email_transport"] == "smtp":
        network.check("the mail server")
        return SmtpTransport(
            settings["smtp_host"],
            settings["smtp_port"],
            implicit_tls=settings["smtp_ssl"],
            starttls=settings["smtp_starttls"],
            user=settings["smtp_user"],
            password=password,
        )
    folder = Path(settings["email_outbox_dir"] or data_dir / "outbox")
    return FileTransport(folder)
