"""checkout phone-order: a guided order for staff on the phone, on any backend.

Every step is one endpoint call, so stopping anywhere (Ctrl-C) leaves a consistent cart or
checkout; the command prints how to resume, and ``--resume TOKEN`` picks up a cart
(``cart_…``) or a checkout (``chk_…``) where it was left.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from checkout_cli.cli.state import State
from checkout_cli.errors import CheckoutError, UsageError

FLOW = "checkout-flow"


class PhoneOrder:
    def __init__(self, state: State) -> None:
        from checkout_cli.cli.prompts import prompter

        self.state = state
        self.ask = prompter()
        self.cart_token: str | None = None
        self.checkout_token: str | None = None

    # -- helpers -----------------------------------------------------------------------------

    def call(self, service: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.state.call(service, name, body)

    def say(self, text: str, style: str | None = None) -> None:
        from checkout_cli.cli import output

        output.say(text, style)

    def resume_hint(self) -> str | None:
        token = self.checkout_token or self.cart_token
        return f"checkout phone-order --resume {token}" if token else None

    # -- the steps ---------------------------------------------------------------------------

    def pick_products(self) -> None:
        from checkout_cli.cli import output
        from checkout_cli.money import format_money

        products = self.call("product-catalog", "list-products", {})["products"]
        if not products:
            raise UsageError(
                "no_products",
                "the catalog is empty",
                recovery="import one with `checkout products import FILE`",
            )
        choices = [
            (
                p["sku"],
                f"{p['sku']}  {p['name']}  {format_money(p['price_cents'], p['currency'])}"
                + ("" if p["stock"] is None else f"  ({p['stock']} in stock)"),
            )
            for p in products
        ]
        by_sku = {p["sku"]: p for p in products}
        while True:
            sku = self.ask.search("Product (type part of a name or SKU, Tab to complete)", choices)
            quantity = int(self.ask.text("Quantity", default="1", validate=_quantity_problem))
            problem = self._stock_problem(by_sku[sku], quantity)
            if problem:
                self.say(f"not added: {problem}", "red")
                continue
            try:
                cart = self.call(
                    "shopping-cart",
                    "add-item",
                    {"cart_token": self.cart_token, "product_sku": sku, "quantity": quantity},
                )
            except CheckoutError as exc:
                self.say(f"not added: {exc.message}", "red")
                continue
            self.cart_token = cart["cart_token"]
            output.cart_view(cart)
            if not self.ask.confirm("Add another product?", default=False):
                return

    def _stock_problem(self, product: dict[str, Any], quantity: int) -> str | None:
        """Why this line cannot be added (the stock is short), or None; a backorder is said.

        Checked now, not only at completion, so staff do not type a whole customer for an
        order that cannot complete.
        """
        stock = product["stock"]
        if stock is None:
            return None
        in_cart = 0
        if self.cart_token:
            cart = self.call("shopping-cart", "get-cart", {"cart_token": self.cart_token})
            same = [i for i in cart["items"] if i["product_sku"] == product["sku"]]
            in_cart = sum(i["quantity"] for i in same)
        wanted = in_cart + quantity
        if wanted <= stock:
            return None
        if product.get("allow_backorder"):
            self.say(
                f"{product['sku']}: {max(stock, 0)} in stock, {wanted} wanted; backorder is "
                f"allowed, the rest ships when restocked",
                "yellow",
            )
            return None
        return (
            f"{product['sku']}: {max(stock, 0)} in stock, {wanted} wanted "
            f"(choose fewer, or another product)"
        )

    def initiate(self) -> dict[str, Any]:
        co = self.call(FLOW, "initiate-checkout", {"cart_token": self.cart_token})
        self.checkout_token = co["checkout_token"]
        for warning in co.get("warnings", []):
            self.say(f"warning: {warning['message']}", "yellow")
        return co

    def customer(self) -> None:
        from checkout_cli.cli.prompts import checker
        from checkout_cli.endpoints import ADDRESS, CUSTOMER

        email = self.ask.text(
            "Customer email", validate=checker(CUSTOMER.props["email"].node.check)
        )
        previous = self._previous_customer(email)
        body: dict[str, Any]
        if previous and self.ask.confirm(
            f"Use {previous['customer']['name']}, {previous['shipping_address']['line1']}, "
            f"{previous['shipping_address']['city']} from order "
            f"{previous['order_number']}?",
            default=True,
        ):
            body = {
                "customer": previous["customer"],
                "shipping_address": previous["shipping_address"],
                "billing_address": previous["billing_address"],
            }
        else:

            def text(label: str, node: Any, optional: bool = False) -> str | None:
                validate = checker(node.check)
                answer = self.ask.text(
                    label + (" (optional)" if optional else ""),
                    validate=(lambda v: None if not v.strip() else validate(v))
                    if optional
                    else validate,
                )
                return answer.strip() or None

            from checkout_cli.countries import country_names

            customer = {
                "email": email,
                "name": text("Name", CUSTOMER.props["name"].node),
                "phone": text("Phone", CUSTOMER.props["phone"].node, optional=True),
            }
            address = {
                "line1": text("Street and number", ADDRESS.props["line1"].node),
                "postal_code": text("Postal code", ADDRESS.props["postal_code"].node),
                "city": text("City", ADDRESS.props["city"].node),
            }
            countries = sorted(country_names().items(), key=lambda kv: kv[1])
            address["country"] = self.ask.choice(
                "Country", [(code, f"{code}  {name}") for code, name in countries], default="NL"
            )
            body = {
                "customer": {k: v for k, v in customer.items() if v},
                "shipping_address": address,
            }
        self.call(FLOW, "set-customer", {"checkout_token": self.checkout_token, **body})

    def _previous_customer(self, email: str) -> dict[str, Any] | None:
        try:
            orders = self.call("order-management", "list-orders", {"email": email, "limit": 1})
        except CheckoutError:
            return None
        return orders["orders"][0] if orders["orders"] else None

    def line_meta(self, co: dict[str, Any]) -> None:
        from checkout_cli.cli.meta import ask_values

        for item in co["items"]:
            product = self.call("product-catalog", "get-product", {"sku": item["product_sku"]})
            for ref in product["meta_defs"]:
                if ref["def_key"] in item["meta"]:
                    continue
                if not ref.get("required") and not self.ask.confirm(
                    f"Add {ref['def_key']} for line {item['line_id']} ({item['product_sku']})?",
                    default=False,
                ):
                    continue
                while True:
                    values = ask_values(self.state, ref["def_key"], item["product_sku"])
                    try:
                        self.call(
                            FLOW,
                            "set-line-meta",
                            {
                                "checkout_token": self.checkout_token,
                                "product_sku": item["product_sku"],
                                "line_id": item["line_id"],
                                "def_key": ref["def_key"],
                                "values": values,
                            },
                        )
                        break
                    except CheckoutError as exc:
                        self.say(f"{exc.message} — {exc.recovery or ''}", "red")

    def show_total(self, co: dict[str, Any]) -> None:
        """The amount to tell the customer before they choose how to pay."""
        from rich.panel import Panel
        from rich.text import Text

        from checkout_cli.cli import output
        from checkout_cli.money import format_money

        totals = co["totals"]
        rows = [
            ("Subtotal", totals["subtotal_cents"]),
            ("Shipping", totals["shipping_cents"]),
            ("Tax", totals["tax_cents"]),
        ]
        currency = co["currency"]
        body = "\n".join(f"{label:<10}{format_money(cents, currency)}" for label, cents in rows)
        text = Text(body + "\n")
        text.append(f"{'Total':<10}{format_money(totals['total_cents'], co['currency'])}", "bold")
        output.out().print(Panel(text, title="To pay", padding=(0, 2), expand=False))

    def _manual_payment(self, co: dict[str, Any]) -> dict[str, Any]:
        """Record a payment made elsewhere, with the amount actually received."""
        from checkout_cli.money import format_money, parse_amount, to_decimal

        total, currency = co["totals"]["total_cents"], co["currency"]
        provider = self.ask.text("Paid via (e.g. bank, pos)", default="bank")
        reference = self.ask.text("Payment reference")
        amount = parse_amount(
            self.ask.text(
                f"Amount received ({currency})",
                default=str(to_decimal(total, currency)),
                validate=lambda v: (
                    None if parse_amount(v, currency) is not None else "an amount such as 45.90"
                ),
            ),
            currency,
        )
        body: dict[str, Any] = {
            "checkout_token": self.checkout_token,
            "provider": provider,
            "reference": reference,
            "status": "paid",
            "amount_cents": amount,
        }
        if amount != total:
            if not self.ask.confirm(
                f"{format_money(amount, currency)} is not the total "
                f"{format_money(total, currency)}. Record it anyway?",
                default=False,
            ):
                raise UsageError("amount_mismatch", "not recorded", recovery="choose again")
            body["force"] = True
        return self.call(FLOW, "set-payment", body)

    def payment(self, co: dict[str, Any]) -> dict[str, Any]:
        self.show_total(co)
        choices = [
            ("invoice", "Invoice (pay later)"),
            ("stripe", "Card payment link (Stripe)"),
            ("mollie", "Payment link (Mollie: iDEAL, cards…)"),
            ("manual", "Already paid elsewhere (bank transfer, terminal)"),
        ]
        while True:
            method = self.ask.choice("Payment", choices, default="invoice")
            try:
                if method == "manual":
                    return self._manual_payment(co)
                co = self.call(
                    FLOW,
                    "create-payment",
                    {"checkout_token": self.checkout_token, "provider": method},
                )
            except CheckoutError as exc:
                self.say(f"{exc.message} — {exc.recovery or 'choose another way'}", "red")
                continue
            if method != "invoice":
                self._show_link(co["payment"]["redirect_url"])
                if self._links_emailed():
                    self.say(f"the link was also emailed to {co['customer']['email']}")
            return co

    def _links_emailed(self) -> bool:
        try:
            settings = self.call("checkout-admin", "get-settings", {})["settings"]
        except CheckoutError:  # a remote without the admin service
            return False
        return bool(settings.get("email_payment_links"))

    def _show_link(self, url: str) -> None:
        from rich.panel import Panel
        from rich.text import Text

        from checkout_cli.cli import output

        output.out().print(
            Panel(Text(url, style="bold"), title="Payment link for the customer", padding=(1, 2))
        )
        output.out().print(url, soft_wrap=True)  # on its own line, to copy whole

    def complete(self) -> dict[str, Any] | None:
        while True:
            try:
                return self.call(FLOW, "complete-checkout", {"checkout_token": self.checkout_token})
            except CheckoutError as exc:
                if exc.code != "payment_not_paid":
                    raise
                self.say(exc.message, "yellow")
                if not self.ask.confirm("Check again?", default=True):
                    return None

    def summary(self, co: dict[str, Any]) -> None:
        from rich.panel import Panel
        from rich.text import Text

        from checkout_cli.cli import output
        from checkout_cli.money import format_money

        output.checkout_view(co)
        order = co["order"]
        total = format_money(co["totals"]["total_cents"], co["currency"])
        output.out().print(
            Panel(
                Text.assemble(
                    ("Order number  ", ""),
                    (order["order_number"], "bold"),
                    f"\nTotal         {total}\nPayment       {order['payment_status']}",
                ),
                title="Read this out",
                padding=(1, 2),
            )
        )

    # -- the whole flow ----------------------------------------------------------------------

    def run(self, resume: str | None) -> dict[str, Any] | None:
        co: dict[str, Any] | None = None
        if resume and resume.startswith("chk_"):
            co = self.call(FLOW, "get-checkout-status", {"checkout_token": resume})
            self.checkout_token, self.cart_token = resume, co["cart_token"]
            if co["status"] in ("cancelled", "expired"):
                raise UsageError(
                    "checkout_closed",
                    f"checkout {resume} is {co['status']}",
                    recovery=f"start again from its cart: checkout phone-order "
                    f"--resume {co['cart_token']}",
                )
        elif resume:
            from checkout_cli.cli import output

            self.cart_token = resume
            output.cart_view(self.call("shopping-cart", "get-cart", {"cart_token": resume}))
        if co is None:
            if not resume or self.ask.confirm("Add more products?", default=False):
                self.pick_products()
            co = self.initiate()
        if co["status"] == "completed":
            self.summary(co)
            return co
        change = False
        if resume and co["customer"] is not None and co["status"] == "active":
            from checkout_cli.cli import output

            output.checkout_view(co)  # where it stands: lines, customer, addresses
            change = self.ask.confirm("Change the customer?", default=False)
        if co["customer"] is None or change:
            self.customer()
        co = self.call(FLOW, "get-checkout-status", {"checkout_token": self.checkout_token})
        self.line_meta(co)
        if co["payment"] is None or co["status"] == "active":
            co = self.payment(co)
        done = self.complete()
        if done is None:
            self.say(f"not completed yet; when the customer has paid: {self.resume_hint()}")
            return None
        self.summary(done)
        return done


def _quantity_problem(text: str) -> str | None:
    return None if text.strip().isdigit() and 1 <= int(text) <= 9999 else "a number, 1 to 9999"


def phone_order(
    ctx: typer.Context,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="TOKEN",
            help="continue a cart (cart_…), or a checkout (chk_…, or its order number)",
        ),
    ] = None,
    last: Annotated[
        bool, typer.Option("--last", help="continue your most recent checkout")
    ] = False,
) -> None:
    """Take an order on the phone, step by step: products, customer (re-used by email),
    addresses, line meta, payment (invoice, payment link, or already paid), completion, and
    the order number to read out. Ctrl-C leaves everything consistent and prints the command
    that resumes.

    Example: checkout phone-order
    """
    from checkout_cli.cli.prompts import can_prompt

    state: State = ctx.obj
    if not can_prompt(state.settings):
        raise UsageError(
            "terminal_required",
            "phone-order asks questions: it needs a terminal",
            recovery="for scripts use the endpoint commands or `checkout batch`",
        )
    if last or (resume and not resume.startswith("cart_")):
        resume = _resumed_checkout(state, resume, last=last)
    order = PhoneOrder(state)
    try:
        order.run(resume)
    except KeyboardInterrupt:
        hint = order.resume_hint()
        order.say(
            "\nstopped; nothing is half-done." + (f" Resume with: {hint}" if hint else ""), "yellow"
        )
        raise typer.Exit(130) from None
    finally:
        if order.checkout_token:
            from checkout_cli.cli import recent

            recent.remember(state.settings, order.checkout_token)


def _resumed_checkout(state: State, given: str | None, *, last: bool) -> str:
    """The checkout token of ``--resume`` (a token, an order number) or ``--last``, checked
    to exist first: a mistyped token is refused with the close ones, before any question."""
    from checkout_cli.cli import references

    with references.checkout(state, given, last=last) as reference:
        state.call(FLOW, "get-checkout-status", {"checkout_token": reference.token})
    return reference.token


def register(app: typer.Typer) -> None:
    app.command("phone-order")(phone_order)
