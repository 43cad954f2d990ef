"""ISO 20022 CAMT.053 (Bank-to-Customer Statement) XML, read entry by entry.

No parser on PyPI is both light and well kept (the ones there are 0.0.x releases of one
author's suite that pull in web frameworks, or pandas), so this reads the published schema's
elements with the standard library's streaming parser: versions ``camt.053.001.02`` to
``.13`` (namespace ``urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN``), where the elements
read here are the same but for the few moves of .08 (``Sts/Cd``, ``TxDtls/Amt``,
``RltdPties/Dbtr/Pty/Nm``), read both ways. Each ``Ntry`` is parsed and dropped; an entry
that books several transactions (``NtryDtls/TxDtls`` with their own amounts) is one line
each. The parser resolves no external entity, and expat ≥ 2.4 refuses entity expansion
bombs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from checkout_cli.errors import UsageError, ValidationError
from checkout_cli.statements import (
    Item,
    LineProblem,
    StatementLine,
    check_bank_id,
    check_currency,
    parse_bank_amount,
)

NAMESPACE = re.compile(r"\{(urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2}))\}Document")
NOT_PROVIDED = "NOTPROVIDED"


def read(path: Path) -> Iterator[Item]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError("file_unreadable", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        ns = ""
        number = 0
        parents: list[ET.Element] = []
        try:
            for event, elem in ET.iterparse(handle, events=("start", "end")):
                if event == "start":
                    if not ns:
                        ns = _namespace(path, elem.tag)
                    parents.append(elem)
                    continue
                parents.pop()
                if elem.tag != f"{{{ns}}}Ntry":
                    continue
                number += 1
                yield from _entry(number, elem, ns)
                if parents:  # dropped once read: the statement is never held whole
                    parents[-1].remove(elem)
        except ET.ParseError as exc:
            raise ValidationError(
                "invalid_statement",
                f"{path}: not well-formed XML ({exc})",
                field="file",
            ) from None


def _namespace(path: Path, tag: str) -> str:
    match = NAMESPACE.fullmatch(tag)
    if match is None:
        raise ValidationError(
            "invalid_statement",
            f"{path}: not a CAMT.053 statement (root element {tag})",
            field="file",
            recovery="export the statement as camt.053 (ISO 20022 XML), or as CSV",
        )
    return match.group(1)


def _text(elem: ET.Element | None, path: str, ns: str) -> str | None:
    if elem is None:
        return None
    found = elem.find(path.replace("/", f"/{{{ns}}}").join((f"{{{ns}}}", "")))
    text = found.text.strip() if found is not None and found.text else ""
    return text or None


def _entry(number: int, entry: ET.Element, ns: str) -> Iterator[Item]:
    q = f"{{{ns}}}"
    entry_id = next(
        (
            v
            for v in (_text(entry, "AcctSvcrRef", ns), _text(entry, "NtryRef", ns))
            if v and v != NOT_PROVIDED
        ),
        None,
    )
    status = _text(entry, "Sts/Cd", ns) or _text(entry, "Sts", ns) or "BOOK"
    booked_on = (_text(entry, "BookgDt/Dt", ns) or _text(entry, "BookgDt/DtTm", ns) or "")[:10]
    direction = _text(entry, "CdtDbtInd", ns)
    reversal = (_text(entry, "RvslInd", ns) or "").lower() == "true"
    details = entry.findall(f"{q}NtryDtls/{q}TxDtls")
    own_amounts = [d for d in details if _amount_elem(d, ns) is not None]
    parts = own_amounts if len(own_amounts) > 1 else [None]
    for index, tx in enumerate(parts, 1):
        tx = tx if tx is not None else (details[0] if details else None)
        amount = _amount_elem(tx, ns) if len(parts) > 1 else None
        if amount is None:
            amount = entry.find(f"{q}Amt")
        tx_id = next(
            (
                v
                for v in (
                    _text(tx, "Refs/AcctSvcrRef", ns),
                    _text(tx, "Refs/TxId", ns),
                    _text(tx, "Refs/EndToEndId", ns),
                )
                if v and v != NOT_PROVIDED
            ),
            None,
        )
        if len(parts) > 1:
            raw_id = tx_id or (f"{entry_id}/{index}" if entry_id else None)
        else:
            raw_id = entry_id or tx_id
        line = number if len(parts) == 1 else number * 1000 + index
        try:
            bank_id = check_bank_id(raw_id)
        except ValueError as exc:
            yield LineProblem(line, "bank_id", str(exc), raw_id)
            continue
        try:
            if amount is None:
                raise ValueError("no Amt")
            currency = check_currency(amount.get("Ccy"))
            cents = parse_bank_amount(amount.text or "", currency, ".")
            if cents < 0:
                raise ValueError(f"{amount.text!r}: a CAMT amount is never signed")
        except ValueError as exc:
            yield LineProblem(line, "amount", str(exc), bank_id)
            continue
        tx_direction = _text(tx, "CdtDbtInd", ns) if len(parts) > 1 else None
        credit = (tx_direction or direction) == "CRDT"
        yield StatementLine(
            line=line,
            bank_id=bank_id,
            amount_cents=cents,
            currency=currency,
            credit=credit != reversal,  # a reversed credit takes money back
            booked_on=booked_on or None,
            counterparty=_counterparty(tx, ns),
            description=_description(entry, tx, ns),
            booked=status == "BOOK",
        )


def _amount_elem(tx: ET.Element | None, ns: str) -> ET.Element | None:
    if tx is None:
        return None
    q = f"{{{ns}}}"
    found = tx.find(f"{q}Amt")  # an element without children is falsy: compare with None
    return found if found is not None else tx.find(f"{q}AmtDtls/{q}TxAmt/{q}Amt")


def _counterparty(tx: ET.Element | None, ns: str) -> str | None:
    return _text(tx, "RltdPties/Dbtr/Nm", ns) or _text(tx, "RltdPties/Dbtr/Pty/Nm", ns)


def _description(entry: ET.Element, tx: ET.Element | None, ns: str) -> str:
    q = f"{{{ns}}}"
    said: list[str] = []
    if tx is not None:
        said += [u.text.strip() for u in tx.iterfind(f"{q}RmtInf/{q}Ustrd") if u.text]
        said += [
            r.text.strip() for r in tx.iterfind(f"{q}RmtInf/{q}Strd/{q}CdtrRefInf/{q}Ref") if r.text
        ]
        if info := _text(tx, "AddtlTxInf", ns):
            said.append(info)
    if info := _text(entry, "AddtlNtryInf", ns):
        said.append(info)
    return " ".join(said)
