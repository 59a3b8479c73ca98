"""A PNG preview of a filled label, drawn locally so people can look before they print.

Text uses Pillow's built-in scalable font, Code 128 comes from python-barcode and the GS1
DataMatrix from pystrich (a real, scannable symbol with FNC1). The preview follows the
template's layout in printer dots, so it matches the printed label's proportions; fonts differ
from the printer's resident font 0.
"""

from __future__ import annotations

import io

import barcode
from barcode.writer import ImageWriter
from PIL import Image, ImageDraw, ImageFont

from .templates import Box, Code128, Gs1DataMatrix, LabelTemplate, Text


def _font(height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=height)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _code128_image(value: str, height: int, module: int) -> Image.Image:
    writer = ImageWriter()
    symbol = barcode.get("code128", value, writer=writer)
    image = symbol.render(
        writer_options={
            "module_width": 0.2 * module,
            "module_height": height / 8.0,
            "quiet_zone": 1.0,
            "font_size": 0,
            "write_text": False,
            "dpi": 203,
        }
    )
    return image.convert("L")


def _datamatrix_image(element: Gs1DataMatrix, data: dict[str, str]) -> Image.Image | None:
    try:
        from pystrich.datamatrix import DataMatrixData, DataMatrixEncoder
        from pystrich.gs1 import GS1Fixed, GS1Variable
    except ImportError:
        return None
    parts = [
        (GS1Fixed if fixed else GS1Variable)(ai, data[name]) for ai, name, fixed in element.parts if data.get(name)
    ]
    if not parts:
        return None
    symbol = DataMatrixEncoder(DataMatrixData.gs1(*parts))
    return symbol.get_pilimage(element.module).convert("L")


def render_png(template: LabelTemplate, values: dict) -> bytes:
    """The label filled with ``values`` (validated like a print) as PNG bytes."""
    data = template.validate(values)
    image = Image.new("L", (template.width, template.height), 255)
    draw = ImageDraw.Draw(image)
    for element in template.elements:
        match element:
            case Text():
                draw.text((element.x, element.y), element.text.format(**data), fill=0, font=_font(element.height))
            case Code128():
                value = data[element.field]
                bars = _code128_image(value, element.height, element.module)
                bars = bars.resize((min(bars.width, template.width - element.x - 20), element.height))
                image.paste(bars, (element.x, element.y))
                draw.text((element.x, element.y + element.height + 2), value, fill=0, font=_font(22))
            case Gs1DataMatrix():
                symbol = _datamatrix_image(element, data)
                if symbol is None:
                    size = 30 * element.module
                    draw.rectangle((element.x, element.y, element.x + size, element.y + size), outline=0, width=3)
                    draw.text((element.x + 8, element.y + size // 2), "GS1 DataMatrix", fill=0, font=_font(18))
                else:
                    image.paste(symbol, (element.x, element.y))
            case Box():
                draw.rectangle(
                    (element.x, element.y, element.x + element.width, element.y + element.height),
                    outline=0,
                    width=element.thickness,
                )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
