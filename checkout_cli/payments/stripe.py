"""Stripe: a Checkout Session per payment, through the official SDK.

The session's line items add up to the checkout total (lines, then shipping and tax), the
checkout token travels as metadata, and every create carries our idempotency key, so the
SDK's own retries and ours can never make a second session.
"""

from __future__ import annotations

from typing import Any

from checkout_cli.errors import PaymentError, UnavailableError
from checkout_cli.money import to_stripe_amount
from checkout_cli.payments import not_configured
from checkout_cli.payments.base import (
    CANCELED,
    EXPIRED,
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
)

WEBHOOK_TOLERANCE_SECONDS = 300
# A Stripe refund's status, normalized: requires_action waits on the customer (e.g. bank
# details for a refund to a method without native refunds).
_REFUND_STATUSES = {
    "pending": REFUND_PENDING,
    "requires_action": REFUND_PENDING,
    "succeeded": REFUND_SUCCEEDED,
    "failed": REFUND_FAILED,
    "canceled": REFUND_FAILED,
}


class StripeProvider:
    name = "stripe"

    def __init__(self, config: ProviderConfig) -> None:
        import stripe

        stripe.enable_telemetry = False  # else the SDK writes an id file in the config dir
        self._stripe = stripe
        self._webhook_secret = config.webhook_secret
        self._client = stripe.StripeClient(
            config.api_key,
            base_addresses={"api": config.api_base},
            max_network_retries=1,
            http_client=stripe.new_default_http_client(timeout=config.timeout_seconds),
        )

    def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        stripe = self._stripe
        try:
            return function(*args, **kwargs)
        except stripe.AuthenticationError:
            raise not_configured("stripe", "Stripe refused the API key") from None
        except stripe.CardError as exc:
            raise PaymentError(
                "provider_rejected",
                f"Stripe declined: {exc.user_message}",
                recovery="try another payment method",
            ) from None
        except stripe.InvalidRequestError as exc:
            raise PaymentError(
                "provider_rejected", f"Stripe refused to {action}: {exc.user_message}"
            ) from None
        except stripe.APIConnectionError as exc:
            raise UnavailableError(
                "provider_unreachable",
                f"Stripe could not be reached to {action}: {exc.user_message}",
                recovery="try again; a retry never creates a second payment",
                http_status=502,
            ) from None
        except stripe.StripeError as exc:
            raise UnavailableError(
                "provider_error",
                f"Stripe failed to {action}: {exc.user_message}",
                recovery="try again; a retry never creates a second payment",
                http_status=502,
            ) from None

    def create(self, request: PaymentRequest) -> ProviderPayment:
        currency = request.currency.lower()
        line_items = [
            {
                "price_data": {
                    "currency": currency,
                    "unit_amount": to_stripe_amount(line.unit_amount_cents, request.currency),
                    "product_data": {"name": line.name},
                },
                "quantity": line.quantity,
            }
            for line in request.lines
            if line.unit_amount_cents > 0
        ]
        params = {
            "mode": "payment",
            "line_items": line_items,
            "success_url": request.redirect_url,
            "cancel_url": request.cancel_url or request.redirect_url,
            "client_reference_id": request.checkout_token,
            "metadata": {"checkout_token": request.checkout_token},
            "payment_intent_data": {"metadata": {"checkout_token": request.checkout_token}},
        }
        if request.customer_email:
            params["customer_email"] = request.customer_email
        session = self._call(
            "create a payment",
            self._client.v1.checkout.sessions.create,
            params=params,
            options={"idempotency_key": request.idempotency_key},
        )
        return self._payment(session)

    def fetch(self, provider_payment_id: str) -> ProviderPayment:
        session = self._call(
            "read a payment", self._client.v1.checkout.sessions.retrieve, provider_payment_id
        )
        return self._payment(session)

    def cancel(self, provider_payment_id: str) -> ProviderPayment | None:
        current = self.fetch(provider_payment_id)
        if current.status != OPEN:
            return current
        session = self._call(
            "expire a payment", self._client.v1.checkout.sessions.expire, provider_payment_id
        )
        return self._payment(session)

    def webhook_payment_id(self, headers: dict[str, str], body: bytes) -> str | None:
        stripe = self._stripe
        if not self._webhook_secret:
            raise not_configured("stripe", "stripe_webhook_secret is not in the vault")
        signature = {k.lower(): v for k, v in headers.items()}.get("stripe-signature")
        try:
            event = stripe.Webhook.construct_event(
                body, signature, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            from checkout_cli.errors import AuthError

            stale = "tolerance" in str(exc).lower()
            raise AuthError(
                "webhook_timestamp_stale" if stale else "webhook_signature_invalid",
                "Stripe webhook refused: "
                + ("its timestamp is too old" if stale else "bad signature"),
            ) from None
        except ValueError:
            from checkout_cli.errors import ValidationError

            raise ValidationError("invalid_webhook", "Stripe webhook body is not JSON") from None
        if not str(event["type"]).startswith("checkout.session."):
            return None
        return event["data"]["object"]["id"]

    @staticmethod
    def _payment(stripe_session: Any) -> ProviderPayment:
        session = stripe_session.to_dict()
        if session.get("payment_status") in ("paid", "no_payment_required"):
            status = PAID
        elif session.get("status") == "expired":
            status = EXPIRED
        elif session.get("status") == "complete":
            status = PENDING  # an asynchronous method (e.g. a bank debit) is still settling
        elif session.get("status") == "open":
            status = OPEN
        else:
            status = CANCELED
        metadata = session.get("metadata") or {}
        return ProviderPayment(
            provider_payment_id=session["id"],
            status=status,
            provider_status=f"{session.get('status')}/{session.get('payment_status')}",
            redirect_url=session.get("url"),
            amount_cents=session.get("amount_total"),
            checkout_token=metadata.get("checkout_token"),
        )

    # -- refunds: of the session's PaymentIntent, which exists once the customer has paid --

    def refund(self, request: RefundRequest) -> ProviderRefund:
        session = self._call(
            "read a payment",
            self._client.v1.checkout.sessions.retrieve,
            request.provider_payment_id,
        ).to_dict()
        intent = session.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        if session.get("payment_status") != "paid" or not intent:
            raise PaymentError(
                "payment_not_paid",
                f"Stripe holds no paid payment for {request.provider_payment_id} to refund",
            )
        refund = self._call(
            "refund a payment",
            self._client.v1.refunds.create,
            params={
                "payment_intent": intent,
                "amount": to_stripe_amount(request.amount_cents, request.currency),
                "metadata": {"checkout_token": request.checkout_token},
            },
            options={"idempotency_key": request.idempotency_key},
        )
        return self._refund(refund)

    def fetch_refund(self, provider_payment_id: str, provider_refund_id: str) -> ProviderRefund:
        return self._refund(
            self._call("read a refund", self._client.v1.refunds.retrieve, provider_refund_id)
        )

    @staticmethod
    def _refund(stripe_refund: Any) -> ProviderRefund:
        refund = stripe_refund.to_dict()
        raw = str(refund.get("status"))
        return ProviderRefund(
            provider_refund_id=refund["id"],
            status=_REFUND_STATUSES.get(raw, REFUND_PENDING),
            provider_status=raw,
            amount_cents=refund.get("amount"),
        )
