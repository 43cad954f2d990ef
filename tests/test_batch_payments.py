"""checkout batch payments FILE: a bank statement's credits matched to open invoice orders and
recorded once per bank transaction id."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from checkout_cli.statements import parse_bank_amount
from tests.conftest import FIXTURES, dump, ready_checkout
from tests.engine_helpers import ORDERS, assert_invariants, complete, invoice, query, scalar

HEADER = "date;amount;currency;counterparty;description;bank_id"


def invoice_orders(backend: Any, n: int) -> list[dict[str, Any]]:
    made = []
    for _ in range(n):
        token = ready_checkout(backend)
        invoice(backend, token)
        number = complete(backend, token)["order"]["order_number"]
        made.append(backend.call(ORDERS, "get-order", {"order_id": number}))
    return made


def cents(amount: int) -> str:
    """Minor units written as a Dutch bank writes them: 1.234,56."""
    whole, part = divmod(amount, 100)
    return f"{whole:,}".replace(",", ".") + f",{part:02d}"


def statement(path: Path, *rows: tuple[str, ...], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *(";".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return path


def paid(db: Path) -> list[tuple[str, str, int]]:
    return query(
        db,
        "SELECT o.order_number, q.reference, q.amount_cents FROM order_payments q "
        "JOIN orders o ON o.id = q.order_id WHERE q.reference IS NOT NULL ORDER BY q.id",
    )


def report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_outcome_in_one_statement(cli, backend, tmp_path):
    a, b, c, d, e, f = invoice_orders(backend, 6)
    total = a["totals"]["total_cents"]  # every order of ready_checkout has the same total
    # Make e's balance unique, so a credit naming no order can be matched by amount alone.
    backend.call(
        ORDERS,
        "record-payment",
        {
            "order_id": e["order_number"],
            "amount_cents": 111,
            "method": "cash",
            "reference": "TILL-1",
        },
    )
    file = statement(
        tmp_path / "st.csv",
        ("2026-12-01", cents(total), "EUR", "Anna", f"Order {a['order_number']}", "TX-1"),
        (
            "2026-12-01",
            cents(1000),
            "EUR",
            "Bram",
            f"deel {b['order_number'].replace('-', ' ')}",
            "TX-2",
        ),
        ("2026-12-01", cents(total + 1), "EUR", "Cees", c["order_number"].replace("-", ""), "TX-3"),
        ("2026-12-01", cents(4242), "EUR", "Dirk", "no number here", "TX-4"),
        ("2026-12-01", cents(total), "EUR", "Eva", "gift, no number", "TX-5"),
        ("2026-12-01", cents(total - 111), "EUR", "Eva", "rest, no number", "TX-6"),
        (
            "2026-12-01",
            cents(500),
            "EUR",
            "Fay",
            f"{d['order_number']} {f['order_number']}",
            "TX-7",
        ),
        ("2026-12-01", "-12,00", "EUR", "Bank", "fees", "TX-8"),
        # A credit of nothing (a bank's verification transfer): skipped, not a failure.
        ("2026-12-01", "0,00", "EUR", "Bank", f"check {a['order_number']}", "TX-9"),
    )
    report = tmp_path / "report.csv"
    run = cli("--json", "batch", "payments", str(file), "--report", str(report))
    assert run.exit_code == 0, run.stderr
    counts = run.json()["counts"]
    outcomes = {r["bank_id"]: (r["outcome"], r["order_number"]) for r in report_rows(report)}
    assert outcomes == {
        "TX-1": ("matched", a["order_number"]),
        "TX-2": ("partial", b["order_number"]),
        "TX-3": ("overpaid", c["order_number"]),
        "TX-4": ("unmatched", ""),
        # b, c, d and f are all owed the full total: no single order to give it to.
        "TX-5": ("ambiguous", ""),
        "TX-6": ("matched", e["order_number"]),
        "TX-7": ("ambiguous", ""),
        "TX-8": ("debit", ""),
        "TX-9": ("nothing_received", ""),
    }
    assert (counts["matched"], counts["partial"], counts["recorded"]) == (2, 1, 3)
    assert paid(backend.db_path) == [
        (e["order_number"], "TILL-1", 111),
        (a["order_number"], "TX-1", total),
        (b["order_number"], "TX-2", 1000),
        (e["order_number"], "TX-6", total - 111),
    ]
    shown = {o["order_number"]: o for o in backend.call(ORDERS, "list-orders", {})["orders"]}
    assert shown[a["order_number"]]["payment_status"] == "paid"
    assert shown[b["order_number"]]["payment_status"] == "partially_paid"
    assert shown[c["order_number"]]["payment_status"] == "unpaid"  # overpaid: reported only
    overpaid = next(r for r in report_rows(report) if r["bank_id"] == "TX-3")
    assert "--force" in overpaid["message"] and overpaid["recorded"] == "False"
    first = report_rows(report)[0]
    assert set(first) == {
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
    }
    assert (first["line"], first["amount_cents"], first["booked_on"]) == (
        "2",
        str(total),
        "2026-12-01",
    )
    assert_invariants(backend.db_path)


def test_dry_run_shows_the_matches_and_writes_nothing(cli, backend, tmp_path):
    (a,) = invoice_orders(backend, 1)
    total = a["totals"]["total_cents"]
    file = statement(
        tmp_path / "st.csv",
        ("2026-12-01", cents(1000), "EUR", "Anna", a["order_number"], "TX-1"),
        ("2026-12-02", cents(total - 1000), "EUR", "Anna", a["order_number"], "TX-2"),
    )
    before = dump(backend.db_path)
    run = cli("--json", "batch", "payments", str(file), "--dry-run")
    assert run.exit_code == 0, run.stderr
    got = run.json()
    # The second part-payment pays the rest, as a real run would see it.
    assert [(line["outcome"], line["order_number"]) for line in got["lines"]] == [
        ("partial", a["order_number"]),
        ("matched", a["order_number"]),
    ]
    assert got["dry_run"] is True and got["counts"]["recorded"] == 0
    assert dump(backend.db_path) == before
    text = cli("batch", "payments", str(file), "--dry-run")
    assert text.exit_code == 0
    assert f"partial {a['order_number']}" in text.stderr
    assert dump(backend.db_path) == before


def test_rerun_and_overlapping_statement_record_nothing_twice(cli, backend, tmp_path):
    a, b = invoice_orders(backend, 2)
    first = statement(
        tmp_path / "nov.csv",
        ("2026-11-30", cents(1000), "EUR", "Anna", a["order_number"], "TX-1"),
        ("2026-11-30", cents(2000), "EUR", "Bram", b["order_number"], "TX-2"),
    )
    assert cli("batch", "payments", str(first)).exit_code == 0
    assert len(paid(backend.db_path)) == 2
    again = cli("--json", "batch", "payments", str(first))
    assert again.exit_code == 0
    assert again.json()["counts"]["already_recorded"] == 2
    assert again.json()["counts"]["recorded"] == 0
    overlap = statement(
        tmp_path / "dec.csv",
        ("2026-11-30", cents(2000), "EUR", "Bram", b["order_number"], "TX-2"),
        ("2026-12-01", cents(300), "EUR", "Anna", a["order_number"], "TX-3"),
    )
    report = tmp_path / "r.json"
    run = cli("--json", "batch", "payments", str(overlap), "--report", str(report))
    assert run.exit_code == 0
    rows = json.loads(report.read_text())
    assert [(r["bank_id"], r["outcome"], r["recorded"]) for r in rows] == [
        ("TX-2", "already_recorded", False),
        ("TX-3", "partial", True),
    ]
    assert [p[1] for p in paid(backend.db_path)] == ["TX-1", "TX-2", "TX-3"]
    assert_invariants(backend.db_path)


def test_columns_named_by_the_bank(cli, backend, tmp_path):
    """The fixture's Dutch headers, a statement without a currency column, and amounts with a
    thousands separator."""
    (a,) = invoice_orders(backend, 1)
    file = statement(
        tmp_path / "ing.csv",
        ("01-12-2026", "Anna", "Bij", cents(1234), f"betaling {a['order_number']}", "ING-1"),
        ("01-12-2026", "Huur", "Af", cents(50000), "huur", "ING-2"),
        header="Datum;Naam;Af Bij;Bedrag;Mededelingen;Transactie",
    )
    args = (
        "batch",
        "payments",
        str(file),
        "--currency",
        "EUR",
        "--date-format",
        "%d-%m-%Y",
        "--column",
        "date=Datum",
        "--column",
        "counterparty=Naam",
        "--column",
        "direction=Af Bij",
        "--column",
        "amount=Bedrag",
        "--column",
        "description=Mededelingen",
        "--column",
        "bank_id=Transactie",
    )
    run = cli("--json", *args)
    assert run.exit_code == 0, run.stderr
    assert run.json()["counts"]["debit"] == 1
    assert paid(backend.db_path) == [(a["order_number"], "ING-1", 1234)]
    assert (
        scalar(backend.db_path, "SELECT paid_on FROM order_payments WHERE reference = 'ING-1'")
        == "2026-12-01"
    )


def test_the_shipped_fixture_statement_runs(cli, backend):
    invoice_orders(backend, 2)
    args = ("batch", "payments", str(FIXTURES / "bank_statement.csv"), "--dry-run")
    named = (
        "--column",
        "date=Datum",
        "--column",
        "amount=Bedrag",
        "--column",
        "currency=Valuta",
        "--column",
        "counterparty=Naam",
        "--column",
        "description=Omschrijving",
        "--column",
        "bank_id=Transactie",
    )
    run = cli("--json", *args, *named)
    assert run.exit_code == 0, run.stderr
    assert [line["outcome"] for line in run.json()["lines"]] == [
        "matched",
        "debit",
        "partial",
        "unmatched",
    ]


def test_unreadable_lines_stop_the_run_before_anything_is_written(cli, backend, tmp_path):
    (a,) = invoice_orders(backend, 1)
    file = statement(
        tmp_path / "bad.csv",
        ("2026-12-01", cents(1000), "EUR", "Anna", a["order_number"], "TX-1"),
        ("2026-12-01", "12.345", "EUR", "Bram", "x", "TX-2"),
        ("2026-12-01", "10,00", "EURO", "Cees", "x", "TX-3"),
        ("2026-12-01", "10,00", "EUR", "Dirk", "x", ""),
        ("yesterday", "10,00", "EUR", "Eva", "x", "TX-5"),
    )
    before = dump(backend.db_path)
    run = cli("batch", "payments", str(file))
    assert run.exit_code == 4
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith(str(file))]
    assert [e.split(":")[1:3] for e in errors] == [
        ["3", " amount"],
        ["4", " currency"],
        ["5", " bank_id"],
        ["6", " date"],
    ]
    assert "nothing was recorded" in run.stderr
    assert dump(backend.db_path) == before
    skipping = cli("--json", "batch", "payments", str(file), "--skip-invalid")
    assert skipping.exit_code == 4  # it ran, and says lines were left out
    assert skipping.json()["counts"]["invalid"] == 4
    assert paid(backend.db_path) == [(a["order_number"], "TX-1", 1000)]


@pytest.mark.parametrize(
    ("header", "args", "code"),
    [
        ("when;amount;currency;bank_id", ("--column", "date=Datum"), 4),
        ("date;amount;bank_id", (), 4),  # no currency column and no --currency
        (HEADER, ("--column", "nonsense=X"), 2),
        (HEADER, ("--format", "mt940"), 2),
        (HEADER, ("--decimal", ";"), 2),
        (HEADER, ("--currency", "EURO"), 2),
    ],
)
def test_bad_options_and_headers(cli, backend, tmp_path, header, args, code):
    file = statement(tmp_path / "st.csv", header=header)
    before = dump(backend.db_path)
    run = cli("batch", "payments", str(file), *args)
    assert run.exit_code == code, run.stderr
    assert "Traceback" not in run.stderr
    assert dump(backend.db_path) == before


def test_a_cancelled_order_named_in_a_line_is_unmatched(cli, backend, tmp_path):
    (a,) = invoice_orders(backend, 1)
    with backend.engine.write() as conn:
        conn.execute(
            "UPDATE orders SET cancelled_at = '2026-12-01T00:00:00Z', status = 'cancelled' "
            "WHERE order_number = ?",
            (a["order_number"],),
        )
    file = statement(
        tmp_path / "st.csv", ("2026-12-01", cents(1000), "EUR", "Anna", a["order_number"], "T1")
    )
    run = cli("--json", "batch", "payments", str(file), "--dry-run")
    (line,) = run.json()["lines"]
    assert (line["outcome"], line["order_number"]) == ("unmatched", a["order_number"])
    assert "cancelled" in line["message"]


# -- CAMT.053 -----------------------------------------------------------------------------------

CAMT_02 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
CAMT_08 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def camt(ns: str, entries: list[dict[str, Any]]) -> str:
    v08 = ns.endswith(".08")
    parts = []
    for e in entries:
        status = (
            f"<Sts><Cd>{e.get('status', 'BOOK')}</Cd></Sts>"
            if v08
            else (f"<Sts>{e.get('status', 'BOOK')}</Sts>")
        )
        debtor = (
            f"<RltdPties><Dbtr><Pty><Nm>{e['name']}</Nm></Pty></Dbtr></RltdPties>"
            if v08
            else f"<RltdPties><Dbtr><Nm>{e['name']}</Nm></Dbtr></RltdPties>"
        )
        parts.append(
            f'<Ntry><Amt Ccy="{e.get("ccy", "EUR")}">{e["amount"]}</Amt>'
            f"<CdtDbtInd>{e.get('dir', 'CRDT')}</CdtDbtInd>{status}"
            f"<BookgDt><Dt>{e.get('date', '2026-12-02')}</Dt></BookgDt>"
            f"<AcctSvcrRef>{e['id']}</AcctSvcrRef>"
            f"<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>{debtor}"
            f"<RmtInf><Ustrd>{e['text']}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{ns}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-03T06:00:00</CreDtTm></GrpHdr><Stmt>"
        "<Id>S1</Id><Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>"
        + "".join(parts)
        + "</Stmt></BkToCstmrStmt></Document>"
    )


@pytest.mark.parametrize("ns", [CAMT_02, CAMT_08])
def test_camt053_statement_is_recorded_once(cli, backend, tmp_path, ns):
    a, b, c = invoice_orders(backend, 3)
    total = a["totals"]["total_cents"]
    file = tmp_path / "statement.xml"
    file.write_text(
        camt(
            ns,
            [
                {
                    "amount": f"{total / 100:.2f}",
                    "id": "CAMT-1",
                    "name": "Anna",
                    "text": f"Invoice {a['order_number']}",
                },
                {"amount": "12.00", "dir": "DBIT", "id": "CAMT-2", "name": "Bank", "text": "fees"},
                {
                    "amount": "10.00",
                    "id": "CAMT-3",
                    "name": "Bram",
                    "text": f"part {b['order_number']}",
                },
                {
                    "amount": "10.00",
                    "id": "CAMT-4",
                    "name": "Cees",
                    "status": "PDNG",
                    "text": c["order_number"],
                },
            ],
        ),
        encoding="utf-8",
    )
    report = tmp_path / "r.csv"
    run = cli("--json", "batch", "payments", str(file), "--report", str(report))
    assert run.exit_code == 0, run.stderr
    assert run.json()["format"] == "camt053"
    assert [(r["bank_id"], r["outcome"]) for r in report_rows(report)] == [
        ("CAMT-1", "matched"),
        ("CAMT-2", "debit"),
        ("CAMT-3", "partial"),
        ("CAMT-4", "not_booked"),
    ]
    assert paid(backend.db_path) == [
        (a["order_number"], "CAMT-1", total),
        (b["order_number"], "CAMT-3", 1000),
    ]
    counterparty = scalar(
        backend.db_path, "SELECT note FROM order_payments WHERE reference = 'CAMT-1'"
    )
    assert counterparty == "from Anna"
    rerun = cli("--json", "batch", "payments", str(file))
    assert rerun.json()["counts"]["already_recorded"] == 2
    assert len(paid(backend.db_path)) == 2


def test_camt053_fixture_and_other_documents(cli, backend, tmp_path):
    invoice_orders(backend, 2)
    run = cli("--json", "batch", "payments", str(FIXTURES / "camt053_statement.xml"), "--dry-run")
    assert run.exit_code == 0, run.stderr
    assert [line["outcome"] for line in run.json()["lines"]] == [
        "matched",
        "debit",
        "partial",
        "not_booked",
    ]
    other = tmp_path / "camt052.xml"
    other.write_text(
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.02"/>', encoding="utf-8"
    )
    refused = cli("batch", "payments", str(other))
    assert refused.exit_code == 4 and "not a CAMT.053 statement" in refused.stderr
    broken = tmp_path / "broken.xml"
    broken.write_text(f'<Document xmlns="{CAMT_02}"><BkToCstmrStmt>', encoding="utf-8")
    bad = cli("batch", "payments", str(broken))
    assert bad.exit_code == 4 and "not well-formed" in bad.stderr
    assert "Traceback" not in bad.stderr + refused.stderr


def test_camt053_batch_booking_is_one_line_per_transaction(tmp_path):
    from checkout_cli.statements import camt053

    file = tmp_path / "batch.xml"
    file.write_text(
        f'<Document xmlns="{CAMT_08}"><BkToCstmrStmt><Stmt><Ntry>'
        '<Amt Ccy="EUR">30.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        "<AcctSvcrRef>BATCH-1</AcctSvcrRef><NtryDtls>"
        '<TxDtls><Refs><AcctSvcrRef>T-A</AcctSvcrRef></Refs><Amt Ccy="EUR">10.00</Amt>'
        "<RmtInf><Ustrd>2026-000001</Ustrd></RmtInf></TxDtls>"
        '<TxDtls><Amt Ccy="EUR">20.00</Amt><RmtInf><Ustrd>2026-000002</Ustrd></RmtInf></TxDtls>'
        "</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>",
        encoding="utf-8",
    )
    lines = list(camt053.read(file))
    assert [(x.bank_id, x.amount_cents, x.description) for x in lines] == [  # type: ignore[union-attr]
        ("T-A", 1000, "2026-000001"),
        ("BATCH-1/2", 2000, "2026-000002"),
    ]


# -- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "decimal", "minor"),
    [
        ("1.234,56", "EUR", None, 123456),
        ("1,234.56", "EUR", None, 123456),
        ("1234.56", "EUR", None, 123456),
        ("1234,5", "EUR", None, 123450),
        ("-12,50", "EUR", None, -1250),
        ("12,50-", "EUR", None, -1250),
        ("+7", "EUR", None, 700),
        ("1 234,56", "EUR", None, 123456),
        ("1'234.56", "CHF", None, 123456),
        ("1.500", "KWD", ".", 1500),
        ("1.234", "JPY", ",", 1234),
        ("4590", "JPY", None, 4590),
    ],
)
def test_statement_amounts(text, currency, decimal, minor):
    assert parse_bank_amount(text, currency, decimal) == minor


@pytest.mark.parametrize(
    ("text", "currency", "decimal"),
    [
        ("1.234", "EUR", None),  # three decimals in EUR: a thousands separator misread
        ("12,345", "JPY", None),
        ("1,23,4.00", "EUR", None),
        ("1234.56", "EUR", ","),
        ("-1-", "EUR", None),
        ("abc", "EUR", None),
        ("", "EUR", None),
    ],
)
def test_statement_amounts_refused(text, currency, decimal):
    with pytest.raises(ValueError):
        parse_bank_amount(text, currency, decimal)
