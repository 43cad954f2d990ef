"""Mollie: one payment per attempt, through the official SDK.

Amounts are strings with exactly the decimals Mollie publishes for the currency
(``mollie_currencies``: ``"12.34"``, JPY and ISK ``"1234"``), converted here from our minor
units and back; a currency Mollie does not take is refused before anything is sent. A webhook
only says ``id=tr_…``; the payment is always fetched again.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from checkout_cli.errors import PaymentError, UnavailableError, ValidationError
from checkout_cli.money import exponent, format_money
from checkout_cli.payments import mollie_currencies
from checkout_cli.payments.base import (
    CANCELED,
    EXPIRED,
    FAILED,
    OPEN,
    PAID,
    PENDING,
    REFUND_FAILED,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
    PaymentRequest,
    ProviderConfig,
    ProviderPayment,
    ProviderRefund,
    RefundRequest,
    WebhookNotice,
    not_configured,
)


def to_mollie_value(amount_cents: int, currency: str) -> str:
    """Our minor units as Mollie's ``amount.value`` string for ``currency``, exactly.

    Refused (``ValidationError``: bad input for this provider, nothing sent or written): a
    currency Mollie does not list, an amount with more decimals than Mollie's.
    """
    code = currency.upper()
    decimals = mollie_currencies.DECIMALS.get(code)
    if decimals is None:
        raise ValidationError(
            "currency_not_supported",
            f"Mollie does not take payments in {code}",
            field="provider",
            recovery="use another provider (--provider invoice or stripe); Mollie's currencies "
            "are listed at https://docs.mollie.com/docs/multicurrency",
        )
    value = Decimal(amount_cents).scaleb(-exponent(code))
    exact = value.quantize(Decimal(1).scaleb(-decimals))
    if exact != value:
        raise ValidationError(
            "amount_not_supported",
            f"Mollie takes {code} with {decimals} decimals; the amount is "
            f"{format_money(amount_cents, code)}",
            field="provider",
            recovery="use another provider (--provider invoice), or whole amounts",
        )
    return str(exact)


def from_mollie_value(value: str, currency: str) -> int:
    """Mollie's ``amount.value`` (``"12.34"``) in our minor units of ``currency``, exactly."""
    try:
        cents = Decimal(value).scaleb(exponent(currency.upper()))
        if cents == cents.to_integral_value():
            return int(cents)
    except (InvalidOperation, TypeError):
        pass
    raise PaymentError(
        "provider_amount_invalid",
        f"Mollie reports {value!r} {currency}, which is no whole number of our {currency} units",
    )


_STATUSES = {
    "open": OPEN,
    "pending": PENDING,
    "authorized": PENDING,
    "paid": PAID,
    "failed": FAILED,
    "canceled": CANCELED,
    "expired": EXPIRED,
}

# Mollie's refund statuses: queued (waiting for balance) and pending can still be cancelled,
# processing cannot; refunded is settled to the customer; failed and canceled returned nothing.
_REFUND_STATUSES = {
    "queued": REFUND_PENDING,
    "pending": REFUND_PENDING,
    "processing": REFUND_PENDING,
    "refunded": REFUND_SUCCEEDED,
    "failed": REFUND_FAILED,
    "canceled": REFUND_FAILED,
}
REFUND_DESCRIPTION_MAX = 140


class MollieProvider:
    name = "mollie"

    def __init__(self, config: ProviderConfig) -> None:
        from mollie.api import error
        from mollie.api.client import Client

        self._error = error
        self._client = Client(
            api_endpoint=config.api_base, timeout=(5, int(max(1, config.timeout_seconds))), retry=1
        )
        try:
            self._client.set_api_key(config.api_key)
        except error.RequestSetupError:
            raise not_configured("mollie", "mollie_api_key is not a Mollie API key") from None

    def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        error = self._error
        try:
            return function(*args, **kwargs)
        except error.UnauthorizedError:
            raise not_configured("mollie", "Mollie refused the API key") from None
        except error.ResponseError as exc:
            if (exc.status or 500) >= 500:
                raise UnavailableError(
                    "provider_error",
                    f"Mollie failed to {action}: {exc}",
                    recovery="try again; a retry never creates a second payment",
                    http_status=502,
                ) from None
            raise PaymentError(
                "provider_rejected",
                f"Mollie refused to {action}: {exc}",
                field=f"mollie.{exc.field}" if exc.field else None,
            ) from None
        except (error.RequestError, error.ResponseHandlingError) as exc:
            raise UnavailableError(
                "provider_unreachable",
                f"Mollie could not be reached to {action}: {exc}",
                recovery="try again; a retry never creates a second payment",
                http_status=502,
            ) from None

    def check(self, request: PaymentRequest) -> None:
        to_mollie_value(request.amount_cents, request.currency)

    def create(self, request: PaymentRequest) -> ProviderPayment:
        data = {
            "amount": {
                "currency": request.currency,
                "value": to_mollie_value(request.amount_cents, request.currency),
            },
            "description": request.description,
            "redirectUrl": request.redirect_url,
            "metadata": {"checkout_token": request.checkout_token},
        }
        if request.order_number:
            data["metadata"] = {
                "checkout_token": request.checkout_token,
                "order_number": request.order_number,
            }
        if request.webhook_url:
            data["webhookUrl"] = request.webhook_url
        payment = self._call(
            "create a payment",
            self._client.payments.create,
            data,
            idempotency_key=request.idempotency_key,
        )
        return self._payment(payment)

    def fetch(self, provider_payment_id: str) -> ProviderPayment:
        return self._payment(
            self._call("read a payment", self._client.payments.get, provider_payment_id)
        )

    def cancel(self, provider_payment_id: str) -> ProviderPayment | None:
        current = self.fetch(provider_payment_id)
        if current.status != OPEN:
            return current
        self._call("cancel a payment", self._client.payments.delete, provider_payment_id)
        return self.fetch(provider_payment_id)

    def webhook_payment_id(self, headers: dict[str, str], body: bytes) -> str | None:
        ids = parse_qs(body.decode("utf-8", "replace")).get("id", [])
        if len(ids) != 1 or not ids[0].startswith("tr_"):
            raise ValidationError("invalid_webhook", "a Mollie webhook posts id=tr_…", field="id")
        return ids[0]

    def webhook_notice(self, headers: dict[str, str], body: bytes) -> WebhookNotice:
        """Mollie calls a payment's webhook when the payment's status moves and when one of
        its refunds does: the payment and its refunds are fetched again."""
        return WebhookNotice(payment_id=self.webhook_payment_id(headers, body))

    def payment_refunds(self, provider_payment_id: str) -> list[ProviderRefund]:
        payment = self._call("read a payment", self._client.payments.get, provider_payment_id)
        found = self._call("list refunds", payment.refunds.list, limit=250)
        return [self._refund(r) for r in found]

    @staticmethod
    def _payment(payment: Any) -> ProviderPayment:
        raw = str(payment.status)
        status = PAID if payment.is_paid() else _STATUSES.get(raw, PENDING)
        metadata = payment.metadata or {}
        links = payment.get("_links") or {}
        checkout = links.get("checkout") or {}
        amount = payment.amount or {}
        return ProviderPayment(
            provider_payment_id=payment.id,
            status=status,
            provider_status=raw,
            redirect_url=checkout.get("href"),
            amount_cents=from_mollie_value(amount["value"], amount["currency"]) if amount else None,
            checkout_token=metadata.get("checkout_token"),
            currency=amount["currency"] if amount else None,
        )

    # -- refunds: a payment's own refunds, Mollie's Idempotency-Key on the create --------------

    def refund(self, request: RefundRequest) -> ProviderRefund:
        payment = self._call(
            "read a payment", self._client.payments.get, request.provider_payment_id
        )
        if not payment.is_paid():
            raise PaymentError(
                "payment_not_paid",
                f"Mollie holds no paid payment for {request.provider_payment_id} to refund "
                f"(it is {payment.status})",
            )
        data = {
            "amount": {
                "currency": request.currency,
                "value": to_mollie_value(request.amount_cents, request.currency),
            },
            "description": request.description[:REFUND_DESCRIPTION_MAX],
            "metadata": {"checkout_token": request.checkout_token},
        }
        refund = self._call(
            "refund a payment",
            payment.refunds.create,
            data,
            idempotency_key=request.idempotency_key,
        )
        return self._refund(refund)

    def fetch_refund(self, provider_payment_id: str, provider_refund_id: str) -> ProviderRefund:
        payment = self._call("read a payment", self._client.payments.get, provider_payment_id)
        return self._refund(self._call("read a refund", payment.refunds.get, provider_refund_id))

    @staticmethod
    def _refund(refund: Any) -> ProviderRefund:
        raw = str(refund.status)
        amount = refund.amount or {}
        return ProviderRefund(
            provider_refund_id=refund.id,
            status=_REFUND_STATUSES.get(raw, REFUND_PENDING),
            provider_status=raw,
            amount_cents=from_mollie_value(amount["value"], amount["currency"]) if amount else None,
        )
