"""A fake Stripe API (Checkout Sessions only) for the real ``stripe`` SDK, on 127.0.0.1.

    with FakeStripe(api_key="sk_test_fake") as fake:
        stripe.enable_telemetry = False        # else the SDK writes ~/.config/stripe/telemetry_id
        client = stripe.StripeClient(
            fake.api_key, base_addresses={"api": fake.url}, max_network_retries=0
        )
        session = client.v1.checkout.sessions.create(params, options={"idempotency_key": "k1"})
        fake.mark_paid(session.id)
        payload = fake.event_payload(session.id)            # checkout.session.completed
        header = fake.sign(payload, "whsec_test")           # the Stripe-Signature value

Endpoints: ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}``,
``POST /v1/checkout/sessions/{id}/expire``, ``POST /v1/refunds`` (of a paid session's
``payment_intent``), ``GET /v1/refunds/{id}``, ``GET /v1/refunds?payment_intent=pi_…``.
Requests need ``Authorization: Bearer <api_key>`` and form bodies in Stripe's bracket
notation; only the parameters in ``_SCHEMA`` are accepted (all exist in the real API),
anything else is a 400 "Received unknown parameter: X". POSTs honour
``Idempotency-Key`` like Stripe: the same key and parameters replay the stored answer (header
``Idempotent-Replayed: true``), the same key with other parameters is a 400 ``idempotency_error``.
Only successful answers are stored (Stripe stores nothing when validation fails).

Control (Python, not HTTP): ``sessions``, ``line_items``, ``payment_intent_metadata``,
``create_count``, ``requests``, ``mark_paid(id)``, ``mark_expired(id)``, ``refunds``,
``refund_status`` (what a new refund starts as: ``succeeded`` like a card, or ``pending``),
``set_refund_status(id, status)``,
``fail_next(status=500|402, times=1, body=None)`` (answered before anything is executed or
stored), ``delay_next(seconds, times=1)`` (executed, then answered late), ``event_payload``,
``refund_event_payload(re_id, "refund.updated"|"refund.failed"|"charge.refunded"|…)`` (a
refund's event as Stripe shapes it), ``sign``, ``deliver(url, payload, secret)`` (POSTs a
signed event, as Stripe delivers it).

Stricter than Stripe, on purpose: ``mode`` must be ``payment``, ``success_url`` and
``line_items`` (with ``price_data``, not ``price``) are required, and the divisibility rules
below apply to every line's ``unit_amount`` as well as to the total. Like Stripe (its published
currency rules, see ``_CURRENCIES``): only its presentment currencies; amounts in three-decimal
currencies (KWD, BHD, ...) must end in 0; ISK and UGX are two-decimal amounts evenly divisible
by 100 (5,000 ISK is 500000); minimum amounts for a few currencies; at most 8 digits.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from tests.fakes.common import (
    FakeProviderServer,
    RecordedRequest,
    Response,
    json_response,
    random_id,
    words,
)

_STR, _INT, _META = "string", "integer", "metadata"
_SCHEMA: dict[str, Any] = {
    "mode": _STR,
    "success_url": _STR,
    "cancel_url": _STR,
    "customer_email": _STR,
    "client_reference_id": _STR,
    "currency": _STR,
    "expires_at": _INT,
    "metadata": _META,
    "payment_intent_data": {"metadata": _META},
    "line_items": [
        {
            "quantity": _INT,
            "price_data": {"currency": _STR, "unit_amount": _INT, "product_data": {"name": _STR}},
        }
    ],
}
# Stripe's currency rules as https://docs.stripe.com/currencies publishes them (read
# 2026-12-02), written out here from the page, not taken from checkout_cli: the presentment
# currencies; amounts in each one's smallest unit, where the zero-decimal list (MGA among
# them, UGX being a special case) takes whole units and the three-decimal five take
# thousandths that must end in 0; ISK and UGX (special cases) take hundredths that must be
# evenly divisible by 100; HUF and TWD charge two-decimal amounts (their divisible-by-100 rule
# is for payouts only).
_ZERO_DECIMAL = words("bif clp djf gnf jpy kmf krw mga pyg rwf vnd vuv xaf xof xpf")
_THREE_DECIMAL = words("bhd jod kwd omr tnd")
_CURRENCIES = {
    **dict.fromkeys(
        words("""
            usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd bwp
            byn bzd cad cdf chf cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp gbp gel gip
            gmd gtq gyd hkd hnl hrk htg huf idr ils inr isk jmd kes kgs khr kyd kzt lak lbp lkr
            lrd lsl mad mdl mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab
            pen pgk php pkr pln qar ron rsd rub sar sbd scr sek sgd shp sle sos srd std szl thb
            tjs top try ttd twd tzs uah ugx uyu uzs wst xcd yer zar zmw
        """),
        2,
    ),
    **dict.fromkeys(_ZERO_DECIMAL, 0),
    **dict.fromkeys(_THREE_DECIMAL, 3),
}
# Every amount must be a multiple of this (in the currency's Stripe unit).
_MULTIPLE_OF = {**dict.fromkeys(_THREE_DECIMAL, 10), "isk": 100, "ugx": 100}
# Minimum charge amounts in the unit above, for a charge settled in the same currency.
# HUF's from Stripe's answer "Amount must be at least 175.00 Ft" (github.com/lunarphp/lunar
# issue 2272); the fake does no currency conversion, so other currencies have no minimum here.
_MINIMUM = {
    "eur": 50,
    "usd": 50,
    "gbp": 30,
    "chf": 50,
    "aud": 50,
    "cad": 50,
    "jpy": 50,
    "huf": 17500,
}
_EVENT_TYPES = {
    "checkout.session.completed",
    "checkout.session.expired",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
}
# Events about a refund (data.object: the Refund; refund.created/updated/failed apply to card
# refunds too since API version 2024-10-28.acacia) and about a charge (charge.refunded: the
# Charge, which since 2022-11-15 no longer embeds its refunds list unless asked to).
_REFUND_EVENT_TYPES = {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
_CHARGE_EVENT_TYPES = {"charge.refunded"}
_NULL_SESSION_FIELDS = words("""
    after_expiration allow_promotion_codes billing_address_collection client_secret
    collected_information consent consent_collection currency_conversion customer
    customer_account customer_details integration_identifier invoice locale managed_payments
    origin_context payment_intent payment_link payment_method_configuration_details permissions
    recovered_from saved_payment_method_options setup_intent shipping_address_collection
    shipping_cost submit_type subscription wallet_options
""")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)\Z")


class StripeError(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _real_parameter(name: str) -> bool:
    """Whether ``name`` is a top-level Checkout Session create parameter of the real API (per
    the SDK's generated params); used only to make the rejection message more helpful."""
    try:
        from stripe.params.checkout._session_create_params import SessionCreateParams
    except ImportError:
        return False
    return name in SessionCreateParams.__annotations__


def parse_form(body: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Stripe's bracket-notation form body -> nested dict, typed and checked against ``schema``."""
    raw: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(key)
        if not match:
            raise StripeError(f"Received unknown parameter: {key}", key, "parameter_unknown")
        tokens = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = raw
        for token in tokens[:-1]:
            node = node.setdefault(token, {})
            if not isinstance(node, dict):
                raise StripeError(f"Invalid parameter: {key}", key, "parameter_invalid")
        if tokens[-1] in node:
            raise StripeError(f"Received duplicate parameter: {key}", key, "parameter_invalid")
        node[tokens[-1]] = value
    return _typed(schema, raw, "")


def _typed(schema: Any, raw: Any, path: str) -> Any:
    if isinstance(schema, dict):
        if not isinstance(raw, dict):
            raise StripeError(f"Invalid object: {path}", path, "parameter_invalid_object")
        out = {}
        for name, value in raw.items():
            child = f"{path}[{name}]" if path else name
            if name not in schema:
                hint = ""
                if not path and _real_parameter(name):
                    hint = " (fake_stripe: a real parameter this fake does not model yet)"
                raise StripeError(
                    f"Received unknown parameter: {child}{hint}", child, "parameter_unknown"
                )
            out[name] = _typed(schema[name], value, child)
        return out
    if isinstance(schema, list):
        if not isinstance(raw, dict) or sorted(raw, key=lambda k: (len(k), k)) != [
            str(i) for i in range(len(raw))
        ]:
            raise StripeError(f"Invalid array: {path}", path, "parameter_invalid_array")
        return [_typed(schema[0], raw[str(i)], f"{path}[{i}]") for i in range(len(raw))]
    if schema == _META:
        if raw == "":
            return {}
        if not isinstance(raw, dict) or any(not isinstance(v, str) for v in raw.values()):
            raise StripeError(f"Invalid hash: {path}", path, "parameter_invalid_object")
        if len(raw) > 50 or any(len(k) > 40 or len(v) > 500 for k, v in raw.items()):
            raise StripeError(
                "Metadata can have at most 50 keys, keys of at most 40 characters and values "
                "of at most 500 characters.",
                path,
                "parameter_invalid_object",
            )
        return dict(raw)
    if not isinstance(raw, str):
        raise StripeError(f"Invalid {schema}: {path} is an object", path, "parameter_invalid")
    if schema == _INT:
        if not re.fullmatch(r"-?\d+", raw):
            raise StripeError(f"Invalid integer: {raw}", path, "parameter_invalid_integer")
        return int(raw)
    return raw


def _require(obj: dict[str, Any], name: str, path: str = "") -> Any:
    if obj.get(name) in (None, ""):
        param = f"{path}[{name}]" if path else name
        raise StripeError(f"Missing required param: {param}.", param, "parameter_missing")
    return obj[name]


def _check_step(currency: str, amount: int, step: int, param: str) -> None:
    """Stripe's divisibility rules for three-decimal currencies and for ISK and UGX."""
    if amount % step == 0:
        return
    if _CURRENCIES[currency] == 3:
        raise StripeError(
            f"Amounts in {currency} (a three-decimal currency) must end in 0 to be "
            f"compatible with card payments; got {amount}.",
            param,
            "amount_too_precise",
        )
    raise StripeError(  # Stripe's own words, quoted on its ISK deprecation page
        f"Invalid amount. Currency {currency.upper()} has become effectively zero-decimal and "
        "charged amounts must be evenly divisible by 100. See "
        "https://stripe.com/docs/currencies#special-cases for more information.",
        param,
        "invalid_charge_amount_no_decimal_compatible",
    )


def _check_url(value: str, param: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StripeError("Not a valid URL", param, "url_invalid")


def _customer_details(email: str) -> dict[str, Any]:
    details = dict.fromkeys(["address", "name", "phone", "tax_ids"])
    return {**details, "email": email, "tax_exempt": "none"}


class FakeStripe(FakeProviderServer):
    ROUTES = (
        ("POST", r"/v1/checkout/sessions", "_create"),
        ("GET", r"/v1/checkout/sessions/([^/]+)", "_retrieve"),
        ("POST", r"/v1/checkout/sessions/([^/]+)/expire", "_expire"),
        ("POST", r"/v1/refunds", "_create_refund"),
        ("GET", r"/v1/refunds", "_list_refunds"),
        ("GET", r"/v1/refunds/([^/]+)", "_retrieve_refund"),
    )

    def __init__(self, api_key: str = "sk_test_fake0000000000000000") -> None:
        if not api_key.startswith("sk_test_"):
            raise ValueError("FakeStripe takes a test-mode secret key (sk_test_…)")
        super().__init__()
        self.api_key = api_key
        self.sessions: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.payment_intent_metadata: dict[str, dict[str, str]] = {}
        self._versions: dict[str, str | None] = {}
        self._idempotency: dict[str, tuple[tuple[Any, ...], Response]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.refund_status = "succeeded"  # a card refund; other methods start pending

    @property
    def url(self) -> str:
        """For ``StripeClient(base_addresses={"api": fake.url})`` (no trailing slash)."""
        return self.base_url

    @property
    def create_count(self) -> int:
        with self._lock:
            return len(self.sessions)

    # -- control ------------------------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int = 1, body: Any = None) -> None:
        """The next ``times`` API requests get ``status`` with ``body`` (default: Stripe's
        card_error for 402, api_error otherwise), before anything is created or stored."""
        self._queue_fault(status, times, body)

    def mark_paid(self, session_id: str) -> dict[str, Any]:
        """The customer paid: status complete, payment_status paid, a payment_intent."""
        with self._lock:
            session = self._open_session(session_id)
            email = session["customer_email"] or "customer@example.com"
            session.update(
                status="complete",
                payment_status="paid",
                payment_intent=random_id("pi_", 24),
                url=None,
                customer_details=_customer_details(email),
            )
            return copy.deepcopy(session)

    def mark_expired(self, session_id: str) -> dict[str, Any]:
        """The session timed out without payment (as ``expires_at`` passing would do)."""
        with self._lock:
            self._open_session(session_id).update(status="expired", url=None)
            return copy.deepcopy(self.sessions[session_id])

    def event_payload(
        self, session_id: str, type: str = "checkout.session.completed", created: int | None = None
    ) -> str:
        """A webhook body (a JSON string, exactly as Stripe would post it) for this session in
        its current state, shaped like Stripe's ``event`` object."""
        if type not in _EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; one of {sorted(_EVENT_TYPES)}")
        with self._lock:
            session = copy.deepcopy(self.sessions[session_id])
            version = self._versions.get(session_id)
        event = {
            "id": random_id("evt_", 24),
            "object": "event",
            "api_version": version,
            "created": int(time.time()) if created is None else created,
            "data": {"object": session},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }
        return json.dumps(event, indent=2)

    def refund_event_payload(
        self,
        refund_id: str,
        type: str = "refund.updated",
        previous: dict[str, Any] | None = None,
        embed_refunds: bool = False,
    ) -> str:
        """A refund's webhook body, as Stripe posts it: ``refund.*`` carry the Refund (an
        update its ``previous_attributes``), ``charge.refunded`` the Charge it was made on
        (with ``embed_refunds``, its ``refunds`` list, as API versions before 2022-11-15 or
        an expanding endpoint send it)."""
        if type not in _REFUND_EVENT_TYPES | _CHARGE_EVENT_TYPES:
            raise ValueError(f"not a refund event type: {type!r}")
        with self._lock:
            refund = copy.deepcopy(self.refunds[refund_id])
            data: dict[str, Any]
            if type in _CHARGE_EVENT_TYPES:
                charge = self._charge(refund["payment_intent"])
                if embed_refunds:
                    listed = [
                        copy.deepcopy(r)
                        for r in self.refunds.values()
                        if r["payment_intent"] == refund["payment_intent"]
                    ]
                    charge["refunds"] = {
                        "object": "list",
                        "data": listed,
                        "has_more": False,
                        "total_count": len(listed),
                        "url": f"/v1/charges/{charge['id']}/refunds",
                    }
                data = {"object": charge}
            else:
                data = {"object": refund}
            if previous is not None:
                data["previous_attributes"] = previous
        event = {
            "id": random_id("evt_", 24),
            "object": "event",
            "api_version": None,
            "created": int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }
        return json.dumps(event, indent=2)

    def _charge(self, payment_intent: str) -> dict[str, Any]:
        session = self._paid_session_of(payment_intent)
        assert session is not None
        refunded = self.refunded_amount(payment_intent)
        return {
            "id": "ch_" + payment_intent[3:],
            "object": "charge",
            "amount": session["amount_total"],
            "amount_captured": session["amount_total"],
            "amount_refunded": refunded,
            "captured": True,
            "currency": session["currency"],
            "livemode": False,
            "paid": True,
            "payment_intent": payment_intent,
            "refunded": refunded >= session["amount_total"],
            "status": "succeeded",
        }

    def deliver(self, url: str, payload: str, secret: str) -> int:
        """POST a webhook body to ``url`` signed with ``secret``, as Stripe delivers an event;
        returns the HTTP status (Stripe retries anything but 2xx)."""
        import httpx

        response = httpx.post(
            url,
            content=payload,
            headers={"Stripe-Signature": self.sign(payload, secret)},
            timeout=10,
        )
        return response.status_code

    @staticmethod
    def sign(payload: str | bytes, secret: str, timestamp: int | None = None) -> str:
        """The ``Stripe-Signature`` header value, computed as ``stripe.WebhookSignature`` does:
        ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed with secret>``."""
        text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        mac = hmac.new(secret.encode("utf-8"), f"{stamp}.{text}".encode(), hashlib.sha256)
        return f"t={stamp},v1={mac.hexdigest()}"

    # -- provider shape -----------------------------------------------------------------------

    def _error(
        self, status: int, message: str, *, type: str = "invalid_request_error", **extra: Any
    ) -> Response:
        error = {"message": message, "type": type, **{k: v for k, v in extra.items() if v}}
        if error.get("code"):
            error["doc_url"] = (
                f"https://stripe.com/docs/error-codes/{error['code'].replace('_', '-')}"
            )
        return json_response(status, {"error": error})

    def _fault_body(self, status: int) -> Any:
        if status == 402:
            return {
                "error": {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "message": "Your card was declined.",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                }
            }
        if status >= 500:
            return {"error": {"type": "api_error", "message": "An unknown error occurred"}}
        return {"error": {"type": "invalid_request_error", "message": "Injected failure"}}

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        auth = request.header("Authorization") or ""
        if not auth:
            return self._error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "***"
            return self._error(401, f"Invalid API Key provided: {masked}")
        version = request.header("Stripe-Version")
        if version is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", version):
            return self._error(400, f"Invalid Stripe API version: {version}")
        return None

    def _decorate(self, request: RecordedRequest, response: Response) -> Response:
        response.headers.setdefault("Request-Id", random_id("req_", 14))
        if request.header("Stripe-Version"):
            response.headers["Stripe-Version"] = request.header("Stripe-Version") or ""
        if request.header("Idempotency-Key") and request.method == "POST":
            response.headers["Idempotency-Key"] = request.header("Idempotency-Key") or ""
        return response

    def _params(self, request: RecordedRequest, schema: dict[str, Any]) -> dict[str, Any]:
        if request.query:
            raise StripeError(f"Received unknown parameter: {request.query.split('=')[0]}")
        content_type = request.header("Content-Type") or ""
        if request.body and not content_type.startswith("application/x-www-form-urlencoded"):
            raise StripeError(f"Invalid request: unsupported Content-Type {content_type}.")
        return parse_form(request.text, schema)

    def _idempotent(self, request: RecordedRequest, produce: Any) -> Response:
        key = request.header("Idempotency-Key")
        if not key:
            return produce()
        if len(key) > 255:
            return self._error(400, "Idempotency-Key must be at most 255 characters long.")
        path = urlsplit(request.path).path
        fingerprint = (request.method, path, tuple(sorted(request.form())))
        with self._lock:
            if key in self._idempotency:
                stored_fingerprint, stored = self._idempotency[key]
                if stored_fingerprint[:2] != fingerprint[:2]:
                    return self._error(
                        400,
                        "Keys for idempotent requests can only be used for the same endpoint "
                        f"they were first used for ('{stored_fingerprint[1]}' vs '{path}'). Try "
                        f"using a key other than '{key}' if you meant to execute a different "
                        "request.",
                        type="idempotency_error",
                    )
                if stored_fingerprint != fingerprint:
                    return self._error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        type="idempotency_error",
                    )
                headers = {k: v for k, v in stored.headers.items() if k != "Request-Id"}
                headers["Idempotent-Replayed"] = "true"
                return Response(stored.status, stored.body, headers)
            response = produce()
            if 200 <= response.status < 300:
                original = random_id("req_", 14)
                response.headers.update({"Request-Id": original, "Original-Request": original})
                self._idempotency[key] = (fingerprint, response)
            return response

    # -- endpoints ----------------------------------------------------------------------------

    def _create(self, request: RecordedRequest) -> Response:
        try:
            params = self._params(request, _SCHEMA)
        except StripeError as exc:
            return self._error(400, exc.message, param=exc.param, code=exc.code)
        return self._idempotent(request, lambda: self._create_session(request, params))

    def _create_session(self, request: RecordedRequest, params: dict[str, Any]) -> Response:
        try:
            session, lines = self._validated_session(params)
        except StripeError as exc:
            return self._error(400, exc.message, param=exc.param, code=exc.code)
        with self._lock:
            self.sessions[session["id"]] = session
            self.line_items[session["id"]] = lines
            self.payment_intent_metadata[session["id"]] = params.get("payment_intent_data", {}).get(
                "metadata", {}
            )
            self._versions[session["id"]] = request.header("Stripe-Version")
            return json_response(200, session)

    def _validated_session(self, p: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        mode = _require(p, "mode")
        if mode != "payment":
            if mode in ("setup", "subscription"):
                raise StripeError("fake_stripe models only mode=payment.", "mode")
            raise StripeError(
                "Invalid mode: must be one of payment, setup, or subscription", "mode"
            )
        _check_url(_require(p, "success_url"), "success_url")
        if "cancel_url" in p:
            _check_url(p["cancel_url"], "cancel_url")
        if "customer_email" in p and not _EMAIL.match(p["customer_email"]):
            raise StripeError(f"Invalid email address: {p['customer_email']}", "customer_email")
        if len(p.get("client_reference_id", "")) > 200:
            raise StripeError(
                "client_reference_id is at most 200 characters.", "client_reference_id"
            )
        items = _require(p, "line_items")
        if len(items) > 100:
            raise StripeError("A Checkout Session has at most 100 line items.", "line_items")
        now = int(time.time())
        lines, currencies = [], set()
        for i, item in enumerate(items):
            path = f"line_items[{i}]"
            price = _require(item, "price_data", path)
            quantity = _require(item, "quantity", path)
            currency = _require(price, "currency", f"{path}[price_data]").lower()
            unit = _require(price, "unit_amount", f"{path}[price_data]")
            name = _require(
                _require(price, "product_data", f"{path}[price_data]"),
                "name",
                f"{path}[price_data][product_data]",
            )
            if quantity < 1:
                raise StripeError(
                    "This value must be greater than or equal to 1.", f"{path}[quantity]"
                )
            if unit < 0:
                raise StripeError(
                    "This value must be greater than or equal to 0.",
                    f"{path}[price_data][unit_amount]",
                )
            if currency not in _CURRENCIES:
                known = ", ".join(sorted(_CURRENCIES))
                raise StripeError(
                    f"Invalid currency: {currency}. Stripe currently supports these "
                    f"currencies: {known}",
                    f"{path}[price_data][currency]",
                )
            currencies.add(currency)
            lines.append(
                {
                    "id": random_id("li_", 24),
                    "object": "item",
                    "amount_discount": 0,
                    "amount_subtotal": unit * quantity,
                    "amount_tax": 0,
                    "amount_total": unit * quantity,
                    "currency": currency,
                    "description": name,
                    "price": {"object": "price", "currency": currency, "unit_amount": unit},
                    "quantity": quantity,
                }
            )
        if "currency" in p:
            currencies.add(p["currency"].lower())
        if len(currencies) != 1:
            raise StripeError("All line items must use the same currency.", "line_items")
        currency = currencies.pop()
        total = sum(line["amount_total"] for line in lines)
        step = _MULTIPLE_OF.get(currency, 1)
        for i, line in enumerate(lines):
            unit = line["price"]["unit_amount"]
            _check_step(currency, unit, step, f"line_items[{i}][price_data][unit_amount]")
        _check_step(currency, total, step, "line_items")
        if total < _MINIMUM.get(currency, 1):
            raise StripeError(
                "The Checkout Session's total amount due must add up to at least "
                f"{_MINIMUM.get(currency, 1)} (minor units) {currency}",
                "line_items",
                "amount_too_small",
            )
        if total > 99_999_999:
            raise StripeError(
                "The total amount must be at most 99999999.", "line_items", "amount_too_large"
            )
        expires_at = p.get("expires_at", now + 86_400)
        if not now + 1_800 - 60 <= expires_at <= now + 86_400 + 60:
            raise StripeError(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours after "
                "Checkout Session creation.",
                "expires_at",
            )
        session_id = random_id("cs_test_a1", 58)
        return self._session_object(session_id, p, currency, total, now, expires_at), lines

    @staticmethod
    def _session_object(
        session_id: str, p: dict[str, Any], currency: str, total: int, now: int, expires_at: int
    ) -> dict[str, Any]:
        """Shaped like Stripe's checkout.session (see shared/reference/stripe), fresh and open."""
        session: dict[str, Any] = {"id": session_id, "object": "checkout.session"}
        session.update(dict.fromkeys(_NULL_SESSION_FIELDS))
        email = p.get("customer_email")
        if email is not None:
            session["customer_details"] = _customer_details(email)
        null_text = dict.fromkeys(["after_submit", "shipping_address", "submit"])
        session.update(
            adaptive_pricing={"enabled": False},
            amount_subtotal=total,
            amount_total=total,
            automatic_tax={"enabled": False, "liability": None, "provider": None, "status": None},
            cancel_url=p.get("cancel_url"),
            client_reference_id=p.get("client_reference_id"),
            created=now,
            currency=currency,
            custom_fields=[],
            custom_text={**null_text, "terms_of_service_acceptance": None},
            customer_creation="if_required",
            customer_email=email,
            discounts=[],
            expires_at=expires_at,
            invoice_creation={"enabled": False, "invoice_data": None},
            livemode=False,
            metadata=p.get("metadata", {}),
            mode="payment",
            payment_method_collection="if_required",
            payment_method_options={},
            payment_method_types=["card"],
            payment_status="unpaid",
            phone_number_collection={"enabled": False},
            shipping_options=[],
            status="open",
            success_url=p["success_url"],
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            ui_mode="hosted",
            url=f"https://checkout.stripe.test/c/pay/{session_id}",
        )
        return session

    def _retrieve(self, request: RecordedRequest, session_id: str) -> Response:
        if request.query:
            return self._error(400, f"Received unknown parameter: {request.query.split('=')[0]}")
        with self._lock:
            if session_id not in self.sessions:
                return self._missing(session_id)
            return json_response(200, self.sessions[session_id])

    def _expire(self, request: RecordedRequest, session_id: str) -> Response:
        try:
            self._params(request, {})
        except StripeError as exc:
            return self._error(400, exc.message, param=exc.param, code=exc.code)

        def expire() -> Response:
            with self._lock:
                session = self.sessions.get(session_id)
                if session is None:
                    return self._missing(session_id)
                if session["status"] != "open":
                    return self._error(
                        400,
                        "Only Checkout Sessions with a status of `open` can be expired; this "
                        f"one is `{session['status']}`.",
                    )
                session.update(status="expired", url=None)
                return json_response(200, session)

        return self._idempotent(request, expire)

    def _missing(self, session_id: str) -> Response:
        return self._error(
            404,
            f"No such checkout.session: '{session_id}'",
            param="session",
            code="resource_missing",
        )

    def _open_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        if session["status"] != "open":
            raise ValueError(f"{session_id} is {session['status']}, not open")
        return session

    # -- refunds ------------------------------------------------------------------------------
    # Like Stripe: a refund takes a succeeded PaymentIntent (or charge) and by default its whole
    # unrefunded amount; more than is left is refused, as is a fully refunded charge. The
    # session itself stays ``complete``/``paid`` after a refund, as at Stripe.

    def set_refund_status(self, refund_id: str, status: str) -> dict[str, Any]:
        """A pending refund settles (``succeeded``) or fails (``failed``, ``canceled``)."""
        if status not in ("pending", "succeeded", "failed", "canceled", "requires_action"):
            raise ValueError(f"not a Stripe refund status: {status}")
        with self._lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            if status == "failed":
                refund["failure_reason"] = "lost_or_stolen_card"
            return copy.deepcopy(refund)

    def refunded_amount(self, payment_intent: str) -> int:
        with self._lock:
            return sum(
                r["amount"]
                for r in self.refunds.values()
                if r["payment_intent"] == payment_intent
                and r["status"] not in ("failed", "canceled")
            )

    def _paid_session_of(self, payment_intent: str) -> dict[str, Any] | None:
        return next(
            (s for s in self.sessions.values() if s.get("payment_intent") == payment_intent), None
        )

    def _create_refund(self, request: RecordedRequest) -> Response:
        schema = {"payment_intent": _STR, "amount": _INT, "metadata": _META, "reason": _STR}
        try:
            params = self._params(request, schema)
        except StripeError as exc:
            return self._error(400, exc.message, param=exc.param, code=exc.code)
        return self._late(self._idempotent(request, lambda: self._new_refund(params)))

    def _new_refund(self, params: dict[str, Any]) -> Response:
        intent = params.get("payment_intent")
        if not intent:
            return self._error(
                400,
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
            )
        if params.get("reason") not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            return self._error(400, f"Invalid reason: {params['reason']}", param="reason")
        with self._lock:
            session = self._paid_session_of(intent)
            if session is None:
                return self._error(
                    404,
                    f"No such payment_intent: '{intent}'",
                    param="payment_intent",
                    code="resource_missing",
                )
            remaining = session["amount_total"] - self.refunded_amount(intent)
            charge = "ch_" + intent[3:]
            if remaining <= 0:
                return self._error(
                    400,
                    f"Charge {charge} has already been refunded.",
                    code="charge_already_refunded",
                )
            amount = params.get("amount", remaining)
            if amount < 1:
                return self._error(
                    400,
                    "Invalid positive integer",
                    param="amount",
                    code="parameter_invalid_integer",
                )
            if amount > remaining:
                return self._error(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                    f"({remaining})",
                    param="amount",
                )
            refund = {
                "id": random_id("re_", 24),
                "object": "refund",
                "amount": amount,
                "balance_transaction": random_id("txn_", 24),
                "charge": charge,
                "created": int(time.time()),
                "currency": session["currency"],
                "destination_details": {"card": {"type": "refund"}, "type": "card"},
                "metadata": params.get("metadata", {}),
                "payment_intent": intent,
                "reason": params.get("reason"),
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": self.refund_status,
                "transfer_reversal": None,
            }
            self.refunds[refund["id"]] = refund
            return json_response(200, refund)

    def _list_refunds(self, request: RecordedRequest) -> Response:
        """``GET /v1/refunds?payment_intent=pi_…``: a list object, newest first."""
        query = parse_qs(request.query)
        unknown = set(query) - {"payment_intent", "limit"}
        if unknown:
            return self._error(400, f"Received unknown parameter: {sorted(unknown)[0]}")
        intent = (query.get("payment_intent") or [None])[0]
        with self._lock:
            listed = [
                copy.deepcopy(r)
                for r in reversed(self.refunds.values())
                if intent is None or r["payment_intent"] == intent
            ]
        return json_response(
            200,
            {"object": "list", "data": listed, "has_more": False, "url": "/v1/refunds"},
        )

    def _retrieve_refund(self, request: RecordedRequest, refund_id: str) -> Response:
        with self._lock:
            if refund_id not in self.refunds:
                return self._error(
                    404, f"No such refund: '{refund_id}'", param="id", code="resource_missing"
                )
            return json_response(200, self.refunds[refund_id])
