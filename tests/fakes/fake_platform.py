"""A fake of the hosted platform, written only from its public documentation (as quoted in
issue 16) and the published field names of the objects (README / DESIGN "Fields") — never
from ``checkout_cli``'s server, which it does not import.

What the documentation says, and this fake does:

- every integration endpoint is ``POST /iapi/project/{project_id}/{service}/{endpoint}`` with
  the input object as the JSON body; reads are POSTs too. Nothing else is served: no GET, no
  ``/iapi/meta`` (404);
- project ids are numeric; another id is 404. Tokens are bearer tokens: ``wps_…`` (one
  project) and ``wpa_…`` (an account); anything else is 401;
- success is ``{"success": true, "result": …}``; a failure carries ``error_object {type, code,
  message, field?, recovery?}`` with 401/403/404/409/422, or 429 for the rate limit.
  ``answer_next_with_200`` makes a chosen failure come with HTTP 200 and ``success: false``,
  as the platform sometimes does; ``rate_limit_next(n)`` answers the next ``n`` requests 429
  with ``Retry-After: 1``;
- invoice checkout is refused (403) while ``allow_invoice_checkout`` is off;
- the catalog's ``bulk-upsert-products`` takes at most 500 items and reports per item
  (``created``/``updated``/``failed``) with ``summary.by_action`` and ``summary.by_error_type``;
  ``merge-cart`` abandons the source cart, its items merged into the target.
  ``refused_skus`` makes the bulk upsert fail those items (the rest are written).

State is in memory. Totals are the fake's own: subtotal = Σ unit price × quantity; shipping and
tax as given to ``set-customer`` (else 0).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.common import FakeProviderServer, RecordedRequest, Response, json_response

WPS_TOKEN = "wps_fake_project_token"
WPA_TOKEN = "wpa_fake_account_token"
PROJECT_ID = "12345"

_STATUS = {
    "auth": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "validation": 422,
    "rate_limit": 429,
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
OPEN_STATES = ("active", "payment_pending", "completable")
BULK_LIMIT = 500


class PlatformError(Exception):
    def __init__(self, type_: str, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.type, self.code, self.message, self.field = type_, code, message, field

    def error_object(self) -> dict[str, Any]:
        error = {"type": self.type, "code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return error


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _text(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise PlatformError("validation", "missing_field", f"{key} is required", key)
        return None
    if not isinstance(value, str):
        raise PlatformError("validation", "invalid_value", f"{key} must be text", key)
    return value


def _whole(body: dict[str, Any], key: str, default: int | None = None, low: int = 0) -> int:
    value = body.get(key, default)
    if value is None:
        raise PlatformError("validation", "missing_field", f"{key} is required", key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PlatformError(
            "validation", "invalid_value", f"{key} must be a whole number ≥ {low}", key
        )
    return value


class FakePlatform(FakeProviderServer):
    ROUTES = (("POST", r"/iapi/project/([^/]+)/([^/]+)/([^/]+)", "_endpoint"),)

    def __init__(self, *, projects: tuple[str, ...] = (PROJECT_ID,)) -> None:
        super().__init__()
        self.projects = projects
        self.tokens = {WPS_TOKEN: projects[0], WPA_TOKEN: None}  # None: every project
        self.allow_invoice_checkout = True
        self.products: dict[str, dict[str, Any]] = {}
        self.carts: dict[str, dict[str, Any]] = {}
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.orders: list[dict[str, Any]] = []
        self._rate_limited = 0
        self._retry_after = "1"
        self._http_200_failures: set[tuple[str, str]] = set()
        self._forced: dict[tuple[str, str], PlatformError] = {}
        self.refused_skus: set[str] = set()  # bulk-upsert-products fails these items
        self._state = threading.RLock()
        self._handlers: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("product-catalog", "list-products"): self.list_products,
            ("product-catalog", "get-product"): self.get_product,
            ("product-catalog", "create-product"): self.create_product,
            ("product-catalog", "update-product"): self.update_product,
            ("product-catalog", "delete-product"): self.delete_product,
            ("product-catalog", "search-products"): self.search_products,
            ("product-catalog", "bulk-upsert-products"): self.bulk_upsert_products,
            ("shopping-cart", "add-item"): self.add_item,
            ("shopping-cart", "update-item"): self.update_item,
            ("shopping-cart", "remove-item"): self.remove_item,
            ("shopping-cart", "get-cart"): self.get_cart,
            ("shopping-cart", "clear-cart"): self.clear_cart,
            ("shopping-cart", "merge-cart"): self.merge_cart,
            ("shopping-cart", "link-visitor"): self.link_visitor,
            ("checkout-flow", "initiate-checkout"): self.initiate_checkout,
            ("checkout-flow", "set-customer"): self.set_customer,
            ("checkout-flow", "create-payment"): self.create_payment,
            ("checkout-flow", "set-payment"): self.set_payment,
            ("checkout-flow", "get-checkout-status"): self.get_checkout_status,
            ("checkout-flow", "set-line-meta"): self.set_line_meta,
            ("checkout-flow", "complete-checkout"): self.complete_checkout,
            ("checkout-flow", "cancel-checkout"): self.cancel_checkout,
            ("order-management", "list-orders"): self.list_orders,
            ("order-management", "get-order"): self.get_order,
        }

    # -- switches ---------------------------------------------------------------------------

    def rate_limit_next(self, times: int, retry_after: str = "1") -> None:
        """The next ``times`` requests are answered 429 with ``Retry-After: 1`` (or as given)."""
        with self._state:
            self._rate_limited += times
            self._retry_after = retry_after

    def answer_next_with_200(self, service: str, endpoint: str) -> None:
        """The next failure of SERVICE/ENDPOINT comes as HTTP 200 with ``success: false``."""
        with self._state:
            self._http_200_failures.add((service, endpoint))

    def fail_next(self, service: str, endpoint: str, error: PlatformError) -> None:
        """The next call of SERVICE/ENDPOINT fails with ``error`` (whatever its body)."""
        with self._state:
            self._forced[service, endpoint] = error

    def calls(self, service: str, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(f"/{service}/{endpoint}")]

    # -- the envelope -----------------------------------------------------------------------

    def _error(self, status: int, message: str) -> Response:
        code = "endpoint_not_found" if status == 404 else "error"
        body = {"success": False, "error_object": {"type": "not_found", "code": code}}
        body["error_object"]["message"] = message
        return json_response(status, body)

    def _authenticate(self, request: RecordedRequest) -> Response | None:
        header = request.header("Authorization") or ""
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            error = PlatformError(
                "auth", "invalid_token", "the token is missing, expired or unknown"
            )
            return json_response(401, {"success": False, "error_object": error.error_object()})
        return None

    def _failure(self, error: PlatformError, service: str, endpoint: str) -> Response:
        with self._state:
            as_200 = (service, endpoint) in self._http_200_failures
            self._http_200_failures.discard((service, endpoint))
        status = 200 if as_200 else _STATUS.get(error.type, 422)
        return json_response(status, {"success": False, "error_object": error.error_object()})

    def _endpoint(
        self, request: RecordedRequest, project: str, service: str, endpoint: str
    ) -> Response:
        with self._state:
            if self._rate_limited > 0:
                self._rate_limited -= 1
                error = PlatformError("rate_limit", "rate_limited", "30 requests per minute")
                body = {"success": False, "error_object": error.error_object()}
                return json_response(429, body, **{"Retry-After": self._retry_after})
        token = (request.header("Authorization") or "").removeprefix("Bearer ").strip()
        if not project.isdigit() or project not in self.projects:
            error = PlatformError("not_found", "project_not_found", f"no project {project}")
            return self._failure(error, service, endpoint)
        if self.tokens[token] not in (None, project):
            error = PlatformError("forbidden", "project_not_owned", "not this token's project")
            return self._failure(error, service, endpoint)
        handler = self._handlers.get((service, endpoint))
        if handler is None:
            return self._error(404, f"no endpoint {service}/{endpoint}")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return self._failure(
                PlatformError("validation", "invalid_json", "bad JSON"), service, endpoint
            )
        try:
            if not isinstance(body, dict):
                raise PlatformError("validation", "invalid_body", "the body is an object")
            with self._state:
                forced = self._forced.pop((service, endpoint), None)
                if forced is not None:
                    raise forced
                result = handler(body)
        except PlatformError as error:
            return self._failure(error, service, endpoint)
        return json_response(200, {"success": True, "result": result})

    # -- catalog ----------------------------------------------------------------------------

    def _product(self, sku: str | None) -> dict[str, Any]:
        product = self.products.get(sku or "")
        if product is None:
            raise PlatformError("not_found", "product_not_found", f"no product {sku}", "sku")
        return product

    @staticmethod
    def _product_fields(body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        product = dict(base)
        if "name" in body or "name" not in base:
            product["name"] = _text(body, "name")
        if "price_cents" in body or "price_cents" not in base:
            product["price_cents"] = _whole(body, "price_cents")
        product["currency"] = body.get("currency") or base.get("currency") or "EUR"
        if "stock" in body:
            product["stock"] = None if body["stock"] is None else _whole(body, "stock")
        product.setdefault("stock", None)
        for key, default in (("allow_backorder", False), ("meta_defs", []), ("config", {})):
            product[key] = body.get(key, base.get(key, default))
        product.setdefault("status", "active")
        return product

    def list_products(self, body: dict[str, Any]) -> dict[str, Any]:
        words = (body.get("query") or "").lower().split()
        rows = [
            p
            for p in self.products.values()
            if all(w in p["sku"].lower() or w in p["name"].lower() for w in words)
            and (body.get("include_archived") or p["status"] == "active")
        ]
        return self._page(sorted(rows, key=lambda p: p["sku"]), body, "products")

    @staticmethod
    def _page(rows: list[dict[str, Any]], body: dict[str, Any], key: str) -> dict[str, Any]:
        limit, offset = _whole(body, "limit", 50), _whole(body, "offset", 0)
        return {
            key: rows[offset : offset + limit],
            "total": len(rows),
            "limit": limit,
            "offset": offset,
        }

    def get_product(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._product(_text(body, "sku"))

    def create_product(self, body: dict[str, Any]) -> dict[str, Any]:
        sku = _text(body, "sku")
        assert sku is not None
        if sku in self.products:
            raise PlatformError("conflict", "product_exists", f"{sku} exists", "sku")
        self.products[sku] = {"sku": sku, **self._product_fields(body, {})}
        return self.products[sku]

    def update_product(self, body: dict[str, Any]) -> dict[str, Any]:
        product = self._product(_text(body, "sku"))
        product.update(self._product_fields(body, product))
        return product

    def delete_product(self, body: dict[str, Any]) -> dict[str, Any]:
        product = self._product(_text(body, "sku"))
        ordered = any(i["product_sku"] == product["sku"] for o in self.orders for i in o["items"])
        if ordered:  # orders refer to it: archived, not removed
            product["status"] = "archived"
            return {"sku": product["sku"], "action": "archived"}
        del self.products[product["sku"]]
        return {"sku": product["sku"], "action": "deleted"}

    def search_products(self, body: dict[str, Any]) -> dict[str, Any]:
        _text(body, "query")
        return self.list_products(body)

    def bulk_upsert_products(self, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("products")
        if not isinstance(items, list):
            raise PlatformError("validation", "missing_field", "products is a list", "products")
        if len(items) > BULK_LIMIT:
            raise PlatformError(
                "validation", "too_many_items", f"at most {BULK_LIMIT} items a call", "products"
            )
        results: list[dict[str, Any]] = []
        by_action = {"created": 0, "updated": 0, "failed": 0}
        by_error_type: dict[str, int] = {}
        for index, item in enumerate(items):
            sku = item.get("sku") if isinstance(item, dict) else None
            try:
                if not isinstance(item, dict):
                    raise PlatformError("validation", "invalid_item", "an item is an object")
                _text(item, "sku")
                if sku in self.refused_skus:
                    raise PlatformError("conflict", "sku_locked", f"{sku} is locked", "sku")
                existing = self.products.get(sku or "")
                product = {"sku": sku, **self._product_fields(item, existing or {})}
                action = "updated" if existing else "created"
                self.products[product["sku"]] = product
                results.append({"index": index, "sku": sku, "status": action})
            except PlatformError as error:
                action = "failed"
                by_error_type[error.type] = by_error_type.get(error.type, 0) + 1
                results.append(
                    {"index": index, "sku": sku, "status": "failed", "error": error.error_object()}
                )
            by_action[action] += 1
        summary = {"total": len(items), "by_action": by_action, "by_error_type": by_error_type}
        return {"items": results, "summary": summary}

    # -- carts ------------------------------------------------------------------------------

    def _cart(self, token: str | None, field: str = "cart_token") -> dict[str, Any]:
        cart = self.carts.get(token or "")
        if cart is None:
            raise PlatformError("not_found", "cart_not_found", f"no cart {token}", field)
        return cart

    def _active_cart(self, token: str | None, field: str = "cart_token") -> dict[str, Any]:
        cart = self._cart(token, field)
        if cart["status"] != "active":
            raise PlatformError("conflict", "cart_not_active", f"the cart is {cart['status']}")
        return cart

    def _cart_view(self, cart: dict[str, Any]) -> dict[str, Any]:
        items = [
            {
                "product_sku": sku,
                "name": self.products[sku]["name"],
                "quantity": quantity,
                "unit_price_cents": self.products[sku]["price_cents"],
                "line_total_cents": self.products[sku]["price_cents"] * quantity,
            }
            for sku, quantity in cart["items"].items()
        ]
        view = {k: cart[k] for k in ("cart_token", "status", "currency", "visitor_id")}
        return view | {"items": items, "subtotal_cents": sum(i["line_total_cents"] for i in items)}

    def _check_stock(self, sku: str, quantity: int) -> None:
        product = self._product(sku)
        if product["status"] != "active":
            raise PlatformError("conflict", "product_archived", f"{sku} is archived", "sku")
        stock = product["stock"]
        if stock is not None and not product["allow_backorder"] and quantity > stock:
            raise PlatformError(
                "conflict", "insufficient_stock", f"only {stock} of {sku}", "quantity"
            )

    def add_item(self, body: dict[str, Any]) -> dict[str, Any]:
        sku, quantity = _text(body, "product_sku"), _whole(body, "quantity", 1, low=1)
        assert sku is not None
        self._product(sku)
        if body.get("cart_token"):
            cart = self._active_cart(body["cart_token"])
        else:
            currency = self.products[sku]["currency"]
            token = _token("cart")
            cart = {
                "cart_token": token,
                "status": "active",
                "currency": currency,
                "items": {},
                "visitor_id": None,
            }
        self._check_stock(sku, cart["items"].get(sku, 0) + quantity)
        self.carts[cart["cart_token"]] = cart
        cart["items"][sku] = cart["items"].get(sku, 0) + quantity
        return self._cart_view(cart)

    def update_item(self, body: dict[str, Any]) -> dict[str, Any]:
        cart = self._active_cart(_text(body, "cart_token"))
        sku, quantity = _text(body, "product_sku"), _whole(body, "quantity")
        if sku not in cart["items"]:
            raise PlatformError("not_found", "item_not_found", f"{sku} is not in the cart")
        if quantity == 0:
            del cart["items"][sku]
        else:
            self._check_stock(sku, quantity)
            cart["items"][sku] = quantity
        return self._cart_view(cart)

    def remove_item(self, body: dict[str, Any]) -> dict[str, Any]:
        cart = self._active_cart(_text(body, "cart_token"))
        sku = _text(body, "product_sku")
        if cart["items"].pop(sku or "", None) is None:
            raise PlatformError("not_found", "item_not_found", f"{sku} is not in the cart")
        return self._cart_view(cart)

    def get_cart(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._cart_view(self._cart(_text(body, "cart_token")))

    def clear_cart(self, body: dict[str, Any]) -> dict[str, Any]:
        cart = self._active_cart(_text(body, "cart_token"))
        cart["items"].clear()
        return self._cart_view(cart)

    def merge_cart(self, body: dict[str, Any]) -> dict[str, Any]:
        source = self._active_cart(_text(body, "source_cart_token"), "source_cart_token")
        target = self._active_cart(_text(body, "target_cart_token"), "target_cart_token")
        if source is target:
            raise PlatformError("conflict", "same_cart", "a cart cannot merge into itself")
        for sku, quantity in source["items"].items():
            target["items"][sku] = target["items"].get(sku, 0) + quantity
        source["status"] = "abandoned"
        return self._cart_view(target)

    def link_visitor(self, body: dict[str, Any]) -> dict[str, Any]:
        cart = self._active_cart(_text(body, "cart_token"))
        cart["visitor_id"] = _text(body, "visitor_id")
        return self._cart_view(cart)

    # -- the checkout flow ------------------------------------------------------------------

    def _checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        token = _text(body, "checkout_token")
        checkout = self.checkouts.get(token or "")
        if checkout is None:
            raise PlatformError(
                "not_found", "checkout_not_found", f"no checkout {token}", "checkout_token"
            )
        return checkout

    @staticmethod
    def _open(checkout: dict[str, Any]) -> None:
        if checkout["status"] not in OPEN_STATES:
            raise PlatformError(
                "conflict", "checkout_not_active", f"the checkout is {checkout['status']}"
            )

    @staticmethod
    def _totals(checkout: dict[str, Any]) -> None:
        subtotal = sum(line["line_total_cents"] for line in checkout["items"])
        shipping, tax = checkout["shipping_cents"], checkout["tax_cents"]
        checkout["totals"] = {
            "subtotal_cents": subtotal,
            "shipping_cents": shipping,
            "tax_cents": tax,
            "total_cents": subtotal + shipping + tax,
        }
        checkout["updated_at"] = _now()

    @staticmethod
    def _view(checkout: dict[str, Any], **extra: Any) -> dict[str, Any]:
        hidden = ("shipping_cents", "tax_cents")
        return {k: v for k, v in checkout.items() if k not in hidden} | extra

    def initiate_checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        cart = self._active_cart(_text(body, "cart_token"))
        for checkout in self.checkouts.values():
            if checkout["cart_token"] == cart["cart_token"] and checkout["status"] in OPEN_STATES:
                return self._view(checkout, reused=True, warnings=[])
        if not cart["items"]:
            raise PlatformError("conflict", "cart_empty", "the cart is empty", "cart_token")
        items = [
            {"line_id": n, "meta": {}, "tax_cents": 0}
            | {k: v for k, v in line.items() if k != "name"}
            | {"name": line["name"]}
            for n, line in enumerate(self._cart_view(cart)["items"], start=1)
        ]
        now = _now()
        checkout = {
            "checkout_token": _token("chk"),
            "status": "active",
            "cart_token": cart["cart_token"],
            "currency": cart["currency"],
            "items": items,
            "customer": None,
            "shipping_address": None,
            "billing_address": None,
            "payment": None,
            "order": None,
            "shipping_cents": 0,
            "tax_cents": 0,
            "created_at": now,
            "updated_at": now,
            "expires_at": now,
        }
        self._totals(checkout)
        self.checkouts[checkout["checkout_token"]] = checkout
        return self._view(checkout, reused=False, warnings=[])

    @staticmethod
    def _address(value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise PlatformError("validation", "missing_field", f"{field} is required", field)
        address = {k: value.get(k) for k in ("line1", "line2", "postal_code", "city", "region")}
        for key in ("line1", "postal_code", "city"):
            _text(value, key)
        country = value.get("country")
        if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}", country):
            raise PlatformError(
                "validation", "invalid_country", "a two-letter country", f"{field}.country"
            )
        return address | {"country": country}

    def set_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        checkout = self._checkout(body)
        self._open(checkout)
        customer = body.get("customer")
        if not isinstance(customer, dict):
            raise PlatformError("validation", "missing_field", "customer is required", "customer")
        email = customer.get("email")
        if not isinstance(email, str) or not _EMAIL.match(email):
            raise PlatformError("validation", "invalid_email", "not an email", "customer.email")
        _text(customer, "name")
        shipping = self._address(body.get("shipping_address"), "shipping_address")
        billing = body.get("billing_address")
        checkout["customer"] = {k: customer.get(k) for k in ("email", "name", "phone", "company")}
        checkout["shipping_address"] = shipping
        checkout["billing_address"] = (
            self._address(billing, "billing_address") if billing else dict(shipping)
        )
        checkout["shipping_cents"] = _whole(body, "shipping_cents", 0)
        checkout["tax_cents"] = _whole(body, "tax_cents", 0)
        self._totals(checkout)
        return self._view(checkout)

    def create_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        checkout = self._checkout(body)
        self._open(checkout)
        provider = _text(body, "provider")
        if provider != "invoice":
            raise PlatformError(
                "validation", "provider_not_supported", f"{provider}: not here", "provider"
            )
        if not self.allow_invoice_checkout:
            raise PlatformError(
                "forbidden", "invoice_checkout_not_allowed", "invoice checkout is off", "provider"
            )
        if checkout["customer"] is None:
            raise PlatformError("conflict", "customer_missing", "set the customer first")
        checkout["payment"] = {
            "provider": "invoice",
            "provider_payment_id": None,
            "status": "unpaid",
            "redirect_url": None,
            "amount_cents": checkout["totals"]["total_cents"],
            "reference": None,
        }
        checkout["status"] = "completable"
        checkout["updated_at"] = _now()
        return self._view(checkout)

    def set_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        checkout = self._checkout(body)
        self._open(checkout)
        status = _text(body, "status")
        if status not in ("paid", "pending"):
            raise PlatformError("validation", "invalid_value", "paid or pending", "status")
        total = checkout["totals"]["total_cents"]
        amount = _whole(body, "amount_cents", total)
        if amount != total:
            raise PlatformError("conflict", "amount_mismatch", f"the total is {total}")
        checkout["payment"] = {
            "provider": _text(body, "provider"),
            "provider_payment_id": None,
            "status": status,
            "redirect_url": None,
            "amount_cents": amount,
            "reference": _text(body, "reference"),
        }
        checkout["status"] = "completable" if status == "paid" else "payment_pending"
        return self._view(checkout)

    def get_checkout_status(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._view(self._checkout(body))

    def set_line_meta(self, body: dict[str, Any]) -> dict[str, Any]:
        checkout = self._checkout(body)
        self._open(checkout)
        sku, def_key = _text(body, "product_sku"), _text(body, "def_key")
        values = body.get("values")
        if not isinstance(values, dict):
            raise PlatformError("validation", "missing_field", "values is an object", "values")
        lines = [line for line in checkout["items"] if line["product_sku"] == sku]
        if body.get("line_id") is not None:
            lines = [line for line in lines if line["line_id"] == body["line_id"]]
        if not lines:
            raise PlatformError("not_found", "line_not_found", f"no line {sku}", "product_sku")
        lines[0]["meta"][def_key] = values
        return self._view(checkout)

    def complete_checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        checkout = self._checkout(body)
        if checkout["status"] == "completed":
            return self._view(checkout, already_completed=True)
        if checkout["status"] != "completable":
            raise PlatformError(
                "conflict", "checkout_not_completable", f"the checkout is {checkout['status']}"
            )
        for line in checkout["items"]:
            self._check_stock(line["product_sku"], line["quantity"])
        for line in checkout["items"]:
            product = self.products[line["product_sku"]]
            if product["stock"] is not None:
                product["stock"] -= line["quantity"]
        paid = checkout["payment"]["status"] == "paid"
        number = f"{time.gmtime().tm_year}-{len(self.orders) + 1:06d}"
        order = {
            "order_id": _token("ord"),
            "order_number": number,
            "checkout_token": checkout["checkout_token"],
            "status": "paid" if paid else "pending",
            "payment_status": "paid" if paid else "unpaid",
            "currency": checkout["currency"],
            **{k: checkout[k] for k in ("customer", "shipping_address", "billing_address")},
            "items": [dict(line) for line in checkout["items"]],
            "totals": dict(checkout["totals"]),
            "created_at": _now(),
        }
        self.orders.append(order)
        self.carts[checkout["cart_token"]]["status"] = "converted"
        checkout["status"] = "completed"
        checkout["order"] = {
            k: order[k] for k in ("order_id", "order_number", "status", "payment_status")
        }
        return self._view(checkout, already_completed=False)

    def cancel_checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        checkout = self._checkout(body)
        self._open(checkout)
        checkout["status"] = "cancelled"
        return self._view(checkout)

    # -- orders -----------------------------------------------------------------------------

    def list_orders(self, body: dict[str, Any]) -> dict[str, Any]:
        rows = [
            o
            for o in reversed(self.orders)
            if (not body.get("status") or o["status"] == body["status"])
            and (not body.get("email") or (o["customer"] or {}).get("email") == body["email"])
        ]
        return self._page(rows, body, "orders")

    def get_order(self, body: dict[str, Any]) -> dict[str, Any]:
        wanted = _text(body, "order_id")
        for order in self.orders:
            if wanted in (order["order_id"], order["order_number"]):
                return order
        raise PlatformError("not_found", "order_not_found", f"no order {wanted}", "order_id")
