"""Checks a label designer's ZPL file before it becomes a template: syntax, one format, graphics.

``zpl-toolchain`` (the maintained ZPL parser/validator on PyPI) ships only CPython 3.12 wheels and
the project runs on 3.11, so this is a careful check of the command syntax the printer would read
(:mod:`.zpl`), in the spirit of the ZPL II Programming Guide:

* UTF-8 text, at most :data:`MAX_ZPL_BYTES`. Any single-byte ``^CI`` code page (0–28, 31–36) is
  accepted — designers write ``^CI0``/``^CI27`` and switch to ``^CI28`` around fields — because a
  filled field is always sent under ``^CI28`` (see ``templates``); the UTF-16 pages ``^CI29``/``^CI30``
  are refused (the file is UTF-8), and so is static non-ASCII text that is not under ``^CI28``
  (it would print as other characters);
* exactly one format ``^XA`` … ``^XZ``, nothing but whitespace outside it — except a designer
  export's leading prefix change to the defaults (``CT~~CD,~CC^~CT~``) and leading settings-only
  formats (``^XA~TA000~JSN … ^JUS … ^XZ``), which are left out with a warning
  (:func:`_strip_designer_preamble`); only the label format is kept;
* every command is a ZPL II command (:data:`KNOWN_COMMANDS`), numeric parameters are numbers;
* every ``^FD``/``^FV`` field is closed by ``^FS`` before the next field starts or the format ends;
* ``^GF`` graphics decode to the byte count they declare;
* no ``^XF`` (a template must not depend on a format stored in one printer's memory), no host
  commands that change the printer (``^JU``, ``~JR``, ``^ID`` …) — a label file prints, it does
  not reconfigure the line's printers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mes_kernel.errors import Unprocessable

from .zpl import BARCODE_KINDS, Command, GraphicError, decode_graphic, field_number, tokenize

MAX_ZPL_BYTES = 2 * 1024 * 1024
# The widest Zebra print heads are 8.5 in (2550 dots at 300 dpi); 40 in of label at 203 dpi.
MAX_WIDTH_DOTS = 4000
MAX_LENGTH_DOTS = 8000

KNOWN_COMMANDS = frozenset(
    """
    ^A ^A@ ^B0 ^B1 ^B2 ^B3 ^B4 ^B5 ^B7 ^B8 ^B9 ^BA ^BB ^BC ^BD ^BE ^BF ^BI ^BJ ^BK ^BL ^BM ^BO ^BP ^BQ
    ^BR ^BS ^BT ^BU ^BX ^BY ^BZ ^CC ^CD ^CF ^CI ^CM ^CO ^CT ^CV ^CW ^DF ^FA ^FB ^FC ^FD ^FE ^FH ^FL
    ^FM ^FN ^FO ^FP ^FR ^FS ^FT ^FV ^FW ^FX ^GB ^GC ^GD ^GE ^GF ^GS ^LH ^LL ^LR ^LS ^LT ^MC ^MD ^MF
    ^MM ^MN ^MT ^MU ^PA ^PF ^PM ^PO ^PQ ^PR ^PW ^SF ^SN ^SO ^TB ^TO ^XA ^XB ^XF ^XG ^XZ ^FG
    ~DG ~DY ~DB ~DN ~EG ~HS ~SD ~TA ~DE
    """.split()
)
# Commands that change printer settings or memory for good: refused in a label file.
PRINTER_SETTING_COMMANDS = frozenset({"^JU", "~JR", "~JC", "~JA", "^ID", "~WC", "^JUS", "~JD", "~JE", "^KN", "^NC"})

_NUMERIC = {
    "^FO": 2,
    "^FT": 2,
    "^LH": 2,
    "^PW": 1,
    "^LL": 1,
    "^GB": 3,
    "^BY": 1,
    "^PQ": 1,
    "^LT": 1,
    "^LS": 1,
}
_SUPPORTED_CI = {"", *(str(n) for n in range(0, 37) if n not in (29, 30))}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass
class FnField:
    """A ``^FN`` numbered field of the file: its number, the designer's prompt (``^FN1"product"``),
    the data it prints when nothing fills it (its first ``^FD``, escapes kept), how many fields carry
    the number and what they draw (``text``, ``code128``, ``datamatrix`` …)."""

    fn: int
    prompt: str | None = None
    default: str | None = None
    uses: int = 0
    kinds: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        return {"fn": self.fn, "prompt": self.prompt, "default": self.default, "uses": self.uses, "kinds": self.kinds}


@dataclass
class ZplInfo:
    """What validation learnt from a file: label size, variable fields, warnings."""

    width: int | None = None
    height: int | None = None
    fn_numbers: set[int] = field(default_factory=set)
    #: the ``^FN`` fields by number, in order of first appearance
    fn_fields: dict[int, FnField] = field(default_factory=dict)
    #: the ``{{name}}`` placeholders in field data, each once, in order of first appearance
    placeholders: list[str] = field(default_factory=list)
    graphics: int = 0
    commands: int = 0
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        """What the upload dialog shows before saving (``POST /labels/templates/inspect``)."""
        return {
            "fn_fields": [f.describe() for f in self.fn_fields.values()],
            "placeholders": list(self.placeholders),
            "width": self.width,
            "height": self.height,
            "graphics": self.graphics,
            "warnings": list(self.warnings),
        }


def _bad(message: str, command: Command | None = None, **extra: object) -> Unprocessable:
    if command is not None:
        extra = {"command": command.code, "offset": command.offset, **extra}
    return Unprocessable(message, code="ZPL_INVALID", **extra)


def validate_zpl(raw: bytes | str) -> tuple[str, ZplInfo]:
    """The file as text and what it holds, or :class:`Unprocessable` ``ZPL_INVALID`` naming the
    command and its byte offset."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_ZPL_BYTES:
            raise _bad(f"ZPL file is larger than {MAX_ZPL_BYTES} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _bad(f"ZPL file is not UTF-8 (byte {exc.start}); save it as UTF-8 with ^CI28") from None
    else:
        text = raw
        if len(text.encode("utf-8")) > MAX_ZPL_BYTES:
            raise _bad(f"ZPL file is larger than {MAX_ZPL_BYTES} bytes")
    if "\x00" in text:
        raise _bad("ZPL file contains a NUL character")
    text, warnings = _strip_designer_preamble(text)
    commands = tokenize(text)
    first = min((c.offset for c in commands), default=len(text))
    if text[:first].strip():
        raise _bad("text before the first ZPL command", offset=0)
    info = ZplInfo(commands=len(commands), warnings=warnings)
    in_format = False
    formats = 0
    open_field: Command | None = None
    code_page = "0"  # a printer's default, until a ^CI
    variable_field = False  # the current field has a ^FN (its data is replaced when printed)
    current_fn: FnField | None = None  # the ^FN of the current field
    kind = "text"  # what the current field draws
    for command in commands:
        code = command.code
        if code not in KNOWN_COMMANDS:
            if code in PRINTER_SETTING_COMMANDS or code[:3] in PRINTER_SETTING_COMMANDS:
                raise _bad(f"{code} changes the printer's settings; a label file may not", command)
            raise _bad(f"unknown ZPL command {code}", command)
        if code == "^XA":
            if in_format:
                raise _bad("^XA inside a format (a missing ^XZ?)", command)
            in_format, formats = True, formats + 1
            if formats > 1:
                raise _bad("more than one label format (^XA … ^XZ) in the file; a template is one label", command)
            continue
        if code == "^XZ":
            if not in_format:
                raise _bad("^XZ without ^XA", command)
            if open_field is not None:
                raise _bad("field data not closed by ^FS before ^XZ", open_field)
            in_format = False
            continue
        if command.prefix == "^" and not in_format:
            raise _bad(f"{code} outside a format (^XA … ^XZ)", command)
        if code == "^XF":
            raise _bad("^XF recalls a format stored in a printer; upload the format itself", command)
        if code in ("^FD", "^FV"):
            if open_field is not None:
                raise _bad("field data not closed by ^FS", open_field)
            open_field = command
            if current_fn is not None and current_fn.default is None:
                current_fn.default = command.args
            for name in _PLACEHOLDER.findall(command.args):
                if name not in info.placeholders:
                    info.placeholders.append(name)
            if (
                code_page != "28"
                and not variable_field
                and not _PLACEHOLDER.search(command.args)
                and any(ord(ch) > 0x7E for ch in command.args)
            ):
                raise _bad("text other than ASCII needs ^CI28 (UTF-8) before its field: the file is UTF-8", command)
        elif code == "^FN":
            variable_field = True
        elif code == "^FS":
            if current_fn is not None and kind not in current_fn.kinds:
                current_fn.kinds.append(kind)  # at the field's end: a ^BC may follow its ^FN
            open_field, variable_field, current_fn, kind = None, False, None, "text"
        elif code in ("^FO", "^FT") and open_field is not None:
            raise _bad("field data not closed by ^FS before the next field", open_field)
        elif command.prefix == "^" and command.name in BARCODE_KINDS:
            kind = BARCODE_KINDS[command.name]
        if code in _NUMERIC:
            params = command.params()
            for i in range(min(_NUMERIC[code], len(params))):
                if params[i] and not re.fullmatch(r"-?[0-9]+", params[i]):
                    raise _bad(f"{code} parameter {i + 1} must be a whole number, got {params[i]!r}", command)
        if code == "^CI" and command.params()[:1] and command.params()[0] not in _SUPPORTED_CI:
            raise _bad("^CI29/^CI30 (UTF-16) and unknown code pages are refused: the file is UTF-8; use ^CI28", command)
        if code == "^CI":
            code_page = (command.params()[:1] or ["0"])[0] or "0"
        if code == "^GF":
            try:
                decode_graphic(command)
            except GraphicError as exc:
                raise _bad(str(exc), command) from None
            info.graphics += 1
        if code == "^PW" and command.params()[:1]:
            info.width = command.int_param(0)
            if not 1 <= info.width <= MAX_WIDTH_DOTS:
                raise _bad(f"^PW must be 1 to {MAX_WIDTH_DOTS} dots", command)
        if code == "^LL" and command.params()[:1]:
            info.height = command.int_param(0)
            if not 1 <= info.height <= MAX_LENGTH_DOTS:
                raise _bad(f"^LL must be 1 to {MAX_LENGTH_DOTS} dots", command)
        if code == "^FN":
            number, prompt = field_number(command.args)
            if number is None:
                raise _bad("^FN needs a field number 0 to 9999", command)
            info.fn_numbers.add(number)
            current_fn = info.fn_fields.setdefault(number, FnField(fn=number))
            current_fn.uses += 1
            current_fn.prompt = current_fn.prompt or prompt or None
    if in_format:
        raise _bad("the format is not ended by ^XZ")
    if formats == 0:
        raise _bad("no label format (^XA … ^XZ) in the file")
    if warnings:  # store the label format only, from its ^XA
        text = text.lstrip()
    return text, info


# ---------------------------------------------------------------- a designer's export preamble

# ZebraDesigner begins an export with ``CT~~CD,~CC^~CT~``: ``~CT~`` (tilde ``~``), ``~CD,``
# (delimiter ``,``), ``~CC^`` (caret ``^``), ``~CT~`` — the prefix characters set to their defaults
# (the first ``~`` is often missing, ``CT~`` then reads as text the printer ignores).
_PREFIX_DEFAULTS = {"CC": "^", "CD": ",", "CT": "~"}
_PREFIX_NAMES = {"CC": "caret (format prefix)", "CD": "delimiter", "CT": "tilde (control prefix)"}
_PREFIX_CHANGES = re.compile(r"\A(\s*)((?:~?CT~)?(?:\s*~C[CDT][^\s])+)", re.IGNORECASE)
# Commands a designer's settings format holds: media, darkness, speed, home, code page, save.
SETTINGS_FORMAT_COMMANDS = frozenset(
    """
    ~TA ~JS ^LT ^MN ^MT ^PO ^PM ^LH ^JM ^PR ~SD ^JU ^LR ^CI ^PA ^MM ^MD ^PW ^LL ^LS ^JZ ^MU ^MF
    """.split()
)


def _strip_designer_preamble(text: str) -> tuple[str, list[str]]:
    """``text`` with a designer export's leading prefix change and settings-only format(s) blanked
    out (spaces, so offsets still point into the uploaded file), and a warning for each.

    A prefix change to anything but the defaults is refused: the rest of the file would read
    differently. A leading format is a settings format only when every command in it is one of
    :data:`SETTINGS_FORMAT_COMMANDS` (no field data, no graphics, no stored formats)."""
    warnings: list[str] = []
    match = _PREFIX_CHANGES.match(text)
    if match:
        block = match.group(2)
        for change in re.finditer(r"~(C[CDT])([^\s])", block, re.IGNORECASE):
            name, char = change.group(1).upper(), change.group(2)
            if char != _PREFIX_DEFAULTS[name]:
                raise _bad(
                    f"~{name}{char} changes the {_PREFIX_NAMES[name]} to {char!r}; export with the default "
                    "prefix characters (^ ~ ,)",
                    offset=match.start(2) + change.start(),
                )
        warnings.append(
            f"prefix settings {block.strip()!r} left out: they set ^, ~ and , to the defaults the printer already uses"
        )
        text = " " * match.end() + text[match.end() :]
    while True:
        start = len(text) - len(text.lstrip())
        if text[start : start + 3].upper() != "^XA":
            break
        end = text.upper().find("^XZ", start + 3)
        if end < 0 or "^XA" not in text[end + 3 :].upper():
            break  # a settings format with no label after it is refused as it is
        commands = tokenize(text[start + 3 : end])
        if not commands or any(c.code not in SETTINGS_FORMAT_COMMANDS for c in commands):
            break
        if text[start + 3 : start + 3 + min(c.offset for c in commands)].strip():
            break  # text inside the format before its first command: not a settings format
        codes = " ".join(dict.fromkeys(c.code + (c.args[:1].upper() if c.code == "^JU" else "") for c in commands))
        reason = "the printer keeps its own media, darkness and speed settings"
        saves = [c for c in commands if c.code == "^JU"]
        if saves:
            save = "^JU" + saves[0].args[:1].upper()
            reason = (
                f"{save} would save settings to the printer's flash at every print"
                if save == "^JUS"
                else f"{save} would reload or reset the printer's saved settings at every print"
            )
        warnings.append(f"printer settings format left out: {reason} ({codes})")
        text = text[:start] + " " * (end + 3 - start) + text[end + 3 :]
    return text, warnings
