"""Every root command and group: where it is built, and its first sentence for `checkout --help`.

Nothing is imported to list them: `checkout --help` prints this table, and a command's module
(with the request models it makes flags from) is imported only when the command is named. The
summaries are the first sentence of each command's help; tests/test_cli_help.py checks that
the list reads the same as the commands themselves would, at every width.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """``module`` builds the command: a group is its Typer ``attribute``; with none, the
    module's ``register(app)`` adds it (and the module's other root commands)."""

    module: str
    summary: str
    attribute: str | None = None


_FLOW = "checkout_cli.cli.flow"
_SUPPORT = "checkout_cli.cli.support"
_ADMIN = "checkout_cli.cli.admin"
_SERVE = "checkout_cli.cli.serve"

COMMANDS: dict[str, Entry] = {
    "initiate-checkout": Entry(
        _FLOW, "Snapshot a cart's lines and totals into a checkout (an open one is reused)."
    ),
    "set-customer": Entry(_FLOW, "Set the customer and addresses; recalculates shipping and tax."),
    "create-payment": Entry(
        _FLOW, "Create a payment with a provider (stripe, mollie) or as an invoice."
    ),
    "set-payment": Entry(
        _FLOW, "Link an external payment by hand (amount must match the total unless forced)."
    ),
    "get-checkout-status": Entry(
        _FLOW, "The whole checkout: lines, customer, addresses, payment, totals, order."
    ),
    "complete-checkout": Entry(
        _FLOW, "Create the order, decrement stock and queue the confirmation (once)."
    ),
    "cancel-checkout": Entry(
        _FLOW, "Cancel an open checkout; the cart stays active for a new checkout."
    ),
    "status": Entry(
        _FLOW, "The whole checkout: lines, customer, addresses, payment, totals, order."
    ),
    "set-line-meta": Entry(
        "checkout_cli.cli.meta",
        "Attach typed meta, such as a lens prescription, to one line, validated.",
    ),
    "phone-order": Entry(
        "checkout_cli.cli.phone_order",
        "Take an order on the phone, step by step: products, customer (re-used by email), "
        "addresses, line meta, payment (invoice, payment link, or already paid; or change the "
        "products first), completion, and the order number to read out.",
    ),
    "call": Entry(
        "checkout_cli.cli.call", "Call any endpoint with a JSON body and print the result as JSON."
    ),
    "demo": Entry(
        "checkout_cli.cli.demo",
        "Run a complete phone order on a fresh store: no network, no input.",
    ),
    "init": Entry(_ADMIN, "Create the store (if needed) and print where it is."),
    "reconcile": Entry(
        _ADMIN,
        "Ask Stripe and Mollie about every pending payment: complete the paid ones (with "
        "auto_complete_paid), release the failed, cancelled and expired ones, and expire "
        "checkouts past their TTL.",
    ),
    "inspect": Entry(
        _SUPPORT,
        "Everything support needs about one checkout: the status view, its timeline, the "
        "provider's live status, and a diagnosis with the exact command that fixes it.",
    ),
    "doctor": Entry(
        _SUPPORT,
        "Check the store's invariants (one order per checkout, stock = ledger, one email per "
        "order, totals add up, meta copied unchanged, no paid payment without an order or a "
        "refund, order payment status = its payment row) and list every violation by name, and "
        "every email left half-sent.",
    ),
    "refund-payment": Entry(
        _SUPPORT,
        "Refund in full a stray payment: paid at Stripe or Mollie, but no order accounts for it "
        "(its checkout is cancelled, expired or completed by another payment, or it was replaced).",
    ),
    "smoke": Entry(
        "checkout_cli.cli.smoke",
        "Run a whole checkout on the configured backend as a smoke run, timing each step, and "
        "leave the shop as it was: the run's product, cart, checkout, order and email are hidden "
        "from lists, numbering and the outbox, and removed at the end, whichever step failed (a "
        "killed run is removed by the next).",
    ),
    "serve": Entry(
        _SERVE,
        "Serve this store's API over HTTP for a team (bearer tokens, /openapi.json, webhooks).",
    ),
    "mcp": Entry(
        "checkout_cli.cli.mcp_cmd",
        "Run an MCP server over stdio: one tool per endpoint, on the local store or --remote.",
    ),
    "cart": Entry("checkout_cli.cli.cart", "Build a cart: add, update, remove items.", "app"),
    "products": Entry(
        "checkout_cli.cli.products",
        "The catalog: list, search, add, update, delete, set stock, import.",
        "app",
    ),
    "orders": Entry("checkout_cli.cli.orders", "Orders made by completed checkouts.", "app"),
    "meta": Entry(
        "checkout_cli.cli.meta",
        "Line meta definitions: typed fields such as a lens prescription.",
        "app",
    ),
    "checkouts": Entry(_SUPPORT, "Find checkouts, stuck ones first of all.", "checkouts_app"),
    "batch": Entry("checkout_cli.cli.batch", "Scripted bulk operations.", "app"),
    "outbox": Entry(_ADMIN, "Confirmation emails: list and (re)send.", "outbox_app"),
    "settings": Entry(_ADMIN, "Shop settings.", "settings_app"),
    "vault": Entry(
        _ADMIN,
        "Write-only secrets: provider keys, SMTP password; encrypted at rest with a key kept "
        "outside the store (CHECKOUT_VAULT_KEY, or a key file in the config dir).",
        "vault_app",
    ),
    "events": Entry(
        "checkout_cli.cli.events",
        "Order events out as signed webhooks: subscribe a URL, see its deliveries, test it.",
        "events_app",
    ),
    "tokens": Entry(
        _SERVE,
        "API tokens for `checkout serve`, each with a scope (read, operate, admin).",
        "tokens_app",
    ),
    "db": Entry(
        "checkout_cli.cli.db",
        "The store itself: back it up, copy it, see its schema version, migrate it.",
        "db_app",
    ),
    "profiles": Entry(
        "checkout_cli.cli.profiles",
        "Profiles in config.toml: switch between stores and team servers.",
        "app",
    ),
}
