"""A plant's label without ^CI28 (no ^CI at all, or ZebraDesigner's ^CI27 with ^CI28 around each
field) still prints non-ASCII field values as text: the filled field is switched to UTF-8."""

from __future__ import annotations

import pytest
from mes_label_printer.templates import Field, LabelTemplate
from mes_label_printer.validation import validate_zpl
from mes_label_printer.zpl import printed_fields

from mes_kernel.errors import Unprocessable

VALUE = "Grüße ½ 센서"


def _template(zpl: str, **field) -> LabelTemplate:
    validate_zpl(zpl)
    spec = {"name": "product", "type": "text", **field}
    return LabelTemplate(name="t", zpl=zpl, fields=(Field.from_dict(spec),))


def _texts(zpl: bytes) -> list[str]:
    return [f.data for f in printed_fields(zpl.decode("utf-8")) if f.data]


@pytest.mark.parametrize(
    "zpl",
    [
        "^XA^FO10,10^A0N,30,30^FD{{product}}^FS^XZ",  # no ^CI: the printer's default code page
        "^XA^CI0^FO10,10^A0N,30,30^FD{{product}}^FS^XZ",
        "^XA^CI27^FO10,10^A0N,30,30^FDStatic^FS^FO10,50^A0N,30,30^FD{{product}}^FS^XZ",
    ],
)
def test_a_filled_text_field_prints_as_utf8_whatever_the_file_code_page(zpl):
    filled = _template(zpl).render_zpl({"product": VALUE})
    assert VALUE in _texts(filled), filled


def test_zebradesigner_fields_switch_code_page_around_each_field():
    zpl = (
        "^XA^CI27^PW812^LL406\n"
        "^FT37,63^A0N,28,28^FH\\^CI28^FDStatic^FS^CI27\n"
        "^FT37,120^A0N,28,28^FH\\^CI28^FN1\"product\"^FDx^FS^CI27\n"
        "^PQ1,0,1,Y^XZ\n"
    )
    filled = _template(zpl, fn=1).render_zpl({"product": VALUE})
    assert _texts(filled) == ["Static", VALUE]


def test_the_code_page_switch_does_not_leak_into_static_text_after_the_field():
    zpl = "^XA^CI0^FO10,10^A0N,30,30^FD{{product}}^FS^FO10,50^A0N,30,30^FH\\^FDA\\9AB^FS^XZ"
    filled = _template(zpl).render_zpl({"product": VALUE})
    # \9A in code page 850 is Ü: the designer's static text keeps its code page
    assert _texts(filled) == [VALUE, "AÜB"]


@pytest.mark.parametrize("ci", ["29", "30"])
def test_utf16_code_pages_are_refused_since_the_file_is_utf8(ci):
    with pytest.raises(Unprocessable) as err:
        validate_zpl(f"^XA^CI{ci}^FO10,10^FDx^FS^XZ")
    assert err.value.code == "ZPL_INVALID"


def test_static_non_ascii_text_outside_utf8_is_refused():
    with pytest.raises(Unprocessable) as err:
        validate_zpl("^XA^CI0^FO10,10^FDGröße^FS^XZ")
    assert err.value.code == "ZPL_INVALID" and "^CI28" in str(err.value.detail)
