"""The small interface every payment provider module implements, its value types, and the
vault key each provider needs (with the error when it is missing).

Provider statuses are normalized to ``open``, ``pending``, ``paid``, ``failed``,
``canceled`` and ``expired``; the raw status is kept for people (``provider_status``).
Refund statuses are normalized to ``pending`` (accepted, not yet settled), ``succeeded``
and ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from checkout_cli.errors import ConflictError

OPEN, PENDING, PAID, FAILED, CANCELED, EXPIRED = (
    "open",
    "pending",
    "paid",
    "failed",
    "canceled",
    "expired",
)
FINAL_UNPAID = (FAILED, CANCELED, EXPIRED)
REFUND_PENDING, REFUND_SUCCEEDED, REFUND_FAILED = "pending", "succeeded", "failed"


@dataclass(frozen=True)
class PaymentLine:
    name: str
    quantity: int
    unit_amount_cents: int


@dataclass(frozen=True)
class PaymentRequest:
    idempotency_key: str
    checkout_token: str
    amount_cents: int
    currency: str
    description: str
    customer_email: str | None
    lines: list[PaymentLine] = field(default_factory=list)
    redirect_url: str = ""
    cancel_url: str = ""
    webhook_url: str = ""
    order_number: str | None = None  # a payment link for an order's balance: its number


@dataclass(frozen=True)
class WebhookNotice:
    """What an authenticated webhook is about; the engine fetches each thing it names again.

    ``payment_id``: a payment whose status may have moved (a Mollie payment's refunds too).
    ``refund_ids``: refunds whose status may have moved. ``pending_refunds``: some refund of
    this provider moved but the body names none (Stripe's ``charge.refunded`` from API
    version 2022-11-15 on carries no refunds list): ask about every pending one.
    """

    payment_id: str | None = None
    refund_ids: tuple[str, ...] = ()
    pending_refunds: bool = False


@dataclass(frozen=True)
class ProviderPayment:
    provider_payment_id: str
    status: str
    provider_status: str
    redirect_url: str | None = None
    amount_cents: int | None = None  # what the provider holds, in our minor units of currency
    checkout_token: str | None = None
    currency: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    provider_payment_id: str
    checkout_token: str
    amount_cents: int
    currency: str
    description: str


@dataclass(frozen=True)
class ProviderRefund:
    provider_refund_id: str
    status: str
    provider_status: str
    amount_cents: int | None = None


@dataclass(frozen=True)
class ProviderConfig:
    api_key: str
    api_base: str
    timeout_seconds: float
    webhook_secret: str | None = None


class Provider(Protocol):
    name: str

    def check(self, request: PaymentRequest) -> None:
        """Refuse a payment this provider cannot take exactly (its currency, an amount off its
        units or steps), before anything is written or sent; never round."""

    def create(self, request: PaymentRequest) -> ProviderPayment:
        """Create a payment; the same idempotency key always yields the same payment."""

    def fetch(self, provider_payment_id: str) -> ProviderPayment: ...

    def cancel(self, provider_payment_id: str) -> ProviderPayment | None:
        """Cancel or expire an open payment where the provider allows it."""

    def refund(self, request: RefundRequest) -> ProviderRefund:
        """Refund a paid payment; the same idempotency key never refunds twice.

        Raises ``PaymentError`` (``payment_not_paid``) for a payment the provider holds no
        money for, and ``provider_rejected`` when the provider refuses the refund.
        """

    def fetch_refund(self, provider_payment_id: str, provider_refund_id: str) -> ProviderRefund: ...

    def webhook_payment_id(self, headers: dict[str, str], body: bytes) -> str | None:
        """Authenticate a webhook and return the payment id it is about (None: not ours).

        The caller always re-fetches the payment; a webhook's body is never trusted.
        """

    def webhook_notice(self, headers: dict[str, str], body: bytes) -> WebhookNotice:
        """Authenticate a webhook and say which payment and refunds it is about."""

    def payment_refunds(self, provider_payment_id: str) -> list[ProviderRefund]:
        """Every refund of a payment as the provider has it now."""


PROVIDER_KEYS: dict[str, str] = {"stripe": "stripe_secret_key", "mollie": "mollie_api_key"}


def not_configured(provider: str, detail: str) -> ConflictError:
    key = PROVIDER_KEYS[provider]
    return ConflictError(
        "provider_not_configured",
        f"payment provider {provider!r} is not configured: {detail}",
        field="provider",
        recovery=f"set the key with `checkout vault set {key}`, or use --provider invoice",
    )
