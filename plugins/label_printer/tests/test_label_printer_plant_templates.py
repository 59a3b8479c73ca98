"""The plant's own ZPL: upload (JSON or file), versions, audit, retire, permission, print to a real
TCP printer simulator, and a preview whose barcodes read back as what the printer printed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import zxingcpp
from mes_label_printer.preview import font_path, render_preview
from mes_label_printer.store import get_stored
from mes_label_printer.zpl import printed_fields
from PIL import Image, ImageChops, ImageFont
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry, Device

API = "/api/v1"
GTIN = "09506000134352"
PLANT_ZPL = (Path(__file__).parent / "labels" / "plant_unit_label.zpl").read_bytes()
PLANT_FIELDS = [
    {"name": "lot_number", "type": "lot_number", "fn": 1, "max_length": 20},
    {"name": "serial_number", "type": "serial_number", "fn": 2, "max_length": 20},
    {"name": "product", "type": "text", "max_length": 30},
    {"name": "gtin", "type": "gtin"},
    {"name": "ean", "type": "text", "max_length": 13, "required": False},
]


async def add_printer(kernel, code: str, port: int) -> None:
    settings = {"host": "127.0.0.1", "port": port, "timeout": 2.0, "retry_delay": 0}
    async with kernel.sessionmaker() as session:
        session.add(Device(code=code, kind="label_printer", driver="zpl_tcp", config=settings))
        await session.commit()


async def upload_plant_label(client, headers, name: str = "plant_unit") -> dict:
    r = await client.post(
        f"{API}/labels/templates",
        files={"file": ("plant_unit_label.zpl", PLANT_ZPL, "application/octet-stream")},
        data={"name": name, "fields": json.dumps(PLANT_FIELDS), "title": "Plant unit label"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def plant_values(lot: dict) -> dict:
    return {
        "lot_number": lot["lot_number"],
        "serial_number": lot["serial_numbers"][0],
        "product": "센서 모듈 Größe",
        "gtin": GTIN,
        "ean": "590123412345",
    }


async def test_built_in_templates_are_seeded_as_version_one(client, admin_headers):
    r = await client.get(f"{API}/labels/templates", headers=admin_headers)
    assert r.status_code == 200
    seeded = {t["name"]: t for t in r.json()}
    assert seeded["unit_label"]["version"] == 1 and seeded["unit_label"]["source"] == "builtin"
    assert seeded["lot_label"]["version"] == 1
    detail = (await client.get(f"{API}/labels/templates/unit_label", headers=admin_headers)).json()
    assert detail["zpl"].startswith("^XA") and "{{serial_number}}" in detail["zpl"]


async def test_a_plant_label_file_is_versioned_audited_and_printed_with_its_version(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    first = await upload_plant_label(client, admin_headers)
    assert first["version"] == 1 and first["width"] == 812 and first["height"] == 406
    assert "^GFA,256,256,8," in first["zpl"] and "^CI28" in first["zpl"]
    second = await upload_plant_label(client, admin_headers)
    assert second["version"] == 2
    versions = (await client.get(f"{API}/labels/templates/plant_unit/versions", headers=admin_headers)).json()
    assert [v["version"] for v in versions] == [2, 1]

    async with kernel.sessionmaker() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "label_template"))).scalars().all()
    assert sorted(a.entity_id for a in audit) == ["plant_unit:1", "plant_unit:2"]

    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    values = plant_values(lot)
    body = {"printer": "PRN-01", "template": "plant_unit", "fields": values, "idempotency_key": "plant-1"}
    r = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["template_version"] == 2

    (printed,) = tcp_printer.core.printed
    text = printed.decode("utf-8")
    assert "^GFA,256,256,8," in text and "^CI28" in text  # the logo and the code page survive
    assert "\\EC\\84\\BC" in text  # "센" as ^FH escapes: values never go out raw
    fields = printed_fields(text)
    serial = values["serial_number"]
    assert [f.data for f in fields if f.kind == "code128"] == [serial]  # ^FN2 filled in both places
    assert serial in [f.data for f in fields if f.kind == "text"]
    assert values["lot_number"] in [f.data for f in fields if f.kind == "text"]
    assert "LOT-PLACEHOLDER" not in text
    history = (await client.get(f"{API}/units/{serial}/history", headers=admin_headers)).json()["events"]
    (action,) = [e["data"] for e in history if e["type"] == "device_action"]
    assert action["detail"]["template"] == "plant_unit" and action["detail"]["template_version"] == 2


async def test_the_preview_draws_what_the_printer_simulator_prints(client, kernel, admin_headers, make_lot):
    await upload_plant_label(client, admin_headers)
    lot = await make_lot(units=1)
    values = plant_values(lot)
    r = await client.post(
        f"{API}/labels/preview", json={"template": "plant_unit", "fields": values}, headers=admin_headers
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-template-version"] == "1"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (812, 406)

    # what the printer would print, as the simulator reads it
    async with kernel.sessionmaker() as session:
        template = await get_stored(session, "plant_unit")
    from mes_label_printer.simulator.core import PrinterCore

    core = PrinterCore()
    core.new_stream().feed(template.render_zpl(values))
    printed = printed_fields(core.printed[0].decode("utf-8"))
    symbols = {f.kind: f.data for f in printed if f.kind in ("code128", "datamatrix", "qr", "ean13")}

    _, drawn = render_preview(template, values)
    assert [(d.kind, d.x, d.y) for d in drawn] == [(f.kind, f.x, f.y) for f in printed]
    assert all(d.drawn for d in drawn), [d for d in drawn if not d.drawn]
    assert sum(d.kind == "text" for d in drawn) == sum(f.kind == "text" for f in printed) == 7

    read = {r.format.name: r for r in zxingcpp.read_barcodes(image)}
    assert read["Code128"].text == symbols["code128"] == values["serial_number"]
    assert read["QRCode"].text == symbols["qr"][3:]  # "QA," is ^BQ's mode prefix, not data
    assert read["EAN13"].text == "5901234123457"
    datamatrix = read["DataMatrix"]
    assert datamatrix.symbology_identifier == "]d2"  # GS1 DataMatrix: FNC1 first
    assert datamatrix.text == f"(01){GTIN}(10){values['lot_number']}(21){values['serial_number']}"
    assert symbols["datamatrix"] == f"_101{GTIN}10{values['lot_number']}_121{values['serial_number']}"

    # the ^GF logo is drawn: its ring of ink at (20, 20) in a 64x32 box
    logo = image.crop((20, 20, 84, 52)).convert("L")
    assert 200 < sum(logo.histogram()[:128]) < 64 * 32


def test_the_preview_font_draws_latin_and_cjk_as_glyphs_not_empty_boxes():
    assert font_path() is not None and "CJK" in font_path()
    font = ImageFont.truetype(font_path(), 40)

    def glyph(char: str) -> Image.Image:
        image = Image.new("L", (60, 60), 0)
        from PIL import ImageDraw

        ImageDraw.Draw(image).text((5, 0), char, fill=255, font=font)
        return image

    notdef = glyph("\U000e0fff")  # no font has this: the empty box
    for char in "öß½가中日":
        assert ImageChops.difference(glyph(char), notdef).getbbox() is not None, char
    assert ImageChops.difference(glyph("가"), glyph("中")).getbbox() is not None


async def test_sample_preview_of_a_bare_template(client, admin_headers):
    await upload_plant_label(client, admin_headers)
    r = await client.post(
        f"{API}/labels/preview", json={"template": "plant_unit", "sample": True}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (812, 406)


async def test_retired_templates_do_not_print_until_a_new_version(client, kernel, admin_headers, make_lot, tcp_printer):
    await upload_plant_label(client, admin_headers)
    r = await client.post(
        f"{API}/labels/templates/plant_unit/retire", json={"reason": "new box"}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["status"] == "retired"
    names = [t["name"] for t in (await client.get(f"{API}/labels/templates", headers=admin_headers)).json()]
    assert "plant_unit" not in names

    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    body = {"printer": "PRN-01", "template": "plant_unit", "fields": plant_values(lot), "idempotency_key": "r-1"}
    r = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "TEMPLATE_RETIRED"
    assert tcp_printer.core.label_count == 0

    again = await upload_plant_label(client, admin_headers)
    assert again["version"] == 2 and again["status"] == "active"
    r = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text


async def test_only_template_managers_may_upload_or_retire(client, worker_headers, admin_headers):
    body = {"name": "x", "zpl": "^XA^FO1,1^FDx^FS^XZ"}
    r = await client.post(f"{API}/labels/templates", json=body, headers=worker_headers)
    assert r.status_code == 403 and r.json()["detail"]["permission"] == "labels:templates"
    r = await client.post(f"{API}/labels/templates/unit_label/retire", headers=worker_headers)
    assert r.status_code == 403
    r = await client.get(f"{API}/labels/templates", headers=worker_headers)
    assert r.status_code == 200


async def test_a_template_with_fn_fields_as_json(client, admin_headers):
    zpl = "^XA^CI28^FO20,20^A0N,30,30^FN7^FDdefault^FS^FO20,60^A0N,30,30^FDQty {{qty}}^FS^XZ"
    fields = [{"name": "label_text", "type": "text", "fn": 7}, {"name": "qty", "type": "integer"}]
    r = await client.post(
        f"{API}/labels/templates", json={"name": "small", "zpl": zpl, "fields": fields}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    assert [f["fn"] for f in r.json()["fields"]] == [7, None]


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"name": "a", "zpl": "hello"}, "ZPL_INVALID", "before the first"),
        ({"name": "a", "zpl": "^XA^FO10,10^FDx^XZ"}, "ZPL_INVALID", "not closed by ^FS"),
        ({"name": "a", "zpl": "^XA^ZZ1^XZ"}, "ZPL_INVALID", "unknown ZPL command ^ZZ"),
        ({"name": "a", "zpl": "^XA^FDx^FS^XZ^XA^XZ"}, "ZPL_INVALID", "more than one"),
        ({"name": "a", "zpl": "^XA^GFA,8,8,1,FF^FS^XZ"}, "ZPL_INVALID", "declares 8 bytes"),
        ({"name": "a", "zpl": "^XA^JUS^XZ"}, "ZPL_INVALID", "printer's settings"),
        ({"name": "a", "zpl": "^XA^CI29^FDx^FS^XZ"}, "ZPL_INVALID", "^CI28"),
        ({"name": "a", "zpl": "^XA^FD{{who}}^FS^XZ"}, "TEMPLATE_INVALID", "undeclared"),
        (
            {"name": "a", "zpl": "^XA^FDx^FS^XZ", "fields": [{"name": "who", "type": "text", "fn": 3}]},
            "TEMPLATE_INVALID",
            "^FN3",
        ),
        (
            {"name": "a", "zpl": "^XA^FD{{who}}^FS^XZ", "fields": [{"name": "who", "type": "colour"}]},
            "TEMPLATE_INVALID",
            "unknown type",
        ),
        ({"name": "Bad Name", "zpl": "^XA^XZ"}, "TEMPLATE_INVALID", "name"),
        ({"name": "a"}, "VALIDATION_ERROR", "JSON"),
    ],
)
async def test_bad_uploads_are_refused_with_a_code_and_where(client, admin_headers, body, code, words):
    r = await client.post(f"{API}/labels/templates", json=body, headers=admin_headers)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["code"] == code and words in detail["message"], detail


async def test_a_file_that_is_not_utf8_or_a_form_without_file_is_refused(client, admin_headers):
    r = await client.post(
        f"{API}/labels/templates",
        files={"file": ("latin1.zpl", "^XA^FDGröße^FS^XZ".encode("latin-1"), "text/plain")},
        data={"name": "latin"},
        headers=admin_headers,
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "ZPL_INVALID"
    r = await client.post(
        f"{API}/labels/templates", data={"name": "nofile"}, files={"x": ("a", b"b")}, headers=admin_headers
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "TEMPLATE_INVALID"


async def test_a_gs1_datamatrix_field_refuses_values_that_break_gs1(client, admin_headers, make_lot):
    lot = await make_lot(units=1)
    values = {"product": "P", "lot_number": lot["lot_number"], "serial_number": "SN_1", "gtin": GTIN}
    r = await client.post(
        f"{API}/labels/preview", json={"template": "unit_label", "fields": values}, headers=admin_headers
    )
    assert r.status_code == 422 and "'_'" in r.json()["detail"]["message"]


async def test_unknown_template_is_a_coded_404(client, admin_headers):
    r = await client.get(f"{API}/labels/templates/nope", headers=admin_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "TEMPLATE_NOT_FOUND"


async def test_the_preview_as_zpl_is_what_a_print_sends(client, kernel, admin_headers, make_lot):
    """The dashboard renders the label in the browser from this: the filled ZPL, byte for byte what a
    print would send (^GF logo, ^CI28, CJK text and the ^FH-escaped values), with the same validation."""
    await upload_plant_label(client, admin_headers)
    lot = await make_lot(units=1)
    values = plant_values(lot)
    r = await client.post(
        f"{API}/labels/preview",
        json={"template": "plant_unit", "fields": values, "format": "zpl"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-template-version"] == "1"
    async with kernel.sessionmaker() as session:
        template = await get_stored(session, "plant_unit")
    assert r.content == template.render_zpl(values)
    text = r.content.decode("utf-8")
    assert "^GFA,256,256,8," in text and "中文" in text and "{{" not in text

    sample = await client.post(
        f"{API}/labels/preview", json={"template": "plant_unit", "sample": True, "format": "zpl"}, headers=admin_headers
    )
    assert sample.status_code == 200 and "{{" not in sample.text
    refused = await client.post(
        f"{API}/labels/preview", json={"template": "plant_unit", "format": "zpl"}, headers=admin_headers
    )
    assert refused.status_code == 422, refused.text
    bad = await client.post(
        f"{API}/labels/preview", json={"template": "plant_unit", "format": "pdf"}, headers=admin_headers
    )
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "VALIDATION_ERROR"


async def test_inspect_answers_the_fn_fields_and_placeholders_an_upload_reads_storing_nothing(
    client, admin_headers, worker_headers
):
    r = await client.post(
        f"{API}/labels/templates/inspect", json={"zpl": PLANT_ZPL.decode("utf-8")}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["placeholders"] == ["product", "gtin", "lot_number", "serial_number", "ean"]
    assert seen["fn_fields"] == [
        {"fn": 1, "prompt": None, "default": "LOT-PLACEHOLDER", "uses": 1, "kinds": ["text"]},
        {"fn": 2, "prompt": None, "default": None, "uses": 2, "kinds": ["text", "code128"]},
    ]
    assert (seen["width"], seen["height"], seen["graphics"]) == (812, 406, 1)

    # a designer's prompt, a leading zero and a barcode named after the ^FN: read as an upload reads them
    zpl = '^XA^FO20,20^FN01"Serial"^BCN,60^FDSN-0^FS^FO20,120^A0N,30,30^FN1^FS^XZ'
    r = await client.post(f"{API}/labels/templates/inspect", json={"zpl": zpl}, headers=admin_headers)
    assert r.json()["fn_fields"] == [
        {"fn": 1, "prompt": "Serial", "default": "SN-0", "uses": 2, "kinds": ["code128", "text"]}
    ]
    fields = [{"name": "serial", "type": "text", "fn": f["fn"]} for f in r.json()["fn_fields"]]
    r = await client.post(
        f"{API}/labels/templates", json={"name": "inspected", "zpl": zpl, "fields": fields}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await client.get(f"{API}/labels/templates/inspect", headers=admin_headers)
    assert r.status_code == 404  # nothing was stored under the route's name

    r = await client.post(
        f"{API}/labels/templates/inspect", json={"zpl": "^XA^FO1,1^FNx^FDa^FS^XZ"}, headers=admin_headers
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "ZPL_INVALID"
    assert r.json()["detail"]["command"] == "^FN" and r.json()["detail"]["offset"] == 9
    for body in ({}, {"zpl": ""}, {"zpl": 5}):
        r = await client.post(f"{API}/labels/templates/inspect", json=body, headers=admin_headers)
        assert r.status_code == 422, (body, r.text)
    r = await client.post(f"{API}/labels/templates/inspect", json={"zpl": "^XA^XZ"}, headers=worker_headers)
    assert r.status_code == 403 and r.json()["detail"]["permission"] == "labels:templates"
