"""Reading ZPL II as a Zebra printer does: commands, formats, stored formats, field data.

One reader serves the printer simulator, the upload validator and the PNG preview, so the three
agree on what a label file says. Rules followed (ZPL II Programming Guide, "ZPL Commands"):

* A command is a prefix (``^`` format, ``~`` control) and a two-character name; the font
  command is ``^A`` plus the font letter (``^A0N,30,30``) and ``^A@``. Names are
  case-insensitive (``^xa`` is ``^XA``); arguments run to the next prefix.
* ``^XA`` … ``^XZ`` is one format. ``^PQq`` prints it ``q`` times. ``^DFname`` stores the format
  under ``name`` (device ``R:`` and extension ``.ZPL`` when left out) and prints nothing;
  ``^XFname`` recalls it, and the recalling format's ``^FNn^FD…`` data fills the stored ``^FNn``
  fields.
* ``^FH`` (default indicator ``_``) makes ``^FD`` data hex-escaped: ``\\C3\\B6`` is "ö" under
  ``^CI28`` (UTF-8).
* CR and LF anywhere in the stream are ignored, so a label file may wrap its lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIXES = "^~"


@dataclass(frozen=True)
class Command:
    """One ZPL command: ``prefix`` (``^`` or ``~``), upper-case ``name`` and raw ``args``."""

    prefix: str
    name: str
    args: str
    offset: int = 0

    @property
    def code(self) -> str:
        """``"^FO"``, ``"~HS"``, ``"^A"``."""
        return self.prefix + self.name

    def params(self) -> list[str]:
        """The comma-separated arguments, stripped (``"^FO10, 20"`` → ``["10", "20"]``)."""
        return [p.strip() for p in self.args.split(",")] if self.args else []

    def int_param(self, index: int, default: int = 0) -> int:
        """Argument ``index`` as a whole number, ``default`` when absent or not a number."""
        params = self.params()
        if index < len(params):
            try:
                return int(float(params[index]))
            except ValueError:
                return default
        return default

    def text(self) -> str:
        """ZPL back for this command."""
        return f"{self.prefix}{self.name}{self.args}"


def tokenize(zpl: str) -> list[Command]:
    """Every command in ``zpl``, in order; text before the first prefix is dropped."""
    commands: list[Command] = []
    positions = [m.start() for m in re.finditer(r"[\^~]", zpl)]
    for index, start in enumerate(positions):
        end = positions[index + 1] if index + 1 < len(positions) else len(zpl)
        prefix = zpl[start]
        body = zpl[start + 1 : end]
        if prefix == "^" and body[:1].upper() == "A" and body[1:2] != "@":
            name, args = "A", body[1:]
        else:
            name, args = body[:2].upper(), body[2:]
        # printers drop CR and LF anywhere in the stream: label files wrap lines freely
        args = args.replace("\r", "").replace("\n", "")
        commands.append(Command(prefix, name, args, start))
    return commands


def format_name(raw: str) -> str:
    """A stored format's full name: ``"LABEL"`` → ``"R:LABEL.ZPL"``, case-insensitive."""
    name = raw.strip().upper()
    if ":" not in name:
        name = "R:" + name
    if "." not in name.split(":", 1)[1]:
        name += ".ZPL"
    return name


@dataclass
class Format:
    """One ``^XA`` … ``^XZ`` format as commands (without ``^XA``/``^XZ``)."""

    commands: list[Command] = field(default_factory=list)

    def first(self, name: str) -> Command | None:
        """The first ``^name`` command, or None."""
        return next((c for c in self.commands if c.prefix == "^" and c.name == name), None)

    @property
    def quantity(self) -> int:
        """Labels this format prints: ``^PQ`` quantity, 1 without one (a ``^PQ0`` prints one)."""
        pq = self.first("PQ")
        return max(1, pq.int_param(0, 1)) if pq else 1

    @property
    def stores_as(self) -> str | None:
        """The ``^DF`` name the format is stored under instead of printed, or None."""
        df = self.first("DF")
        return format_name(df.args) if df else None

    @property
    def recalls(self) -> str | None:
        """The ``^XF`` name of the stored format this one fills, or None."""
        xf = self.first("XF")
        return format_name(xf.args) if xf else None

    def field_data_by_number(self) -> dict[str, str]:
        """``^FNn^FD…`` pairs of a recalling format: field number → raw data (escapes kept)."""
        out: dict[str, str] = {}
        number: str | None = None
        for command in self.commands:
            if command.prefix != "^":
                continue
            if command.name == "FN":
                number = command.args.strip().split('"')[0].strip()
            elif command.name == "FD" and number is not None:
                out[number] = command.args
            elif command.name == "FS":
                number = None
        return out

    def merged_with(self, recall: Format) -> Format:
        """This stored format with the ``^FN`` data of ``recall`` in its numbered fields.

        A stored ``^FNn`` field gets a ``^FD`` with the recalled data (replacing any default
        data stored after it); commands of ``recall`` other than its field data (``^PQ``,
        ``^FH``-indicator fields) follow, so the recall's quantity counts."""
        data = recall.field_data_by_number()
        out: list[Command] = []
        pending: str | None = None
        for command in self.commands:
            if command.prefix == "^" and command.name == "DF":
                continue
            if command.prefix == "^" and command.name == "FN":
                pending = command.args.strip().split('"')[0].strip()
                out.append(command)
                continue
            if command.prefix == "^" and command.name == "FD" and pending in data:
                continue  # the stored default gives way to the recalled value
            if command.prefix == "^" and command.name == "FS" and pending is not None:
                if pending in data:
                    out.append(Command("^", "FD", data[pending]))
                pending = None
            out.append(command)
        out.extend(
            c for c in recall.commands if c.prefix == "^" and c.name in ("PQ", "PW", "LL", "CI", "LH", "MT", "MM")
        )
        return Format(out)

    def zpl(self) -> str:
        """The format as ZPL, ``^XA`` … ``^XZ``."""
        return "^XA" + "".join(c.text() for c in self.commands) + "^XZ"


def split_formats(zpl: str) -> tuple[list[Format], list[Command]]:
    """The formats in ``zpl`` and the control commands outside any format (``~DG``, ``~HS``…)."""
    formats: list[Format] = []
    outside: list[Command] = []
    current: Format | None = None
    for command in tokenize(zpl):
        if command.code == "^XA":
            current = Format()
        elif command.code == "^XZ":
            if current is not None:
                formats.append(current)
            current = None
        elif current is not None:
            current.commands.append(command)
        else:
            outside.append(command)
    return formats, outside


# ---------------------------------------------------------------- field data


@dataclass(frozen=True)
class FieldOut:
    """A field as printed: where (``^FO``/``^FT`` in dots), by which command, with what data.

    :ivar kind: ``text``, ``code128``, ``datamatrix``, ``qr``, ``ean13`` … (from the field's
        command), ``graphic`` for ``^GF``, ``box`` for ``^GB``.
    :ivar data: the field data after ``^FH`` unescaping, as text (UTF-8 under ``^CI28``).
    """

    kind: str
    x: int
    y: int
    data: str
    command: Command | None = None
    options: dict = field(default_factory=dict)
    number: str | None = None


BARCODE_KINDS = {
    "BC": "code128",
    "BX": "datamatrix",
    "BQ": "qr",
    "BE": "ean13",
    "B8": "ean8",
    "BU": "upca",
    "B3": "code39",
    "B2": "interleaved2of5",
    "BD": "maxicode",
    "B7": "pdf417",
    "BO": "aztec",
}


def unescape(data: str, indicator: str | None, encoding: str = "utf-8") -> str:
    """``^FD`` data with ``^FH`` escapes (``indicator`` + two hex digits) turned into text."""
    if not indicator:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == indicator and re.fullmatch(r"[0-9A-Fa-f]{2}", data[i + 1 : i + 3] or ""):
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(ch.encode("utf-8"))
            i += 1
    return out.decode(encoding, errors="replace")


def fields_of(fmt: Format) -> list[FieldOut]:
    """What the format draws, field by field, in order (boxes, graphics, text and barcodes)."""
    out: list[FieldOut] = []
    x = y = 0
    font: Command | None = None
    kind: Command | None = None
    hex_indicator: str | None = None
    number: str | None = None
    encoding = "cp850"
    by = Command("^", "BY", "2")
    home_x = home_y = 0
    for command in fmt.commands:
        if command.prefix != "^":
            continue
        name = command.name
        if name == "CI":
            encoding = "utf-8" if command.int_param(0) in (28, 29, 30) else "cp850"
        elif name == "LH":
            home_x, home_y = command.int_param(0), command.int_param(1)
        elif name in ("FO", "FT"):
            x, y = home_x + command.int_param(0), home_y + command.int_param(1)
        elif name in ("A", "A@"):
            font = command
        elif name == "CF":
            font = Command("^", "A", command.args.split(",")[0] + "N," + ",".join(command.params()[1:]))
        elif name == "BY":
            by = command
        elif name in BARCODE_KINDS:
            kind = command
        elif name == "FH":
            indicator = command.args[:1]
            hex_indicator = indicator if indicator and indicator not in ",^~" else "_"
        elif name == "FN":
            number = command.args.strip().split('"')[0].strip()
        elif name == "GB":
            out.append(FieldOut("box", x, y, "", command))
        elif name == "GF":
            out.append(FieldOut("graphic", x, y, "", command))
        elif name in ("FD", "FV"):
            data = unescape(command.args, hex_indicator, encoding)
            field_kind = BARCODE_KINDS[kind.name] if kind is not None else "text"
            options = {"font": font, "by": by, "barcode": kind}
            out.append(FieldOut(field_kind, x, y, data, command, options, number))
        elif name == "FS":
            kind, hex_indicator, number = None, None, None
    return out


def printed_fields(zpl: str) -> list[FieldOut]:
    """Every field of every printable format in ``zpl`` (``^DF`` formats are stored, not listed)."""
    formats, _ = split_formats(zpl)
    stored = {f.stores_as: f for f in formats if f.stores_as}
    out: list[FieldOut] = []
    for fmt in formats:
        if fmt.stores_as:
            continue
        if fmt.recalls and fmt.recalls in stored:
            fmt = stored[fmt.recalls].merged_with(fmt)
        out.extend(fields_of(fmt))
    return out
