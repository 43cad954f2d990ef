"""Bank transfers in bulk: each credit of a bank statement matched to an open invoice order and
recorded on it through ``record-payment``, on any backend.

A line is matched by the order number(s) in its description (``2026-000042``; ``2026 000042``
and ``2026000042`` too, as banks strip dashes) and by its amount against the order's balance
due: ``matched`` (equal), ``partial`` (less), ``overpaid`` (more; a fully paid order named
again is overpaid too). A line naming no order the store has is matched by amount alone
against the open orders in its currency: exactly one with that balance due is ``matched``,
several are ``ambiguous``, none is ``unmatched``. Several orders named in one line are
``ambiguous`` unless exactly one of them is owed that amount.

``matched`` and ``partial`` lines are recorded (a real run), with the bank transaction id as
the payment's reference: the store records one payment per reference, so re-running a
statement, or one that overlaps it, records nothing twice (such lines are
``already_recorded``, found by ``list-orders --payment-reference`` before any matching).
``overpaid`` lines are reported and not recorded: taking more than is owed is an
administrator's decision (``record-payment --force``), and the report says what to run.

The statement is streamed: a line is read, matched, recorded and reported before the next.
The open orders (for matching by amount alone) are loaded once, only when a line needs them,
as (currency, balance) → order numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from checkout_cli.backends.base import Backend
from checkout_cli.errors import CheckoutError, ConflictError
from checkout_cli.money import format_money
from checkout_cli.statements import LineProblem, StatementLine
from checkout_cli.workflows.report_file import ReportFile

ORDERS = "order-management"
# YEAR-NNNNNN as next_order_number makes it; a space or nothing between, as banks rewrite it.
ORDER_NUMBER = re.compile(r"(?<![0-9])(20[0-9]{2})[-/ ]?([0-9]{6})(?![0-9])")
RECORDED = ("matched", "partial")
OUTCOMES = (
    "matched",
    "partial",
    "overpaid",
    "unmatched",
    "ambiguous",
    "already_recorded",
    "debit",
    "nothing_received",
    "not_booked",
    "invalid",
    "failed",
)


@dataclass
class LineOutcome:
    line: int
    bank_id: str | None
    amount_cents: int | None
    currency: str | None
    outcome: str
    order_number: str | None = None
    message: str = ""
    booked_on: str | None = None
    counterparty: str | None = None
    recorded: bool = False  # a payment was recorded by this run
    exit_code: int = 0


def order_numbers(description: str) -> list[str]:
    """The order numbers a description names, in order, each once."""
    return list(dict.fromkeys(f"{y}-{n}" for y, n in ORDER_NUMBER.findall(description)))


class OpenOrders:
    """The open orders by (currency, balance due), loaded on first use through list-orders,
    and kept current as this run records payments."""

    PAGE = 500

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.by_amount: dict[tuple[str, int], set[str]] | None = None

    def _load(self) -> dict[tuple[str, int], set[str]]:
        if self.by_amount is None:
            self.by_amount = {}
            offset = 0
            while True:
                page = self.backend.call(
                    ORDERS,
                    "list-orders",
                    {"status": "pending", "limit": self.PAGE, "offset": offset},
                )
                for order in page["orders"]:
                    self._put(order["order_number"], order["currency"], order["balance_due_cents"])
                if len(page["orders"]) < self.PAGE:
                    break
                offset += self.PAGE
        return self.by_amount

    def _put(self, number: str, currency: str, balance: int) -> None:
        if balance > 0 and self.by_amount is not None:
            self.by_amount.setdefault((currency, balance), set()).add(number)

    def owed(self, currency: str, amount: int) -> list[str]:
        return sorted(self._load().get((currency, amount), ()))

    def moved(self, number: str, currency: str, before: int, after: int) -> None:
        """An order's balance went from ``before`` to ``after`` (a payment recorded)."""
        if self.by_amount is None:
            return
        self.by_amount.get((currency, before), set()).discard(number)
        self._put(number, currency, after)


class Matcher:
    def __init__(self, backend: Backend, dry_run: bool) -> None:
        self.backend = backend
        self.dry_run = dry_run
        self.open = OpenOrders(backend)
        # A dry run records nothing: what it would have recorded, per order, so a second
        # part-payment of one order in the same statement is matched as a real run matches it.
        self.would_pay: dict[str, int] = {}
        # Each bank id's first line in this statement: (line, amount, currency).
        self.seen: dict[str, tuple[int, int, str]] = {}

    def _order(self, number: str) -> dict[str, Any] | None:
        try:
            order = self.backend.call(ORDERS, "get-order", {"order_id": number})
        except CheckoutError as exc:
            if exc.code != "order_not_found":
                raise
            return None
        if self.dry_run and number in self.would_pay:
            order = {
                **order,
                "balance_due_cents": max(order["balance_due_cents"] - self.would_pay[number], 0),
            }
        return order

    def _recorded_on(self, bank_id: str) -> dict[str, Any] | None:
        found = self.backend.call(
            ORDERS, "list-orders", {"payment_reference": bank_id, "limit": 1}
        )["orders"]
        return found[0] if found else None

    def handle(self, item: StatementLine | LineProblem) -> LineOutcome:
        if isinstance(item, LineProblem):
            return LineOutcome(
                item.line,
                item.bank_id,
                None,
                None,
                "invalid",
                message=f"{item.field}: {item.message}",
            )
        out = LineOutcome(
            item.line,
            item.bank_id,
            item.amount_cents,
            item.currency,
            "unmatched",
            booked_on=item.booked_on,
            counterparty=item.counterparty,
        )
        if not item.credit:
            out.outcome, out.message = "debit", "money out: skipped"
            return out
        if item.amount_cents == 0:
            out.outcome, out.message = "nothing_received", "a credit of nothing: skipped"
            return out
        if not item.booked:
            out.outcome, out.message = "not_booked", "pending at the bank: not money received yet"
            return out
        if (done := self._recorded_on(item.bank_id)) is not None:
            out.order_number = done["order_number"]
            if self._other_money(item, done, out):
                return out
            out.outcome = "already_recorded"
            out.message = f"recorded earlier for order {done['order_number']}"
            return out
        if self._other_money(item, None, out):
            return out
        self._match(item, out)
        if out.outcome in RECORDED and not self.dry_run:
            self._record(item, out)
        elif out.outcome in RECORDED and out.order_number:
            self.would_pay[out.order_number] = (
                self.would_pay.get(out.order_number, 0) + item.amount_cents
            )
        return out

    def _other_money(
        self, item: StatementLine, done: dict[str, Any] | None, out: LineOutcome
    ) -> bool:
        """A bank id seen before (recorded, or on an earlier line of this statement) with
        another amount: a bank id names one payment, so this line is refused (``failed``,
        exit 4), never counted as recorded; the bank_id column may name something else."""
        seen = self.seen.setdefault(item.bank_id, (item.line, item.amount_cents, item.currency))
        before = next(
            (
                (p["amount_cents"], p["currency"])
                for p in (done or {}).get("payments", [])
                if p["reference"] == item.bank_id
            ),
            None if done else seen[1:],
        )
        if before is None or before == (item.amount_cents, item.currency):
            return False
        where = f"order {done['order_number']}" if done else f"line {seen[0]}"
        out.outcome, out.exit_code = "failed", ConflictError.exit_code
        out.message = (
            f"bank id {item.bank_id} is {format_money(before[0], before[1])} on {where}, not "
            f"{format_money(item.amount_cents, item.currency)}: a bank id names one payment "
            "(is the bank_id column the bank's transaction id?)"
        )
        return True

    def _match(self, item: StatementLine, out: LineOutcome) -> None:
        amount = format_money(item.amount_cents, item.currency)
        named = [o for o in (self._order(n) for n in order_numbers(item.description)) if o]
        if not named:
            self._by_amount(item, out)
            return
        usable = [o for o in named if o["cancelled_at"] is None and o["currency"] == item.currency]
        if not usable:
            o = named[0]
            why = "is cancelled" if o["cancelled_at"] else f"is in {o['currency']}"
            out.order_number = o["order_number"]
            out.message = f"order {o['order_number']} {why}: not recorded"
            return
        exact = [o for o in usable if o["balance_due_cents"] == item.amount_cents]
        if len(usable) > 1 and len(exact) != 1:
            out.outcome = "ambiguous"
            out.message = "names orders " + ", ".join(o["order_number"] for o in usable)
            return
        order = exact[0] if exact else usable[0]
        balance = order["balance_due_cents"]
        out.order_number = order["order_number"]
        owed = format_money(balance, order["currency"])
        if item.amount_cents == balance:
            out.outcome, out.message = "matched", f"{amount} pays the balance due"
        elif item.amount_cents < balance:
            out.outcome, out.message = "partial", f"{amount} of {owed} due"
        else:
            out.outcome = "overpaid"
            out.message = (
                f"{amount} is more than the {owed} due: not recorded; to take it, "
                f"checkout orders record-payment {order['order_number']} --amount-cents "
                f"{item.amount_cents} --method bank_transfer --reference {item.bank_id} --force"
            )

    def _by_amount(self, item: StatementLine, out: LineOutcome) -> None:
        owed = self.open.owed(item.currency, item.amount_cents)
        if self.dry_run:
            owed = [n for n in owed if n not in self.would_pay]
        if len(owed) == 1:
            out.outcome, out.order_number = "matched", owed[0]
            out.message = "no order number; the only open order owed this amount"
        elif owed:
            out.outcome = "ambiguous"
            shown = ", ".join(owed[:5]) + (f" and {len(owed) - 5} more" if len(owed) > 5 else "")
            out.message = f"no order number; {len(owed)} open orders are owed this amount: {shown}"
        else:
            out.message = "no order number, and no open order is owed this amount"

    def _record(self, item: StatementLine, out: LineOutcome) -> None:
        body: dict[str, Any] = {
            "order_id": out.order_number,
            "amount_cents": item.amount_cents,
            "currency": item.currency,
            "method": "bank_transfer",
            "reference": item.bank_id,
        }
        if item.booked_on:
            body["paid_on"] = item.booked_on
        if item.counterparty:
            body["note"] = f"from {item.counterparty}"[:500]
        try:
            result = self.backend.call(ORDERS, "record-payment", body)
        except CheckoutError as exc:
            out.outcome, out.message, out.exit_code = "failed", exc.message, exc.exit_code
            return
        order = result["order"]
        out.recorded = not result["already_recorded"]
        if result["already_recorded"]:
            out.outcome = "already_recorded"
        before = order["balance_due_cents"] + (item.amount_cents if out.recorded else 0)
        self.open.moved(
            order["order_number"], order["currency"], before, order["balance_due_cents"]
        )


def count(items: Iterator[StatementLine | LineProblem]) -> tuple[int, list[LineProblem]]:
    """How many lines, and the ones that cannot be read (a first, streaming pass)."""
    total, problems = 0, []
    for item in items:
        total += 1
        if isinstance(item, LineProblem):
            problems.append(item)
    return total, problems


class Report(ReportFile):
    """The per-line report, written as lines finish (``.csv`` or ``.json``)."""

    KEYS = (
        "line",
        "bank_id",
        "booked_on",
        "amount_cents",
        "currency",
        "counterparty",
        "order_number",
        "outcome",
        "recorded",
        "message",
    )

    def __init__(self, path: Path) -> None:
        super().__init__(path, self.KEYS)

    def add(self, outcome: LineOutcome) -> None:
        self.write(asdict(outcome))


def run(
    items: Iterator[StatementLine | LineProblem],
    backend: Backend,
    *,
    dry_run: bool,
    each: Callable[[LineOutcome], None],
) -> dict[str, int]:
    """Match (and, unless ``dry_run``, record) every line; ``each`` sees every outcome."""
    matcher = Matcher(backend, dry_run)
    counts = dict.fromkeys(OUTCOMES, 0) | {"recorded": 0, "lines": 0}
    for item in items:
        outcome = matcher.handle(item)
        counts[outcome.outcome] += 1
        counts["lines"] += 1
        counts["recorded"] += outcome.recorded
        each(outcome)
    return counts
