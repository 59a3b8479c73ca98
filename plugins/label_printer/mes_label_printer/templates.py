"""Label templates: the plant's ZPL with typed variable fields, validated values, escaped field data.

A template is a ZPL file as a label designer exports it, plus the fields it takes. A variable
field is marked either by a ``{{name}}`` placeholder inside field data (``^FDLOT: {{lot_number}}^FS``)
or by a ``^FN`` number the field declaration names (``{"name": "serial_number", "fn": 2}``);
declarations give each field a type, whether it is required and its maximum length.

Field data never reaches the printer raw: each value is written through ``^FH`` hex escapes (an
``^FH\\`` is put in front of the field's ``^FD`` when the designer's file has none), so a ``^``
or ``~`` in a product name cannot start a ZPL command. Everything else in the file — ``^GF``
graphics, ``^CI28``, fonts, barcodes — goes to the printer as the designer made it.

The two built-in templates (``unit_label``, ``lot_label``) are ordinary templates written this
way; the store seeds them as version 1.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from mes_kernel.errors import NotFound, Unprocessable

from .zpl import Command, field_number, tokenize, unescape

HEX_INDICATOR = "\\"
# Characters that go into ^FD as they are; everything else is hex-escaped byte by byte.
_SAFE = frozenset(string.ascii_letters + string.digits + " .,:;-/+()#@&*%$!?='\"")

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_PRODUCT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

FIELD_TYPES = ("lot_number", "serial_number", "product", "date", "text", "integer", "gtin")


def zpl_escape(value: str, indicator: str = HEX_INDICATOR) -> str:
    """``value`` for a ``^FH<indicator>^FD`` field: safe characters kept, all others (and the
    indicator itself) as ``<indicator>XX`` UTF-8 bytes."""
    out = []
    for ch in value:
        if ch in _SAFE and ch != indicator:
            out.append(ch)
        else:
            out.extend(f"{indicator}{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for the digits of ``body`` (GTIN without its last digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


@dataclass(frozen=True)
class Field:
    """A typed template field. ``max_length`` bounds strings; dates default to today if optional.

    :param fn: the ``^FN`` number that marks this field in the ZPL, or None for a ``{{name}}``
        placeholder.
    """

    name: str
    type: str
    required: bool = True
    max_length: int = 40
    description: str = ""
    fn: int | None = None

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}; known: {', '.join(FIELD_TYPES)}")
        if not _NAME.match(self.name):
            raise ValueError(f"field name {self.name!r} must be lower-case letters, digits and '_'")
        if not 1 <= self.max_length <= 3072:
            raise ValueError(f"field {self.name}: max_length must be 1 to 3072")
        if self.fn is not None and not 1 <= self.fn <= 9999:
            raise ValueError(f"field {self.name}: fn must be a ^FN number 1 to 9999")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Field:
        """From a declaration ``{"name", "type", "required", "max_length", "description", "fn"}``."""
        if not isinstance(data, dict):
            raise ValueError("a field declaration must be an object")
        unknown = set(data) - {"name", "type", "required", "max_length", "description", "fn"}
        if unknown:
            raise ValueError(f"field declaration has unknown keys: {', '.join(sorted(unknown))}")
        try:
            return cls(
                name=str(data["name"]),
                type=str(data.get("type", "text")),
                required=bool(data.get("required", True)),
                max_length=int(data.get("max_length", 40)),
                description=str(data.get("description", "")),
                fn=None if data.get("fn") is None else int(data["fn"]),
            )
        except KeyError:
            raise ValueError("a field declaration needs a name") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"field {data.get('name')!r}: {exc}") from None

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
            if not (value.isascii() and value.isdigit()) or len(value) not in (8, 12, 13, 14):
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
            "fn": self.fn,
        }

    def sample(self) -> str:
        """A valid value of this field's type, for previewing a template before anyone fills it."""
        samples = {
            "lot_number": "LOT-2026-0001",
            "serial_number": "SN-0000001",
            "product": "PRODUCT-A",
            "date": datetime.now(UTC).date().isoformat(),
            "text": "Sample",
            "integer": "1",
            "gtin": "09501101530003",
        }
        return samples[self.type][: self.max_length]


# ---------------------------------------------------------------- the template


@lru_cache(maxsize=128)
def _commands(zpl: str) -> tuple[Command, ...]:
    """A template's commands, read once per ZPL text (templates are immutable, prints are many)."""
    return tuple(tokenize(zpl))


def _fn_number(command: Command) -> int | None:
    return field_number(command.args)[0]


def _datamatrix_escape(command: Command) -> str | None:
    """The escape character of a ``^BX`` (its 7th parameter), None when it has none."""
    params = command.args.split(",")
    return params[6][:1] if len(params) > 6 and params[6][:1] else None


@dataclass(frozen=True)
class LabelTemplate:
    """A label: the ZPL source, its typed fields, size in dots, and the stored version."""

    name: str
    zpl: str
    fields: tuple[Field, ...]
    title: str = ""
    description: str = ""
    width: int = 812  # 4 in at 203 dpi
    height: int = 406  # 2 in
    dpi: int = 203
    version: int = 0
    status: str = "active"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"template {self.name}: a field is declared twice")
        fns = [f.fn for f in self.fields if f.fn is not None]
        if len(set(fns)) != len(fns):
            raise ValueError(f"template {self.name}: two fields share one ^FN number")
        used = set(self.placeholders())
        undeclared = used - set(names)
        if undeclared:
            raise ValueError(f"template {self.name}: ZPL uses undeclared fields {sorted(undeclared)}")
        in_zpl = self.fn_numbers()
        for f in self.fields:
            if f.fn is not None and f.fn not in in_zpl:
                raise ValueError(f"template {self.name}: field {f.name!r} names ^FN{f.fn}, which the ZPL lacks")
            if f.fn is None and f.name not in used:
                raise ValueError(f"template {self.name}: field {f.name!r} appears nowhere in the ZPL")

    def placeholders(self) -> list[str]:
        """Names of the ``{{name}}`` placeholders in the ZPL, in order."""
        return PLACEHOLDER.findall(self.zpl)

    def fn_numbers(self) -> set[int]:
        """The ``^FN`` numbers the ZPL has."""
        return {n for c in tokenize(self.zpl) if c.code == "^FN" and (n := _fn_number(c)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelTemplate:
        """From the API's description of a template (``describe(with_zpl=True)``), e.g. a station's cache."""
        return cls(
            name=str(data["name"]),
            zpl=str(data["zpl"]),
            fields=tuple(Field.from_dict(f) for f in data.get("fields", [])),
            title=str(data.get("title") or ""),
            description=str(data.get("description") or ""),
            width=int(data.get("width") or 812),
            height=int(data.get("height") or 406),
            dpi=int(data.get("dpi") or 203),
            version=int(data.get("version") or 0),
            status=str(data.get("status") or "active"),
        )

    def with_version(self, version: int, **changes: Any) -> LabelTemplate:
        return replace(self, version=version, **changes)

    def validate(self, values: dict[str, Any]) -> dict[str, str]:
        """Every field checked and normalized; a missing, malformed or unknown field → 422 naming it."""
        clean = self._clean(values)
        self._render(clean)  # field-specific rules of the ZPL (DataMatrix escapes, GS1 data)
        return clean

    def _clean(self, values: dict[str, Any]) -> dict[str, str]:
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
                clean[f.name] = datetime.now(UTC).date().isoformat() if f.type == "date" else ""
                continue
            clean[f.name] = f.clean(value)
        return clean

    def sample_values(self) -> dict[str, str]:
        """A valid value for every field, for a preview of the bare template."""
        return {f.name: f.sample() for f in self.fields}

    def render_zpl(self, values: dict[str, Any]) -> bytes:
        """Validated ZPL for one label (``^XA ... ^XZ``), UTF-8 with every field value hex-escaped."""
        return self._render(self._clean(values)).encode("utf-8")

    def _render(self, data: dict[str, str]) -> str:
        by_fn = {f.fn: f.name for f in self.fields if f.fn is not None}
        out: list[str] = []
        indicator: str | None = None  # the ^FH indicator in force for the current field
        fn_field: str | None = None
        fn_written = False
        datamatrix: str | None = None  # the ^BX escape character of the current field
        code_page = "0"  # the printer's default until a ^CI
        restore: str | None = None  # the code page to return to after a filled field's ^FS
        for command in _commands(self.zpl):
            code = command.code
            if code == "^CI":
                code_page = (command.params()[:1] or ["0"])[0] or "0"
            if code == "^DF":
                continue  # a template prints directly; the printer need not store it
            if code == "^FH":
                indicator = command.args[:1] if command.args[:1] not in ("", ",", "^", "~") else "_"
            elif code == "^BX":
                datamatrix = _datamatrix_escape(command)
            elif code == "^FN" and _fn_number(command) in by_fn:
                fn_field, fn_written = by_fn[_fn_number(command)], False
                continue
            elif code in ("^FD", "^FV") and (fn_field or PLACEHOLDER.search(command.args)):
                prefix = ""
                use = indicator
                if use is None:
                    use, prefix = HEX_INDICATOR, f"^FH{HEX_INDICATOR}"
                if code_page != "28":  # values are UTF-8: this field under ^CI28, then back
                    prefix, restore = f"{prefix}^CI28", code_page
                if fn_field:
                    text = self._value(fn_field, data, use, datamatrix)
                    fn_written = True
                else:
                    text = ""
                    for i, part in enumerate(PLACEHOLDER.split(command.args)):
                        if i % 2:  # a placeholder's name
                            text += self._value(part, data, use, datamatrix)
                        elif prefix:  # static text of a field we put ^FH in front of: escape its indicator
                            text += part.replace(use, f"{use}{ord(use):02X}")
                        else:  # static text already in the designer's ^FH form
                            text += part
                out.append(f"{prefix}{command.prefix}{command.name}{text}{command.trailing}")
                self._check_gs1(command, text, use, datamatrix)
                continue
            elif code == "^FS":
                if fn_field and not fn_written:
                    text = self._value(fn_field, data, indicator or HEX_INDICATOR, datamatrix)
                    switch = "^CI28" if code_page != "28" else ""
                    out.append(("" if indicator else f"^FH{HEX_INDICATOR}") + f"{switch}^FD{text}")
                    restore = code_page if switch else restore
                indicator, fn_field, datamatrix = None, None, None
                if restore is not None:
                    out.append(command.text() + f"^CI{restore}")
                    restore = None
                    continue
            out.append(command.text())
        return "".join(out)

    def _value(self, name: str, data: dict[str, str], indicator: str, datamatrix: str | None) -> str:
        value = data.get(name, "")
        if datamatrix and datamatrix in value:
            # the escape character is read by ^BX after ^FH decoding: it would start a control code
            raise Unprocessable(f"field {name!r} must not contain {datamatrix!r} (DataMatrix escape)", field=name)
        return zpl_escape(value, indicator)

    def _check_gs1(self, command: Command, data: str, indicator: str, datamatrix: str | None) -> None:
        """A DataMatrix whose data starts with FNC1 is GS1: check it as a GS1 element string."""
        if not datamatrix:
            return
        text = unescape(data, indicator)
        fnc1 = f"{datamatrix}1"
        if not text.startswith(fnc1):
            return
        from biip import ParseError
        from biip.gs1_messages import GS1Message

        element_string = text[len(fnc1) :].replace(fnc1, "\x1d")
        try:
            message = GS1Message.parse(element_string)
        except (ParseError, ValueError) as exc:
            raise Unprocessable(f"the GS1 DataMatrix data would be invalid: {exc}", code="LABEL_GS1_INVALID") from None
        for element in message.element_strings:
            error = element.gtin_error or element.sscc_error or element.gln_error
            if error:
                raise Unprocessable(f"the GS1 DataMatrix data would be invalid: {error}", code="LABEL_GS1_INVALID")

    def describe(self, *, with_zpl: bool = False) -> dict[str, Any]:
        out = {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "width": self.width,
            "height": self.height,
            "dpi": self.dpi,
            "status": self.status,
            "fields": [f.describe() for f in self.fields],
            **self.extra,
        }
        if with_zpl:
            out["zpl"] = self.zpl
        return out


# ---------------------------------------------------------------- built-in templates (seeded as version 1)

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
    zpl="""^XA
^CI28
^PW812
^LL406
^FO10,10^GB792,386,3^FS
^FO30,30^A0N,44,44^FD{{product}}^FS
^FO30,90^A0N,30,30^FDLOT: {{lot_number}}^FS
^FO30,128^A0N,30,30^FDS/N: {{serial_number}}^FS
^FO30,166^A0N,30,30^FDDATE: {{date}}^FS
^FO30,210^BY2^BCN,90,Y,N,N^FD{{serial_number}}^FS
^FO560,40^BXN,6,200,,,,_,1^FD_101{{gtin}}10{{lot_number}}_121{{serial_number}}^FS
^FO30,350^A0N,24,24^FD{{note}}^FS
^XZ
""",
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
    zpl="""^XA
^CI28
^PW812
^LL406
^FO10,10^GB792,386,3^FS
^FO30,30^A0N,56,56^FDLOT {{lot_number}}^FS
^FO30,100^A0N,30,30^FD{{product}}  QTY {{quantity}}^FS
^FO30,140^A0N,30,30^FDDATE: {{date}}^FS
^FO30,190^BY3^BCN,110,Y,N,N^FD{{lot_number}}^FS
^FO30,350^A0N,24,24^FD{{note}}^FS
^XZ
""",
)

TEMPLATES: dict[str, LabelTemplate] = {t.name: t for t in (UNIT_LABEL, LOT_LABEL)}
"""The built-in templates, seeded into the store as version 1 (and usable offline without a sync)."""


def get_template(name: str) -> LabelTemplate:
    """The built-in template called ``name``, or :class:`NotFound` listing the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise NotFound(
            f"no label template {name!r}; known: {', '.join(sorted(TEMPLATES))}", code="TEMPLATE_NOT_FOUND"
        ) from None


def register_template(template: LabelTemplate) -> None:
    """Add a template (a site's own label) alongside the built-in ones."""
    if template.name in TEMPLATES:
        raise ValueError(f"label template {template.name!r} exists already")
    TEMPLATES[template.name] = template
