"""Payment providers, called only by the engine.

``invoice`` needs no provider: the engine records a deferred payment itself. ``stripe`` and
``mollie`` are SDK-backed modules loaded by ``open_provider`` only when used, so no SDK is
imported on any other path.
"""

from __future__ import annotations

from checkout_cli.payments.base import Provider, ProviderConfig


def open_provider(name: str, config: ProviderConfig) -> Provider:
    if name == "stripe":
        from checkout_cli.payments.stripe import StripeProvider

        return StripeProvider(config)
    from checkout_cli.payments.mollie import MollieProvider

    return MollieProvider(config)
