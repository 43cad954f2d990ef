"""The engine's SQL, as PostgreSQL reads it: the one place where the two stores' SQL differs.

Handlers write SQLite's dialect (``?`` and ``:name`` placeholders, ``IS`` against any value,
``json_extract``, ``GROUP_CONCAT``, a case-blind ``LIKE``); ``translate`` rewrites a statement
once (cached) into what PostgreSQL means by the same thing. It reads string literals and quoted
names as opaque, so text inside them is never rewritten, and doubles each ``%`` outside
placeholders, as psycopg expects.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Outside quotes: SQLite's spelling → PostgreSQL's (word-bounded, case-blind).
_FUNCTIONS = (
    (re.compile(r"\bGROUP_CONCAT\(", re.IGNORECASE), "string_agg("),
    (re.compile(r"\binstr\(", re.IGNORECASE), "strpos("),
    # SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE is the same test.
    (re.compile(r"\bLIKE\b", re.IGNORECASE), "ILIKE"),
    # SQLite's ``a IS b`` / ``a IS NOT b`` compare NULLs as equal for any b; PostgreSQL
    # takes only NULL, TRUE or FALSE there, and spells the general test out.
    (
        re.compile(r"\bIS\s+NOT\s+(?!(?:NULL|TRUE|FALSE|DISTINCT)\b)", re.IGNORECASE),
        "IS DISTINCT FROM ",
    ),
    (
        re.compile(r"\bIS\s+(?!(?:NOT|NULL|TRUE|FALSE|DISTINCT)\b)", re.IGNORECASE),
        "IS NOT DISTINCT FROM ",
    ),
    # A bare BEGIN (a multi-statement read): one snapshot, as SQLite's deferred BEGIN gives.
    (re.compile(r"^\s*BEGIN\s*$", re.IGNORECASE), "BEGIN ISOLATION LEVEL REPEATABLE READ"),
)
# json_extract(col, '$.a.b') → (col::jsonb #>> '{a,b}'): the value as text, NULL when absent.
_JSON_EXTRACT = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.([\w.]+)'\s*\)", re.IGNORECASE)
# json_each(col) alias → the array's elements as text, in a column named ``value`` as SQLite's.
_JSON_EACH = re.compile(r"json_each\(\s*([\w.]+)\s*\)", re.IGNORECASE)
# sqlite3's named placeholder ``:name`` (not a ``::type`` cast) → psycopg's ``%(name)s``.
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """``sql`` (SQLite's dialect, ``?`` placeholders) in PostgreSQL's, with ``%s``."""
    out: list[str] = []
    position = 0
    for quoted in _QUOTED.finditer(sql):
        out.append(_rewrite(sql[position : quoted.start()]))
        out.append(quoted.group(0).replace("%", "%%"))
        position = quoted.end()
    out.append(_rewrite(sql[position:]))
    # After the split: the path is a quoted literal, read here with the call around it.
    return _JSON_EXTRACT.sub(_json_path, "".join(out))


def _rewrite(code: str) -> str:
    """A stretch of SQL outside quotes."""
    code = _NAMED.sub(r"%(\1)s", code.replace("%", "%%").replace("?", "%s"))
    for pattern, replacement in _FUNCTIONS:
        code = pattern.sub(replacement, code)
    return _JSON_EACH.sub(r"jsonb_array_elements_text(\1::jsonb)", code)


def _json_path(match: re.Match[str]) -> str:
    column, path = match.group(1), match.group(2).split(".")
    return f"({column}::jsonb #>> '{{{','.join(path)}}}')"


def inserted_table(sql: str) -> str | None:
    """The table an ``INSERT`` statement writes, or None for any other statement."""
    match = _INSERT_INTO.match(sql)
    return match.group(1) if match else None
