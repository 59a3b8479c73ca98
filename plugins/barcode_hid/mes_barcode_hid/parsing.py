"""What a scanned code says: AIM symbology identifiers, GS1 element strings, LOT and serial patterns.

The parser reports what it can prove and nothing more. A code that no rule accepts, or that breaks
a rule it claims to follow (a GS1 string with a wrong GTIN check digit), is ``kind="unknown"`` with
the reason; it is never guessed into a LOT or serial number.

Order of rules for one code:

1. An AIM symbology identifier (``]C1``, ``]d2``, ``]Q3``, ``]E0`` …) is stripped and reported.
2. A code that announces itself as GS1 — a GS1 symbology identifier (``]C1``, ``]e0``, ``]d2``,
   ``]Q3``, ``]J1``), a leading FNC1/GS, the human-readable ``(01)…`` form, or a GS separator
   inside — is parsed as a GS1 element string, and only so.
3. EAN/UPC (``]E0``, ``]E4``) data is a GTIN and must carry a valid check digit.
4. Otherwise the configured serial and LOT patterns are tried; both matching is ambiguous → unknown.
5. With ``gs1_bare`` on, a code that still matched nothing is accepted as a raw GS1 element string
   only if it parses completely, starts with AI 01 and the GTIN check digit is right.

GS1 data is read by ``biip`` (:mod:`.gs1`): every AI of the GS1 General Specifications, so a
label that also carries 240, 400, 8004, 310n weights or 392n prices still gives its (21) serial
or (10) LOT. A check-digit error in any field makes the whole code unknown, with each field's
error listed under ``elements``: a misread is never looked up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from .gs1 import (
    GS,
    Element,
    GS1Error,
    gs1_check_digit,
    gs1_check_digit_ok,
    parse_elements,
    parse_gs1_element_string,
    parse_gs1_human_readable,
    parse_human_readable,
)

__all__ = [
    "GS",
    "Element",
    "GS1Error",
    "ParsedCode",
    "ParserConfig",
    "gs1_check_digit",
    "gs1_check_digit_ok",
    "parse_code",
    "parse_gs1_element_string",
    "parse_gs1_human_readable",
    "split_symbology",
    "symbology_name",
]

Kind = Literal["serial", "lot", "gtin", "unknown"]

# AIM ISO/IEC 15424 symbology code characters (the letter after "]")
AIM_SYMBOLOGIES: dict[str, str] = {
    "A": "Code 39",
    "C": "Code 128",
    "d": "Data Matrix",
    "E": "EAN/UPC",
    "e": "GS1 DataBar",
    "F": "Codabar",
    "G": "Code 93",
    "H": "Code 11",
    "I": "Interleaved 2 of 5",
    "J": "DotCode",
    "L": "PDF417",
    "M": "MSI",
    "Q": "QR Code",
    "R": "Straight 2 of 5",
    "S": "Straight 2 of 5",
    "X": "other",
    "z": "Aztec Code",
}
# identifiers whose data is a GS1 element string (FNC1 in first position)
GS1_SYMBOLOGIES = frozenset({"]C1", "]e0", "]d2", "]Q3", "]J1", "]z1"})
EAN_SYMBOLOGIES = frozenset({"]E0", "]E3", "]E4"})

_AIM_RE = re.compile(r"^\][A-Za-z][0-9A-Za-z]")


@dataclass(frozen=True)
class ParsedCode:
    """The parser's verdict on one code.

    :ivar kind: ``serial`` (identifies a unit), ``lot``, ``gtin`` (a product only) or ``unknown``.
    :ivar data: the code without its AIM identifier.
    :ivar symbology: the AIM identifier (``"]C1"``) or None; ``symbology_name`` spells it out.
    :ivar format: ``gs1``, ``ean``, ``pattern`` or None (unknown).
    :ivar ais: GS1 element strings, AI → value, in the order scanned.
    :ivar elements: the GS1 element strings in full (name, date, decimal and unit, check-digit
        error), in the order scanned.
    :ivar reason: why the code is unknown (None otherwise).
    """

    kind: Kind
    raw: str
    data: str
    symbology: str | None = None
    symbology_name: str | None = None
    format: str | None = None
    serial_number: str | None = None
    lot_number: str | None = None
    gtin: str | None = None
    expiry: date | None = None
    ais: dict[str, str] = field(default_factory=dict)
    elements: tuple[Element, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as the lookup route answers it under ``parsed``."""
        return {
            "kind": self.kind,
            "data": self.data,
            "symbology": self.symbology,
            "symbology_name": self.symbology_name,
            "format": self.format,
            "serial_number": self.serial_number,
            "lot_number": self.lot_number,
            "gtin": self.gtin,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "ais": dict(self.ais),
            "elements": [e.as_dict() for e in self.elements],
            "reason": self.reason,
        }


DEFAULT_SERIAL_PATTERNS = (r"(?P<serial>SN[-_]?[A-Z0-9][A-Z0-9_-]{2,60})",)
DEFAULT_LOT_PATTERNS = (r"(?P<lot>LOT[-_]?[A-Z0-9][A-Z0-9_-]{2,60})",)


@dataclass(frozen=True)
class ParserConfig:
    """Which codes mean what in this plant.

    :param serial_patterns: regular expressions that a whole code must match (``fullmatch``) to be a
        serial number; a named group ``serial`` picks the serial out of a longer code
        (``S(?P<serial>\\d{10})``), otherwise the whole code is the serial number.
    :param lot_patterns: the same for LOT numbers, with a named group ``lot``.
    :param gs1_bare: accept a raw GS1 element string that came without symbology identifier or
        leading FNC1, when it starts with AI 01, parses completely and its check digit is right.
    :param gs_substitute: a printable character some scanners send instead of GS (e.g. ``"~"``)
        when GS cannot be typed; it is read as GS inside GS1 data.
    """

    serial_patterns: tuple[str, ...] = DEFAULT_SERIAL_PATTERNS
    lot_patterns: tuple[str, ...] = DEFAULT_LOT_PATTERNS
    gs1_bare: bool = True
    gs_substitute: str | None = None

    def __post_init__(self) -> None:
        for pattern in (*self.serial_patterns, *self.lot_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid pattern {pattern!r}: {exc}") from exc
        if self.gs_substitute is not None and len(self.gs_substitute) != 1:
            raise ValueError("gs_substitute must be one character")

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> ParserConfig:
        """Build from a settings mapping (``serial_patterns``, ``lot_patterns``, ``gs1_bare``,
        ``gs_substitute``); missing keys keep their defaults."""
        settings = dict(settings or {})
        kw: dict[str, Any] = {}
        for key in ("serial_patterns", "lot_patterns"):
            if key in settings:
                value = settings[key]
                kw[key] = (value,) if isinstance(value, str) else tuple(value)
        if "gs1_bare" in settings:
            kw["gs1_bare"] = bool(settings["gs1_bare"])
        if settings.get("gs_substitute"):
            kw["gs_substitute"] = settings["gs_substitute"]
        return cls(**kw)


# ------------------------------------------------------------------ AIM identifiers


def split_symbology(text: str) -> tuple[str | None, str]:
    """Split an AIM symbology identifier off the front: ``"]C1010950…"`` → ``("]C1", "010950…")``.

    Only identifiers with a known symbology letter are split; anything else is left as data.
    """
    if _AIM_RE.match(text) and text[1] in AIM_SYMBOLOGIES:
        return text[:3], text[3:]
    return None, text


def symbology_name(identifier: str | None) -> str | None:
    """``"]C1"`` → ``"GS1-128"``, ``"]Q1"`` → ``"QR Code"``; None for None."""
    if not identifier:
        return None
    if identifier in GS1_SYMBOLOGIES:
        base = AIM_SYMBOLOGIES[identifier[1]]
        return "GS1-128" if identifier == "]C1" else f"GS1 {base}".replace("GS1 GS1 ", "GS1 ")
    return AIM_SYMBOLOGIES.get(identifier[1:2], "unknown")  # a scanner may send any text here


# ------------------------------------------------------------------ the parser


def _unknown(raw: str, data: str, symbology: str | None, reason: str, **kw: Any) -> ParsedCode:
    return ParsedCode(
        kind="unknown",
        raw=raw,
        data=data,
        symbology=symbology,
        symbology_name=symbology_name(symbology),
        reason=reason,
        **kw,
    )


def _from_gs1(raw: str, data: str, symbology: str | None, elements: list[Element]) -> ParsedCode:
    ais = {e.ai: e.value for e in elements}
    expiry = next((e.date for e in elements if e.ai == "17"), None)
    serial, lot, gtin = ais.get("21"), ais.get("10"), ais.get("01")
    kind: Kind = "serial" if serial else "lot" if lot else "gtin" if gtin else "unknown"
    errors = [f"({e.ai}) {e.error}" for e in elements if e.error]
    reason = None
    if errors:
        kind, reason = "unknown", "check digit error: " + "; ".join(errors)
    elif kind == "unknown":
        reason = "GS1 string without GTIN, batch or serial"
    return ParsedCode(
        kind=kind,
        raw=raw,
        data=data,
        symbology=symbology,
        symbology_name=symbology_name(symbology),
        format="gs1",
        serial_number=serial if not errors else None,
        lot_number=lot if not errors else None,
        gtin=gtin,
        expiry=expiry,
        ais=ais,
        elements=tuple(elements),
        reason=reason,
    )


def _announces_gs1(data: str, symbology: str | None) -> bool:
    return symbology in GS1_SYMBOLOGIES or data.startswith(GS) or GS in data or bool(re.match(r"^\(\d{2,4}\)", data))


def _pattern_match(patterns: Iterable[str], data: str, group: str) -> str | None:
    for pattern in patterns:
        match = re.fullmatch(pattern, data)
        if match:
            named = match.groupdict().get(group)
            return named if named else data
    return None


def parse_code(
    text: str,
    *,
    config: ParserConfig | None = None,
    symbology: str | None = None,
) -> ParsedCode:
    """Say what a scanned code is. Never raises for any text: what no rule accepts is unknown.

    :param text: the code as scanned; an AIM identifier at its front is stripped and reported.
    :param symbology: the AIM identifier when the driver already stripped it (``Scan.symbology``).
    """
    config = config or ParserConfig()
    raw = text
    if symbology is None:
        symbology, data = split_symbology(text)
    else:
        data = text
    data = data.strip("\r\n")
    if config.gs_substitute:
        gs1_data = data.replace(config.gs_substitute, GS)
    else:
        gs1_data = data
    if not data:
        return _unknown(raw, data, symbology, "empty code")

    if _announces_gs1(gs1_data, symbology):
        try:
            if gs1_data.startswith("("):
                elements = parse_human_readable(gs1_data)
            else:
                elements = parse_elements(gs1_data)
            return _from_gs1(raw, data, symbology, elements)
        except GS1Error as exc:
            return _unknown(raw, data, symbology, f"invalid GS1 data: {exc}")

    if symbology in EAN_SYMBOLOGIES:
        if data.isascii() and data.isdigit() and len(data) in (8, 12, 13) and gs1_check_digit_ok(data):
            return ParsedCode(
                kind="gtin",
                raw=raw,
                data=data,
                symbology=symbology,
                symbology_name=symbology_name(symbology),
                format="ean",
                gtin=data.zfill(14),
            )
        return _unknown(raw, data, symbology, "EAN/UPC data with a wrong length or check digit")

    serial = _pattern_match(config.serial_patterns, data, "serial")
    lot = _pattern_match(config.lot_patterns, data, "lot")
    if serial and lot:
        return _unknown(raw, data, symbology, "matches both a serial and a LOT pattern")
    if serial or lot:
        return ParsedCode(
            kind="serial" if serial else "lot",
            raw=raw,
            data=data,
            symbology=symbology,
            symbology_name=symbology_name(symbology),
            format="pattern",
            serial_number=serial,
            lot_number=lot,
        )

    if config.gs1_bare and data.startswith("01") and data.isascii():
        try:
            elements = parse_elements(data)
        except GS1Error as exc:
            return _unknown(raw, data, symbology, f"matches no serial or LOT rule, and as GS1 data: {exc}")
        if elements and elements[0].ai == "01":
            return _from_gs1(raw, data, symbology, elements)

    return _unknown(raw, data, symbology, "matches no serial, LOT or GS1 rule")
