"""Result schemas on pydantic: each endpoint's result (what its handler answers, as JSON) is a
model here, named by the registry's ``result`` (``checkout_cli/endpoints.py``).

They describe, they do not convert: a handler still returns plain JSON values, and
``/openapi.json`` publishes these models as the 200 response's ``result``. With
``CHECKOUT_CHECK_RESULTS=1`` (the test suite sets it) the local backend validates every result
against its model, so a handler and its published schema cannot drift apart.

Money is whole minor units (``*_cents``). Strict: a number is never a string, a flag never a
number; unknown fields are refused. Where a value really is free-form (line meta, product
config, settings, an event's detail) it is ``Any``. Built on first use (``defer_build``), as
the requests are; this module imports no engine code.

Names differ from the requests' (``Customer``, ``Address``, …): both end up side by side in
the OpenAPI document's components.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from checkout_cli.requests import (
    CHECKOUT_STATES,
    FULFILMENT_STATES,
    ORDER_PAYMENT_STATES,
    ORDER_STATES,
    REFUND_STATES,
    SCOPES,
)
from checkout_cli.schema import Choice

# The states a record can be in, published as each field's ``enum``.
CheckoutState = Annotated[str, Choice(CHECKOUT_STATES)]
OrderState = Annotated[str, Choice(tuple(str(state) for state in ORDER_STATES))]
OrderPaymentState = Annotated[str, Choice(ORDER_PAYMENT_STATES)]
FulfilmentState = Annotated[str, Choice(FULFILMENT_STATES)]
RefundState = Annotated[str, Choice(REFUND_STATES)]
# A timeline's from/to: a checkout's status, or one of its order's three.
TimelineState = Annotated[
    str,
    Choice(
        tuple(
            dict.fromkeys(
                (
                    *CHECKOUT_STATES,
                    *map(str, ORDER_STATES),
                    *ORDER_PAYMENT_STATES,
                    *FULFILMENT_STATES,
                )
            )
        )
    ),
]
CartState = Annotated[str, Choice(("active", "converted", "abandoned"))]
ProductState = Annotated[str, Choice(("active", "archived"))]
EmailState = Annotated[str, Choice(("queued", "sending", "sent", "failed"))]
Scope = Annotated[str, Choice(SCOPES)]


class Result(BaseModel):
    """An endpoint's result, or a part of one."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class Paged(Result):
    """One page of a list: ``total`` rows match the filter, this page starts at ``offset``."""

    total: int
    limit: int
    offset: int


class Notice(Result):
    """Something the caller should know about a call that succeeded."""

    code: str
    message: str
    product_sku: str | None = None


# --- checkouts -------------------------------------------------------------------------------


class CustomerDetails(Result):
    email: str
    name: str
    phone: str | None
    company: str | None


class PostalAddress(Result):
    line1: str
    line2: str | None
    postal_code: str
    city: str
    region: str | None
    country: str


class Totals(Result):
    subtotal_cents: int
    shipping_cents: int
    tax_cents: int
    total_cents: int


class Line(Result):
    """A checkout's or an order's line: a snapshot, with its meta as ``{def_key: values}``."""

    line_id: int
    product_sku: str
    name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    tax_cents: int
    meta: dict[str, dict[str, Any]]


class PaymentView(Result):
    provider: str
    provider_payment_id: str | None
    status: str
    redirect_url: str | None
    amount_cents: int
    reference: str | None


class OrderSummary(Result):
    order_id: str
    order_number: str
    status: OrderState
    payment_status: OrderPaymentState


class Checkout(Result):
    """The whole checkout: lines, customer, addresses, payment, totals, order."""

    checkout_token: str
    status: CheckoutState
    cart_token: str
    currency: str
    items: list[Line]
    customer: CustomerDetails | None
    shipping_address: PostalAddress | None
    billing_address: PostalAddress | None
    totals: Totals
    payment: PaymentView | None
    order: OrderSummary | None
    created_at: str
    updated_at: str
    expires_at: str
    external_reference: str | None


class InitiatedCheckout(Checkout):
    reused: bool
    warnings: list[Notice]


class CompletedCheckout(Checkout):
    already_completed: bool


class Refund(Result):
    provider_refund_id: str | None
    status: str
    amount_cents: int
    currency: str
    reason: str | None
    created_at: str


class CancelledCheckout(Checkout):
    refund: Refund | None = None  # a forced cancel's refund of the payment
    warnings: list[Notice] | None = None


# --- carts -----------------------------------------------------------------------------------


class CartItem(Result):
    product_sku: str
    name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int


class Cart(Result):
    cart_token: str
    status: CartState
    currency: str
    items: list[CartItem]
    subtotal_cents: int
    visitor_id: str | None


# --- catalog and meta definitions ------------------------------------------------------------


class MetaDefUse(Result):
    """A meta definition a product's lines take."""

    def_key: str
    required: bool | None = None


class Product(Result):
    sku: str
    name: str
    price_cents: int
    currency: str
    stock: int | None
    allow_backorder: bool
    status: ProductState
    meta_defs: list[MetaDefUse]
    config: dict[str, Any]


class ProductList(Paged):
    products: list[Product]


class MetaField(Result):
    """One field of a meta definition (``checkout_cli/metadefs.py``)."""

    name: str
    type: str
    label: str | None = None
    hint: str | None = None
    required: bool | None = None
    required_if: str | None = None
    min: str | int | None = None  # a decimal's bounds and step are strings, never floats
    max: str | int | None = None
    step: str | int | None = None
    values: list[str] | None = None
    source: str | None = None
    pattern: str | None = None
    max_length: int | None = None
    not_future: bool | None = None
    max_age_months: int | None = None


class MetaDefinition(Result):
    def_key: str
    version: int
    title: str
    fields: list[MetaField]


class UpsertedMetaDefinition(MetaDefinition):
    changed: bool  # false: the same fields and title as the current version


class MetaDefinitionList(Paged):
    definitions: list[MetaDefinition]


# --- orders ----------------------------------------------------------------------------------


class Event(Result):
    """One change on a timeline: a checkout's or its order's (which status moved is in kind)."""

    at: str
    actor: str | None
    kind: str
    from_status: TimelineState | None
    to_status: TimelineState | None
    detail: dict[str, Any] | None


class OrderPayment(Result):
    """Money received for an order: its checkout's payment, a bank transfer, a payment link."""

    payment_id: str
    method: str
    amount_cents: int
    currency: str
    reference: str | None
    provider_payment_id: str | None
    paid_on: str | None
    forced: bool  # more than the balance, recorded because the operator said so
    note: str | None
    recorded_at: str
    recorded_by: str | None


class LineQuantity(Result):
    line_id: int
    quantity: int


class OrderRefund(Result):
    """A refund at the order's provider, or a credit recorded for money paid outside one."""

    refund_id: str
    kind: Annotated[str, Choice(("provider", "credit"))]
    provider: str
    provider_refund_id: str | None
    status: RefundState
    amount_cents: int
    currency: str
    reason: str | None
    lines: list[LineQuantity]
    restocked: bool
    created_at: str | None
    updated_at: str | None


class Fulfilment(Result):
    """One shipment: which lines, how many of each, and how to follow it."""

    fulfilment_id: str
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    lines: list[LineQuantity]
    created_at: str
    created_by: str | None


class Order(OrderSummary):
    checkout_token: str
    currency: str
    customer: CustomerDetails | None
    shipping_address: PostalAddress | None
    billing_address: PostalAddress | None
    items: list[Line]
    totals: Totals
    created_at: str
    updated_at: str
    external_reference: str | None
    amount_paid_cents: int
    amount_refunded_cents: int  # refunds the provider settled (or credits recorded)
    balance_due_cents: int
    fulfilment_status: FulfilmentState
    cancelled_at: str | None
    cancel_reason: str | None
    payments: list[OrderPayment]
    refunds: list[OrderRefund]
    fulfilments: list[Fulfilment]
    timeline: list[Event]


class OrderList(Paged):
    orders: list[Order]


# --- order-management: record-payment ---


class RecordedPayment(Result):
    """The payment recorded (or found: the same reference recorded before) and its order."""

    payment: OrderPayment
    order: Order
    already_recorded: bool


# --- order-management: refund-order, cancel-order ---


class RefundedOrder(Result):
    """A refund-order: the refunds it made (one per payment it was spread over), and the
    order after them."""

    order: Order
    amount_cents: int  # what this request refunds, over all its refunds
    refunds: list[OrderRefund]
    resumed: bool  # an unfinished attempt of the same request, finished now


class RestockedLine(Result):
    product_sku: str
    quantity: int


class CancelledOrder(Result):
    order: Order
    already_cancelled: bool
    restocked: list[RestockedLine]  # what went back to stock (empty with --no-restock)
    refunds: list[OrderRefund]  # a paid order's refund (--refund), made before cancelling


# --- order-management: fulfil-order ---


class FulfilledOrder(Result):
    """A shipment made (or, ``already_fulfilled``, the one an earlier same request made)."""

    order: Order
    fulfilment: Fulfilment
    already_fulfilled: bool
    # Units in this shipment that were refunded before it left (shipped at the operator's call).
    refunded_units_shipped: list[LineQuantity]


# --- order-management: create-payment-link ---


class PaymentLink(Result):
    """A Stripe/Mollie payment for an order's balance; paid, it is one of the order's payments."""

    order_id: str
    order_number: str
    provider: str
    provider_payment_id: str | None
    status: str
    redirect_url: str | None  # the link to send the customer
    amount_cents: int
    currency: str
    amount_due: str  # the amount as people read it
    balance_due_cents: int  # what the order still owes now
    reused: bool  # true: the open link made before for this balance, not a new one
    replaced_provider_payment_id: str | None  # the link closed because the balance changed


class LineMeta(Result):
    line_id: int
    product_sku: str
    meta: dict[str, dict[str, Any]]


class OrderLineMeta(Result):
    order_id: str
    order_number: str
    lines: list[LineMeta]


# --- checkout-admin: outbox and tokens -------------------------------------------------------


class Email(Result):
    id: int
    order_number: str | None
    checkout_token: str | None
    kind: str
    recipient: str
    subject: str
    status: EmailState
    attempts: int
    last_error: str | None
    created_at: str
    sent_at: str | None


class EmailList(Paged):
    emails: list[Email]


class Delivery(Result):
    id: int
    status: EmailState
    error: str | None


class StillSending(Result):
    """An email left ``sending``, inside its grace period: a process may be sending it now."""

    id: int
    recipient: str
    retry_after: str
    retry_in_minutes: int


class OutboxDelivery(Result):
    sent: int
    failed: int
    released: int
    waiting: list[StillSending]
    results: list[Delivery]


class CreatedToken(Result):
    name: str
    scope: Scope
    token: str  # shown once: only its hash is kept


class TokenInfo(Result):
    name: str
    scope: Scope
    created_at: str
    revoked_at: str | None


class TokenList(Paged):
    tokens: list[TokenInfo]


class RevokedToken(Result):
    name: str
    revoked: bool


# --- checkout-admin: support, invariants, reconcile, refunds ---------------------------------


class CheckoutSummary(Result):
    checkout_token: str
    status: CheckoutState
    customer_email: str | None
    total_cents: int
    currency: str
    payment_provider: str | None
    payment_status: str | None
    order_number: str | None
    updated_at: str
    stuck_reasons: list[str]


class CheckoutList(Paged):
    checkouts: list[CheckoutSummary]
    older_than_minutes: int


class LiveStatus(Result):
    """What the provider says about the payment now (``error``: it could not be asked)."""

    provider: str
    status: str | None
    provider_status: str | None
    error: str | None


class Diagnosis(Result):
    problem: str
    fix: str  # the command that fixes it ("" when only a person can)
    then: list[str] | None = None  # the commands that follow the fix, where one is not enough


class StrayFinding(Result):
    """A provider payment paid, but no order accounts for it."""

    code: str
    checkout_token: str
    checkout_status: CheckoutState
    provider: str
    provider_payment_id: str
    amount_cents: int
    currency: str
    message: str
    fix: str


class Inspection(Result):
    checkout: Checkout
    order: Order | None  # a completed checkout's order: its payments, refunds, shipments
    timeline: list[Event]
    provider_live: LiveStatus | None
    stuck_reasons: list[str]
    diagnosis: list[Diagnosis]
    findings: list[StrayFinding]


class Violation(Result):
    invariant: int
    name: str
    message: str
    records: dict[str, Any]


class EmailSending(Result):
    id: int
    recipient: str
    claimed_at: str | None


class SmokeLeftover(Result):
    run_id: str
    product_sku: str
    started_at: str
    paid: bool


class StoreCheck(Result):
    ok: bool
    violations: list[Violation]
    emails_sending: list[EmailSending]
    smoke_runs: list[SmokeLeftover]


class Change(Result):
    """What reconcile did (or, in a dry run, would do) to one checkout."""

    checkout_token: str
    provider: str | None
    from_status: CheckoutState
    to_status: CheckoutState
    provider_status: str | None
    action: str


class Reconciliation(Result):
    dry_run: bool
    changes: list[Change]
    findings: list[StrayFinding]


class StrayRefund(Result):
    checkout_token: str
    provider: str
    provider_payment_id: str
    already_refunded: bool
    refund: Refund


# --- checkout-admin: smoke runs, store, settings, vault --------------------------------------


class SmokeStarted(Result):
    run_id: str
    product_sku: str
    cart_token: str


class SmokeFinished(Result):
    run_id: str
    removed: dict[str, int]  # rows removed, by table (and remembered answers)


class StoreIdentity(Result):
    project_id: str
    store_id: str
    schema_version: int


class SettingsValues(Result):
    settings: dict[str, Any]


class SettingValue(Result):
    key: str
    value: Any


class SettingDefault(Result):
    key: str
    value: Any
    was_set: bool


class VaultEntry(Result):
    name: str
    description: str
    set: bool
    set_at: str | None
    key_id: str | None


class VaultList(Result):
    secrets: list[VaultEntry]


class VaultSet(Result):
    name: str
    set: bool
    key_id: str
    new_key_file: str | None  # a key file made by this call: keep a copy apart from the store


class VaultDeleted(Result):
    name: str
    set: bool


# --- shopping-cart: merge-cart, link-visitor ---


class MergedCart(Cart):
    """The target cart after a merge; already_merged: the source had been merged into it."""

    already_merged: bool


# --- product-catalog: create, update, delete, search, bulk-upsert ---


class DeletedProduct(Result):
    sku: str
    action: Annotated[
        str, Choice(("deleted", "archived"))
    ]  # archived: orders, checkouts, carts refer to it


class BulkItemError(Result):
    type: str
    code: str
    message: str
    field: str | None = None


class BulkItem(Result):
    index: int
    sku: str | None
    status: Annotated[str, Choice(("created", "updated", "failed"))]
    error: BulkItemError | None = None


class BulkSummary(Result):
    total: int
    by_action: dict[str, int]
    by_error_type: dict[str, int]


class BulkUpsertedProducts(Result):
    """success:true even when some items failed: read each item's status."""

    items: list[BulkItem]
    summary: BulkSummary


# --- order-events ---


class Subscription(Result):
    subscription_id: str
    url: str
    events: list[str]
    status: str  # active, disabled
    description: str | None
    created_at: str
    disabled_at: str | None
    disabled_reason: str | None


class SubscriptionCreated(Subscription):
    secret: str  # shown once: signs every delivery (kept in the vault)


class SubscriptionList(Paged):
    subscriptions: list[Subscription]


class WebhookDelivery(Result):
    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    url: str
    status: str
    attempts: int
    next_attempt_at: str | None
    response_status: int | None
    response_body: str | None
    last_error: str | None
    delivered_at: str | None
    created_at: str
    resend_of: str | None


class DeliveryList(Paged):
    deliveries: list[WebhookDelivery]


class FiredEvent(Result):
    dry_run: bool
    event_id: str | None  # None on a dry run
    type: str
    payload: dict[str, Any]
    subscriptions: list[str]
    deliveries: list[str]


class DeliveryOutcome(Result):
    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    status: str
    response_status: int | None
    error: str | None


class DeliveryRun(Result):
    attempted: int
    delivered: int
    failed: int
    dead: int
    deliveries: list[DeliveryOutcome]
