"""A fake Mollie v2 Payments API for the real ``mollie-api-python`` SDK, on 127.0.0.1.

    with FakeMollie(api_key="test_fake") as fake:
        client = mollie.api.client.Client(api_endpoint=fake.url)   # NOT fake.url + "/v2"
        client.set_api_key(fake.api_key)
        payment = client.payments.create(data, idempotency_key="k1")
        fake.mark_paid(payment.id)              # status paid + paidAt (is_paid() needs paidAt)
        fake.fire_webhook(payment.id)           # POSTs id=tr_… to the payment's webhookUrl

``fake.url`` is ``http://127.0.0.1:PORT``: the SDK's ``api_endpoint`` is the host part and the
SDK itself appends ``/v2/<resource>``. (An endpoint ending in ``/v2`` yields ``/v2/v2/...``,
which this fake answers with a 404 naming that mistake.)

Endpoints: ``POST /v2/payments``, ``GET /v2/payments/{id}``, ``DELETE /v2/payments/{id}``
(cancel). ``Authorization: Bearer <api_key>`` is required (else Mollie's 401). A create takes
only ``amount {currency, value}``, ``description``, ``redirectUrl``, ``cancelUrl``,
``webhookUrl``, ``metadata``, ``locale`` and ``method``; anything unknown or invalid is a 422 in
Mollie's error shape (``status``, ``title``, ``detail``, ``field``, ``_links``). ``amount.value``
must be a string with exactly the decimals Mollie publishes for the currency (EUR ``"12.34"``,
JPY and ISK ``"1234"``); a currency Mollie does not list (KWD, say) is refused.
``Idempotency-Key`` on POST/DELETE: the same key and body replay the stored answer with
``Idempotent-Replayed: true``; the same key with another body is a 422 (the fake's choice:
strict).

Control (Python, not HTTP): ``payments``, ``create_count``, ``requests``, ``webhooks_sent``,
``mark_paid(id)``, ``set_status(id, "failed"|"canceled"|"expired"|"pending")``,
``set_cancelable(id, flag)``, ``refunds``, ``settle_refund(re_id, "refunded"|"failed",
notify=False)`` (``notify``: the payment's webhook is called, as Mollie does for refunds),
``fail_next(status=500|422, times=1, body=None)`` (answered before
anything is executed or stored), ``delay_next(seconds, times=1)`` (executed, then answered
late), ``fire_webhook(id)``.

Refunds: ``POST /v2/payments/{id}/refunds``, ``GET /v2/payments/{id}/refunds`` (the list) and
``GET /v2/payments/{id}/refunds/{re_id}``
(see the refunds section below for what they model).

Unlike real Mollie: a loopback ``webhookUrl`` is accepted (real Mollie refuses webhook URLs it
cannot reach), and new payments are cancelable unless ``FakeMollie(cancelable=False)`` (real
open payments often have ``isCancelable: false``, depending on the method).
"""

from __future__ import annotations

import copy
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from tests.fakes.common import (
    LOOPBACK,
    FakeProviderServer,
    RecordedRequest,
    Response,
    iso_utc,
    json_response,
    random_id,
    words,
)

HAL = "application/hal+json"


# Mollie's payment currencies and the decimals of each amount.value, as
# https://docs.mollie.com/docs/multicurrency publishes them (read 2026-12-02), written out here
# from the page, not taken from checkout_cli: ISK and JPY have none, the others two. No
# three-decimal currency is listed.
_DECIMALS = {
    **dict.fromkeys(
        words("""
            AED AUD BRL CAD CHF CZK DKK EUR GBP HKD HUF ILS MXN MYR NOK NZD PHP PLN RON SEK SGD
            THB TWD USD ZAR
        """),
        2,
    ),
    "ISK": 0,
    "JPY": 0,
}
_FIELDS = {"amount", "description", "redirectUrl", "cancelUrl", "webhookUrl", "metadata"}
_FIELDS |= {"locale", "method"}
_LOCALES = set(
    words(
        "en_US en_GB nl_NL nl_BE fr_FR fr_BE de_DE de_AT de_CH es_ES ca_ES pt_PT it_IT nb_NO "
        "sv_SE fi_FI da_DK is_IS hu_HU pl_PL lv_LV lt_LT"
    )
)
_METHODS = set(
    words(
        "alma applepay bacs bancomatpay bancontact banktransfer belfius billie blik creditcard "
        "eps giftcard ideal in3 kbc klarna mybank paypal paysafecard pointofsale przelewy24 "
        "riverty satispay trustly twint voucher"
    )
)
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized Request",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_FINAL = {"paid": "paidAt", "failed": "failedAt", "canceled": "canceledAt", "expired": "expiredAt"}


class MollieError(Exception):
    def __init__(self, detail: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(detail)
        self.detail, self.field, self.status = detail, field, status


def _url(value: Any, field: str, required: bool = False) -> None:
    if value is None and not required:
        return
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise MollieError(f"The {field} is invalid" if value else f"The {field} is missing", field)


def validate_payment(data: Any) -> dict[str, Any]:
    """The create-payment body, checked like Mollie does; returns it with defaults applied."""
    if not isinstance(data, dict):
        raise MollieError("The request body must be a JSON object.", status=400)
    for name in data:
        if name not in _FIELDS:
            raise MollieError(f"fake_mollie: unknown or unmodelled parameter '{name}'", name)
    amount = data.get("amount")
    if not isinstance(amount, dict) or set(amount) != {"currency", "value"}:
        raise MollieError("The amount must be an object with a currency and a value", "amount")
    currency, value = amount["currency"], amount["value"]
    if not isinstance(currency, str) or currency not in _DECIMALS:
        raise MollieError(f"The currency '{currency}' is not supported", "amount.currency")
    decimals = _DECIMALS[currency]
    pattern = r"(0|[1-9]\d*)" + (rf"\.\d{{{decimals}}}" if decimals else "")
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise MollieError(
            f"The amount contains an invalid value: {currency} takes a string with exactly "
            f"{decimals} decimals",
            "amount.value",
        )
    if float(value) <= 0:
        raise MollieError("The amount is lower than the minimum", "amount")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise MollieError("The description is missing", "description")
    _url(data.get("redirectUrl"), "redirectUrl", required=True)
    _url(data.get("cancelUrl"), "cancelUrl")
    _url(data.get("webhookUrl"), "webhookUrl")
    if len(json.dumps(data.get("metadata"))) > 1024:
        raise MollieError("The metadata is too large (1024 bytes at most)", "metadata")
    if data.get("locale") is not None and data["locale"] not in _LOCALES:
        raise MollieError("The locale is invalid", "locale")
    method = data.get("method")
    methods = method if isinstance(method, list) else [method] if method is not None else []
    if any(not isinstance(m, str) or m not in _METHODS for m in methods):
        raise MollieError("The payment method is invalid", "method")
    return {**data, "description": description[:255]}


class FakeMollie(FakeProviderServer):
    ROUTES = (
        ("POST", r"/v2/payments", "_create"),
        ("GET", r"/v2/payments/([^/]+)", "_get"),
        ("DELETE", r"/v2/payments/([^/]+)", "_cancel"),
        ("POST", r"/v2/payments/([^/]+)/refunds", "_create_refund"),
        ("GET", r"/v2/payments/([^/]+)/refunds", "_list_refunds"),
        ("GET", r"/v2/payments/([^/]+)/refunds/([^/]+)", "_get_refund"),
    )

    def __init__(self, api_key: str = "test_fake00000000000000000000000", cancelable: bool = True):
        if not re.fullmatch(r"test_\w+", api_key):
            raise ValueError("FakeMollie takes a test API key (test_…, as the SDK requires)")
        super().__init__()
        self.api_key = api_key
        self.cancelable = cancelable
        self.payments: dict[str, dict[str, Any]] = {}
        self.webhooks_sent: list[tuple[str, str, int]] = []  # (payment id, url, status)
        self._profile = random_id("pfl_", 10)
        self._idempotency: dict[str, tuple[tuple[str, str, str], Response]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}

    @property
    def url(self) -> str:
        """The SDK's ``api_endpoint``: ``Client(api_endpoint=fake.url)``."""
        return self.base_url

    @property
    def create_count(self) -> int:
        with self._lock:
            return len(self.payments)

    # -- control ------------------------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int = 1, body: Any = None) -> None:
        """The next ``times`` API requests get ``status`` with ``body`` (default: Mollie's error
        shape; for 422 the "amount is higher than the maximum" rejection)."""
        self._queue_fault(status, times, body)

    def mark_paid(self, payment_id: str, method: str = "ideal") -> dict[str, Any]:
        """The customer paid: status ``paid`` and ``paidAt`` (what the SDK's is_paid() reads)."""
        with self._lock:
            payment = self._settle(payment_id, "paid")
            payment["method"] = payment["method"] if isinstance(payment["method"], str) else method
            currency = payment["amount"]["currency"]
            zero = f"{0:.{_DECIMALS[currency]}f}"
            payment["amountRefunded"] = {"value": zero, "currency": currency}
            payment["amountRemaining"] = dict(payment["amount"])
            payment["details"] = {
                "consumerName": "T. TEST",
                "consumerAccount": "NL72RABO0110438885",
            }
            return copy.deepcopy(payment)

    def set_status(self, payment_id: str, status: str) -> dict[str, Any]:
        """Move an open payment to ``failed``, ``canceled``, ``expired`` or ``pending``."""
        if status not in ("failed", "canceled", "expired", "pending"):
            raise ValueError(f"set_status takes failed, canceled, expired or pending, not {status}")
        with self._lock:
            if status == "pending":
                payment = self._open(payment_id)
                payment.update(status="pending", isCancelable=False)
            else:
                payment = self._settle(payment_id, status)
            return copy.deepcopy(payment)

    def set_cancelable(self, payment_id: str, cancelable: bool) -> None:
        with self._lock:
            self.payments[payment_id]["isCancelable"] = cancelable

    def fire_webhook(self, payment_id: str, timeout: float = 5.0) -> int:
        """POST ``id=tr_…`` (form-encoded, as Mollie does) to the payment's ``webhookUrl`` and
        return the HTTP status. Only ``http://127.0.0.1:…`` URLs are allowed."""
        with self._lock:
            url = self.payments[payment_id].get("webhookUrl")
        if not url:
            raise ValueError(f"{payment_id} has no webhookUrl")
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname != LOOPBACK:
            raise ValueError(f"fire_webhook only posts to http://{LOOPBACK}:…, not {url!r}")
        request = urllib.request.Request(
            url,
            data=urlencode({"id": payment_id}).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        with self._lock:
            self.webhooks_sent.append((payment_id, url, status))
        return status

    def _open(self, payment_id: str) -> dict[str, Any]:
        payment = self.payments[payment_id]
        if payment["status"] not in ("open", "pending"):
            raise ValueError(f"{payment_id} is {payment['status']}, not open or pending")
        return payment

    def _settle(self, payment_id: str, status: str) -> dict[str, Any]:
        payment = self._open(payment_id)
        payment.update(status=status, isCancelable=False)
        payment[_FINAL[status]] = iso_utc(time.time())
        payment.pop("expiresAt", None)
        payment["_links"].pop("checkout", None)
        return payment

    # -- provider shape -----------------------------------------------------------------------

    def _error(self, status: int, message: str, field: str | None = None) -> Response:
        body: dict[str, Any] = {
            "status": status,
            "title": _TITLES.get(status, "Error"),
            "detail": message,
        }
        if field:
            body["field"] = field
        doc = "authentication" if status == 401 else "handling-errors"
        body["_links"] = {
            "documentation": {
                "href": f"https://docs.mollie.com/overview/{doc}",
                "type": "text/html",
            }
        }
        return json_response(status, body, HAL)

    def _fault_body(self, status: int) -> Any:
        if status == 422:
            return json.loads(
                self._error(422, "The amount is higher than the maximum", "amount").body
            )
        return json.loads(self._error(status, "An error occurred (injected by FakeMollie)").body)

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        auth = request.header("Authorization") or ""
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return self._error(401, "Missing authentication, or failed to authenticate")
        return None

    def _route(self, request: RecordedRequest) -> Response:
        if urlsplit(request.path).path.startswith("/v2/v2/"):
            return self._error(
                404, "fake_mollie: /v2/v2/ - the SDK's api_endpoint must not end in /v2"
            )
        return super()._route(request)

    def _idempotent(self, request: RecordedRequest, produce: Any) -> Response:
        key = request.header("Idempotency-Key")
        if not key:
            return produce()
        try:
            body = json.dumps(json.loads(request.body or b"null"), sort_keys=True)
        except ValueError:
            body = request.text
        fingerprint = (request.method, urlsplit(request.path).path, body)
        with self._lock:
            if key in self._idempotency:
                stored_fingerprint, stored = self._idempotency[key]
                if stored_fingerprint != fingerprint:
                    return self._error(
                        422, f"The Idempotency-Key '{key}' was already used for another request"
                    )
                headers = {**stored.headers, "Idempotent-Replayed": "true"}
                return Response(stored.status, stored.body, headers)
            response = produce()
            if 200 <= response.status < 300:
                self._idempotency[key] = (fingerprint, response)
            return response

    # -- endpoints ----------------------------------------------------------------------------

    def _create(self, request: RecordedRequest) -> Response:
        try:
            data = validate_payment(json.loads(request.body or b"null"))
        except ValueError:
            return self._error(400, "The request body is not valid JSON.")
        except MollieError as exc:
            return self._error(exc.status, exc.detail, exc.field)
        return self._idempotent(request, lambda: self._new_payment(data))

    def _new_payment(self, data: dict[str, Any]) -> Response:
        payment_id = random_id("tr_", 10)
        now = time.time()
        payment: dict[str, Any] = {
            "resource": "payment",
            "id": payment_id,
            "mode": "test",
            "createdAt": iso_utc(now),
            "amount": data["amount"],
            "description": data["description"],
            "method": data.get("method") if isinstance(data.get("method"), str) else None,
            "metadata": data.get("metadata"),
            "status": "open",
            "isCancelable": self.cancelable,
            "expiresAt": iso_utc(now + 15 * 60),
            "details": None,
            "profileId": self._profile,
            "sequenceType": "oneoff",
            "redirectUrl": data["redirectUrl"],
        }
        for optional in ("cancelUrl", "webhookUrl", "locale"):
            if data.get(optional) is not None:
                payment[optional] = data[optional]
        payment["_links"] = {
            "self": {"href": f"{self.url}/v2/payments/{payment_id}", "type": HAL},
            "checkout": {
                "href": f"https://www.mollie.test/checkout/select-method/{payment_id[3:]}",
                "type": "text/html",
            },
            "dashboard": {
                "href": f"https://my.mollie.test/dashboard/payments/{payment_id}",
                "type": "text/html",
            },
            "documentation": {
                "href": "https://docs.mollie.com/reference/v2/payments-api/create-payment",
                "type": "text/html",
            },
        }
        with self._lock:
            self.payments[payment_id] = payment
            return json_response(201, payment, HAL)

    def _get(self, request: RecordedRequest, payment_id: str) -> Response:
        if request.query:
            return self._error(400, f"fake_mollie: query parameters not modelled: {request.query}")
        with self._lock:
            if payment_id not in self.payments:
                return self._error(404, f"No payment exists with token {payment_id}.")
            return json_response(200, self.payments[payment_id], HAL)

    def _cancel(self, request: RecordedRequest, payment_id: str) -> Response:
        if request.query or request.body.strip() not in (b"", b"{}"):
            return self._error(400, "fake_mollie: a cancel takes no parameters")

        def cancel() -> Response:
            with self._lock:
                payment = self.payments.get(payment_id)
                if payment is None:
                    return self._error(404, f"No payment exists with token {payment_id}.")
                if payment["status"] != "open" or not payment["isCancelable"]:
                    state = f"status {payment['status']}, isCancelable {payment['isCancelable']}"
                    return self._error(422, f"The payment cannot be canceled ({state})")
                self._settle(payment_id, "canceled")
                return json_response(200, payment, HAL)

        return self._idempotent(request, cancel)

    # -- refunds ------------------------------------------------------------------------------
    # Like Mollie (docs.mollie.com, "Refunds"): only a paid payment is refunded; a new refund
    # is ``pending`` (a queued one waits for balance) and settles later to ``refunded`` or
    # ``failed``; the payment stays ``paid`` while ``amountRefunded``/``amountRemaining``
    # move. Most methods may be refunded up to EUR 25.00 more than was paid, cards and PayPal
    # not at all.

    _REFUND_FIELDS = frozenset({"amount", "description", "metadata"})
    _NO_OVER_REFUND = frozenset({"creditcard", "paypal"})
    OVER_REFUND_EUR = "25.00"

    def settle_refund(
        self, refund_id: str, status: str = "refunded", notify: bool = False
    ) -> dict[str, Any]:
        """A refund moves on (``notify``: then Mollie calls the payment's webhook, as it does
        when one of a payment's refunds changes status; it posts only ``id=tr_…``)."""
        settled = self._settle_refund(refund_id, status)
        if notify:
            self.fire_webhook(settled["paymentId"])
        return settled

    def _settle_refund(self, refund_id: str, status: str) -> dict[str, Any]:
        if status not in ("refunded", "failed", "canceled", "processing"):
            raise ValueError(
                f"settle_refund takes refunded, failed, canceled or processing: {status}"
            )
        with self._lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            if status in ("failed", "canceled"):
                self._add_refunded(self.payments[refund["paymentId"]], refund["amount"], -1)
            return copy.deepcopy(refund)

    @staticmethod
    def _minor(value: str, currency: str) -> int:
        whole, _, fraction = value.partition(".")
        return int(whole + fraction.ljust(_DECIMALS[currency], "0"))

    @staticmethod
    def _value(minor: int, currency: str) -> str:
        decimals = _DECIMALS[currency]
        if not decimals:
            return str(minor)
        sign = "-" if minor < 0 else ""
        text = str(abs(minor)).rjust(decimals + 1, "0")
        return f"{sign}{text[:-decimals]}.{text[-decimals:]}"

    def _add_refunded(self, payment: dict[str, Any], amount: dict[str, str], sign: int) -> None:
        currency = payment["amount"]["currency"]
        paid = self._minor(payment["amount"]["value"], currency)
        refunded = self._minor(payment["amountRefunded"]["value"], currency)
        refunded += sign * self._minor(amount["value"], currency)
        payment["amountRefunded"] = {"value": self._value(refunded, currency), "currency": currency}
        remaining = max(paid - refunded, 0)
        payment["amountRemaining"] = {
            "value": self._value(remaining, currency),
            "currency": currency,
        }

    def _create_refund(self, request: RecordedRequest, payment_id: str) -> Response:
        try:
            data = json.loads(request.body or b"null")
        except ValueError:
            return self._error(400, "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return self._error(400, "The request body must be a JSON object.")
        for name in data:
            if name not in self._REFUND_FIELDS:
                return self._error(
                    422, f"fake_mollie: unknown or unmodelled parameter '{name}'", name
                )
        return self._late(self._idempotent(request, lambda: self._new_refund(payment_id, data)))

    def _new_refund(self, payment_id: str, data: dict[str, Any]) -> Response:
        with self._lock:
            payment = self.payments.get(payment_id)
            if payment is None:
                return self._error(404, f"No payment exists with token {payment_id}.")
            if payment["status"] != "paid":
                return self._error(
                    422, f"The payment {payment_id} is {payment['status']} and cannot be refunded"
                )
            currency = payment["amount"]["currency"]
            amount = data.get("amount")
            if not isinstance(amount, dict) or set(amount) != {"currency", "value"}:
                return self._error(
                    422, "The amount must be an object with a currency and a value", "amount"
                )
            if amount["currency"] != currency:
                return self._error(
                    422, f"The refund must be in the payment's currency, {currency}", "amount"
                )
            decimals = _DECIMALS[currency]
            pattern = r"(0|[1-9]\d*)" + (rf"\.\d{{{decimals}}}" if decimals else "")
            if not isinstance(amount["value"], str) or not re.fullmatch(pattern, amount["value"]):
                return self._error(422, "The amount contains an invalid value", "amount.value")
            wanted = self._minor(amount["value"], currency)
            maximum = self._minor(payment["amountRemaining"]["value"], currency)
            if currency == "EUR" and payment["method"] not in self._NO_OVER_REFUND:
                refunded = self._minor(payment["amountRefunded"]["value"], currency)
                ceiling = self._minor(payment["amount"]["value"], currency)
                maximum = ceiling + self._minor(self.OVER_REFUND_EUR, "EUR") - refunded
            if wanted <= 0 or wanted > maximum:
                return self._error(
                    422,
                    f"The amount is higher than the maximum refundable amount of "
                    f"{self._value(maximum, currency)} {currency}"
                    if wanted > 0
                    else "The amount is lower than the minimum",
                    "amount",
                )
            description = data.get("description")
            if description is not None and (
                not isinstance(description, str) or len(description) > 140
            ):
                return self._error(422, "The description is invalid", "description")
            refund_id = random_id("re_", 10)
            refund: dict[str, Any] = {
                "resource": "refund",
                "id": refund_id,
                "amount": dict(amount),
                "status": "pending",
                "createdAt": iso_utc(time.time()),
                "description": description or "",
                "metadata": data.get("metadata"),
                "paymentId": payment_id,
                "settlementAmount": {"value": self._value(-wanted, currency), "currency": currency},
                "_links": {
                    "self": {
                        "href": f"{self.url}/v2/payments/{payment_id}/refunds/{refund_id}",
                        "type": HAL,
                    },
                    "payment": {"href": f"{self.url}/v2/payments/{payment_id}", "type": HAL},
                    "documentation": {
                        "href": "https://docs.mollie.com/reference/v2/refunds-api/create-refund",
                        "type": "text/html",
                    },
                },
            }
            self.refunds[refund_id] = refund
            self._add_refunded(payment, amount, +1)
            payment["_links"]["refunds"] = {
                "href": f"{self.url}/v2/payments/{payment_id}/refunds",
                "type": HAL,
            }
            return json_response(201, refund, HAL)

    def _list_refunds(self, request: RecordedRequest, payment_id: str) -> Response:
        """``GET /v2/payments/{id}/refunds``: Mollie's list shape (``count``, ``_embedded``,
        ``_links`` with ``next``/``previous``), oldest first."""
        with self._lock:
            if payment_id not in self.payments:
                return self._error(404, f"No payment exists with token {payment_id}.")
            listed = [
                copy.deepcopy(r) for r in self.refunds.values() if r["paymentId"] == payment_id
            ]
        href = f"{self.url}/v2/payments/{payment_id}/refunds"
        return json_response(
            200,
            {
                "count": len(listed),
                "_embedded": {"refunds": listed},
                "_links": {
                    "self": {"href": href, "type": HAL},
                    "previous": None,
                    "next": None,
                    "documentation": {
                        "href": "https://docs.mollie.com/reference/v2/refunds-api/list-refunds",
                        "type": "text/html",
                    },
                },
            },
            HAL,
        )

    def _get_refund(self, request: RecordedRequest, payment_id: str, refund_id: str) -> Response:
        with self._lock:
            refund = self.refunds.get(refund_id)
            if refund is None or refund["paymentId"] != payment_id:
                return self._error(404, f"No refund exists with token {refund_id}.")
            return json_response(200, refund, HAL)
