"""A PNG preview of any filled label, drawn from the ZPL the printer would get.

The preview reads the rendered ZPL with the same reader as the printer simulator
(:mod:`.zpl`) and draws the common subset of ZPL II in printer dots, so it has the printed
label's proportions:

* text in ZPL font 0 (scalable) and the bitmap fonts ``A``–``H`` approximated by their cell
  heights (ZPL II Programming Guide, "Fonts and Bar Codes"), in orientations N/R/I/B, ``^FB``
  blocks wrapped; drawn with Noto Sans CJK (Debian ``fonts-noto-cjk``, installed by
  ``make setup`` and ``.ci/run``), so Latin, Korean, Chinese and Japanese text shows as text;
* ``^GB`` boxes and lines, ``^GF`` graphics (ASCII hex with ZPL compression, B64/Z64);
* Code 128 (python-barcode's module pattern, at ``^BY`` module width), EAN-13, QR (segno) and
  Data Matrix including GS1 with FNC1 (pyStrich).

What it cannot draw (an RFID command, a font the printer downloaded) is left out and listed in
the field report :func:`render_preview` returns beside the PNG.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import barcode
from PIL import Image, ImageDraw, ImageFont

from .templates import LabelTemplate
from .zpl import Command, FieldOut, GraphicError, decode_graphic, fields_of, split_formats

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKkr-Regular.otf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
# Bitmap font cell heights in dots (ZPL II Programming Guide, table "Zebra fonts"), for fonts
# given without a height; a given height is used as it is (the printer magnifies in whole steps).
BITMAP_FONT_HEIGHTS = {"A": 9, "B": 11, "C": 18, "D": 18, "E": 28, "F": 26, "G": 60, "H": 21}


@dataclass(frozen=True)
class Drawn:
    """One field as the preview drew it: its kind, where, and the data it shows or encodes."""

    kind: str
    x: int
    y: int
    data: str
    drawn: bool = True
    note: str = ""


@lru_cache(maxsize=1)
def font_path() -> str | None:
    """The first font of :data:`FONT_CANDIDATES` present on this machine (None: Pillow's own)."""
    return next((p for p in FONT_CANDIDATES if Path(p).is_file()), None)


@lru_cache(maxsize=64)
def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    height = max(6, min(height, 2000))
    path = font_path()
    if path is not None:
        return ImageFont.truetype(path, size=height)
    return ImageFont.load_default(size=height)


def _font_height(font: Command | None) -> tuple[int, str]:
    """Height in dots and orientation of a ``^A`` command (``^A0N,30,30``, ``^ADN``, ``^AB``)."""
    if font is None:
        return 9, "N"
    args = font.args
    if font.name == "A":  # ^A0N,30,30: the font's name, then orientation, height, width
        name, params = args[:1].upper(), args[1:].split(",")
    else:  # ^A@N,30,30,E:FONT.TTF: a font downloaded to the printer, drawn with ours
        name, params = "0", args.split(",")
    orientation = (params[0][:1] or "N").upper() if params else "N"
    height = None
    if len(params) > 1 and params[1].strip().isascii() and params[1].strip().isdigit():
        height = int(params[1])
    if not height:
        height = BITMAP_FONT_HEIGHTS.get(name, 30)
    return height, orientation if orientation in "NRIB" else "N"


def _rotate(image: Image.Image, orientation: str) -> Image.Image:
    angle = {"N": 0, "R": 270, "I": 180, "B": 90}[orientation]
    return image.rotate(angle, expand=True) if angle else image


def _text(canvas: Image.Image, item: FieldOut, block: Command | None) -> Drawn:
    height, orientation = _font_height(item.options.get("font"))
    height = max(6, min(height, canvas.height, canvas.width))
    font = _font(height)
    lines = [item.data]
    if block is not None:
        width = block.int_param(0, 0)
        if width > 0:
            average = max(1, int(font.getlength("x")))
            lines = textwrap.wrap(item.data, max(1, width // average)) or [""]
            lines = lines[: max(1, block.int_param(1, 1))]
    line_height = int(height * 1.25)
    size = (
        max(1, max(int(font.getlength(line)) for line in lines) + 2),
        max(1, line_height * len(lines) + height // 4),
    )
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    for i, line in enumerate(lines):
        draw.text((0, i * line_height), line, fill=255, font=font)
    layer = _rotate(layer, orientation)
    y = item.y - height if item.options.get("typeset") else item.y  # ^FT places the baseline
    canvas.paste(0, (item.x, max(0, y)), layer)
    return Drawn("text", item.x, item.y, item.data)


def _box(draw: ImageDraw.ImageDraw, item: FieldOut) -> Drawn:
    command = item.command
    assert command is not None
    thickness = max(1, command.int_param(2, 1))
    width = max(command.int_param(0, thickness), thickness)
    height = max(command.int_param(1, thickness), thickness)
    colour = 255 if command.params()[3:4] == ["W"] else 0
    rect = (item.x, item.y, item.x + width - 1, item.y + height - 1)
    if thickness * 2 >= min(width, height):
        draw.rectangle(rect, fill=colour)
    else:
        draw.rectangle(rect, outline=colour, width=thickness)
    return Drawn("box", item.x, item.y, f"{width}x{height}")


def _graphic(canvas: Image.Image, item: FieldOut) -> Drawn:
    assert item.command is not None
    try:
        width, height, raw = decode_graphic(item.command)
    except GraphicError as exc:
        return Drawn("graphic", item.x, item.y, "", drawn=False, note=str(exc))
    bitmap = Image.frombytes("1", (width, height), raw)  # 1 = black in ZPL, white in Pillow
    mask = bitmap.convert("L")
    canvas.paste(0, (item.x, item.y), mask)
    return Drawn("graphic", item.x, item.y, f"{width}x{height}")


def _bars(canvas: Image.Image, item: FieldOut, modules: str, module: int, height: int) -> int:
    draw = ImageDraw.Draw(canvas)
    for i, bit in enumerate(modules):
        if bit == "1":
            x = item.x + i * module
            draw.rectangle((x, item.y, x + module - 1, item.y + height - 1), fill=0)
    return len(modules) * module


def _by(item: FieldOut) -> tuple[int, int]:
    by = item.options.get("by")
    module = max(1, min(by.int_param(0, 2), 10)) if by is not None else 2  # ^BY takes 1-10 dots
    height = by.int_param(2, 10) if by is not None else 10
    return module, max(1, min(height or 10, 8000))


def _linear(canvas: Image.Image, item: FieldOut) -> Drawn:
    command = item.options["barcode"]
    module, default_height = _by(item)
    params = command.params()
    height = max(1, min(command.int_param(1, default_height) or default_height, canvas.height))
    data = item.data
    if item.kind == "code128":
        for prefix in (">:", ">;", ">5", ">9"):  # ZPL subset invocation codes at the start
            if data.startswith(prefix):
                data = data[2:]
        modules = barcode.get("code128", data).build()[0]
        human = data
        interpretation = params[2] if len(params) > 2 else "Y"
    else:
        digits = "".join(ch for ch in data if ch in "0123456789")[:12].rjust(12, "0")
        code = barcode.get("ean13", digits)
        modules = code.build()[0]
        human = code.get_fullcode()
        interpretation = params[2] if len(params) > 2 else "Y"
    width = _bars(canvas, item, modules, module, height)
    if interpretation.upper() != "N":
        font = _font(max(12, module * 9))
        text_width = font.getlength(human)
        ImageDraw.Draw(canvas).text(
            (item.x + max(0, (width - text_width) / 2), item.y + height + 2), human, fill=0, font=font
        )
    return Drawn(item.kind, item.x, item.y, human)


def _matrix(canvas: Image.Image, item: FieldOut, rows: list[list[int]], module: int) -> None:
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, bit in enumerate(row):
            if bit:
                x, y = item.x + c * module, item.y + r * module
                draw.rectangle((x, y, x + module - 1, y + module - 1), fill=0)


def _qr(canvas: Image.Image, item: FieldOut) -> Drawn:
    import segno

    command = item.options["barcode"]
    magnification = max(1, min(command.int_param(2, 2) or 2, 10))
    data = item.data
    error = "M"
    # ^FD for ^BQ starts with error correction and input mode: "QA,data", "MM,…" (manual)
    if len(data) >= 3 and data[0].upper() in "HQML" and data[2] == ",":
        error, data = data[0].upper(), data[3:]
    symbol = segno.make(data, error=error.lower(), micro=False, boost_error=False)
    _matrix(canvas, item, [list(row) for row in symbol.matrix], magnification)
    return Drawn("qr", item.x, item.y, data)


def _datamatrix(canvas: Image.Image, item: FieldOut) -> Drawn:
    from pystrich.datamatrix import FNC1, DataMatrixData, DataMatrixEncoder

    command = item.options["barcode"]
    module = max(1, min(command.int_param(1, 6) or 6, 50))
    params = command.args.split(",")
    escape = params[6][:1] if len(params) > 6 and params[6][:1] else None
    data = item.data
    shown = data
    if escape and f"{escape}1" in data:
        parts: list = []
        for i, chunk in enumerate(data.split(f"{escape}1")):
            if i:
                parts.append(FNC1)
            if chunk:
                parts.append(chunk)
        payload = DataMatrixData(*parts, auto_encoding=True)
        shown = data.replace(f"{escape}1", "\x1d").lstrip("\x1d")
    else:
        payload = DataMatrixData(data, auto_encoding=True)
    symbol = DataMatrixEncoder(payload, quiet_zone=0).get_pilimage(module).convert("L")
    canvas.paste(0, (item.x, item.y), symbol.point(lambda v: 255 if v < 128 else 0))
    return Drawn("datamatrix", item.x, item.y, shown)


def render_preview(template: LabelTemplate, values: dict) -> tuple[bytes, list[Drawn]]:
    """The label filled with ``values`` (validated like a print) as PNG bytes, and what was drawn."""
    zpl = template.render_zpl(values).decode("utf-8")
    formats, _ = split_formats(zpl)
    width, height = template.width, template.height
    image = Image.new("L", (max(1, width), max(1, height)), 255)
    draw = ImageDraw.Draw(image)
    report: list[Drawn] = []
    for fmt in formats:
        for item in fields_of(fmt):
            try:
                if item.kind == "text":
                    report.append(_text(image, item, item.options.get("block")))
                elif item.kind == "box":
                    report.append(_box(draw, item))
                elif item.kind == "graphic":
                    report.append(_graphic(image, item))
                elif item.kind in ("code128", "ean13"):
                    report.append(_linear(image, item))
                elif item.kind == "qr":
                    report.append(_qr(image, item))
                elif item.kind == "datamatrix":
                    report.append(_datamatrix(image, item))
                else:
                    report.append(Drawn(item.kind, item.x, item.y, item.data, drawn=False, note="not previewed"))
            except Exception as exc:  # noqa: BLE001 - third-party encoders raise their own errors
                # a symbol its data cannot make (a letter in an EAN-13, too much for a QR code):
                # left out of the picture and said so in the report, never a failed preview
                report.append(Drawn(item.kind, item.x, item.y, item.data, drawn=False, note=str(exc)))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue(), report


def render_png(template: LabelTemplate, values: dict) -> bytes:
    """The label filled with ``values`` (validated like a print) as PNG bytes."""
    return render_preview(template, values)[0]
