"""GS1 element strings read with ``biip``: every AI, dates, decimals with units, per-field check digits.

`biip <https://biip.readthedocs.io>`_ holds the GS1 General Specifications' table of Application
Identifiers (all of them, from the GS1 Barcode Syntax Dictionary) and parses element strings,
the bracketed human-readable form, YYMMDD dates (day ``00`` = last day of the month, century by
GS1 General Specifications 7.12), decimal AIs (310n–369n, 390n–395n) and GTIN/SSCC/GLN check
digits. This module adds only what a scanner station needs on top:

* one :class:`GS1Error` for anything biip refuses (an unknown AI, a value that breaks its AI's
  pattern, an impossible date), with a hint where a missing GS separator is the likely cause;
* check digits biip does not verify (GDTI, GCN, GSIN, GRAI, GSRN, ITIP) and the per-field
  report of every check-digit error, biip's included;
* the unit of a decimal AI (``kg``, ``m2``, an ISO 4217 currency), taken from the AI's data title;
* a repeated AI with two different values is refused (GS1 General Specifications 4.14);
* the bracketed form must account for every character (biip skips text it cannot place).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from biip import ParseConfig, ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_messages import GS1Message

GS = "\x1d"
"""The group separator that stands for FNC1 between variable-length fields."""

_CONFIG = ParseConfig(separator_chars=(GS,))


class GS1Error(ValueError):
    """A GS1 element string that breaks the rules; the message says where."""


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit for ``digits`` (the number without its check digit)."""
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("check digit of non-digits")
    total = 0
    for position, char in enumerate(reversed(digits)):
        total += int(char) * (3 if position % 2 == 0 else 1)
    return (10 - total % 10) % 10


def gs1_check_digit_ok(number: str) -> bool:
    """Whether the last digit of ``number`` is the right GS1 check digit for the rest."""
    if len(number) < 2 or not (number.isascii() and number.isdigit()):
        return False
    return gs1_check_digit(number[:-1]) == int(number[-1])


# Keys whose check digit biip does not verify: AI → (start, length) of the number that ends in it.
# GS1 General Specifications 3.2 (content GTIN 02, 03, GDTI 253, GCN 255, GSIN 402, GRAI 8003
# after its leading 0, ITIP 8006/8026, GSRN 8017/8018).
_OWN_CHECK_DIGITS: dict[str, tuple[int, int]] = {
    "02": (0, 14),
    "03": (0, 14),
    "253": (0, 13),
    "255": (0, 13),
    "402": (0, 17),
    "8003": (1, 13),
    "8006": (0, 14),
    "8026": (0, 14),
    "8017": (0, 18),
    "8018": (0, 18),
}

_UNIT_RE = re.compile(r"\(([^()]+)\)\s*$")
_CURRENCY_AIS = ("391", "393", "395")


@dataclass(frozen=True)
class Element:
    """One GS1 element string of a scan.

    :ivar ai: the Application Identifier, e.g. ``"01"``, ``"3103"``.
    :ivar name: the AI's data title from the GS1 General Specifications (``"GTIN"``,
        ``"NET WEIGHT (kg)"``, ``"BATCH/LOT"``).
    :ivar description: the AI's description in the same table.
    :ivar value: the data as encoded, without the AI.
    :ivar date: for date AIs (11–17, 4324–4326, 7003 …), the calendar date (day 00 read as the
        month's last day).
    :ivar decimal: for decimal AIs (310n–369n, 390n–395n), the value with the implied decimal point.
    :ivar unit: the unit of ``decimal`` — ``kg``, ``m``, ``m2``, ``l``, ``lb`` … from the data
        title, or the ISO 4217 numeric currency code of 391n/393n/395n.
    :ivar error: a check-digit error of this field (``None`` when the field is sound).
    """

    ai: str
    name: str
    description: str
    value: str
    date: date | None = None
    decimal: Decimal | None = None
    unit: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (decimals as strings, dates ISO)."""
        return {
            "ai": self.ai,
            "name": self.name,
            "description": self.description,
            "value": self.value,
            "date": self.date.isoformat() if self.date else None,
            "decimal": str(self.decimal) if self.decimal is not None else None,
            "unit": self.unit,
            "error": self.error,
        }


def _unit(ai: GS1ApplicationIdentifier, value: str) -> str | None:
    if ai.ai.startswith(_CURRENCY_AIS) and len(ai.ai) == 4:
        return f"ISO 4217 {value[:3]}"
    match = _UNIT_RE.search(ai.data_title)
    return match.group(1) if match else None


def _field_error(element: Any) -> str | None:
    for attribute in ("gtin_error", "sscc_error", "gln_error"):
        message = getattr(element, attribute, None)
        if message:
            return str(message)
    span = _OWN_CHECK_DIGITS.get(element.ai.ai)
    if span is not None:
        start, length = span
        number = element.value[start : start + length]
        if len(number) == length and number.isascii() and number.isdigit() and not gs1_check_digit_ok(number):
            expected = gs1_check_digit(number[:-1])
            return f"Invalid {element.ai.data_title} check digit for {number!r}: Expected {expected}, got {number[-1]}."
    return None


def _element(element: Any) -> Element:
    ai = element.ai
    return Element(
        ai=ai.ai,
        name=ai.data_title,
        description=ai.description,
        value=element.value,
        date=element.date,
        decimal=element.decimal,
        unit=_unit(ai, element.value) if element.decimal is not None else None,
        error=_field_error(element),
    )


def _why(text: str, exc: Exception) -> str:
    message = str(exc)
    # biip reads a variable field up to its maximum length; what follows then fails to parse
    # as an AI: the usual cause is a separator the label or scanner left out.
    if "Failed to get GS1 Application Identifier" in message and GS not in text and len(text) > 20:
        message += " (missing GS separator after a variable-length field?)"
    return message


def _checked(elements: list[Element]) -> list[Element]:
    seen: dict[str, str] = {}
    for element in elements:
        if seen.setdefault(element.ai, element.value) != element.value:
            raise GS1Error(f"AI ({element.ai}) appears twice with different values")
    return elements


def parse_elements(text: str) -> list[Element]:
    """Every element string of a raw GS1 message (AIs run together, variable-length fields ended
    by GS); a leading FNC1/GS is ignored, as is a GS after a fixed-length field.

    :raises GS1Error: empty data, an unknown AI, a value that breaks its AI's pattern (length,
        characters, an impossible date) or a repeated AI with another value.
    """
    data = text[1:] if text.startswith(GS) else text
    if not data.strip(GS):
        raise GS1Error("empty GS1 element string")
    try:
        message = GS1Message.parse(data, config=_CONFIG)
    except (ParseError, ValueError, ArithmeticError, LookupError) as exc:
        raise GS1Error(_why(data, exc)) from None
    return _checked([_element(e) for e in message.element_strings])


def parse_human_readable(text: str) -> list[Element]:
    """Every element string of the bracketed form ``(01)09501101530003(17)250100(10)AB-12``.

    :raises GS1Error: text outside brackets, an unknown AI, or a value that breaks its AI's rules.
    """
    try:
        message = GS1Message.parse_hri(text, config=_CONFIG)
    except (ParseError, ValueError, ArithmeticError, LookupError) as exc:
        raise GS1Error(str(exc)) from None
    if not message.element_strings:
        raise GS1Error("not a GS1 human-readable string")
    elements = [_element(e) for e in message.element_strings]
    # biip skips text it cannot place ("()" or a stray "(x"); a scan must not lose characters
    if "".join(f"({e.ai}){e.value}" for e in elements) != text:
        raise GS1Error(f"unexpected text in the human-readable form {text!r}")
    return _checked(elements)


def parse_gs1_element_string(text: str) -> dict[str, str]:
    """A raw GS1 element string as AI → value, in order (see :func:`parse_elements`)."""
    return {e.ai: e.value for e in parse_elements(text)}


def parse_gs1_human_readable(text: str) -> dict[str, str]:
    """The bracketed form as AI → value, in order (see :func:`parse_human_readable`)."""
    return {e.ai: e.value for e in parse_human_readable(text)}


def ai_name(code: str) -> str | None:
    """The data title of AI ``code`` (``"21"`` → ``"SERIAL"``), None for no such AI."""
    try:
        ai = GS1ApplicationIdentifier.extract(code)
    except ParseError:
        return None
    return ai.data_title if ai.ai == code else None
