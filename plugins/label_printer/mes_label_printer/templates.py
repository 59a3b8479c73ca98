"""Label templates: typed fields, validation before printing, and ZPL rendering with escaped data.

A template is a list of layout elements (text, Code 128, GS1 DataMatrix, boxes) over typed
fields, so the same description renders to ZPL for the printer and to a PNG preview.
Field data never reaches the printer raw: every field goes out through ``^FH`` hex escapes,
so a ``^`` or ``~`` in a product name cannot start a ZPL command.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from mes_kernel.errors import NotFound, Unprocessable

HEX_INDICATOR = "\\"
# Characters that go into ^FD as they are; everything else is hex-escaped byte by byte.
_SAFE = frozenset(string.ascii_letters + string.digits + " .,:;-/+()#@&*%$!?='\"")

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_PRODUCT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")

FIELD_TYPES = ("lot_number", "serial_number", "product", "date", "text", "integer", "gtin")


def zpl_escape(value: str) -> str:
    """``value`` for a ``^FH\\^FD`` field: safe characters kept, all others as ``\\XX`` UTF-8 bytes."""
    out = []
    for ch in value:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"{HEX_INDICATOR}{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for the digits of ``body`` (GTIN without its last digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


@dataclass(frozen=True)
class Field:
    """A typed template field. ``max_length`` bounds strings; dates default to today if optional."""

    name: str
    type: str
    required: bool = True
    max_length: int = 40
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")

    def clean(self, value: Any) -> str:
        """The value normalized to the string that is printed; raises :class:`Unprocessable`."""

        def bad(why: str) -> Unprocessable:
            return Unprocessable(f"field {self.name!r} {why}", field=self.name)

        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise bad("must be a whole number")
            try:
                number = int(value)
            except ValueError:
                raise bad("must be a whole number") from None
            if number < 0 or number > 10**9:
                raise bad("must be between 0 and 1000000000")
            return str(number)
        if self.type == "date":
            if isinstance(value, date):
                return value.isoformat()
            if not isinstance(value, str):
                raise bad("must be a date YYYY-MM-DD")
            try:
                return date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                raise bad("must be a date YYYY-MM-DD") from None
        if not isinstance(value, str):
            raise bad("must be a string")
        value = value.strip()
        if not value:
            raise bad("must not be empty")
        if len(value) > self.max_length:
            raise bad(f"is longer than {self.max_length} characters")
        if self.type in ("lot_number", "serial_number") and not _CODE.match(value):
            raise bad("may only contain letters, digits, '.', '_', '/' and '-'")
        if self.type == "product" and not _PRODUCT.match(value):
            raise bad("may only contain letters, digits, spaces, '.', '_', '/' and '-'")
        if self.type == "text" and any(not ch.isprintable() for ch in value):
            raise bad("must not contain control characters")
        if self.type == "gtin":
            if not value.isdigit() or len(value) not in (8, 12, 13, 14):
                raise bad("must be a GTIN of 8, 12, 13 or 14 digits")
            value = value.zfill(14)
            if gtin_check_digit(value[:-1]) != int(value[-1]):
                raise bad("has a wrong check digit")
        return value

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "max_length": self.max_length,
            "description": self.description,
        }


# ---------------------------------------------------------------- layout elements


@dataclass(frozen=True)
class Text:
    """A line of text at ``(x, y)``; ``text`` is a ``str.format`` pattern over field names."""

    x: int
    y: int
    text: str
    height: int = 30

    def fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.text) if name}


@dataclass(frozen=True)
class Code128:
    """A Code 128 barcode of one field, human-readable line under it."""

    x: int
    y: int
    field: str
    height: int = 80
    module: int = 2

    def fields(self) -> set[str]:
        return {self.field}


@dataclass(frozen=True)
class Gs1DataMatrix:
    """A GS1 DataMatrix: FNC1, then application identifiers with their fields.

    ``parts`` are ``(ai, field, fixed_length)``; an FNC1 separates each variable-length
    part from the next, as GS1 requires.
    """

    x: int
    y: int
    parts: tuple[tuple[str, str, bool], ...]
    module: int = 6

    def fields(self) -> set[str]:
        return {name for _, name, _ in self.parts}


@dataclass(frozen=True)
class Box:
    """A rectangle outline."""

    x: int
    y: int
    width: int
    height: int
    thickness: int = 3

    def fields(self) -> set[str]:
        return set()


Element = Text | Code128 | Gs1DataMatrix | Box


@dataclass(frozen=True)
class LabelTemplate:
    """A label: size in dots, typed fields, layout."""

    name: str
    title: str
    fields: tuple[Field, ...]
    elements: tuple[Element, ...]
    width: int = 812  # 4 in at 203 dpi
    height: int = 406  # 2 in
    dpi: int = 203
    description: str = ""

    def __post_init__(self) -> None:
        declared = {f.name for f in self.fields}
        for element in self.elements:
            missing = element.fields() - declared
            if missing:
                raise ValueError(f"template {self.name}: element uses undeclared fields {sorted(missing)}")

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        """Every field checked and normalized; a missing, malformed or unknown field → 422 naming it."""
        known = {f.name for f in self.fields}
        unknown = sorted(set(values) - known)
        if unknown:
            raise Unprocessable(f"field {unknown[0]!r} is not a field of template {self.name!r}", field=unknown[0])
        clean: dict[str, str] = {}
        for f in self.fields:
            value = values.get(f.name)
            if value is None or value == "":
                if f.required:
                    raise Unprocessable(f"field {f.name!r} is required", field=f.name)
                if f.type == "date":
                    clean[f.name] = datetime.now(UTC).date().isoformat()
                else:
                    clean[f.name] = ""
                continue
            clean[f.name] = f.clean(value)
        for element in self.elements:
            if isinstance(element, Gs1DataMatrix):
                for _, name, _ in element.parts:
                    if "_" in clean.get(name, ""):
                        # "_" is the DataMatrix escape character in the printed format
                        raise Unprocessable(f"field {name!r} must not contain '_' (GS1 DataMatrix)", field=name)
        return clean

    def render_zpl(self, values: dict[str, Any]) -> bytes:
        """Validated ZPL for one label (``^XA ... ^XZ``), UTF-8 with every field hex-escaped."""
        data = self.validate(values)
        lines = ["^XA", "^CI28", f"^PW{self.width}", f"^LL{self.height}"]
        for element in self.elements:
            lines.extend(_zpl_element(element, data))
        lines.append("^XZ")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "width": self.width,
            "height": self.height,
            "dpi": self.dpi,
            "fields": [f.describe() for f in self.fields],
        }


def gs1_element_string(element: Gs1DataMatrix, data: dict[str, str], fnc1: str) -> str:
    """The GS1 data of ``element`` with ``fnc1`` at the start and after variable-length parts."""
    out = [fnc1]
    present = [(ai, data[name], fixed) for ai, name, fixed in element.parts if data.get(name)]
    for i, (ai, value, fixed) in enumerate(present):
        out.append(ai + value)
        if not fixed and i < len(present) - 1:
            out.append(fnc1)
    return "".join(out)


def _zpl_element(element: Element, data: dict[str, str]) -> list[str]:
    at = f"^FO{element.x},{element.y}"
    match element:
        case Text():
            text = element.text.format(**data)
            return [f"{at}^A0N,{element.height},{element.height}^FH{HEX_INDICATOR}^FD{zpl_escape(text)}^FS"]
        case Code128():
            value = zpl_escape(data[element.field])
            return [f"{at}^BY{element.module}^BCN,{element.height},Y,N,N^FH{HEX_INDICATOR}^FD{value}^FS"]
        case Gs1DataMatrix():
            # "_" is ^BX's escape character here; "_1" is FNC1. Field data cannot hold "_":
            # GS1 parts only take lot/serial/GTIN fields, whose characters exclude it.
            value = gs1_element_string(element, data, fnc1="_1")
            return [f"{at}^BXN,{element.module},200,,,,_,1^FH{HEX_INDICATOR}^FD{value}^FS"]
        case Box():
            return [f"{at}^GB{element.width},{element.height},{element.thickness}^FS"]
    raise TypeError(f"unknown element {element!r}")


# ---------------------------------------------------------------- built-in templates

UNIT_LABEL = LabelTemplate(
    name="unit_label",
    title="Unit label (serial, LOT, GS1 DataMatrix)",
    description="One per serialized unit: Code 128 of the serial number and a GS1 DataMatrix "
    "with (01) GTIN, (10) LOT and (21) serial.",
    fields=(
        Field("product", "product", description="product code or name"),
        Field("lot_number", "lot_number", max_length=20),
        Field("serial_number", "serial_number", max_length=20),
        Field("gtin", "gtin", description="GTIN-14 with check digit"),
        Field("date", "date", required=False, description="production date; today if empty"),
        Field("note", "text", required=False, max_length=40),
    ),
    elements=(
        Box(10, 10, 792, 386),
        Text(30, 30, "{product}", height=44),
        Text(30, 90, "LOT: {lot_number}"),
        Text(30, 128, "S/N: {serial_number}"),
        Text(30, 166, "DATE: {date}"),
        Code128(30, 210, "serial_number", height=90),
        Gs1DataMatrix(560, 40, (("01", "gtin", True), ("10", "lot_number", False), ("21", "serial_number", False))),
        Text(30, 350, "{note}", height=24),
    ),
)

LOT_LABEL = LabelTemplate(
    name="lot_label",
    title="LOT label (box or tray)",
    description="One per LOT container: LOT number large, Code 128 of the LOT number.",
    fields=(
        Field("lot_number", "lot_number", max_length=40),
        Field("product", "product"),
        Field("quantity", "integer"),
        Field("date", "date", required=False),
        Field("note", "text", required=False, max_length=60),
    ),
    elements=(
        Box(10, 10, 792, 386),
        Text(30, 30, "LOT {lot_number}", height=56),
        Text(30, 100, "{product}  QTY {quantity}"),
        Text(30, 140, "DATE: {date}"),
        Code128(30, 190, "lot_number", height=110, module=3),
        Text(30, 350, "{note}", height=24),
    ),
)

TEMPLATES: dict[str, LabelTemplate] = {t.name: t for t in (UNIT_LABEL, LOT_LABEL)}


def get_template(name: str) -> LabelTemplate:
    """The template called ``name``, or :class:`NotFound` listing the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise NotFound(f"no label template {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


def register_template(template: LabelTemplate) -> None:
    """Add a template (a site's own label) alongside the built-in ones."""
    if template.name in TEMPLATES:
        raise ValueError(f"label template {template.name!r} exists already")
    TEMPLATES[template.name] = template


def templates_version() -> dict[str, Any]:
    """``{"version", "count"}`` of the built-in template set: a digest of every template's description,
    so a station re-syncs its cached templates exactly when they changed."""
    import hashlib
    import json

    described = [TEMPLATES[name].describe() for name in sorted(TEMPLATES)]
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()
    return {"version": digest[:16], "count": len(described)}
