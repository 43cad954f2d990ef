"""Tokens within one typo of a typed one: the "did you mean" of a mistyped checkout token.

Close means the same letters ignoring case, or (case ignored too) one character different,
missing, extra, or two neighbours swapped. Such a token shares the typed one's first or last
``(n - 2) // 2`` characters: an edit at position p leaves the first p characters alone and
the ones after p + 1 aligned from the end. SQLite compares those halves while it scans, so
only the few tokens sharing one reach Python, and no checkout row is loaded for the others.
"""

from __future__ import annotations

# Shorter than this, half a token matches too much to mean anything.
MIN_LENGTH = 8


def near_clause(typed: str) -> tuple[str, list[object]]:
    """An ``AND …`` filter on ``token`` keeping the candidates :func:`is_close` decides on."""
    text = typed.lower()
    half = max(1, (len(text) - 2) // 2)
    if len(text) < MIN_LENGTH:
        return " AND 1 = 0", []
    # A subquery of token and id alone: SQLite scans the token index, not the wide rows.
    return (
        " AND id IN (SELECT id FROM checkouts WHERE length(token) BETWEEN ? AND ?"
        # the last characters as both stores count them (SQLite alone reads a negative start)
        " AND (lower(substr(token, 1, ?)) = ? OR lower(substr(token, length(token) - ? + 1)) = ?))",
        [len(text) - 1, len(text) + 1, half, text[:half], half, text[-half:]],
    )


def is_close(token: str, typed: str) -> bool:
    """At most one edit apart (substitution, deletion, insertion, transposition), case ignored."""
    a, b = token.lower(), typed.lower()
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    if len(a) == len(b):
        rest = start + 1
        swapped = a[start : start + 2] == b[start : start + 2][::-1]
        return a[rest:] == b[rest:] or (swapped and a[start + 2 :] == b[start + 2 :])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[start + 1 :] == shorter[start:]
