"""A batch run's per-row report, written as rows finish: ``.json`` (a list of objects) or CSV.

A report's text is anyone's (a payer's name on a bank statement, a reference in a customer's
file): in CSV a cell a spreadsheet would run as a formula is defused, as `--format csv` does.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from checkout_cli.errors import UsageError

# What makes Excel, LibreOffice and Google Sheets read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defused(text: str) -> str:
    """``text`` as a spreadsheet shows it, never runs it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class ReportFile:
    def __init__(self, path: Path, keys: Sequence[str]) -> None:
        self.path = path
        self.keys = tuple(keys)
        self.json = path.suffix.lower() == ".json"
        try:
            self.handle = path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                "report_unwritable",
                f"cannot write the report {path}: {exc.strerror}",
                field="report",
            ) from None
        self.count = 0
        if self.json:
            self.handle.write("[")
        else:
            self.writer = csv.DictWriter(self.handle, fieldnames=self.keys)
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        """One row: its values of ``keys``, in that order."""
        row = {k: row.get(k) for k in self.keys}
        if self.json:
            self.handle.write(("," if self.count else "") + "\n  " + json.dumps(row))
        else:
            self.writer.writerow(
                {k: defused(v) if isinstance(v, str) else v for k, v in row.items()}
            )
        self.count += 1

    def close(self) -> None:
        if self.json:
            self.handle.write("\n]\n")
        self.handle.close()
