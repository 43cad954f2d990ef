"""Payment providers, called only by the engine.

``invoice`` needs no provider: the engine records a deferred payment itself. ``stripe`` and
``mollie`` are SDK-backed modules loaded by ``open_provider`` only when used, so no SDK is
imported on any other path.
"""

from __future__ import annotations

from checkout_cli.errors import ConflictError
from checkout_cli.payments.base import Provider, ProviderConfig

PROVIDER_KEYS: dict[str, str] = {"stripe": "stripe_secret_key", "mollie": "mollie_api_key"}


def not_configured(provider: str, detail: str) -> ConflictError:
    key = PROVIDER_KEYS[provider]
    return ConflictError(
        "provider_not_configured",
        f"payment provider {provider!r} is not configured: {detail}",
        field="provider",
        recovery=f"set the key with `checkout vault set {key}`, or use --provider invoice",
    )


def open_provider(name: str, config: ProviderConfig) -> Provider:
    if name == "stripe":
        from checkout_cli.payments.stripe import StripeProvider

        return StripeProvider(config)
    from checkout_cli.payments.mollie import MollieProvider

    return MollieProvider(config)
