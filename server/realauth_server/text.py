"""Which code points a caller's text may hold: one rule for every short string field and for URLs.

Identifiers (``subject_id``, ``idempotency_key``, ``session_id`` …) end up in logs, in stores, in vendors' requests
and on screens. Characters that are invisible or reorder text (zero-width, bidi controls), that terminal and log
viewers interpret (C0, DEL, C1), that are not characters at all (lone surrogates, noncharacters, unassigned) or that
only look like a space let two different values look alike or one value look like another, so they are refused,
never cleaned up silently.
"""

from __future__ import annotations

import unicodedata

#: Unicode general categories refused anywhere: controls (C0, DEL, C1), format characters (zero-width,
#: bidi controls, BOM, tags, soft hyphen), surrogates, private use, unassigned (includes the noncharacters),
#: and line/paragraph separators. Space separators other than U+0020 (no-break, ideographic …) as well.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})

_KIND = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point or noncharacter",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space",
}


def describe(c: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: names the code point in ASCII (the character itself may be invisible)."""
    name = unicodedata.name(c, "")
    return f"U+{ord(c):04X} {name}".rstrip()


def unsafe_char(value: str, *, allow_space: bool = True) -> str | None:
    """Why ``value`` is refused (naming the first bad code point and its 1-based position), or None."""
    if value.isascii() and value.isprintable() and (allow_space or " " not in value):
        # Printable ASCII is U+0020 to U+007E: letters, digits, punctuation, symbols and the space (Zs), so only the
        # space can be refused here. Most values take this path; anything else is checked code point by code point.
        return None
    for i, c in enumerate(value):
        if c == " " and allow_space:
            continue
        category = unicodedata.category(c)
        if category in REFUSED_CATEGORIES:
            return f"must not contain {_KIND[category]} ({describe(c)} at position {i + 1})"
    return None
