"""checkout batch invoice FILE: thousands of invoiced orders from CSV or JSON Lines."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from checkout_cli.cli.errors import Interrupted
from checkout_cli.cli.state import State
from checkout_cli.errors import CheckoutError, UnavailableError, UsageError, ValidationError

if TYPE_CHECKING:
    from checkout_cli.workflows.batch import StoreIdentity
    from checkout_cli.workflows.run_lock import RunLock

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    help="Scripted bulk operations.\n\nExample: checkout batch invoice "
    "fixtures/batch_invoice.csv --report report.csv",
    no_args_is_help=True,
)


@app.callback()
def batch() -> None:
    """Scripted bulk operations."""


@app.command("invoice")
def invoice(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help=".csv or .jsonl file of order rows", show_default=False)
    ],
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="run the valid orders and report the invalid ones"),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="check the file and say what a real run would do; write nothing"
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="per-order report, .csv or .json (reference, status, checkout token, order "
            "number, error)"
        ),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="resume journal (default: one per file and backend in the data dir)"),
    ] = None,
    progress_every: Annotated[
        int,
        typer.Option(
            min=1,
            help="off a terminal: a progress line on stderr every N orders (and every 10 s)",
        ),
    ] = 100,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="if another run of FILE into this store is at work, wait for it to end "
            "(default: refuse at once)",
        ),
    ] = False,
) -> None:
    """Invoice every order in FILE through the checkout flow (provider invoice).

    Columns: reference, product_sku, quantity, email, name, phone, company, line1, line2,
    postal_code, city, region, country, shipping_cents, and line meta as
    meta.<definition>.<field> columns or a meta_json column. Rows with the same reference are
    one order and must be together. The whole file is checked first and every bad row reported
    with its line number; nothing is written unless it is clean (or --skip-invalid). Each
    reference makes exactly one order in the store, which keeps it on the order: re-running
    the file, a copy of it, or resuming after a crash or Ctrl-C creates nothing twice; a
    done reference whose rows changed is reported as a conflict (exit 4). One run of a file
    into a store at a time: a second one refuses (exit 6), or waits with --wait.

    Example: checkout batch invoice fixtures/batch_invoice.csv --report report.csv
    """
    from rich.text import Text

    from checkout_cli.cli import output
    from checkout_cli.config import data_dir
    from checkout_cli.workflows import batch

    state: State = ctx.obj
    backend = state.backend
    # The journal is keyed by the store itself (its resolved path), not by how --db spelled
    # it: `--db shop.db` and `--db /srv/shop.db` must resume the same journal.
    db_path = getattr(backend, "db_path", None)
    target = (
        f"local store {Path(db_path).resolve()}" if db_path else getattr(backend, "description", "")
    )
    journal_path = journal or batch.default_journal(data_dir(), file, target)
    batch.refuse_overwriting(file, db_path and Path(db_path), journal_path, report)
    products: dict[str, dict[str, Any] | None] = {}

    def product(sku: str) -> dict[str, Any] | None:
        if sku not in products:
            try:
                products[sku] = backend.call("product-catalog", "get-product", {"sku": sku})
            except CheckoutError as exc:
                if exc.code != "product_not_found":
                    raise
                products[sku] = None
        return products[sku]

    peeked = batch.Journal.peek(journal_path) if dry_run else None
    try:
        checked = batch.plan(file, backend, product, peeked)
    except ValidationError as exc:  # the header: no row can be read as meant
        if report and not dry_run:
            _refused_report(report, [batch.Outcome("(header)", "invalid", error=exc.message)])
        raise
    finally:
        if peeked is not None:
            peeked.close()
    errors, invalid = checked.errors, checked.invalid
    reasons = batch.reasons(errors)
    for error in errors:  # one line each, never wrapped: scripts grep these
        output.err().print(
            Text(f"{file}:{error.line}: {error.field}: {error.message}", style="red"),
            soft_wrap=True,
        )
    if errors and not skip_invalid:
        if report and not dry_run:  # what was wrong with each order, and that none was run
            _refused_report(
                report,
                (
                    batch.Outcome(o.reference, "invalid", error=reasons[o.reference])
                    if o.reference in invalid
                    else batch.Outcome(o.reference, "not_run")
                    for o in batch.scan(file, product)
                    if isinstance(o, batch.Order)
                ),
            )
        raise ValidationError(
            "invalid_rows",
            f"{len(errors)} problem(s) in {file}; nothing was written",
            recovery="fix the rows, or pass --skip-invalid to invoice the rest",
        )
    if dry_run:
        would = {k: checked.would[k] for k in batch.WOULD}
        summary = {
            "dry_run": True,
            "orders": checked.orders,
            "rows": checked.rows,
            "valid_orders": checked.orders - len(invalid),
            "invalid_orders": len(invalid),
            "would": would,
            "errors": [e.__dict__ for e in errors],
        }
        state.show(
            summary,
            lambda r: output.say(
                f"a real run would create {would['create']} order(s), resume "
                f"{would['resume']}, find {would['already_done']} already done, report "
                f"{would['conflict']} conflict(s) and skip {would['skipped_invalid']} invalid"
            ),
        )
        return
    store = batch.store_identity(backend, target)
    if not store.known:
        output.say(
            f"{backend.description} does not say which store it is (no checkout-admin/get-store):"
            " the journal is bound to that address instead"
        )
    results = _run(
        state,
        file,
        product,
        reasons,
        checked.orders - len(invalid),
        Paths(journal_path, report, batch.run_lock_path(data_dir(), file, store)),
        store,
        wait,
        progress_every,
    )
    if results["remade"]:
        output.say(
            f"{results['remade']} order(s) the journal had recorded were not in this store "
            "and were made again",
            style="yellow",
        )
    state.show(results, lambda r: _summary(r["counts"]))
    # An order failed, a done reference's row changed, or (--skip-invalid) rows were skipped.
    if results["exit_code"]:
        raise typer.Exit(results["exit_code"])
    if results["counts"]["skipped_invalid"]:
        raise typer.Exit(ValidationError.exit_code)


@dataclass(frozen=True)
class Paths:
    journal: Path
    report: Path | None
    run_lock: Path


def _run(
    state: State,
    file: Path,
    product: Callable[[str], dict[str, Any] | None],
    reasons: dict[str, str],
    total: int,
    paths: Paths,
    store: StoreIdentity,
    wait: bool,
    progress_every: int,
) -> dict[str, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from checkout_cli.cli import output
    from checkout_cli.workflows import batch

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} orders/s" if task.speed else "– orders/s")

    counts = {"created": 0, "already_done": 0, "conflict": 0, "failed": 0, "skipped_invalid": 0}
    exit_code = remade = 0
    progress = Progress(
        TextColumn("invoicing"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=output.err(),
        disable=not output.err().is_terminal,
    )
    with ExitStack() as cleanup:
        # Two runs of one file into one store would both invoice each reference; so would two
        # runs sharing a journal. Each lock goes with its process, however that ends.
        about = {"file": str(file.resolve()), "journal": str(paths.journal)}
        for path, what in (
            (paths.run_lock, f"{file} into this store"),
            (Path(f"{paths.journal}.lock"), f"the journal {paths.journal}"),
        ):
            cleanup.callback(_lock(path, what, about, wait).release)
        journal = batch.Journal(paths.journal)
        cleanup.callback(journal.close)
        if note := journal.bind(store):
            output.say(note)
        report = batch.Report(paths.report) if paths.report else None
        if report:
            cleanup.callback(report.close)
        lines = batch.ProgressLines(
            total, progress_every, output.err().is_terminal, lambda text: output.say(text)
        )
        try:
            with progress:
                task = progress.add_task("invoice", total=total)
                for item in batch.scan(file, product):
                    if isinstance(item, batch.RowError):
                        continue
                    if item.reference in reasons:
                        outcome = batch.Outcome(
                            item.reference, "skipped_invalid", error=reasons[item.reference]
                        )
                    else:
                        try:
                            outcome = batch.run_order(state.backend, journal, item)
                        except CheckoutError as exc:
                            outcome = batch.Outcome(
                                item.reference, "failed", error=exc.message, exit_code=exc.exit_code
                            )
                        exit_code = exit_code or outcome.exit_code
                        progress.advance(task)
                    counts[outcome.status] += 1
                    if outcome.status != "skipped_invalid":  # as the bar: the orders run
                        lines.tick(counts)
                    remade += outcome.remade
                    if report:
                        report.add(outcome)
        except KeyboardInterrupt:
            raise Interrupted(
                f"run the same command again to resume (journal {paths.journal})"
            ) from None
    return {
        "counts": counts,
        "exit_code": exit_code,
        "remade": remade,
        "journal": str(paths.journal),
        "report": str(paths.report) if paths.report else None,
    }


def _refused_report(path: Path, outcomes: Any) -> None:
    """The report of a run refused by validation: every order, and why it was not run."""
    from checkout_cli.workflows import batch

    report = batch.Report(path)
    try:
        for outcome in outcomes:
            report.add(outcome)
    finally:
        report.close()


def _lock(path: Path, what: str, about: dict[str, str], wait: bool) -> RunLock:
    """The lock at ``path``, taken; another run holding it is refused, or waited for."""
    from checkout_cli.cli import output
    from checkout_cli.workflows.run_lock import Busy, RunLock, describe

    def waiting(holder: dict[str, Any]) -> None:
        output.say(f"waiting for the run at work on {what} ({describe(holder)}) to end")

    lock = RunLock(path, **about)
    try:
        lock.acquire(wait=waiting if wait else None)
    except Busy as busy:
        raise UnavailableError(
            "batch_in_progress",
            f"another batch run is at work on {what}: {describe(busy.holder)}",
            recovery="let it finish (a second run would invoice the same references), "
            "or pass --wait to start when it ends",
        ) from None
    return lock


def _summary(counts: dict[str, int]) -> None:
    from checkout_cli.cli import output

    t = output.table("Result", "Orders")
    for status, label in (
        ("created", "created"),
        ("already_done", "already done earlier"),
        ("conflict", "conflict (done, row changed)"),
        ("failed", "failed"),
        ("skipped_invalid", "skipped (invalid)"),
    ):
        t.add_row(label, str(counts[status]))
    output.out().print(t)


@app.command("payments")
def payments(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help="bank statement: .csv, or CAMT.053 .xml", show_default=False),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="csv or camt053 (default: by the file's name)",
            show_default=False,
        ),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            metavar="FIELD=HEADER",
            help="CSV: the header of a field's column (fields: date, amount, currency, "
            "counterparty, description, bank_id, direction; default: the field's name); "
            "repeat for each",
            show_default=False,
        ),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(help="CSV: the separator (default: read from the header)", metavar="CHAR"),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option(
            "--decimal",
            metavar="CHAR",
            help="CSV: the decimal separator, . or , (default: read from each amount)",
        ),
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(help="CSV: the currency of every line, when there is no currency column"),
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option(help="CSV: the date's strptime format, e.g. %d-%m-%Y (default: ISO)"),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="show how each line matches; record nothing"),
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="run the lines that can be read; report the others"),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="per-line report, .csv or .json (line, bank id, amount, order, outcome, message)"
        ),
    ] = None,
    progress_every: Annotated[
        int,
        typer.Option(min=1, help="off a terminal: a progress line on stderr every N lines"),
    ] = 500,
) -> None:
    """Match a bank statement's credits to open invoice orders and record them as payments.

    Each credit is matched by the order number in its description (2026-000042) and its
    amount against the order's balance due: matched (equal) and partial (less) are recorded
    with record-payment, the bank transaction id as the reference; overpaid (more) is
    reported, not recorded (record it with `checkout orders record-payment … --force`);
    unmatched (no order found, and no single open order owed the amount) and ambiguous
    (several candidates) are reported. Debits and pending entries are skipped. Re-running a
    statement, or one that overlaps it, records nothing twice (already_recorded). A line that
    cannot be read (amount, date, currency, bank id) stops the run before anything is
    written, unless --skip-invalid (exit 4 then).

    Example: checkout batch payments statement.csv --column amount=Bedrag --column
    bank_id=Transactie --currency EUR --dry-run
    """
    from rich.text import Text

    from checkout_cli.cli import output
    from checkout_cli.statements import FORMATS, detect_format, read_statement
    from checkout_cli.statements.csv_statement import Options, parse_column_map
    from checkout_cli.workflows import bank_statement

    state: State = ctx.obj
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(
            "unknown_statement_format",
            f"--format {fmt!r}: expected {' or '.join(FORMATS)}",
            field="format",
        )
    if decimal is not None and decimal not in (".", ","):
        raise UsageError("invalid_decimal", "--decimal: expected . or ,", field="decimal")
    if currency is not None:
        from checkout_cli.statements import check_currency

        try:
            currency = check_currency(currency)
        except ValueError as exc:
            raise UsageError("invalid_currency", f"--currency: {exc}", field="currency") from None
    kind = fmt or detect_format(file)
    options = Options(
        columns=parse_column_map(column or []),
        delimiter=delimiter,
        decimal=decimal,
        currency=currency,
        date_format=date_format,
    )

    def lines() -> Any:
        return read_statement(file, kind, options)

    total, problems = bank_statement.count(lines())
    for problem in problems:  # one line each, never wrapped: scripts grep these
        output.err().print(
            Text(f"{file}:{problem.line}: {problem.field}: {problem.message}", style="red"),
            soft_wrap=True,
        )
    if problems and not skip_invalid and not dry_run:
        raise ValidationError(
            "invalid_lines",
            f"{len(problems)} line(s) of {file} cannot be read; nothing was recorded",
            recovery="fix them, name the columns with --column, or pass --skip-invalid",
        )
    shown: list[dict[str, Any]] = []
    with ExitStack() as cleanup:
        sink = bank_statement.Report(report) if report else None
        if sink:
            cleanup.callback(sink.close)
        counts = _payments_run(state, lines(), total, dry_run, sink, shown, progress_every)
    failed = counts["failed"]
    summary: dict[str, Any] = {
        "dry_run": dry_run,
        "file": str(file),
        "format": kind,
        "counts": counts,
        "report": str(report) if report else None,
    }
    if dry_run:
        summary["lines"] = shown
    state.show(summary, lambda r: _payments_summary(r["counts"], dry_run))
    if failed:
        raise typer.Exit(max(o.get("exit_code", 1) for o in shown) if shown else 1)
    if problems:
        raise typer.Exit(ValidationError.exit_code)


def _payments_run(
    state: State,
    items: Any,
    total: int,
    dry_run: bool,
    sink: Any,
    shown: list[dict[str, Any]],
    progress_every: int,
) -> dict[str, int]:
    import time
    from dataclasses import asdict

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from checkout_cli.cli import output
    from checkout_cli.money import format_money
    from checkout_cli.workflows import bank_statement

    on_terminal = output.err().is_terminal
    progress = Progress(
        TextColumn("matching" if dry_run else "recording payments"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=output.err(),
        disable=not on_terminal,
    )
    started = time.monotonic()
    done = 0

    with progress:
        task = progress.add_task("payments", total=total)

        def each(outcome: bank_statement.LineOutcome) -> None:
            nonlocal done
            done += 1
            progress.advance(task)
            if sink:
                sink.add(outcome)
            if outcome.outcome == "failed":
                shown.append({"line": outcome.line, "exit_code": outcome.exit_code})
            if dry_run:
                if state.settings.json:
                    shown.append(asdict(outcome))
                elif outcome.outcome not in ("debit",):
                    amount = (
                        format_money(outcome.amount_cents, outcome.currency or "EUR")
                        if outcome.amount_cents is not None
                        else "—"
                    )
                    output.say(
                        f"line {outcome.line}: {outcome.outcome} {outcome.order_number or '—'} "
                        f"{amount} {outcome.bank_id or ''} {outcome.message}".rstrip()
                    )
            if not on_terminal and (done % progress_every == 0 or done == total):
                rate = done / max(time.monotonic() - started, 1e-9)
                output.say(f"payments: {done}/{total} lines ({rate:.1f}/s)")

        try:
            return bank_statement.run(items, state.backend, dry_run=dry_run, each=each)
        except KeyboardInterrupt:
            raise Interrupted(
                "run the same command again: lines recorded are found by their bank id"
            ) from None


def _payments_summary(counts: dict[str, int], dry_run: bool) -> None:
    from checkout_cli.cli import output
    from checkout_cli.workflows.bank_statement import OUTCOMES

    t = output.table("Outcome", "Lines")
    for key in OUTCOMES:
        if counts[key]:
            t.add_row(key.replace("_", " "), str(counts[key]))
    label = "would record" if dry_run else "payments recorded"
    would = counts["matched"] + counts["partial"] if dry_run else counts["recorded"]
    t.add_row(label, str(would))
    output.out().print(t)
