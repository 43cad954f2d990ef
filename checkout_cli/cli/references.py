"""What an operator may type for a checkout: its token, its order number, or ``--last``.

Every command that takes a checkout resolves it here, through the backend (so the same works
with ``--remote``): an order number (``2026-000042``) is looked up with ``get-order``, and
``--last`` is the operator's most recent checkout (``cli/recent.py``). A token that names no
checkout gets up to three close ones in its recovery line ("did you mean"), found by
``list-checkouts --near``: a caller who may not list checkouts gets none, and none is ever
picked for the operator (a wrong checkout is worse than an error).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer

from checkout_cli.cli import completion
from checkout_cli.cli.state import State
from checkout_cli.errors import CheckoutError, NotFoundError, UsageError

# engine/orders.py numbers orders YEAR-NNNNNN (six digits or more); a checkout token is chk_….
ORDER_NUMBER = re.compile(r"\d{4}-\d+")
SUGGESTIONS = 3

CheckoutArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="CHECKOUT",
        help="checkout token (chk_…) or order number (2026-000042)",
        show_default=False,
        autocompletion=completion.checkout_tokens,
    ),
]
Last = Annotated[
    bool,
    typer.Option(
        "--last", help="your most recent checkout: the last one you created or changed here"
    ),
]


@dataclass(frozen=True)
class Reference:
    token: str
    found_by: str = ""  # how it was found when it was not typed: "order 2026-000042", …

    @property
    def label(self) -> str:
        return f"{self.token} ({self.found_by})" if self.found_by else self.token


def resolve(state: State, given: str | None, *, last: bool) -> Reference:
    if last and given:
        raise UsageError(
            "conflicting_reference",
            f"give a checkout ({given}) or --last, not both",
            recovery="drop one of them",
        )
    if last:
        return _last(state)
    if not given:
        raise UsageError(
            "missing_input",
            "missing CHECKOUT: a checkout token (chk_…), an order number or --last",
            recovery="e.g. `checkout status 2026-000042` or `checkout status --last`",
        )
    if ORDER_NUMBER.fullmatch(given):
        return _by_order_number(state, given)
    return Reference(given)


def _last(state: State) -> Reference:
    from checkout_cli.cli import output, recent

    entry = recent.last_checkout(state.settings)
    if entry is None:
        raise NotFoundError(
            "no_last_checkout",
            "no last checkout yet: you have not created or changed one on this store",
            recovery="give the checkout token or order number instead",
        )
    token = entry["checkout_token"]
    output.say(f"--last: checkout {token} (you changed it last, {entry['at']})")
    return Reference(token, "your last checkout")


def _by_order_number(state: State, number: str) -> Reference:
    try:
        order = state.call("order-management", "get-order", {"order_id": number})
    except NotFoundError as exc:
        if exc.code != "order_not_found":
            raise
        digits = number.partition("-")[2]
        hint = "" if len(digits) >= 6 else "order numbers have six digits after the year; "
        raise NotFoundError(
            "order_not_found",
            f"no order {number}",
            field="checkout_token",
            recovery=f"{hint}list orders with `checkout orders list`",
        ) from None
    token = order["checkout_token"]
    return Reference(token, f"order {order['order_number']}")


@contextmanager
def checkout(
    state: State, given: str | None, *, last: bool = False, remember: bool = False
) -> Iterator[Reference]:
    """The checkout ``given`` names, for the ``with`` block that uses it (see ``using``)."""
    reference = resolve(state, given, last=last)
    with using(state, reference, remember=remember):
        yield reference


@contextmanager
def using(state: State, reference: Reference, *, remember: bool) -> Iterator[None]:
    """A typed token the store does not have is refused with the close ones it has; with
    ``remember`` (commands that change the checkout) a block that succeeds makes it the
    operator's ``--last``."""
    try:
        yield
    except NotFoundError as exc:
        if exc.code != "checkout_not_found" or reference.found_by:
            raise  # only a typed token can be a typo of another
        raise with_suggestions(state, exc, reference.token) from None
    if remember:
        from checkout_cli.cli import recent

        recent.remember(state.settings, reference.token)


def with_suggestions(state: State, error: NotFoundError, typed: str) -> NotFoundError:
    """``error`` with "did you mean" in its recovery, when the store has close tokens."""
    tokens = close_tokens(state, typed)
    if not tokens:
        return error
    return NotFoundError(
        error.code,
        error.message,
        field=error.field,
        recovery=f"did you mean {' or '.join(tokens)}? Nothing was done: run it again with "
        "the right one",
    )


def close_tokens(state: State, typed: str) -> list[str]:
    try:
        found = state.call(
            "checkout-admin", "list-checkouts", {"near": typed, "limit": SUGGESTIONS}
        )
    except CheckoutError:
        # Not allowed to list checkouts (scope), or a remote without the lookup: no
        # suggestions, and the not-found error stands as it is.
        return []
    return [c["checkout_token"] for c in found["checkouts"] if c["checkout_token"] != typed]
