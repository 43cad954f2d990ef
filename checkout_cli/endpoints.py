"""The endpoint registry: every operation, its request and result schemas, summary and handler.

Every face (CLI, HTTP server, MCP) and both backends go through this one table. Handlers are
named ``"module:function"`` inside ``checkout_cli.engine`` and resolved only by the local
backend, so importing the registry stays cheap and imports no engine code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from checkout_cli import requests
from checkout_cli.requests import CHECKOUT_STATES, SCOPES
from checkout_cli.schema import Request

if TYPE_CHECKING:
    from pydantic import BaseModel

CHECKOUT_FLOW = "checkout-flow"
SHOPPING_CART = "shopping-cart"
PRODUCT_CATALOG = "product-catalog"
ORDER_MANAGEMENT = "order-management"
CHECKOUT_ADMIN = "checkout-admin"
ORDER_EVENTS = "order-events"

# Access, declared per endpoint and read by every face (server, remote client, MCP).
# A token's scope grants its own endpoints and those of the scopes before it.
READ, OPERATE, ADMIN = SCOPES
# The faces an endpoint may be called over: the local backend on the store's own machine
# (the CLI), HTTP (`checkout serve` and what the remote client sends), and MCP tools.
CLI, HTTP, MCP = "cli", "http", "mcp"
EVERY_FACE = frozenset({CLI, HTTP, MCP})
NO_MCP = frozenset({CLI, HTTP})  # secrets' names and settings: never through an assistant
LOCAL_ONLY = frozenset({CLI})  # secrets and tokens: only on the store's own machine
# The opt-ins `checkout mcp` takes (``--allow-NAME``), each what an operator grants by it.
REFUNDS = "refunds"
MCP_OPT_INS = {REFUNDS: "money back out: refund-order, and cancel-order with refund"}


@dataclass(frozen=True)
class Endpoint:
    service: str
    name: str
    summary: str
    request: type[Request]
    handler: str
    example: str = ""
    # May wait on a payment provider or a mail server (`checkout serve` runs these off its
    # event loop); the engine refuses such calls from the others while served.
    calls_out: bool = False
    # Who may call it (the least token scope) and over which faces; no default on purpose,
    # so a new endpoint cannot be added without saying who may call it.
    scope: str = field(kw_only=True)
    # What a call answers: the name of its model in ``checkout_cli/results.py`` (imported
    # when asked for, by /openapi.json and CHECKOUT_CHECK_RESULTS=1, not by every call).
    # Required, so a new endpoint cannot be added without saying what it answers.
    result: str = field(kw_only=True)
    faces: frozenset[str] = field(default=EVERY_FACE, kw_only=True)
    # Request flags that, when set, make the call need a higher scope: (field, scope), e.g. a
    # cancel that refunds money needs what refund-payment needs.
    raised_scope: tuple[tuple[str, str], ...] = field(default=(), kw_only=True)
    # What MCP refuses by default (the endpoint if its faces leave MCP out, else a
    # ``raised_scope`` flag) that an operator may grant an assistant by starting the server
    # with ``checkout mcp --allow-NAME``: the name of that opt-in (``MCP_OPT_INS``), or None.
    mcp_opt_in: str | None = field(default=None, kw_only=True)
    # Result fields that hold a secret, shown once: a remembered answer (Idempotency-Key)
    # keeps the rest, and a replay says the request succeeded without them.
    secret_fields: tuple[str, ...] = field(default=(), kw_only=True)
    # What a call does to what is there, for MCP's tool annotations: destructive, it may
    # remove or overwrite (else it only adds); idempotent, the same call again changes nothing
    # more. Reads are neither: they change nothing.
    destructive: bool = field(default=False, kw_only=True)
    idempotent: bool = field(default=False, kw_only=True)
    # Changes nothing in the store though it is no get-/list- (a report, an inspection):
    # it may run on a read-only store.
    store_unchanged: bool = field(default=False, kw_only=True)

    @property
    def result_model(self) -> type[BaseModel]:
        from checkout_cli import results

        model: type[BaseModel] = getattr(results, self.result)
        return model

    @property
    def reads_only(self) -> bool:
        return self.name.startswith(("get-", "list-", "search-"))

    @property
    def writes_store(self) -> bool:
        """May change the store: refused on a read-only one before it starts."""
        return not (self.reads_only or self.store_unchanged)

    @property
    def tool_name(self) -> str:
        return f"{self.service}_{self.name.replace('-', '_')}"


# How a smoke run's Idempotency-Keys start (smoke-RUN-…): the server forgets its answers to
# them with the run (engine/smoke_runs.py).
SMOKE_KEY_PREFIX = "smoke-"


OPEN_CHECKOUT_STATES = CHECKOUT_STATES[:3]  # those a checkout can still leave (and expire from)


def _endpoints() -> list[Endpoint]:
    flow = CHECKOUT_FLOW
    return [
        # checkout-flow: the mission's eight endpoints.
        Endpoint(
            flow,
            "initiate-checkout",
            "Snapshot a cart's lines and totals into a checkout (an open one is reused).",
            # external_reference: the order it completes into carries it (unique per store).
            requests.InitiateCheckout,
            "checkouts:initiate_checkout",
            "checkout initiate-checkout cart_XXXX",
            scope=OPERATE,
            result="InitiatedCheckout",
            idempotent=True,
        ),
        Endpoint(
            flow,
            "set-customer",
            "Set the customer and addresses; recalculates shipping and tax.",
            requests.SetCustomer,
            "checkouts:set_customer",
            "checkout set-customer chk_XXXX --email ann@example.com --name 'Ann Smit' "
            "--line1 'Kerkstraat 1' --postal-code 1017GA --city Amsterdam --country NL",
            scope=OPERATE,
            result="Checkout",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            flow,
            "create-payment",
            "Create a payment with a provider (stripe, mollie) or as an invoice.",
            requests.CreatePayment,
            "checkouts:create_payment",
            "checkout create-payment chk_XXXX --provider invoice",
            calls_out=True,
            scope=OPERATE,
            result="Checkout",
        ),
        Endpoint(
            flow,
            "set-payment",
            "Link an external payment by hand (amount must match the total unless forced).",
            requests.SetPayment,
            "checkouts:set_payment",
            "checkout set-payment chk_XXXX --provider bank --reference NL-4711 --status paid",
            calls_out=True,  # expires the open Stripe/Mollie payment it replaces
            scope=OPERATE,
            result="Checkout",
            destructive=True,
        ),
        Endpoint(
            flow,
            "get-checkout-status",
            "The whole checkout: lines, customer, addresses, payment, totals, order.",
            requests.CheckoutRef,
            "checkouts:get_checkout_status",
            "checkout get-checkout-status chk_XXXX --json",
            scope=READ,
            result="Checkout",
        ),
        Endpoint(
            flow,
            "set-line-meta",
            "Attach typed meta, such as a lens prescription, to one line, validated.",
            requests.SetLineMeta,
            "line_meta:set_line_meta",
            "checkout set-line-meta chk_XXXX LENS-TORIC-6 --def lens_prescription "
            "right_sphere=-1.25 left_sphere=-1.50 prescribed_on=2026-09-01",
            scope=OPERATE,
            result="Checkout",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            flow,
            "complete-checkout",
            "Create the order, decrement stock and queue the confirmation (once).",
            requests.CheckoutRef,
            "checkouts:complete_checkout",
            "checkout complete-checkout chk_XXXX",
            calls_out=True,
            scope=OPERATE,
            result="CompletedCheckout",
            idempotent=True,
        ),
        Endpoint(
            flow,
            "cancel-checkout",
            "Cancel an open checkout; the cart stays active for a new checkout. A paid one is "
            "refused unless forced, which refunds a Stripe/Mollie payment in full first.",
            requests.CancelCheckout,
            "checkouts:cancel_checkout",
            "checkout cancel-checkout chk_XXXX --reason 'customer changed their mind' --yes",
            calls_out=True,
            scope=OPERATE,
            result="CancelledCheckout",
            raised_scope=(("force", ADMIN),),  # force refunds money, as refund-payment does
            destructive=True,
            idempotent=True,
        ),
        # shopping-cart
        Endpoint(
            SHOPPING_CART,
            "add-item",
            "Add a product to a cart (no cart token: a new cart); same SKU adds up.",
            requests.AddItem,
            "carts:add_item",
            "checkout cart add LENS-30 --quantity 2",
            scope=OPERATE,
            result="Cart",
        ),
        Endpoint(
            SHOPPING_CART,
            "update-item",
            "Set a line's quantity (0 removes it).",
            requests.UpdateItem,
            "carts:update_item",
            "checkout cart update cart_XXXX LENS-30 --quantity 3",
            scope=OPERATE,
            result="Cart",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            SHOPPING_CART,
            "remove-item",
            "Remove a product from a cart.",
            requests.CartLine,
            "carts:remove_item",
            "checkout cart remove cart_XXXX LENS-30",
            scope=OPERATE,
            result="Cart",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            SHOPPING_CART,
            "get-cart",
            "A cart with its lines and subtotal (by token, or a visitor's active cart).",
            requests.GetCart,
            "carts:get_cart",
            "checkout cart show cart_XXXX",
            scope=READ,
            result="Cart",
        ),
        Endpoint(
            SHOPPING_CART,
            "clear-cart",
            "Remove every line from a cart.",
            requests.CartRef,
            "carts:clear_cart",
            "checkout cart clear cart_XXXX",
            scope=OPERATE,
            result="Cart",
            destructive=True,
            idempotent=True,
        ),
        # shopping-cart: merge-cart, link-visitor (engine/cart_merge.py)
        Endpoint(
            SHOPPING_CART,
            "merge-cart",
            "Add a cart's items into another (same SKU: quantities add); the source is "
            "abandoned, naming the target. Again: the target, already_merged.",
            requests.MergeCart,
            "cart_merge:merge_cart",
            "checkout cart merge cart_SOURCE cart_TARGET",
            scope=OPERATE,
            result="MergedCart",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            SHOPPING_CART,
            "link-visitor",
            "Link a cart to a visitor id; the visitor's cart linked before is unlinked "
            "(one active cart a visitor).",
            requests.LinkVisitor,
            "cart_merge:link_visitor",
            "checkout cart link-visitor cart_XXXX visitor-42",
            scope=OPERATE,
            result="Cart",
            destructive=True,
            idempotent=True,
        ),
        # product-catalog
        Endpoint(
            PRODUCT_CATALOG,
            "list-products",
            "Products, optionally filtered by text.",
            requests.ListProducts,
            "catalog:list_products",
            "checkout products list --query lens",
            scope=READ,
            result="ProductList",
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "get-product",
            "One product by SKU.",
            requests.ProductRef,
            "catalog:get_product",
            "checkout products show LENS-30",
            scope=READ,
            result="Product",
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "upsert-product",
            "Create or update a product.",
            requests.UpsertProduct,
            "catalog:upsert_product",
            "checkout products upsert LENS-30 --name 'Daily lenses' --price-cents 2495",
            scope=ADMIN,
            result="Product",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "set-stock",
            "Set a product's stock (null: not tracked).",
            requests.SetStock,
            "catalog:set_stock",
            "checkout products set-stock LENS-30 120",
            scope=ADMIN,
            result="Product",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "list-meta-definitions",
            "Line meta definitions, each at its current version.",
            requests.Page,
            "line_meta:list_meta_definitions",
            "checkout meta list",
            scope=READ,
            result="MetaDefinitionList",
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "get-meta-definition",
            "One meta definition; with product_sku its config sources are resolved.",
            requests.GetMetaDefinition,
            "line_meta:get_meta_definition",
            "checkout meta show lens_prescription --product LENS-TORIC-6",
            scope=READ,
            result="MetaDefinition",
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "upsert-meta-definition",
            "Create a meta definition or a new version of it (when its fields change).",
            requests.UpsertMetaDefinition,
            "line_meta:upsert_meta_definition",
            "checkout meta import fixtures/meta_definitions.json",
            scope=ADMIN,
            result="UpsertedMetaDefinition",
            destructive=True,
            idempotent=True,
        ),
        # product-catalog: create, update, delete, search, bulk-upsert (engine/catalog_platform.py)
        Endpoint(
            PRODUCT_CATALOG,
            "create-product",
            "Create a product (one with the SKU already: 409 product_exists).",
            requests.CreateProduct,
            "catalog_platform:create_product",
            "checkout products add LENS-30 --name 'Daily lenses' --price-cents 2495",
            scope=ADMIN,
            result="Product",
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "update-product",
            "Change a product: only the fields given change.",
            requests.UpdateProduct,
            "catalog_platform:update_product",
            "checkout products update LENS-30 --price-cents 2295",
            scope=ADMIN,
            result="Product",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "delete-product",
            "Delete a product; one that orders, checkouts, carts or reservations refer to is "
            "archived instead (the answer says which).",
            requests.ProductRef,
            "catalog_platform:delete_product",
            "checkout products delete LENS-30 --yes",
            scope=ADMIN,
            result="DeletedProduct",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "search-products",
            "Products whose SKU or name holds every word of the query (archived left out).",
            requests.SearchProducts,
            "catalog_platform:search_products",
            "checkout products search 'daily lens'",
            scope=READ,
            result="ProductList",
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "bulk-upsert-products",
            "Create or update up to 500 products; each item succeeds or fails on its own "
            "(per-item status and a summary: success does not mean every item was written).",
            requests.BulkUpsertProducts,
            "catalog_platform:bulk_upsert_products",
            "checkout products import fixtures/catalog.json",
            scope=ADMIN,
            result="BulkUpsertedProducts",
            destructive=True,
            idempotent=True,
        ),
        # order-management
        Endpoint(
            ORDER_MANAGEMENT,
            "list-orders",
            "Orders, newest first.",
            requests.ListOrders,
            "orders:list_orders",
            "checkout orders list --limit 20",
            scope=READ,
            result="OrderList",
        ),
        Endpoint(
            ORDER_MANAGEMENT,
            "get-order",
            "One order by order id or order number.",
            requests.OrderRef,
            "orders:get_order",
            "checkout orders show 2026-000042",
            scope=READ,
            result="Order",
        ),
        Endpoint(
            ORDER_MANAGEMENT,
            "get-line-meta",
            "The meta on an order's lines, optionally of one definition.",
            requests.GetLineMeta,
            "line_meta:get_line_meta",
            "checkout orders line-meta 2026-000042 --def lens_prescription",
            scope=READ,
            result="OrderLineMeta",
        ),
        # order-management: record-payment (engine/order_payments.py)
        Endpoint(
            ORDER_MANAGEMENT,
            "record-payment",
            "Record money received for an order (a bank transfer): part-payments add up, more "
            "than the balance is refused unless forced; once per reference.",
            requests.RecordPayment,
            "record_payment:record_payment",
            "checkout orders record-payment 2026-000042 --amount-cents 4590 "
            "--method bank_transfer --reference NL91ABNA-20261203-0001",
            calls_out=True,  # the payment-received email is delivered after the commit
            scope=OPERATE,
            result="RecordedPayment",
            # Forced, it records money the shop owes back: an administrator's decision.
            raised_scope=(("force", ADMIN),),
            idempotent=True,
        ),
        # order-management: refund-order, cancel-order (engine/order_refunds.py)
        Endpoint(
            ORDER_MANAGEMENT,
            "refund-order",
            "Refund an order in full, by an amount or by lines, through the provider it was paid "
            "by (a credit for money paid outside one); never more than paid.",
            requests.RefundOrder,
            "order_refunds:refund_order",
            "checkout orders refund 2026-000042 --line LENS-DAILY-30=1 --restock --yes",
            calls_out=True,
            # Sends a customer's money back: an administrator's decision, not an assistant's
            # (as refund-payment) unless the operator started `checkout mcp --allow-refunds`.
            scope=ADMIN,
            result="RefundedOrder",
            faces=NO_MCP,
            mcp_opt_in=REFUNDS,
            destructive=True,
        ),
        Endpoint(
            ORDER_MANAGEMENT,
            "cancel-order",
            "Cancel an order not shipped: stock back, an open payment link closed; a paid one "
            "only with refund (refunded in full first).",
            requests.CancelOrder,
            "order_cancel:cancel_order",
            "checkout orders cancel 2026-000042 --reason 'out of stock' --yes",
            calls_out=True,
            scope=OPERATE,
            result="CancelledOrder",
            raised_scope=(("refund", ADMIN),),  # refund sends money back, as refund-order does
            mcp_opt_in=REFUNDS,  # ... so an assistant may refund only as it may refund-order
            destructive=True,
            idempotent=True,
        ),
        # order-management: fulfil-order (engine/fulfilments.py)
        Endpoint(
            ORDER_MANAGEMENT,
            "fulfil-order",
            "Ship an order's lines, all or some (shipments add up, never past what was ordered); "
            "emails the customer the tracking link. The same tracking number again ships nothing.",
            requests.FulfilOrder,
            "fulfilments:fulfil_order",
            "checkout orders fulfil 2026-000042 --carrier PostNL --tracking 3SABC1234567 "
            "--tracking-url https://postnl.nl/tracktrace/3SABC1234567",
            calls_out=True,  # the shipped email is delivered after the commit
            scope=OPERATE,
            result="FulfilledOrder",
        ),
        # order-management: create-payment-link (engine/payment_links.py)
        Endpoint(
            ORDER_MANAGEMENT,
            "create-payment-link",
            "A Stripe/Mollie payment for an order's balance (an open one for the same balance "
            "is returned again); paid, it is recorded as a payment on the order.",
            requests.CreatePaymentLink,
            "payment_links:create_payment_link",
            "checkout orders pay-link 2026-000042 --provider stripe",
            calls_out=True,
            scope=OPERATE,
            result="PaymentLink",
            idempotent=True,
        ),
        # checkout-admin: the operator's service (a hosted remote may not offer it).
        Endpoint(
            CHECKOUT_ADMIN,
            "list-outbox",
            "Queued, sent and failed emails.",
            requests.ListOutbox,
            "outbox:list_outbox",
            "checkout outbox list",
            scope=READ,
            result="EmailList",
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "send-outbox",
            "Deliver queued and failed emails now.",
            requests.SendOutbox,
            "outbox:send_outbox",
            "checkout outbox send",
            calls_out=True,
            scope=ADMIN,
            result="OutboxDelivery",
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "create-token",
            "Create an API token for `checkout serve` (shown once; only a hash is kept).",
            requests.CreateToken,
            "tokens:create_token",
            "checkout tokens create --name front-desk --scope operate",
            scope=ADMIN,
            result="CreatedToken",
            faces=LOCAL_ONLY,
            secret_fields=("token",),
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "list-tokens",
            "API tokens by name, with their scope and when they were created and revoked.",
            requests.Page,
            "tokens:list_tokens",
            "checkout tokens list",
            scope=ADMIN,
            result="TokenList",
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "revoke-token",
            "Revoke an API token.",
            requests.NamedToken,
            "tokens:revoke_token",
            "checkout tokens revoke front-desk",
            scope=ADMIN,
            result="RevokedToken",
            faces=LOCAL_ONLY,
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "list-checkouts",
            "Checkouts, newest activity first; stuck ones with the reasons they are stuck.",
            requests.ListCheckouts,
            "support:list_checkouts",
            "checkout checkouts list --stuck --older-than 30m",
            scope=READ,
            result="CheckoutList",
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "inspect-checkout",
            "A checkout with its timeline, the provider's live status and a diagnosis.",
            requests.InspectCheckout,
            "support:inspect_checkout",
            "checkout inspect chk_XXXX",
            calls_out=True,
            scope=OPERATE,
            result="Inspection",
            store_unchanged=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "check-invariants",
            "Check the store's invariants; every violation with the records involved.",
            requests.NoFields,
            "invariants:check_store",
            "checkout doctor",
            scope=OPERATE,
            result="StoreCheck",
            idempotent=True,
            store_unchanged=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "reconcile",
            "Ask the providers about pending payments and refunds; complete, release or "
            "expire; report paid payments without an order.",
            requests.Reconcile,
            "payment_sync:reconcile",
            "checkout reconcile --dry-run",
            calls_out=True,
            scope=ADMIN,
            result="Reconciliation",
            idempotent=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "refund-payment",
            "Refund in full a stray payment: paid at Stripe/Mollie, but no order accounts for it.",
            requests.RefundPayment,
            "refunds:refund_payment",
            "checkout refund-payment chk_XXXX tr_WDqYK6vllg --yes",
            calls_out=True,
            # Sends a customer's money back: an administrator's decision, never an assistant's.
            scope=ADMIN,
            result="StrayRefund",
            faces=NO_MCP,
            destructive=True,
        ),
        # `checkout smoke`: a run's rows are hidden from the shop and removed when it ends.
        # The checkout flow's scope: a run changes nothing of the shop's (its product is its
        # own, never sold), so CI needs no admin token. Not over MCP: a CI tool's.
        Endpoint(
            CHECKOUT_ADMIN,
            "start-smoke",
            "Start a smoke run: its own hidden product (stock 1) and an empty cart for it. "
            "Runs left by a killed smoke are removed first.",
            requests.SmokeRun,
            "smoke_runs:start_smoke",
            "checkout smoke",
            calls_out=True,  # removing a killed run closes its open provider payment
            scope=OPERATE,
            result="SmokeStarted",
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "finish-smoke",
            "End a smoke run: cancel its open checkout and remove every row it made (one "
            "with a paid payment is kept).",
            requests.SmokeRun,
            "smoke_runs:finish_smoke",
            "checkout smoke",
            calls_out=True,  # cancelling the run's checkout closes its provider payment
            scope=OPERATE,
            result="SmokeFinished",
            faces=NO_MCP,
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "get-store",
            "The store's identity: project id, store id (kept by backups, new for a new store) "
            "and schema version.",
            requests.NoFields,
            "admin:get_store",
            "checkout call checkout-admin get-store",
            # An identity, not a secret (it grants nothing): every face may read it, as it
            # may the settings. Batch journals are bound to it over any backend.
            scope=READ,
            result="StoreIdentity",
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "get-settings",
            "The store's settings.",
            requests.NoFields,
            "admin:get_settings",
            "checkout settings show",
            scope=READ,
            result="SettingsValues",
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "set-setting",
            "Change one setting.",
            requests.SetSetting,
            "admin:set_setting",
            "checkout settings set allow_invoice_checkout true",
            scope=ADMIN,
            result="SettingValue",
            faces=NO_MCP,
            destructive=True,
            idempotent=True,
        ),
        # Like set-setting (admin, no MCP face), and its local-only keys are refused the same
        # way over HTTP (`access.SETTING_WRITES`).
        Endpoint(
            CHECKOUT_ADMIN,
            "import-settings",
            "Change several settings at once: every key and value is checked first, and all "
            "are written in one transaction or none is.",
            requests.ImportSettings,
            "admin:import_settings",
            "checkout settings import fixtures/settings.json",
            scope=ADMIN,
            result="SettingsValues",
            faces=NO_MCP,
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "unset-setting",
            "Return one setting to its default.",
            requests.SettingKey,
            "admin:unset_setting",
            "checkout settings unset payment_redirect_url",
            scope=ADMIN,
            result="SettingDefault",
            faces=NO_MCP,
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "list-vault",
            "Names of the stored secrets and when they were set.",
            requests.NoFields,
            "vault:list_vault",
            "checkout vault list",
            scope=ADMIN,
            result="VaultList",
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "set-vault",
            "Store a secret (write-only: never read back).",
            requests.SetVault,
            "vault:set_vault",
            "checkout vault set smtp_password",
            scope=ADMIN,
            result="VaultSet",
            faces=LOCAL_ONLY,
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "delete-vault",
            "Delete a stored secret.",
            requests.VaultName,
            "vault:delete_vault",
            "checkout vault delete smtp_password",
            scope=ADMIN,
            result="VaultDeleted",
            faces=LOCAL_ONLY,
            destructive=True,
            idempotent=True,
        ),
        # order-events: subscriptions, deliveries, fire-event (engine/webhook_*.py)
        Endpoint(
            ORDER_EVENTS,
            "subscribe",
            "Subscribe a URL to order events, sent as signed webhooks (the secret is shown once).",
            requests.Subscribe,
            "webhooks:subscribe",
            "checkout events subscribe --url https://shop.example/hooks --event order.paid",
            scope=ADMIN,
            result="SubscriptionCreated",
            faces=NO_MCP,
            secret_fields=("secret",),
        ),
        Endpoint(
            ORDER_EVENTS,
            "list-subscriptions",
            "Webhook subscriptions: their URL, event types and status (never their secret).",
            requests.Page,
            "webhooks:list_subscriptions",
            "checkout events subscriptions",
            scope=READ,
            result="SubscriptionList",
        ),
        Endpoint(
            ORDER_EVENTS,
            "unsubscribe",
            "Disable a webhook subscription; what it was still to be sent is given up.",
            requests.SubscriptionRef,
            "webhooks:unsubscribe",
            "checkout events unsubscribe whs_…",
            scope=ADMIN,
            result="Subscription",
            destructive=True,
            idempotent=True,
        ),
        Endpoint(
            ORDER_EVENTS,
            "list-deliveries",
            "Webhook deliveries, newest first, with the receiver's answer to each.",
            requests.ListDeliveries,
            "webhooks:list_deliveries",
            "checkout events deliveries --status failed",
            scope=READ,
            result="DeliveryList",
        ),
        Endpoint(
            ORDER_EVENTS,
            "fire-event",
            "Queue a test event of a type for an order (dry_run: show it and its subscribers).",
            requests.FireEvent,
            "webhooks:fire_event",
            "checkout events trigger order.paid --dry-run",
            # admin, as resend-delivery: a test event is signed like a real one and reaches
            # every subscriber (an ERP told "order.paid" of an unpaid order ships it)
            scope=ADMIN,
            result="FiredEvent",
        ),
        Endpoint(
            ORDER_EVENTS,
            "resend-delivery",
            "Send a delivery's event to its subscription again, as a new delivery.",
            requests.DeliveryRef,
            "webhooks:resend_delivery",
            "checkout events resend whd_…",
            scope=ADMIN,
            result="WebhookDelivery",
        ),
        Endpoint(
            ORDER_EVENTS,
            "deliver-events",
            "Send the webhook deliveries that are due now; answers what each receiver said.",
            requests.DeliverEvents,
            "webhooks:deliver_events",
            "checkout events deliver",
            calls_out=True,
            scope=OPERATE,
            result="DeliveryRun",
        ),
    ]


ENDPOINTS: dict[tuple[str, str], Endpoint] = {(e.service, e.name): e for e in _endpoints()}
SERVICES: tuple[str, ...] = tuple(dict.fromkeys(service for service, _ in ENDPOINTS))


def get_endpoint(service: str, name: str) -> Endpoint:
    from checkout_cli.errors import NotFoundError

    try:
        return ENDPOINTS[(service, name)]
    except KeyError:
        raise NotFoundError(
            "endpoint_not_found",
            f"no endpoint {service}/{name}",
            recovery="see `checkout call --list` for the endpoints",
        ) from None
