"""The one interface every face talks to: call an endpoint with a JSON object, get one back."""

from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    #: where calls go, for messages ("local store /path/db", "https://…")
    description: str

    def call(self, service: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate and run one endpoint; raise a ``CheckoutError`` on failure."""

    def close(self) -> None: ...
