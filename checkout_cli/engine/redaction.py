"""Every form a secret can take in text, and text with all of them blanked out.

A secret shows up raw, escaped (the ``repr`` of a server's reply bytes inside an exception),
or base64-encoded: alone, or inside a longer base64 string such as AUTH PLAIN's
``\\0user\\0password``. Base64 of any text holding the secret contains one of three strings
that depend on the secret alone (one per offset of the secret modulo 3), so blanking those
covers every such encoding whatever surrounds the secret; the exact encodings are blanked
first, so not even their edge characters stay.
"""

from __future__ import annotations

import base64

REDACTED = "[redacted]"


def base64_forms(data: bytes) -> set[str]:
    """Base64 of ``data`` (padded and not), and the three strings found in base64 of any
    text that contains ``data``."""
    whole = base64.b64encode(data).decode()
    forms = {whole, whole.rstrip("=")}
    for offset in range(3):
        aligned = data[offset:]
        aligned = aligned[: len(aligned) - len(aligned) % 3]
        if aligned:
            forms.add(base64.b64encode(aligned).decode())
    return forms


def text_forms(secret: str) -> set[str]:
    """``secret`` as written, as escaped in a ``repr`` of it or of its UTF-8 bytes."""
    return {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]}


class Redactor:
    """Collects secrets in every form and blanks them out of any text."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._ordered: list[str] | None = None

    def add(self, secret: str) -> None:
        """A secret: hidden raw, escaped and base64-encoded."""
        if secret:
            self._forms |= text_forms(secret) | base64_forms(secret.encode())
            self._ordered = None

    def add_encoded(self, text: str) -> None:
        """Text that is not secret itself, but whose base64 is hidden too (LOGIN's user name,
        so the whole AUTH exchange is blanked alike)."""
        if text:
            self._forms |= base64_forms(text.encode())
            self._ordered = None

    def redact(self, text: str) -> str:
        if self._ordered is None:  # longest first: a whole encoding before its inner parts
            self._ordered = sorted(self._forms, key=len, reverse=True)
        for form in self._ordered:
            text = text.replace(form, REDACTED)
        return text
