"""Templates: typed fields validated before printing, escaped ZPL, a real PNG preview."""

from __future__ import annotations

import io

import pytest
from mes_label_printer.preview import render_png
from mes_label_printer.templates import TEMPLATES, UNIT_LABEL, get_template, gtin_check_digit, zpl_escape
from PIL import Image

from mes_kernel.errors import NotFound, Unprocessable

UNIT = {
    "product": "ACME Widget",
    "lot_number": "LOT-2026-0001",
    "serial_number": "SN000123",
    "gtin": "09506000134352",
}


def test_built_in_templates_are_listed():
    assert {"unit_label", "lot_label"} <= set(TEMPLATES)
    with pytest.raises(NotFound):
        get_template("nope")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"serial_number": None}, "serial_number", "required"),
        ({"lot_number": "LOT 1"}, "lot_number", "may only contain"),
        ({"lot_number": "L" * 21}, "lot_number", "longer than 20"),
        ({"gtin": "09506000134353"}, "gtin", "check digit"),
        ({"gtin": "12AB"}, "gtin", "GTIN"),
        ({"date": "26/11/2026"}, "date", "YYYY-MM-DD"),
        ({"product": "ACME^XZ"}, "product", "may only contain"),
        ({"note": "line\nbreak"}, "note", "control characters"),
        ({"colour": "red"}, "colour", "not a field"),
        ({"serial_number": 12345}, "serial_number", "must be a string"),
        ({"lot_number": "LOT_1"}, "lot_number", "'_'"),
    ],
)
def test_a_missing_or_malformed_field_is_named(change, field, words):
    values = {k: v for k, v in {**UNIT, **change}.items() if v is not None}
    with pytest.raises(Unprocessable) as info:
        UNIT_LABEL.render_zpl(values)
    assert info.value.status == 422
    assert info.value.extra["field"] == field
    assert words in info.value.message


def test_integer_fields_take_numbers_and_refuse_words():
    lot = get_template("lot_label")
    assert b"QTY 25" in lot.render_zpl({"lot_number": "L1", "product": "P", "quantity": "25"})
    with pytest.raises(Unprocessable, match="quantity"):
        lot.render_zpl({"lot_number": "L1", "product": "P", "quantity": "many"})


def test_field_data_cannot_inject_zpl_commands():
    zpl = UNIT_LABEL.render_zpl({**UNIT, "note": "x^XZ^XA~JR~HS_"}).decode()
    body = zpl.split("^FD")[-1]
    assert body.startswith("x\\5EXZ\\5EXA\\7EJR\\7EHS\\5F^FS")
    assert zpl.count("^XA") == 1 and zpl.count("^XZ") == 1 and "~" not in zpl


def test_non_ascii_text_goes_out_as_utf8_hex():
    assert zpl_escape("é") == "\\C3\\A9"
    assert b"^CI28" in UNIT_LABEL.render_zpl({**UNIT, "note": "Größe"})


def test_gs1_datamatrix_carries_fnc1_and_application_identifiers():
    zpl = UNIT_LABEL.render_zpl(UNIT).decode()
    line = next(part for part in zpl.splitlines() if "^BX" in part)
    assert "^BXN,6,200,,,,_,1" in line
    assert line.endswith("^FD_10109506000134352" + "10LOT-2026-0001_121SN000123^FS")


def test_code128_of_the_serial_number():
    zpl = UNIT_LABEL.render_zpl(UNIT).decode()
    assert "^BCN,90,Y,N,N^FH\\^FDSN000123^FS" in zpl


def test_gtin_check_digit():
    assert gtin_check_digit("0950600013435") == 2
    assert UNIT_LABEL.validate({**UNIT, "gtin": "9506000134352"})["gtin"] == "09506000134352"


def test_an_optional_date_defaults_to_today():
    assert len(UNIT_LABEL.validate(UNIT)["date"]) == 10


def test_preview_is_a_real_png_of_the_label_size():
    png = render_png(UNIT_LABEL, UNIT)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    assert image.size == (UNIT_LABEL.width, UNIT_LABEL.height)
    # the DataMatrix corner holds dark modules: the symbol was drawn, not left blank
    corner = image.crop((560, 40, 700, 180)).convert("L")
    assert corner.getextrema()[0] == 0


def test_preview_validates_like_a_print():
    with pytest.raises(Unprocessable):
        render_png(UNIT_LABEL, {**UNIT, "gtin": "1"})
