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
PQ_MAX = 99_999_999  # ^PQ quantity: 1 to 99,999,999 (Zebra ZPL II Programming Guide, ^PQ)


@dataclass(frozen=True)
class Command:
    """One ZPL command: ``prefix`` (``^`` or ``~``), upper-case ``name`` and raw ``args``."""

    prefix: str
    name: str
    args: str
    offset: int = 0
    source: str = field(default="", compare=False)

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
            except (ValueError, OverflowError):  # not a number, NaN, or infinity (``1e999``)
                return default
        return default

    def text(self) -> str:
        """ZPL back for this command: as it was written (line breaks kept) when read from text."""
        return self.source or f"{self.prefix}{self.name}{self.args}"

    @property
    def trailing(self) -> str:
        """The line breaks after this command in its source (kept when the command is rewritten)."""
        stripped = self.source.rstrip("\r\n")
        return self.source[len(stripped) :]


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
        commands.append(Command(prefix, name, args, start, zpl[start:end]))
    return commands


_FN = re.compile(r'\s*(\d{1,4})(?![0-9])\s*(?:"([^"]*)")?')


def field_number(args: str) -> tuple[int | None, str | None]:
    """``(number, prompt)`` of a ``^FN#"prompt"`` (ZPL II: a field number 0–9999, then an optional
    quoted prompt); ``(None, None)`` when it has no number. The one reading of ``^FN`` used by
    validation, templates, the upload dialog's inspection and the printer simulator."""
    match = _FN.match(args)
    if not match:
        return None, None
    return int(match.group(1)), match.group(2)


def _fn_key(args: str) -> str:
    """A ``^FN`` field's number as a key (``^FN01`` and ``^FN1`` are one field); its text if it has none."""
    number, _ = field_number(args)
    return str(number) if number is not None else args.strip()


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
        """Labels this format prints: ``^PQ`` quantity, 1 without one (a ``^PQ0`` prints one), at
        most 99,999,999 (the range of ``^PQ``'s quantity in Zebra's ZPL II Programming Guide)."""
        pq = self.first("PQ")
        return min(max(1, pq.int_param(0, 1)), PQ_MAX) if pq else 1

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
                number = _fn_key(command.args)
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
                pending = _fn_key(command.args)
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
    block: Command | None = None
    typeset = False
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
            typeset = name == "FT"
        elif name == "FB":
            block = command
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
            number = _fn_key(command.args)
        elif name == "GB":
            out.append(FieldOut("box", x, y, "", command))
        elif name == "GF":
            out.append(FieldOut("graphic", x, y, "", command))
        elif name in ("FD", "FV"):
            data = unescape(command.args, hex_indicator, encoding)
            field_kind = BARCODE_KINDS[kind.name] if kind is not None else "text"
            options = {"font": font, "by": by, "barcode": kind, "block": block, "typeset": typeset}
            out.append(FieldOut(field_kind, x, y, data, command, options, number))
        elif name == "FS":
            kind, hex_indicator, number, block = None, None, None, None
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


# ---------------------------------------------------------------- ^GF graphics

_ZPL_REPEAT = {chr(ord("G") + i): i + 1 for i in range(19)}  # G..Y = 1..19
_ZPL_REPEAT.update({chr(ord("g") + i): (i + 1) * 20 for i in range(20)})  # g..z = 20..400


class GraphicError(ValueError):
    """A ``^GF`` whose data does not match its declared size or format."""


def _decode_ascii_hex(data: str, row_bytes: int) -> bytes:
    """ZPL ASCII hex with ZPL's run-length compression (G–Y, g–z repeat counts, ``,`` zero-fill,
    ``!`` one-fill, ``:`` repeat the previous row)."""
    rows: list[str] = []
    row = ""
    count = 0
    width = row_bytes * 2
    for ch in data:
        if ch in _ZPL_REPEAT:
            count += _ZPL_REPEAT[ch]
            continue
        if ch in ",!:":
            if ch == ":":
                if row:
                    raise GraphicError("':' inside a row")
                rows.append(rows[-1] if rows else "0" * width)
            else:
                rows.append(row + ("0" if ch == "," else "F") * (width - len(row)))
                row = ""
            count = 0
            continue
        if ch.upper() not in "0123456789ABCDEF":
            raise GraphicError(f"character {ch!r} in ASCII hex graphic data")
        row += ch.upper() * (count or 1)
        count = 0
        while len(row) >= width:
            rows.append(row[:width])
            row = row[width:]
    if row:
        rows.append(row.ljust(width, "0"))
    return bytes.fromhex("".join(rows))


def decode_graphic(command: Command) -> tuple[int, int, bytes]:
    """A ``^GF`` command as ``(width_px, height_px, packed rows)`` (1 bit per dot, 1 = black).

    Formats: ``A`` ASCII hex (with ZPL compression), ``B`` binary, and the ``:B64:``/``:Z64:``
    encodings (base64, zlib for Z64) of either.

    :raises GraphicError: a missing parameter, undecodable data, or a byte count that differs
        from the declared total.
    """
    import base64
    import binascii
    import zlib

    params = command.args.split(",", 4)
    if len(params) < 5:
        raise GraphicError("^GF needs format, binary byte count, graphic field count, bytes per row and data")
    kind = params[0].strip().upper() or "A"
    try:
        total, row_bytes = int(params[2]), int(params[3])
    except ValueError:
        raise GraphicError("^GF byte counts must be whole numbers") from None
    if kind not in ("A", "B", "C"):
        raise GraphicError(f"^GF format {kind!r} is not A, B or C")
    if not 1 <= row_bytes <= 10_000 or not 1 <= total <= 20_000_000:
        raise GraphicError("^GF byte counts out of range")
    data = params[4]
    if data.startswith((":B64:", ":Z64:")):
        body = data[5:].rsplit(":", 1)[0]
        try:
            raw = base64.b64decode(body, validate=True)
            if data.startswith(":Z64:"):  # never inflate past the declared size (a zip bomb stops here)
                raw = zlib.decompressobj().decompress(raw, total + 1)
        except (binascii.Error, zlib.error, ValueError) as exc:
            raise GraphicError(f"^GF {data[:5]} data does not decode: {exc}") from None
    elif kind == "A":
        raw = _decode_ascii_hex(data, row_bytes)
    else:
        raw = data.encode("latin-1", errors="replace")
    if len(raw) < total:
        raise GraphicError(f"^GF declares {total} bytes, data holds {len(raw)}")
    raw = raw[:total]
    return row_bytes * 8, total // row_bytes, raw
