"""Text from customers and providers, made safe to show on a terminal.

A customer name holding ``ESC ] 0 ;`` retitles the window, clears the screen or writes the
clipboard (OSC 52) when printed as it is; so every control character reaches a terminal as a
visible escape instead. ``--json`` stays exact JSON: the same characters as ``\\u`` escapes.
"""

from __future__ import annotations

# C0 controls but newline and tab, DEL, C1 controls (U+009B is CSI on some terminals), and the
# bidirectional overrides that make text display in another order than it is stored.
_ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *(c for c in range(0x20) if c not in (0x09, 0x0A)),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


def visible(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``)."""
    return text.translate(_ESCAPES)


def json_safe(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the controls that JSON leaves
    raw (DEL, C1, bidirectional overrides) written as ``\\u`` escapes: the same JSON value."""
    return text.translate(_JSON_ESCAPES)


# json.dumps escapes U+0000..U+001F itself; these it leaves as they are.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in _ESCAPES if code >= 0x7F}
