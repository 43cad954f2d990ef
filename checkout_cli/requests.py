"""Every endpoint's request, as a pydantic model (``schema.Request``); the registry
(``endpoints.py``) names one per endpoint and the handlers take it typed.

An optional field is ``None`` when the caller left it out (or sent null): a handler reads
``body.field`` and applies its own default.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from checkout_cli.money import MAX_AMOUNT_CENTS
from checkout_cli.schema import (
    NON_SPACE,
    AnyObject,
    AnyValue,
    Cents,
    Choice,
    Country,
    Currency,
    Email,
    Flag,
    Request,
    Text,
    Whole,
)

TOKEN_PATTERN = r"[A-Za-z0-9_\-]+"
Token = Annotated[
    str,
    Text(
        80,
        pattern=TOKEN_PATTERN,
        code="invalid_token_format",
        description="cart token",
        kind="cart",
    ),
]
CheckoutToken = Annotated[
    str,
    Text(
        80,
        pattern=TOKEN_PATTERN,
        code="invalid_token_format",
        description="checkout token (chk_…)",
        kind="checkout",
    ),
]
Sku = Annotated[
    str,
    Text(
        64,
        pattern=r"[A-Za-z0-9][A-Za-z0-9._\-]*",
        code="invalid_sku",
        description="product SKU",
        kind="sku",
    ),
]
Quantity = Annotated[
    int, Whole(1, 9999, code="invalid_quantity", description="quantity, 1 to 9999")
]
# A batch's own name for an order: one order per reference per store.
ExternalReference = Annotated[
    str,
    Text(
        100,
        pattern=r"[A-Za-z0-9][A-Za-z0-9._:/\-]*",
        code="invalid_reference",
        description="the order's reference in the caller's own system (unique per store)",
    ),
]
SmokeRunId = Annotated[
    str,
    Text(
        12,
        pattern=r"[0-9a-f]{12}",
        code="invalid_run_id",
        description="smoke run id, 12 hex digits",
    ),
]
DefKey = Annotated[
    str,
    Text(64, pattern=r"[a-z][a-z0-9_]*", code="invalid_def_key", description="meta definition key"),
]


def _url(description: str) -> Any:
    return Text(
        2000,
        pattern=rf"https?://{NON_SPACE}+",
        code="invalid_url",
        description=description,
        kind="url",
    )


CHECKOUT_STATES = (
    "active",
    "payment_pending",
    "completable",
    "completed",
    "cancelled",
    "expired",
)


class OrderState(enum.StrEnum):
    """An order's status (the CLI's ``--status`` choices are these members)."""

    pending = "pending"  # waiting for (some of) its money: an invoice order
    paid = "paid"
    cancelled = "cancelled"
    completed = "completed"  # paid and every line shipped


ORDER_PAYMENT_STATES = ("unpaid", "partially_paid", "paid", "partially_refunded", "refunded")
FULFILMENT_STATES = ("unfulfilled", "partially_fulfilled", "fulfilled")
# Where an order's refund stands: recorded before the provider call (creating), accepted and
# not settled (pending), settled (succeeded), or refused (failed).
REFUND_STATES = ("creating", "pending", "succeeded", "failed")


ORDER_STATES = tuple(OrderState)


class Provider(enum.StrEnum):
    """A payment provider create-payment takes (the CLI's ``--provider`` choices)."""

    stripe = "stripe"
    mollie = "mollie"
    invoice = "invoice"


PROVIDERS = tuple(Provider)
SCOPES = ("read", "operate", "admin")
MAX_LIST_LIMIT = 10_000
OlderThan = Annotated[int, Whole(0, 10**7, description="minutes without activity")]


class Page(Request):
    """Every list endpoint takes a page and answers with its rows and ``total``, ``limit``,
    ``offset``; the default limit is each endpoint's own."""

    limit: Annotated[int, Whole(1, MAX_LIST_LIMIT, description="at most this many rows")] | None = (
        None
    )
    offset: Annotated[int, Whole(0, 10**9, description="skip this many rows first")] | None = None


class Customer(Request):
    email: Annotated[str, Email("customer's email address")]
    name: Annotated[str, Text(200, description="customer's full name")]
    phone: (
        Annotated[
            str,
            Text(
                40,
                pattern=r"[0-9+()\-. /]{3,40}",
                code="invalid_phone",
                description="phone number",
                kind="phone",
            ),
        ]
        | None
    ) = None
    company: Annotated[str, Text(200, description="company name")] | None = None


class Address(Request):
    line1: Annotated[str, Text(200, description="street and number")]
    line2: Annotated[str, Text(200, description="second line")] | None = None
    postal_code: Annotated[str, Text(20, description="postal code")]
    city: Annotated[str, Text(100, description="city")]
    region: Annotated[str, Text(100, description="region or state")] | None = None
    country: Annotated[str, Country()]


# checkout-flow


class InitiateCheckout(Request):
    cart_token: Token
    external_reference: ExternalReference | None = None


class CheckoutRef(Request):
    """Requests that name only a checkout."""

    checkout_token: CheckoutToken


class SetCustomer(Request):
    checkout_token: CheckoutToken
    customer: Customer
    shipping_address: Address
    billing_address: Address | None = None
    shipping_cents: Annotated[int, Cents("shipping in minor units")] | None = None
    tax_cents: (
        Annotated[int, Cents("total tax in minor units; default: configured rates")] | None
    ) = None


class CreatePayment(Request):
    checkout_token: CheckoutToken
    provider: Annotated[
        str, Choice(PROVIDERS, code="unknown_provider", description="payment provider")
    ]
    redirect_url: (
        Annotated[str, _url("where the provider sends the customer after paying")] | None
    ) = None
    webhook_url: Annotated[str, _url("where the provider reports payment changes")] | None = None
    new: Annotated[bool, Flag("replace an open payment (the customer lost the link)")] | None = None


class SetPayment(Request):
    checkout_token: CheckoutToken
    provider: Annotated[
        str,
        Text(
            40,
            pattern=r"[a-z0-9_\-]+",
            code="invalid_provider",
            description="who took the payment, e.g. bank, pos, paypal",
        ),
    ]
    reference: Annotated[str, Text(200, description="the payment's reference at that provider")]
    status: Annotated[
        str,
        Choice(("paid", "pending"), code="invalid_payment_status", description="payment status"),
    ]
    amount_cents: (
        Annotated[int, Cents("amount in minor units (default: the checkout total)")] | None
    ) = None
    force: Annotated[bool, Flag("accept an amount that differs from the total")] | None = None


LineNumber = Annotated[
    int, Whole(1, 10000, description="line number, when the SKU is on several lines")
]


class SetLineMeta(Request):
    checkout_token: CheckoutToken
    product_sku: Sku
    def_key: DefKey
    values: Annotated[dict[str, Any], AnyObject('field values, e.g. {"right_sphere": "-1.25"}')]
    line_id: LineNumber | None = None


ForceCancel = Annotated[
    bool,
    Flag(
        "cancel a paid checkout too: a Stripe/Mollie payment is refunded in full first; one "
        "linked by hand is not returned (say so to the customer)"
    ),
]


class CancelCheckout(Request):
    checkout_token: CheckoutToken
    reason: Annotated[str, Text(500)] | None = None
    force: ForceCancel | None = None


# shopping-cart


class AddItem(Request):
    cart_token: Token | None = None
    product_sku: Sku
    quantity: Quantity


class UpdateItem(Request):
    cart_token: Token
    product_sku: Sku
    quantity: Annotated[
        int, Whole(0, 9999, code="invalid_quantity", description="0 removes the line")
    ]


class CartLine(Request):
    cart_token: Token
    product_sku: Sku


class CartRef(Request):
    cart_token: Token


# product-catalog


class ListProducts(Page):
    query: Annotated[str, Text(100)] | None = None
    include_archived: Annotated[bool, Flag()] | None = None


class ProductRef(Request):
    sku: Sku


class MetaDefRef(Request):
    def_key: Annotated[str, Text(64)]
    required: Annotated[bool, Flag()] | None = None


Stock = Annotated[int, Whole(0, 10**9, code="invalid_stock", description="units in stock")]


class UpsertProduct(Request):
    sku: Sku
    name: Annotated[str, Text(200)]
    price_cents: Annotated[int, Cents("unit price in minor units, tax excluded")]
    currency: Annotated[str, Currency()] | None = None
    stock: Stock | None = None
    allow_backorder: Annotated[bool, Flag()] | None = None
    status: Annotated[str, Choice(("active", "archived"))] | None = None
    meta_defs: list[MetaDefRef] | None = None
    config: (
        Annotated[dict[str, Any], AnyObject("product configuration, e.g. lists used by line meta")]
        | None
    ) = None


class SetStock(Request):
    sku: Sku
    stock: Stock | None = None
    untracked: Annotated[bool, Flag("stop tracking stock")] | None = None


class GetMetaDefinition(Request):
    def_key: DefKey
    product_sku: Sku | None = None


class UpsertMetaDefinition(Request):
    def_key: DefKey
    title: Annotated[str, Text(200)] | None = None
    fields: list[Annotated[dict[str, Any], AnyObject()]]


# order-management


class ListOrders(Page):
    status: Annotated[str, Choice(ORDER_STATES, code="invalid_status")] | None = None
    payment_status: (
        Annotated[str, Choice(ORDER_PAYMENT_STATES, code="invalid_payment_status")] | None
    ) = None
    fulfilment_status: (
        Annotated[str, Choice(FULFILMENT_STATES, code="invalid_fulfilment_status")] | None
    ) = None
    overdue: (
        Annotated[
            bool,
            Flag("only orders with a balance due, not cancelled, past invoice_due_days old"),
        ]
        | None
    ) = None
    email: Annotated[str, Text(254)] | None = None
    reference: ExternalReference | None = None
    # The order a payment with this reference (a bank transaction id) was recorded for.
    payment_reference: (
        Annotated[
            str,
            Text(
                200,
                pattern=r"[A-Za-z0-9][A-Za-z0-9._:/+\-]*",
                code="invalid_reference",
                description="the order a payment with this reference was recorded for",
            ),
        ]
        | None
    ) = None


class OrderRef(Request):
    order_id: Annotated[str, Text(80, description="order id or order number (2026-000042)")]


class GetLineMeta(Request):
    order_id: Annotated[str, Text(80, description="order id or order number (2026-000042)")]
    def_key: DefKey | None = None


# checkout-admin


class NoFields(Request):
    """Requests with nothing to say."""


class ListOutbox(Page):
    status: (
        Annotated[
            str,
            Choice(
                ("queued", "sending", "sent", "failed"), description="only emails in this state"
            ),
        ]
        | None
    ) = None


RetryStuck = Annotated[
    bool, Flag("also retry emails cut off mid-send over 10 minutes ago (they may go out twice)")
]


class SendOutbox(Request):
    limit: Annotated[int, Whole(1, 10000)] | None = None
    retry_stuck: RetryStuck | None = None


Scope = Annotated[
    str,
    Choice(
        SCOPES,
        code="invalid_scope",
        description="read: get-*/list-*; operate (default): carts, checkouts, orders; "
        "admin: also catalog, settings, outbox, reconcile",
    ),
]


class CreateToken(Request):
    name: Annotated[str, Text(64, pattern=r"[A-Za-z0-9_.\-]+", code="invalid_name")]
    scope: Scope | None = None


class NamedToken(Request):
    name: Annotated[str, Text(64)]


NearToken = Annotated[
    str,
    Text(
        80,
        pattern=TOKEN_PATTERN,
        code="invalid_token_format",
        description="only tokens within one typo of this one (case ignored)",
    ),
]


class ListCheckouts(Page):
    status: (
        Annotated[
            str,
            Choice(
                CHECKOUT_STATES, code="invalid_status", description="only checkouts in this state"
            ),
        ]
        | None
    ) = None
    stuck: Annotated[bool, Flag("only stuck checkouts")] | None = None
    older_than_minutes: OlderThan | None = None
    # "Did you mean": a read any caller who may list checkouts may make anyway.
    near: NearToken | None = None


class InspectCheckout(Request):
    checkout_token: CheckoutToken
    live: Annotated[bool, Flag("ask the payment provider (default true)")] | None = None
    older_than_minutes: OlderThan | None = None


class Reconcile(Request):
    dry_run: Annotated[bool, Flag("only report what would change")] | None = None


class RefundPayment(Request):
    checkout_token: CheckoutToken
    provider_payment_id: Annotated[
        str,
        Text(
            255,
            pattern=r"[A-Za-z0-9_]+",
            code="invalid_payment_id",
            description="the provider's payment id (cs_…, tr_…)",
        ),
    ]
    reason: Annotated[str, Text(500)] | None = None


class SmokeRun(Request):
    run_id: SmokeRunId


class SetSetting(Request):
    key: Annotated[str, Text(64)]
    value: Annotated[Any, AnyValue("the value, typed as the setting requires")]


class ImportSettings(Request):
    settings: Annotated[dict[str, Any], AnyObject('key → value, e.g. {"currency": "EUR"}')]


class SettingKey(Request):
    key: Annotated[str, Text(64)]


class SetVault(Request):
    name: Annotated[str, Text(64)]
    value: Annotated[str, Text(4096)]


class VaultName(Request):
    name: Annotated[str, Text(64)]


# --- order-management: record-payment ---


class PaymentMethod(enum.StrEnum):
    """How money reached the shop outside a payment provider (record-payment's ``--method``)."""

    bank_transfer = "bank_transfer"
    cash = "cash"
    card_terminal = "card_terminal"  # a card reader at the counter, outside Stripe/Mollie here
    cheque = "cheque"
    other = "other"


PAYMENT_METHODS = tuple(PaymentMethod)
# A bank transaction id, a receipt number: what makes one payment one (UNIQUE per store).
PaymentReference = Annotated[
    str,
    Text(
        200,
        pattern=r"[A-Za-z0-9][A-Za-z0-9._:/+\-]*",
        code="invalid_reference",
        description="the payment's own reference: a bank transaction id, a receipt number "
        "(one payment per reference per store)",
    ),
]
IsoDate = Annotated[
    str,
    Text(
        10,
        pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
        code="invalid_date",
        description="YYYY-MM-DD",
        kind="date",
    ),
]


class RecordPayment(Request):
    order_id: Annotated[str, Text(80, description="order id or order number (2026-000042)")]
    amount_cents: Annotated[
        int,
        Whole(
            1,
            MAX_AMOUNT_CENTS,
            code="invalid_amount",
            description="amount received, in minor units",
            kind="cents",
        ),
    ]
    method: Annotated[
        str, Choice(PAYMENT_METHODS, code="invalid_method", description="how it was paid")
    ]
    reference: PaymentReference
    currency: (
        Annotated[str, Currency("ISO 4217 code (default: the order's; another is refused)")] | None
    ) = None
    paid_on: IsoDate | None = None
    force: (
        Annotated[bool, Flag("record more than the balance due (an overpayment to settle)")] | None
    ) = None
    note: Annotated[str, Text(500)] | None = None


# --- order-management: refund-order, cancel-order ---


OrderKey = Annotated[str, Text(80, description="order id or order number (2026-000042)")]


class RefundLine(Request):
    product_sku: Sku
    quantity: Quantity


class RefundOrder(Request):
    order_id: OrderKey
    # Neither: everything still refundable. Both: refused (one or the other).
    amount_cents: (
        Annotated[
            int,
            Whole(
                1,
                MAX_AMOUNT_CENTS,
                code="invalid_amount",
                description="refund this amount, in minor units (at least 1)",
                kind="cents",
            ),
        ]
        | None
    ) = None
    lines: list[RefundLine] | None = None
    restock: Annotated[bool, Flag("put the refunded lines back in stock")] | None = None
    reason: Annotated[str, Text(500)] | None = None


class CancelOrder(Request):
    order_id: OrderKey
    reason: Annotated[str, Text(500)] | None = None
    no_restock: Annotated[bool, Flag("leave the stock as it is")] | None = None
    refund: Annotated[bool, Flag("a paid order: refund what is refundable first")] | None = None


# --- order-management: fulfil-order ---


class FulfilLine(Request):
    """Units of one SKU to ship; ``line_id`` picks one line when the SKU is on several
    (without it, the SKU's lines fill in line order)."""

    product_sku: Sku
    quantity: Quantity
    line_id: LineNumber | None = None


class FulfilOrder(Request):
    order_id: Annotated[str, Text(80, description="order id or order number (2026-000042)")]
    lines: list[FulfilLine] | None = None  # default: every unit not shipped yet
    carrier: Annotated[str, Text(100, description="who carries it, e.g. PostNL")] | None = None
    tracking_number: (
        Annotated[str, Text(200, description="the carrier's tracking number (needs carrier)")]
        | None
    ) = None
    tracking_url: (
        Annotated[str, _url("where the customer follows the shipment (http or https)")] | None
    ) = None


# --- order-management: create-payment-link ---


class CreatePaymentLink(Request):
    order_id: Annotated[str, Text(80, description="order id or order number (2026-000042)")]
    provider: Annotated[
        str,
        Choice(("stripe", "mollie"), code="unknown_provider", description="payment provider"),
    ]
    redirect_url: (
        Annotated[str, _url("where the provider sends the customer after paying")] | None
    ) = None
    webhook_url: Annotated[str, _url("where the provider reports payment changes")] | None = None


# --- shopping-cart: merge-cart, link-visitor ---

VisitorId = Annotated[
    str,
    Text(
        100,
        pattern=r"[!-~](?:[ -~]*[!-~])?",
        code="invalid_visitor_id",
        description="visitor id: 1-100 printable characters, no space at either end",
    ),
]


class MergeCart(Request):
    source_cart_token: Annotated[
        str,
        Text(
            80,
            pattern=TOKEN_PATTERN,
            code="invalid_token_format",
            description="cart whose items move (it is abandoned)",
            kind="cart",
        ),
    ]
    target_cart_token: Annotated[
        str,
        Text(
            80,
            pattern=TOKEN_PATTERN,
            code="invalid_token_format",
            description="cart the items are added to",
            kind="cart",
        ),
    ]


class LinkVisitor(Request):
    cart_token: Token
    visitor_id: VisitorId


class GetCart(Request):
    """A cart by its token, or a visitor's active cart by the visitor's id (one of the two)."""

    cart_token: Token | None = None
    visitor_id: VisitorId | None = None


# --- product-catalog: create, update, delete, search, bulk-upsert ---

# At most this many products in one bulk-upsert-products call (the platform's limit).
BULK_UPSERT_LIMIT = 500


class CreateProduct(UpsertProduct):
    """A new product: one that exists already is refused (409 product_exists)."""


class UpdateProduct(Request):
    """Only the fields given change."""

    sku: Sku
    name: Annotated[str, Text(200)] | None = None
    price_cents: Annotated[int, Cents("unit price in minor units, tax excluded")] | None = None
    currency: Annotated[str, Currency()] | None = None
    stock: Stock | None = None
    allow_backorder: Annotated[bool, Flag()] | None = None
    status: Annotated[str, Choice(("active", "archived"))] | None = None
    meta_defs: list[MetaDefRef] | None = None
    config: (
        Annotated[dict[str, Any], AnyObject("product configuration, e.g. lists used by line meta")]
        | None
    ) = None


class SearchProducts(Page):
    query: Annotated[str, Text(100, description="words, each in the SKU or the name")]
    include_archived: Annotated[bool, Flag()] | None = None


class BulkUpsertProducts(Request):
    # Each item is checked on its own (as upsert-product's body), so one bad item fails alone.
    # Not even an object: that item fails, not the call.
    products: list[Annotated[Any, AnyValue("a product object, as upsert-product takes it")]]


# --- order-events ---

# Webhook event types (engine/webhook_events.py says which change makes which).
WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    "checkout.completed",
    "checkout.cancelled",
    "order.created",
    "order.paid",
    "order.partially_paid",
    "order.partially_refunded",
    "order.refunded",
    "order.cancelled",
    "order.completed",
    "order.fulfilled",
    "order.partially_fulfilled",
)
WEBHOOK_DELIVERY_STATES = ("queued", "sending", "delivered", "failed", "dead")
EventType = Annotated[
    str,
    Choice(WEBHOOK_EVENT_TYPES, code="unknown_event", description="a webhook event type"),
]
SubscribedType = Annotated[
    str,
    Choice(
        (*WEBHOOK_EVENT_TYPES, "*"),
        code="unknown_event",
        description='a webhook event type, or "*" for every one',
    ),
]
SubscriptionId = Annotated[
    str, Text(80, pattern=TOKEN_PATTERN, code="invalid_id", description="subscription id (whs_…)")
]


class Subscribe(Request):
    url: Annotated[str, _url("where events are POSTed (http or https)")]
    events: list[SubscribedType]
    description: Annotated[str, Text(200, description="what the receiver is")] | None = None


class SubscriptionRef(Request):
    subscription_id: SubscriptionId


class ListDeliveries(Page):
    subscription_id: SubscriptionId | None = None
    status: (
        Annotated[
            str,
            Choice(WEBHOOK_DELIVERY_STATES, code="invalid_status", description="delivery status"),
        ]
        | None
    ) = None
    event_type: EventType | None = None


class FireEvent(Request):
    type: EventType
    order_id: (
        Annotated[str, Text(80, description="order id or number (default: the latest order)")]
        | None
    ) = None
    dry_run: Annotated[bool, Flag("answer the payload and its subscribers; write nothing")] = False


class DeliveryRef(Request):
    delivery_id: Annotated[
        str, Text(80, pattern=TOKEN_PATTERN, code="invalid_id", description="delivery id (whd_…)")
    ]


class DeliverEvents(Request):
    subscription_id: SubscriptionId | None = None
    limit: Annotated[int, Whole(1, 1000, description="at most this many attempts")] | None = None
