"""Payment providers, called only by the engine.

``invoice`` needs no provider: the engine records a deferred payment itself. Card and bank
providers (``stripe``, ``mollie``) need their API key in the vault; their SDK-backed clients
are loaded from here when used, so no SDK is imported by any other path.
"""

from __future__ import annotations

from checkout_cli.errors import ConflictError

PROVIDER_KEYS: dict[str, str] = {"stripe": "stripe_secret_key", "mollie": "mollie_api_key"}


def require_provider(provider: str, api_key: str | None) -> None:
    """Refuse a provider this store cannot use, naming what must be configured."""
    key = PROVIDER_KEYS[provider]
    detail = (
        "its API key is not in the vault"
        if api_key is None
        else "this release has no client for it"
    )
    raise ConflictError(
        "provider_not_configured",
        f"payment provider {provider!r} is not configured: {detail}",
        field="provider",
        recovery=f"set the key with `checkout vault set {key}`, or use --provider invoice",
    )
