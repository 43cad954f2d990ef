"""checkout phone-order: a guided order for staff on the phone, on any backend.

Every step is one endpoint call, so stopping anywhere (Ctrl-C) leaves a consistent cart or
checkout; the command prints how to resume, and ``--resume TOKEN`` picks up a cart
(``cart_…``) or a checkout (``chk_…``) where it was left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
        self.declined: set[tuple[str, str]] = set()  # optional meta staff said no to (SKU, key)

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
            problem = self._stock_problem(by_sku[sku], self._in_cart(sku) + quantity)
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

    def _in_cart(self, sku: str) -> int:
        if not self.cart_token:
            return 0
        cart = self.call("shopping-cart", "get-cart", {"cart_token": self.cart_token})
        return sum(i["quantity"] for i in cart["items"] if i["product_sku"] == sku)

    def _stock_problem(self, product: dict[str, Any], wanted: int) -> str | None:
        """Why ``wanted`` units of a line cannot be had (the stock is short), or None; a
        backorder is said.

        Checked when a line is added or changed, not only at completion, so staff do not type
        a whole customer for an order that cannot complete.
        """
        stock = product["stock"]
        if stock is None or wanted <= stock:
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

    def initiate(self, reference: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"cart_token": self.cart_token}
        if reference is not None:
            body["external_reference"] = reference
        co = self.call(FLOW, "initiate-checkout", body)
        self.checkout_token = co["checkout_token"]
        for warning in co.get("warnings", []):
            self.say(f"warning: {warning['message']}", "yellow")
        return co

    def customer(self) -> None:
        from checkout_cli.cli.prompts import checker
        from checkout_cli.requests import Address, Customer
        from checkout_cli.schema import field_type

        email = self.ask.text("Customer email", validate=checker(field_type(Customer, "email")))
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

            def text(label: str, kind: Any, optional: bool = False) -> str | None:
                validate = checker(kind)
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
                "name": text("Name", field_type(Customer, "name")),
                "phone": text("Phone", field_type(Customer, "phone"), optional=True),
            }
            address = {
                "line1": text("Street and number", field_type(Address, "line1")),
                "postal_code": text("Postal code", field_type(Address, "postal_code")),
                "city": text("City", field_type(Address, "city")),
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

    def line_meta(self, co: dict[str, Any]) -> dict[str, Any]:
        """Ask each line's missing meta, saving each as it is completed; the checkout after."""
        from checkout_cli.cli.meta import ask_values

        for item in co["items"]:
            product = self.call("product-catalog", "get-product", {"sku": item["product_sku"]})
            for ref in product["meta_defs"]:
                if ref["def_key"] in item["meta"]:
                    continue  # saved earlier (each line's meta is saved as it is completed)
                if (item["product_sku"], ref["def_key"]) in self.declined:
                    continue
                if not ref.get("required") and not self.ask.confirm(
                    f"Add {ref['def_key']} for line {item['line_id']} ({item['product_sku']})?",
                    default=False,
                ):
                    self.declined.add((item["product_sku"], ref["def_key"]))
                    continue
                while True:
                    values = ask_values(self.state, ref["def_key"], item["product_sku"])
                    try:
                        co = self.call(
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
        return co

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
        from checkout_cli.money import (
            amount_problem,
            decimals_rule,
            format_money,
            parse_amount,
            to_decimal,
        )

        total, currency = co["totals"]["total_cents"], co["currency"]
        provider = self.ask.text("Paid via (e.g. bank, pos)", default="bank")
        reference = self.ask.text("Payment reference")
        # Written the currency's way (45.90 EUR, 4590 JPY): the total is the default.
        amount = parse_amount(
            self.ask.text(
                f"Amount received ({currency}, {decimals_rule(currency)})",
                default=str(to_decimal(total, currency)),
                validate=lambda v: amount_problem(v, currency, total),
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

    def payment(self, co: dict[str, Any]) -> dict[str, Any] | None:
        """The payment chosen and made; None when staff changed the lines instead (the
        checkout is then a new one: its meta and payment are asked again)."""
        self.show_total(co)
        choices = [
            ("invoice", "Invoice (pay later)"),
            ("stripe", "Card payment link (Stripe)"),
            ("mollie", "Payment link (Mollie: iDEAL, cards…)"),
            ("manual", "Already paid elsewhere (bank transfer, terminal)"),
            ("change", "Change the products (quantity, remove a line)"),
        ]
        while True:
            method = self.ask.choice("Payment", choices, default="invoice")
            if method == "change":
                if self.change_lines(co):
                    return None
                self.show_total(co)
                continue
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

    def change_lines(self, co: dict[str, Any]) -> bool:
        """Let staff change a line's quantity or remove a line; whether anything changed.

        A checkout's lines are a snapshot of its cart, so a change moves the order to a new
        checkout of the changed cart (the old one is cancelled), carrying the customer, the
        addresses and every kept line's meta: nothing typed is asked again.
        """
        from checkout_cli.cli import output

        blocked = _why_lines_are_fixed(co)
        if blocked:
            self.say(f"the lines cannot change: {blocked}", "red")
            return False
        changed = False
        while True:
            output.out().print(output.lines_group(co["items"], co["currency"]))
            lines = {str(i["line_id"]): i for i in co["items"]}
            picked = self.ask.choice(
                "Which line?",
                [
                    *(
                        (key, f"{key}  {i['product_sku']}  {i['name']}  × {i['quantity']}")
                        for key, i in lines.items()
                    ),
                    ("done", "Done: keep the lines as they are"),
                ],
            )
            if picked == "done":
                return changed
            line = lines[picked]
            quantity = self._new_quantity(line, only_line=len(lines) == 1)
            if quantity is None:
                continue
            co = self._move_to_new_checkout(co, line["product_sku"], quantity)
            changed = True

    def _new_quantity(self, line: dict[str, Any], *, only_line: bool) -> int | None:
        """The line's new quantity (0: remove it), stock checked; None to leave it."""
        actions = [("quantity", "Change the quantity")]
        if not only_line:  # an order keeps at least one line: cancel it to drop everything
            actions.append(("remove", "Remove the line"))
        actions.append(("keep", "Keep it as it is"))
        action = self.ask.choice(
            f"Line {line['line_id']}: {line['product_sku']} × {line['quantity']}", actions
        )
        if action == "keep":
            return None
        if action == "remove":
            return 0
        quantity = int(
            self.ask.text("New quantity", default=str(line["quantity"]), validate=_quantity_problem)
        )
        product = self.call("product-catalog", "get-product", {"sku": line["product_sku"]})
        problem = self._stock_problem(product, quantity)
        if problem:
            self.say(f"not changed: {problem}", "red")
            return None
        return None if quantity == line["quantity"] else quantity

    def _move_to_new_checkout(self, old: dict[str, Any], sku: str, quantity: int) -> dict[str, Any]:
        """The cart line changed and a new checkout of it with ``old``'s customer and meta.

        Only endpoints every backend has are used, so this works on a remote too. Ctrl-C is
        held until the calls are done: stopping half-way would leave the order split over two
        checkouts.
        """
        meta = {i["product_sku"]: i["meta"] for i in old["items"] if i["meta"]}
        with _ctrl_c_held():
            self.call(
                "shopping-cart",
                "update-item",
                {"cart_token": self.cart_token, "product_sku": sku, "quantity": quantity},
            )
            self.call(
                FLOW,
                "cancel-checkout",
                {
                    "checkout_token": old["checkout_token"],
                    "reason": "lines changed during a phone order; continued in a new checkout",
                },
            )
            # A batch's reference stays with the order it names.
            co = self.initiate(old.get("external_reference"))
            if old["customer"] is not None:
                co = self.call(
                    FLOW,
                    "set-customer",
                    {
                        "checkout_token": self.checkout_token,
                        "customer": _given(old["customer"]),
                        "shipping_address": _given(old["shipping_address"]),
                        "billing_address": _given(old["billing_address"]),
                        # As it was, whether the default or given; tax follows the rates.
                        "shipping_cents": old["totals"]["shipping_cents"],
                    },
                )
            for item in co["items"]:
                for def_key, values in meta.get(item["product_sku"], {}).items():
                    co = self._carry_meta(co, item, def_key, values)
        change = "removed" if quantity == 0 else f"now × {quantity}"
        self.say(f"{sku} {change}; the order continues as {self.checkout_token}", "green")
        return co

    def _carry_meta(
        self, co: dict[str, Any], item: dict[str, Any], def_key: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return self.call(
                FLOW,
                "set-line-meta",
                {
                    "checkout_token": self.checkout_token,
                    "product_sku": item["product_sku"],
                    "line_id": item["line_id"],
                    "def_key": def_key,
                    "values": values,
                },
            )
        except CheckoutError as exc:  # e.g. its definition changed since: asked again
            self.say(f"{def_key} of {item['product_sku']} not kept: {exc.message}", "yellow")
            return co

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
        while True:
            co = self.call(FLOW, "get-checkout-status", {"checkout_token": self.checkout_token})
            co = self.line_meta(co)
            unpaid = co["payment"] is None or co["status"] == "active"
            if unpaid and self.payment(co) is None:
                continue  # the lines changed: a new checkout, meta and payment again
            try:
                done = self.complete()
            except CheckoutError as exc:
                if exc.code != "insufficient_stock":
                    raise
                co = self.call(FLOW, "get-checkout-status", {"checkout_token": self.checkout_token})
                if _why_lines_are_fixed(co):
                    raise
                self.say(f"cannot complete: {exc.message}", "red")
                if not self.ask.confirm("Change or remove that line now?", default=True):
                    raise
                self.change_lines(co)
                continue
            break
        if done is None:
            self.say(f"not completed yet; when the customer has paid: {self.resume_hint()}")
            return None
        self.summary(done)
        return done


def _why_lines_are_fixed(co: dict[str, Any]) -> str | None:
    """Why a checkout's lines may not change any more, or None.

    Only before any money is involved: no payment, or an unpaid invoice. A payment link or a
    recorded payment was made for this total.
    """
    payment = co["payment"]
    if payment is None or (payment["provider"] == "invoice" and payment["status"] != "paid"):
        return None
    return (
        f"a {payment['provider']} payment ({payment['status']}) was made for this total; "
        f"restock with `checkout products set-stock SKU N`, or cancel the checkout "
        f"(`checkout cancel-checkout {co['checkout_token']}`) and start again"
    )


def _given(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored customer or address as a request body: its unset fields left out."""
    return None if record is None else {k: v for k, v in record.items() if v is not None}


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Run a few calls that belong together with Ctrl-C held; it takes effect after them."""
    import signal

    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


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
    addresses, line meta, payment (invoice, payment link, or already paid; or change the
    products first), completion, and the order number to read out. Ctrl-C leaves everything
    consistent and prints the command that resumes.

    Example: checkout phone-order
    """
    from checkout_cli.cli.errors import Interrupted
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
        raise Interrupted(
            "nothing is half-done." + (f" Resume with: {hint}" if hint else "")
        ) from None
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
