"""The endpoint registry: every operation, its request schema, summary and engine handler.

Every face (CLI, HTTP server, MCP) and both backends go through this one table. Handlers are
named ``"module:function"`` inside ``checkout_cli.engine`` and resolved only by the local
backend, so importing the registry stays cheap and imports no engine code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from checkout_cli.schema import (
    AnyObject,
    AnyValue,
    Array,
    Bool,
    Cents,
    Country,
    Currency,
    Email,
    Enum,
    Int,
    Obj,
    Str,
    obj,
    req,
)

CHECKOUT_FLOW = "checkout-flow"
SHOPPING_CART = "shopping-cart"
PRODUCT_CATALOG = "product-catalog"
ORDER_MANAGEMENT = "order-management"
CHECKOUT_ADMIN = "checkout-admin"

# Access, declared per endpoint and read by every face (server, remote client, MCP).
# A token's scope grants its own endpoints and those of the scopes before it.
READ, OPERATE, ADMIN = "read", "operate", "admin"
SCOPES = (READ, OPERATE, ADMIN)
# The faces an endpoint may be called over: the local backend on the store's own machine
# (the CLI), HTTP (`checkout serve` and what the remote client sends), and MCP tools.
CLI, HTTP, MCP = "cli", "http", "mcp"
EVERY_FACE = frozenset({CLI, HTTP, MCP})
NO_MCP = frozenset({CLI, HTTP})  # secrets' names and settings: never through an assistant
LOCAL_ONLY = frozenset({CLI})  # secrets and tokens: only on the store's own machine


@dataclass(frozen=True)
class Endpoint:
    service: str
    name: str
    summary: str
    request: Obj
    handler: str
    example: str = ""
    # May wait on a payment provider or a mail server (`checkout serve` runs these off its
    # event loop); the engine refuses such calls from the others while served.
    calls_out: bool = False
    # Who may call it (the least token scope) and over which faces; no default on purpose,
    # so a new endpoint cannot be added without saying who may call it.
    scope: str = field(kw_only=True)
    faces: frozenset[str] = field(default=EVERY_FACE, kw_only=True)
    # Request flags that, when set, make the call need a higher scope: (field, scope), e.g. a
    # cancel that refunds money needs what refund-payment needs.
    raised_scope: tuple[tuple[str, str], ...] = field(default=(), kw_only=True)
    # Result fields that hold a secret, shown once: a remembered answer (Idempotency-Key)
    # keeps the rest, and a replay says the request succeeded without them.
    secret_fields: tuple[str, ...] = field(default=(), kw_only=True)

    @property
    def reads_only(self) -> bool:
        return self.name.startswith(("get-", "list-"))

    @property
    def tool_name(self) -> str:
        return f"{self.service}_{self.name.replace('-', '_')}"


TOKEN = Str(max_length=80, pattern=r"[A-Za-z0-9_\-]+", code="invalid_token_format")
CHECKOUT_TOKEN = Str(
    description="checkout token (chk_…)",
    max_length=80,
    pattern=r"[A-Za-z0-9_\-]+",
    code="invalid_token_format",
)
SKU = Str(
    description="product SKU",
    max_length=64,
    pattern=r"[A-Za-z0-9][A-Za-z0-9._\-]*",
    code="invalid_sku",
)
QUANTITY = Int(description="quantity, 1 to 9999", minimum=1, maximum=9999, code="invalid_quantity")
# A batch's own name for an order: one order per reference per store.
EXTERNAL_REFERENCE = Str(
    max_length=100, pattern=r"[A-Za-z0-9][A-Za-z0-9._:/\-]*", code="invalid_reference"
)
# How a smoke run's Idempotency-Keys start (smoke-RUN-…): the server forgets its answers to
# them with the run (engine/smoke_runs.py).
SMOKE_KEY_PREFIX = "smoke-"
SMOKE_RUN = Str(
    description="smoke run id, 12 hex digits", pattern=r"[0-9a-f]{12}", code="invalid_run_id"
)
DEF_KEY = Str(
    description="meta definition key",
    max_length=64,
    pattern=r"[a-z][a-z0-9_]*",
    code="invalid_def_key",
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

    pending = "pending"  # an invoice order waiting for its money
    paid = "paid"


OPEN_CHECKOUT_STATES = CHECKOUT_STATES[:3]  # those a checkout can still leave (and expire from)
PROVIDERS = ("stripe", "mollie", "invoice")

# Every list endpoint takes a page (limit, offset) and answers with its rows and `total`,
# `limit`, `offset`; the default limit is each endpoint's own (it was before paging).
MAX_LIST_LIMIT = 10_000
PAGE = {
    "limit": Int(description="at most this many rows", minimum=1, maximum=MAX_LIST_LIMIT),
    "offset": Int(description="skip this many rows first", minimum=0, maximum=10**9),
}

CUSTOMER = obj(
    email=req(Email(description="customer's email address")),
    name=req(Str(max_length=200)),
    phone=Str(max_length=40, pattern=r"[0-9+()\-. /]{3,40}", code="invalid_phone"),
    company=Str(max_length=200),
)
ADDRESS = obj(
    line1=req(Str(max_length=200)),
    line2=Str(max_length=200),
    postal_code=req(Str(max_length=20)),
    city=req(Str(max_length=100)),
    region=Str(max_length=100),
    country=req(Country(description="ISO 3166-1 alpha-2 code")),
)
PRODUCT = obj(
    sku=req(SKU),
    name=req(Str(max_length=200)),
    price_cents=req(Cents("unit price in minor units, tax excluded")),
    currency=Currency(),
    stock=Int(
        description="units in stock; null: not tracked",
        minimum=0,
        maximum=10**9,
        code="invalid_stock",
    ),
    allow_backorder=Bool(),
    status=Enum(choices=("active", "archived")),
    meta_defs=Array(items=obj(def_key=req(Str(max_length=64)), required=Bool())),
    config=AnyObject(description="product configuration, e.g. lists used by line meta"),
)


def _endpoints() -> list[Endpoint]:
    flow = CHECKOUT_FLOW
    return [
        # checkout-flow: the mission's eight endpoints.
        Endpoint(
            flow,
            "initiate-checkout",
            "Snapshot a cart's lines and totals into a checkout (an open one is reused).",
            # external_reference: the order it completes into carries it (unique per store).
            obj(cart_token=req(TOKEN), external_reference=EXTERNAL_REFERENCE),
            "checkouts:initiate_checkout",
            "checkout initiate-checkout cart_XXXX",
            scope=OPERATE,
        ),
        Endpoint(
            flow,
            "set-customer",
            "Set the customer and addresses; recalculates shipping and tax.",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                customer=req(CUSTOMER),
                shipping_address=req(ADDRESS),
                billing_address=ADDRESS,
                shipping_cents=Cents("shipping in minor units"),
                tax_cents=Cents("total tax in minor units; default: configured rates"),
            ),
            "checkouts:set_customer",
            "checkout set-customer chk_XXXX --email ann@example.com --name 'Ann Smit' "
            "--line1 'Kerkstraat 1' --postal-code 1017GA --city Amsterdam --country NL",
            scope=OPERATE,
        ),
        Endpoint(
            flow,
            "create-payment",
            "Create a payment with a provider (stripe, mollie) or as an invoice.",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                provider=req(Enum(choices=PROVIDERS, code="unknown_provider")),
                redirect_url=Str(max_length=2000, pattern=r"https?://\S+", code="invalid_url"),
                webhook_url=Str(max_length=2000, pattern=r"https?://\S+", code="invalid_url"),
                new=Bool(description="replace an open payment (the customer lost the link)"),
            ),
            "checkouts:create_payment",
            "checkout create-payment chk_XXXX --provider invoice",
            calls_out=True,
            scope=OPERATE,
        ),
        Endpoint(
            flow,
            "set-payment",
            "Link an external payment by hand (amount must match the total unless forced).",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                provider=req(Str(max_length=40, pattern=r"[a-z0-9_\-]+", code="invalid_provider")),
                reference=req(Str(max_length=200)),
                status=req(Enum(choices=("paid", "pending"), code="invalid_payment_status")),
                amount_cents=Cents("amount paid; default: the checkout total"),
                force=Bool(description="accept an amount that differs from the total"),
            ),
            "checkouts:set_payment",
            "checkout set-payment chk_XXXX --provider bank --reference NL-4711 --status paid",
            calls_out=True,  # expires the open Stripe/Mollie payment it replaces
            scope=OPERATE,
        ),
        Endpoint(
            flow,
            "get-checkout-status",
            "The whole checkout: lines, customer, addresses, payment, totals, order.",
            obj(checkout_token=req(CHECKOUT_TOKEN)),
            "checkouts:get_checkout_status",
            "checkout get-checkout-status chk_XXXX --json",
            scope=READ,
        ),
        Endpoint(
            flow,
            "set-line-meta",
            "Attach typed meta, such as a lens prescription, to one line, validated.",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                product_sku=req(SKU),
                def_key=req(DEF_KEY),
                values=req(AnyObject(description='field values, e.g. {"right_sphere": "-1.25"}')),
                line_id=Int(
                    description="line number, when the SKU is on several lines",
                    minimum=1,
                    maximum=10000,
                ),
            ),
            "line_meta:set_line_meta",
            "checkout set-line-meta chk_XXXX LENS-TORIC-6 --def lens_prescription "
            "right_sphere=-1.25 left_sphere=-1.50 prescribed_on=2026-09-01",
            scope=OPERATE,
        ),
        Endpoint(
            flow,
            "complete-checkout",
            "Create the order, decrement stock and queue the confirmation (once).",
            obj(checkout_token=req(CHECKOUT_TOKEN)),
            "checkouts:complete_checkout",
            "checkout complete-checkout chk_XXXX",
            calls_out=True,
            scope=OPERATE,
        ),
        Endpoint(
            flow,
            "cancel-checkout",
            "Cancel an open checkout; the cart stays active for a new checkout. A paid one is "
            "refused unless forced, which refunds a Stripe/Mollie payment in full first.",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                reason=Str(max_length=500),
                force=Bool(
                    description="cancel a paid checkout too: a Stripe/Mollie payment is refunded "
                    "in full first; one linked by hand is not returned (say so to the customer)"
                ),
            ),
            "checkouts:cancel_checkout",
            "checkout cancel-checkout chk_XXXX --reason 'customer changed their mind' --yes",
            calls_out=True,
            scope=OPERATE,
            raised_scope=(("force", ADMIN),),  # force refunds money, as refund-payment does
        ),
        # shopping-cart
        Endpoint(
            SHOPPING_CART,
            "add-item",
            "Add a product to a cart (no cart token: a new cart); same SKU adds up.",
            obj(cart_token=TOKEN, product_sku=req(SKU), quantity=req(QUANTITY)),
            "carts:add_item",
            "checkout cart add LENS-30 --quantity 2",
            scope=OPERATE,
        ),
        Endpoint(
            SHOPPING_CART,
            "update-item",
            "Set a line's quantity (0 removes it).",
            obj(
                cart_token=req(TOKEN),
                product_sku=req(SKU),
                quantity=req(Int(minimum=0, maximum=9999, code="invalid_quantity")),
            ),
            "carts:update_item",
            "checkout cart update cart_XXXX LENS-30 --quantity 3",
            scope=OPERATE,
        ),
        Endpoint(
            SHOPPING_CART,
            "remove-item",
            "Remove a product from a cart.",
            obj(cart_token=req(TOKEN), product_sku=req(SKU)),
            "carts:remove_item",
            "checkout cart remove cart_XXXX LENS-30",
            scope=OPERATE,
        ),
        Endpoint(
            SHOPPING_CART,
            "get-cart",
            "A cart with its lines and subtotal.",
            obj(cart_token=req(TOKEN)),
            "carts:get_cart",
            "checkout cart show cart_XXXX",
            scope=READ,
        ),
        Endpoint(
            SHOPPING_CART,
            "clear-cart",
            "Remove every line from a cart.",
            obj(cart_token=req(TOKEN)),
            "carts:clear_cart",
            "checkout cart clear cart_XXXX",
            scope=OPERATE,
        ),
        # product-catalog
        Endpoint(
            PRODUCT_CATALOG,
            "list-products",
            "Products, optionally filtered by text.",
            obj(
                query=Str(max_length=100),
                include_archived=Bool(),
                **PAGE,
            ),
            "catalog:list_products",
            "checkout products list --query lens",
            scope=READ,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "get-product",
            "One product by SKU.",
            obj(sku=req(SKU)),
            "catalog:get_product",
            "checkout products show LENS-30",
            scope=READ,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "upsert-product",
            "Create or update a product.",
            PRODUCT,
            "catalog:upsert_product",
            "checkout products upsert LENS-30 --name 'Daily lenses' --price-cents 2495",
            scope=ADMIN,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "set-stock",
            "Set a product's stock (null: not tracked).",
            obj(
                sku=req(SKU),
                stock=Int(minimum=0, maximum=10**9, code="invalid_stock"),
                untracked=Bool(description="stop tracking stock"),
            ),
            "catalog:set_stock",
            "checkout products set-stock LENS-30 120",
            scope=ADMIN,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "list-meta-definitions",
            "Line meta definitions, each at its current version.",
            obj(**PAGE),
            "line_meta:list_meta_definitions",
            "checkout meta list",
            scope=READ,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "get-meta-definition",
            "One meta definition; with product_sku its config sources are resolved.",
            obj(def_key=req(DEF_KEY), product_sku=SKU),
            "line_meta:get_meta_definition",
            "checkout meta show lens_prescription --product LENS-TORIC-6",
            scope=READ,
        ),
        Endpoint(
            PRODUCT_CATALOG,
            "upsert-meta-definition",
            "Create a meta definition or a new version of it (when its fields change).",
            obj(
                def_key=req(DEF_KEY),
                title=Str(max_length=200),
                fields=req(Array(items=AnyObject(), max_items=100)),
            ),
            "line_meta:upsert_meta_definition",
            "checkout meta import fixtures/meta_definitions.json",
            scope=ADMIN,
        ),
        # order-management
        Endpoint(
            ORDER_MANAGEMENT,
            "list-orders",
            "Orders, newest first.",
            obj(
                status=Enum(choices=tuple(OrderState), code="invalid_status"),
                email=Str(max_length=254),
                reference=EXTERNAL_REFERENCE,
                **PAGE,
            ),
            "orders:list_orders",
            "checkout orders list --limit 20",
            scope=READ,
        ),
        Endpoint(
            ORDER_MANAGEMENT,
            "get-order",
            "One order by order id or order number.",
            obj(order_id=req(Str(max_length=80))),
            "orders:get_order",
            "checkout orders show 2026-000042",
            scope=READ,
        ),
        Endpoint(
            ORDER_MANAGEMENT,
            "get-line-meta",
            "The meta on an order's lines, optionally of one definition.",
            obj(order_id=req(Str(max_length=80)), def_key=DEF_KEY),
            "line_meta:get_line_meta",
            "checkout orders line-meta 2026-000042 --def lens_prescription",
            scope=READ,
        ),
        # checkout-admin: the operator's service (a hosted remote may not offer it).
        Endpoint(
            CHECKOUT_ADMIN,
            "list-outbox",
            "Queued, sent and failed emails.",
            obj(
                status=Enum(choices=("queued", "sending", "sent", "failed")),
                **PAGE,
            ),
            "outbox:list_outbox",
            "checkout outbox list",
            scope=READ,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "send-outbox",
            "Deliver queued and failed emails now.",
            obj(
                limit=Int(minimum=1, maximum=10000),
                retry_stuck=Bool(
                    description="also retry emails cut off mid-send over 10 "
                    "minutes ago (they may go out twice)"
                ),
            ),
            "outbox:send_outbox",
            "checkout outbox send",
            calls_out=True,
            scope=ADMIN,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "create-token",
            "Create an API token for `checkout serve` (shown once; only a hash is kept).",
            obj(
                name=req(Str(max_length=64, pattern=r"[A-Za-z0-9_.\-]+", code="invalid_name")),
                scope=Enum(
                    choices=SCOPES,
                    code="invalid_scope",
                    description="read: get-*/list-*; operate (default): carts, checkouts, "
                    "orders; admin: also catalog, settings, outbox, reconcile",
                ),
            ),
            "tokens:create_token",
            "checkout tokens create --name front-desk --scope operate",
            scope=ADMIN,
            faces=LOCAL_ONLY,
            secret_fields=("token",),
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "list-tokens",
            "API tokens by name, with their scope and when they were created and revoked.",
            obj(**PAGE),
            "tokens:list_tokens",
            "checkout tokens list",
            scope=ADMIN,
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "revoke-token",
            "Revoke an API token.",
            obj(name=req(Str(max_length=64))),
            "tokens:revoke_token",
            "checkout tokens revoke front-desk",
            scope=ADMIN,
            faces=LOCAL_ONLY,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "list-checkouts",
            "Checkouts, newest activity first; stuck ones with the reasons they are stuck.",
            obj(
                status=Enum(choices=CHECKOUT_STATES, code="invalid_status"),
                stuck=Bool(description="only stuck checkouts"),
                older_than_minutes=Int(minimum=0, maximum=10**7),
                # "Did you mean": a read any caller who may list checkouts may make anyway.
                near=Str(
                    description="only tokens within one typo of this one (case ignored)",
                    max_length=80,
                    pattern=r"[A-Za-z0-9_\-]+",
                    code="invalid_token_format",
                ),
                **PAGE,
            ),
            "support:list_checkouts",
            "checkout checkouts list --stuck --older-than 30m",
            scope=READ,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "inspect-checkout",
            "A checkout with its timeline, the provider's live status and a diagnosis.",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                live=Bool(description="ask the payment provider (default true)"),
                older_than_minutes=Int(minimum=0, maximum=10**7),
            ),
            "support:inspect_checkout",
            "checkout inspect chk_XXXX",
            calls_out=True,
            scope=OPERATE,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "check-invariants",
            "Check the store's invariants; every violation with the records involved.",
            obj(),
            "invariants:check_store",
            "checkout doctor",
            scope=OPERATE,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "reconcile",
            "Ask the providers about pending payments and refunds; complete, release or "
            "expire; report paid payments without an order.",
            obj(dry_run=Bool(description="only report what would change")),
            "payment_sync:reconcile",
            "checkout reconcile --dry-run",
            calls_out=True,
            scope=ADMIN,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "refund-payment",
            "Refund in full a stray payment: paid at Stripe/Mollie, but no order accounts for it.",
            obj(
                checkout_token=req(CHECKOUT_TOKEN),
                provider_payment_id=req(
                    Str(
                        description="the provider's payment id (cs_…, tr_…)",
                        max_length=255,
                        pattern=r"[A-Za-z0-9_]+",
                        code="invalid_payment_id",
                    )
                ),
                reason=Str(max_length=500),
            ),
            "refunds:refund_payment",
            "checkout refund-payment chk_XXXX tr_WDqYK6vllg --yes",
            calls_out=True,
            # Sends a customer's money back: an administrator's decision, never an assistant's.
            scope=ADMIN,
            faces=NO_MCP,
        ),
        # `checkout smoke`: a run's rows are hidden from the shop and removed when it ends.
        # The checkout flow's scope: a run changes nothing of the shop's (its product is its
        # own, never sold), so CI needs no admin token. Not over MCP: a CI tool's.
        Endpoint(
            CHECKOUT_ADMIN,
            "start-smoke",
            "Start a smoke run: its own hidden product (stock 1) and an empty cart for it. "
            "Runs left by a killed smoke are removed first.",
            obj(run_id=req(SMOKE_RUN)),
            "smoke_runs:start_smoke",
            "checkout smoke",
            calls_out=True,  # removing a killed run closes its open provider payment
            scope=OPERATE,
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "finish-smoke",
            "End a smoke run: cancel its open checkout and remove every row it made (one "
            "with a paid payment is kept).",
            obj(run_id=req(SMOKE_RUN)),
            "smoke_runs:finish_smoke",
            "checkout smoke",
            calls_out=True,  # cancelling the run's checkout closes its provider payment
            scope=OPERATE,
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "get-store",
            "The store's identity: project id, store id (kept by backups, new for a new store) "
            "and schema version.",
            obj(),
            "admin:get_store",
            "checkout call checkout-admin get-store",
            # An identity, not a secret (it grants nothing): every face may read it, as it
            # may the settings. Batch journals are bound to it over any backend.
            scope=READ,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "get-settings",
            "The store's settings.",
            obj(),
            "admin:get_settings",
            "checkout settings show",
            scope=READ,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "set-setting",
            "Change one setting.",
            obj(
                key=req(Str(max_length=64)),
                value=req(AnyValue(description="the value, typed as the setting requires")),
            ),
            "admin:set_setting",
            "checkout settings set allow_invoice_checkout true",
            scope=ADMIN,
            faces=NO_MCP,
        ),
        # Like set-setting (admin, no MCP face), and its local-only keys are refused the same
        # way over HTTP (`access.SETTING_WRITES`).
        Endpoint(
            CHECKOUT_ADMIN,
            "import-settings",
            "Change several settings at once: every key and value is checked first, and all "
            "are written in one transaction or none is.",
            obj(settings=req(AnyObject(description='key → value, e.g. {"currency": "EUR"}'))),
            "admin:import_settings",
            "checkout settings import fixtures/settings.json",
            scope=ADMIN,
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "unset-setting",
            "Return one setting to its default.",
            obj(key=req(Str(max_length=64))),
            "admin:unset_setting",
            "checkout settings unset payment_redirect_url",
            scope=ADMIN,
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "list-vault",
            "Names of the stored secrets and when they were set.",
            obj(),
            "vault:list_vault",
            "checkout vault list",
            scope=ADMIN,
            faces=NO_MCP,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "set-vault",
            "Store a secret (write-only: never read back).",
            obj(name=req(Str(max_length=64)), value=req(Str(max_length=4096))),
            "vault:set_vault",
            "checkout vault set smtp_password",
            scope=ADMIN,
            faces=LOCAL_ONLY,
        ),
        Endpoint(
            CHECKOUT_ADMIN,
            "delete-vault",
            "Delete a stored secret.",
            obj(name=req(Str(max_length=64))),
            "vault:delete_vault",
            "checkout vault delete smtp_password",
            scope=ADMIN,
            faces=LOCAL_ONLY,
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
