"""GS1 element strings: Application Identifiers, check digits, YYMMDD dates, raw and bracketed forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

GS = "\x1d"
"""The group separator that stands for FNC1 between variable-length fields."""

# GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1)
_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]*$")


@dataclass(frozen=True)
class AI:
    """A GS1 Application Identifier this parser knows: name, fixed length or maximum length."""

    code: str
    name: str
    fixed: int | None = None
    max_len: int | None = None
    numeric: bool = False
    date: bool = False
    check_digit: bool = False


_AIS = [
    AI("00", "sscc", fixed=18, numeric=True, check_digit=True),
    AI("01", "gtin", fixed=14, numeric=True, check_digit=True),
    AI("02", "content_gtin", fixed=14, numeric=True, check_digit=True),
    AI("10", "batch", max_len=20),
    AI("11", "production_date", fixed=6, numeric=True, date=True),
    AI("13", "packaging_date", fixed=6, numeric=True, date=True),
    AI("15", "best_before", fixed=6, numeric=True, date=True),
    AI("16", "sell_by", fixed=6, numeric=True, date=True),
    AI("17", "expiry", fixed=6, numeric=True, date=True),
    AI("20", "variant", fixed=2, numeric=True),
    AI("21", "serial", max_len=20),
    AI("30", "count", max_len=8, numeric=True),
    AI("37", "count_of_items", max_len=8, numeric=True),
]
GS1_AIS: dict[str, AI] = {ai.code: ai for ai in _AIS}


class GS1Error(ValueError):
    """A GS1 element string that breaks the rules; the message says where."""


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (the number without its check digit)."""
    if not digits.isdigit():
        raise ValueError("check digit of non-digits")
    total = 0
    for position, char in enumerate(reversed(digits)):
        total += int(char) * (3 if position % 2 == 0 else 1)
    return (10 - total % 10) % 10


def gs1_check_digit_ok(number: str) -> bool:
    """Whether the last digit of ``number`` is the right GS1 check digit for the rest."""
    return len(number) >= 2 and number.isdigit() and gs1_check_digit(number[:-1]) == int(number[-1])


def gs1_date(yymmdd: str, *, today: date | None = None) -> date:
    """A GS1 YYMMDD date. The century follows GS1 General Specifications 7.12 (a year within
    -50…+49 of this one); day ``00`` means the last day of the month."""
    if len(yymmdd) != 6 or not yymmdd.isdigit():
        raise GS1Error(f"date {yymmdd!r} is not YYMMDD")
    today = today or date.today()
    yy, month, day = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    current_century, current_yy = divmod(today.year, 100)
    difference = yy - current_yy
    century = current_century
    if 51 <= difference <= 99:
        century -= 1
    elif -99 <= difference <= -50:
        century += 1
    year = century * 100 + yy
    if not 1 <= month <= 12:
        raise GS1Error(f"date {yymmdd!r} has month {month:02d}")
    if day == 0:
        next_month = date(year + month // 12, month % 12 + 1, 1)
        return date.fromordinal(next_month.toordinal() - 1)
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise GS1Error(f"date {yymmdd!r} is not a calendar date") from exc


def _validate_ai(ai: AI, value: str) -> None:
    if ai.fixed is not None and len(value) != ai.fixed:
        raise GS1Error(f"AI ({ai.code}) needs {ai.fixed} characters, got {len(value)}")
    if ai.max_len is not None and not 1 <= len(value) <= ai.max_len:
        raise GS1Error(
            f"AI ({ai.code}) takes 1 to {ai.max_len} characters, got {len(value)}"
            + (" (missing GS separator?)" if len(value) > ai.max_len else "")
        )
    if ai.numeric and not value.isdigit():
        raise GS1Error(f"AI ({ai.code}) must be digits, got {value!r}")
    if not _CSET82.match(value):
        raise GS1Error(f"AI ({ai.code}) has characters outside the GS1 set: {value!r}")
    if ai.check_digit and not gs1_check_digit_ok(value):
        expected = gs1_check_digit(value[:-1])
        raise GS1Error(f"AI ({ai.code}) {value} has check digit {value[-1]}, expected {expected}")


def _add(elements: dict[str, str], ai: AI, value: str) -> None:
    _validate_ai(ai, value)
    if ai.code in elements and elements[ai.code] != value:
        raise GS1Error(f"AI ({ai.code}) appears twice with different values")
    elements[ai.code] = value


def _match_ai(text: str, position: int) -> AI:
    for length in (2, 3, 4):
        candidate = text[position : position + length]
        if candidate in GS1_AIS:
            return GS1_AIS[candidate]
    raise GS1Error(f"unknown or unsupported AI at position {position}: {text[position : position + 4]!r}")


def parse_gs1_element_string(text: str) -> dict[str, str]:
    """Parse a raw GS1 element string (AIs run together, variable-length fields ended by GS).

    A leading FNC1/GS is ignored. A GS after a fixed-length field is tolerated.

    :raises GS1Error: unknown AI, wrong length, bad characters, check digit or a missing separator.
    """
    elements: dict[str, str] = {}
    position = 1 if text.startswith(GS) else 0
    if position >= len(text):
        raise GS1Error("empty GS1 element string")
    while position < len(text):
        if text[position] == GS:
            position += 1
            continue
        ai = _match_ai(text, position)
        position += len(ai.code)
        if ai.fixed is not None:
            value = text[position : position + ai.fixed]
            position += ai.fixed
        else:
            end = text.find(GS, position)
            end = len(text) if end < 0 else end
            value = text[position:end]
            position = end
        _add(elements, ai, value)
    return elements


_HRI_RE = re.compile(r"\((\d{2,4})\)([^()]*)")


def parse_gs1_human_readable(text: str) -> dict[str, str]:
    """Parse the human-readable form ``(01)09501101530003(17)250101(10)AB-12``.

    :raises GS1Error: text outside brackets, unknown AI, or a value that breaks its AI's rules.
    """
    elements: dict[str, str] = {}
    position = 0
    for match in _HRI_RE.finditer(text):
        if match.start() != position:
            raise GS1Error(f"unexpected text at position {position}: {text[position : match.start()]!r}")
        code, value = match.groups()
        ai = GS1_AIS.get(code)
        if ai is None:
            raise GS1Error(f"unknown or unsupported AI ({code})")
        _add(elements, ai, value)
        position = match.end()
    if position != len(text) or not elements:
        raise GS1Error(f"not a GS1 human-readable string after position {position}")
    return elements
