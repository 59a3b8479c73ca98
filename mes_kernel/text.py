"""The rules for text a person types and text a scanner or machine sends, in the plant's words.

Plain functions with no dependency, so the server's request models (``schemas.Name``, ``Comment``,
``Identifier``) and the station (results, completion files) apply one definition. The policy is
docs/api.md "Names and identifiers":

- a *name* (shift, line, station, routing step, user's full name, label title) is what a person
  typed: surrounding whitespace is stripped; a name of only whitespace is refused, and so is an
  invisible character inside (controls such as tab or newline, format characters such as U+200B
  ZERO WIDTH SPACE, U+FEFF, the bidi overrides, line and paragraph separators) — they make two names
  that look alike differ, or a name that shows as nothing;
- a *comment* (reason, note, description) is a name that may hold line breaks and tabs;
- an *identifier* (LOT number, serial number, worker id, device, station or product code) is kept
  byte for byte, because a scanner sends exact bytes and a label prints them: surrounding whitespace
  or any character ``str.isprintable`` refuses is refused, never trimmed.

Each ``check_*`` answers the value to keep or raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import unicodedata

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: how Persian words and some emoji are written
LAYOUT = frozenset("\t\n\r")  # a comment's lines and indents


def _refuse_invisible(value: str, allowed: frozenset[str]) -> None:
    for char in value:
        if char not in allowed and unicodedata.category(char) in INVISIBLE_CATEGORIES:
            name = unicodedata.name(char, "a control character")
            raise ValueError(f"contains an invisible character U+{ord(char):04X} ({name})")


def _typed(value: str, allowed: frozenset[str]) -> str:
    stripped = value.strip()
    if value and not stripped.strip("".join(JOINERS)):
        raise ValueError("is blank: it has no visible character")
    _refuse_invisible(stripped, allowed)
    return stripped


def check_name(value: str) -> str:
    """A display name a person typed, stripped. ``""`` passes (a field that needs a name says
    ``min_length=1``); only whitespace, or an invisible character inside, raises ``ValueError``."""
    return _typed(value, JOINERS)


def check_comment(value: str) -> str:
    """A reason, note or description: as ``check_name``, but line breaks and tabs inside are kept."""
    return _typed(value, JOINERS | LAYOUT)


def check_identifier(value: str) -> str:
    """An identifier, unchanged; ``ValueError`` when it has surrounding whitespace or a character
    that is not printable (controls, format characters, whitespace other than a space inside)."""
    if value != value.strip():
        raise ValueError("has leading or trailing whitespace (identifiers are kept exactly as sent, not trimmed)")
    _refuse_invisible(value, frozenset())
    if not value.isprintable():
        char = next(c for c in value if not c.isprintable())
        raise ValueError(f"contains a character a label or scanner cannot carry: U+{ord(char):04X}")
    return value


def is_identifier(value: str) -> bool:
    """Whether ``value`` is a non-empty identifier ``check_identifier`` keeps (to check many at once)."""
    return bool(value) and value.isprintable() and value == value.strip()
