"""Stripe: a Checkout Session per payment, through the official SDK.

The session's line items add up to the checkout total (lines, then shipping and tax), the
checkout token travels as metadata, and every create carries our idempotency key, so the
SDK's own retries and ours can never make a second session.

Amounts cross here both ways between our minor units (ISO 4217) and Stripe's units, which
follow Stripe's own currency rules (``stripe_currencies``): 5,000 ISK is ``500000`` at
Stripe, 5,000.00 MGA is ``5000``. An amount Stripe cannot take exactly is refused before
anything is sent, never rounded.
"""

from __future__ import annotations

import math
from typing import Any

from checkout_cli.errors import ConflictError, PaymentError, UnavailableError, ValidationError
from checkout_cli.money import exponent, format_money
from checkout_cli.payments import stripe_currencies
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
    WebhookNotice,
    not_configured,
)

WEBHOOK_TOLERANCE_SECONDS = 300
# Events whose data.object is a Refund (charge.refund.updated: its older name).
_REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
# A Stripe refund's status, normalized: requires_action waits on the customer (e.g. bank
# details for a refund to a method without native refunds).
_REFUND_STATUSES = {
    "pending": REFUND_PENDING,
    "requires_action": REFUND_PENDING,
    "succeeded": REFUND_SUCCEEDED,
    "failed": REFUND_FAILED,
    "canceled": REFUND_FAILED,
}


def to_stripe_amount(amount_cents: int, currency: str, what: str = "the amount") -> int:
    """Our minor units of ``currency`` as Stripe's integer amount, exactly, or a refusal.

    Refused (``ValidationError``: bad input for this provider, nothing sent or written): a
    currency Stripe does not list, a fraction of a unit Stripe has no decimals for (MGA), an
    amount off Stripe's steps (three-decimal currencies end in 0).
    """
    code = currency.upper()
    if code not in stripe_currencies.SUPPORTED:
        raise ValidationError(
            "currency_not_supported",
            f"Stripe does not take payments in {code}",
            field="provider",
            recovery="use another provider (--provider invoice or mollie); Stripe's currencies "
            "are listed at https://docs.stripe.com/currencies",
        )
    shift = _shift(code)
    step = stripe_currencies.multiple_of(code) * 10 ** max(-shift, 0)
    step //= math.gcd(step, 10 ** max(shift, 0))  # the smallest amount of ours Stripe takes
    if amount_cents % step:
        raise ValidationError(
            "amount_not_supported",
            f"Stripe takes {code} only in steps of {format_money(step, code)}; "
            f"{what} is {format_money(amount_cents, code)}",
            field="provider",
            recovery="use another provider (--provider invoice), or prices, shipping and tax "
            f"in steps of {format_money(step, code)}",
        )
    return amount_cents * 10**shift if shift >= 0 else amount_cents // 10**-shift


def from_stripe_amount(amount: int, currency: str) -> int:
    """A Stripe amount (``amount_total``, a refund's ``amount``) in our minor units, exactly."""
    code = currency.upper()
    shift = _shift(code)
    if shift <= 0:
        return amount * 10**-shift
    cents, remainder = divmod(amount, 10**shift)
    if remainder:
        raise PaymentError(
            "provider_amount_invalid",
            f"Stripe reports {amount} in {code}, which is no whole number of our {code} units",
        )
    return cents


def _metadata(request: PaymentRequest) -> dict[str, str]:
    metadata = {"checkout_token": request.checkout_token}
    if request.order_number:
        metadata["order_number"] = request.order_number
    return metadata


def _shift(code: str) -> int:
    """Stripe's decimals minus ISO 4217's: ISK +2, MGA -2, most 0."""
    return stripe_currencies.decimals(code) - exponent(code)


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

    def check(self, request: PaymentRequest) -> None:
        self._line_items(request)

    @staticmethod
    def _line_items(request: PaymentRequest) -> list[dict[str, Any]]:
        """The session's lines in Stripe's units; they add up to the total, each exactly."""
        if sum(line.unit_amount_cents * line.quantity for line in request.lines) != (
            request.amount_cents
        ):
            raise ConflictError(
                "amount_mismatch",
                f"the payment lines of {request.checkout_token} do not add up to its total",
            )
        lines = [
            {
                "price_data": {
                    "currency": request.currency.lower(),
                    "unit_amount": to_stripe_amount(
                        line.unit_amount_cents, request.currency, repr(line.name)
                    ),
                    "product_data": {"name": line.name},
                },
                "quantity": line.quantity,
            }
            for line in request.lines
            if line.unit_amount_cents > 0
        ]
        to_stripe_amount(request.amount_cents, request.currency, "the total")
        return lines

    def create(self, request: PaymentRequest) -> ProviderPayment:
        params = {
            "mode": "payment",
            "line_items": self._line_items(request),
            "success_url": request.redirect_url,
            "cancel_url": request.cancel_url or request.redirect_url,
            "client_reference_id": request.checkout_token,
            "metadata": _metadata(request),
            "payment_intent_data": {"metadata": _metadata(request)},
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
        return self.webhook_notice(headers, body).payment_id

    def webhook_notice(self, headers: dict[str, str], body: bytes) -> WebhookNotice:
        """A signed event: a checkout session's (its payment), a refund's (``refund.created``,
        ``refund.updated``, ``refund.failed``, ``charge.refund.updated``: the refund) or a
        charge's ``charge.refunded`` (the refunds it lists; none listed, as from API version
        2022-11-15 on: every pending refund is asked about)."""
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
            raise ValidationError("invalid_webhook", "Stripe webhook body is not JSON") from None
        # Signed by Stripe, yet read defensively: a shape we do not know is refused, not a bug.
        data = event.to_dict()
        kind = str(data.get("type", ""))
        obj = (data.get("data") or {}).get("object")
        obj_id = obj.get("id") if isinstance(obj, dict) else None
        if kind.startswith("checkout.session."):
            if not isinstance(obj_id, str) or not obj_id.startswith("cs_"):
                raise ValidationError(
                    "invalid_webhook", "Stripe webhook has no checkout session in data.object"
                )
            return WebhookNotice(payment_id=obj_id)
        if kind in _REFUND_EVENTS:
            if not isinstance(obj_id, str) or not obj_id.startswith("re_"):
                raise ValidationError(
                    "invalid_webhook", f"Stripe {kind} webhook has no refund in data.object"
                )
            return WebhookNotice(refund_ids=(obj_id,))
        if kind == "charge.refunded":
            if not isinstance(obj, dict) or not str(obj_id or "").startswith(("ch_", "py_")):
                raise ValidationError(
                    "invalid_webhook", "Stripe charge.refunded webhook has no charge in data.object"
                )
            listed = (obj.get("refunds") or {}).get("data") if obj.get("refunds") else None
            ids = tuple(
                r["id"]
                for r in listed or []
                if isinstance(r, dict) and str(r.get("id", "")).startswith("re_")
            )
            return WebhookNotice(refund_ids=ids, pending_refunds=not ids)
        return WebhookNotice()

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
        amount, currency = session.get("amount_total"), session.get("currency")
        known = amount is not None and bool(currency)
        return ProviderPayment(
            provider_payment_id=session["id"],
            status=status,
            provider_status=f"{session.get('status')}/{session.get('payment_status')}",
            redirect_url=session.get("url"),
            amount_cents=from_stripe_amount(amount, currency) if known else None,
            checkout_token=metadata.get("checkout_token"),
            currency=currency.upper() if known else None,
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

    def payment_refunds(self, provider_payment_id: str) -> list[ProviderRefund]:
        session = self._call(
            "read a payment", self._client.v1.checkout.sessions.retrieve, provider_payment_id
        ).to_dict()
        intent = session.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        if not intent:
            return []
        found = self._call(
            "list refunds",
            self._client.v1.refunds.list,
            params={"payment_intent": intent, "limit": 100},
        )
        return [self._refund(r) for r in found.data]

    @staticmethod
    def _refund(stripe_refund: Any) -> ProviderRefund:
        refund = stripe_refund.to_dict()
        raw = str(refund.get("status"))
        amount, currency = refund.get("amount"), refund.get("currency")
        return ProviderRefund(
            provider_refund_id=refund["id"],
            status=_REFUND_STATUSES.get(raw, REFUND_PENDING),
            provider_status=raw,
            amount_cents=from_stripe_amount(amount, currency)
            if amount is not None and currency
            else None,
        )
