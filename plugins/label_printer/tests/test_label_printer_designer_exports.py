"""A full ZebraDesigner export uploads the first time: its leading prefix change
(``CT~~CD,~CC^~CT~``) and printer settings format (``^XA~TA000~JSN … ^JUS … ^XZ``) are left out
with a warning each; only the label format is stored, previewed and printed. Anything else in
front of the label is still refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mes_label_printer.validation import validate_zpl
from mes_label_printer.zpl import printed_fields
from PIL import Image

from mes_kernel.db.models import Device
from mes_kernel.errors import Unprocessable

API = "/api/v1"
EXPORT = (Path(__file__).parent / "labels" / "zebradesigner_export.prn").read_bytes()
FIELDS = [
    {"name": "lot_number", "type": "lot_number", "fn": 1, "max_length": 20},
    {"name": "serial_number", "type": "serial_number", "fn": 2, "max_length": 20},
]
SETTINGS = "^XA~TA000~JSN^LT0^MNW^MTT^PON^PMN^LH0,0^JMA^PR4,4~SD15^JUS^LRN^CI27^PA0,1,1,0^XZ"
LABEL = "^XA^PW812^LL0406^FT32,60^A0N,28,28^FDBox^FS^XZ"


def assert_only_the_label_is_stored(body: dict) -> None:
    assert body["zpl"].startswith("^XA\r\n^MMT"), body["zpl"][:40]
    for left_out in ("CT~", "~CC", "~TA", "~JS", "^JUS", "~SD", "^PR4", "^MNW"):
        assert left_out not in body["zpl"], left_out
    prefix, settings = body["warnings"]
    assert "CT~~CD,~CC^~CT~" in prefix and "defaults" in prefix
    assert settings.startswith("printer settings format left out: ^JUS would save settings to the printer's flash")
    assert "~SD" in settings and "^MN" in settings


async def test_a_zebradesigner_export_uploads_as_a_file_previews_and_prints(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    r = await client.post(
        f"{API}/labels/templates",
        files={"file": ("box_label.prn", EXPORT, "application/octet-stream")},
        data={"name": "box_label", "fields": json.dumps(FIELDS)},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["version"] == 1 and body["width"] == 812 and body["height"] == 406
    assert_only_the_label_is_stored(body)
    stored = (await client.get(f"{API}/labels/templates/box_label", headers=admin_headers)).json()
    assert stored["zpl"] == body["zpl"]

    lot = await make_lot(units=1)
    values = {"lot_number": lot["lot_number"], "serial_number": lot["serial_numbers"][0]}
    r = await client.post(
        f"{API}/labels/preview", json={"template": "box_label", "fields": values}, headers=admin_headers
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (812, 406)

    async with kernel.sessionmaker() as session:
        settings = {"host": "127.0.0.1", "port": tcp_printer.port, "timeout": 2.0, "retry_delay": 0}
        session.add(Device(code="PRN-ZD", kind="label_printer", driver="zpl_tcp", config=settings))
        await session.commit()
    job = {"printer": "PRN-ZD", "template": "box_label", "fields": values, "idempotency_key": "zd-1"}
    r = await client.post(f"{API}/labels/print", json=job, headers=admin_headers)
    assert r.status_code == 201, r.text
    (printed,) = tcp_printer.core.printed
    text = printed.decode("utf-8")
    assert "^JUS" not in text and "~SD" not in text and "~CC" not in text  # the printer keeps its settings
    fields = printed_fields(text)
    assert [f.data for f in fields if f.kind == "code128"] == [values["serial_number"]]
    assert values["lot_number"] in [f.data for f in fields if f.kind == "text"]


async def test_a_zebradesigner_export_uploads_as_json(client, admin_headers):
    body = {"name": "box_json", "zpl": EXPORT.decode("utf-8"), "fields": FIELDS}
    r = await client.post(f"{API}/labels/templates", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert_only_the_label_is_stored(r.json())
    r = await client.post(f"{API}/labels/preview", json={"template": "box_json", "sample": True}, headers=admin_headers)
    assert r.status_code == 200, r.text


async def test_a_plain_label_file_has_no_warnings(client, admin_headers):
    r = await client.post(f"{API}/labels/templates", json={"name": "plain", "zpl": LABEL}, headers=admin_headers)
    assert r.status_code == 201 and r.json()["warnings"] == []


@pytest.mark.parametrize(
    ("zpl", "warnings"),
    [
        ("~CT~~CD,~CC^~CT~" + LABEL, 1),  # with its first tilde
        ("CT~~CD,~CC^~CT~\n" + LABEL, 1),
        (SETTINGS + "\n" + LABEL, 1),  # settings format without the prefix change
        ("^XA^LH0,0^JUN^CI28^XZ" + LABEL, 1),
    ],
)
def test_export_preambles_that_are_left_out(zpl, warnings):
    text, info = validate_zpl(zpl)
    assert text == LABEL and len(info.warnings) == warnings


@pytest.mark.parametrize(
    ("zpl", "words"),
    [
        ("CT~~CD,~CC+~CT~" + LABEL.replace("^", "+"), "~CC+ changes the caret"),
        ("~CD;" + LABEL, "~CD; changes the delimiter"),
        ("hello CT~~CD,~CC^~CT~" + LABEL, "before the first"),
        (SETTINGS, "unknown ZPL command ~JS"),  # a settings format alone is no label: checked as one
        ("^XA^JUS^FO10,10^FDx^FS^XZ" + LABEL, "printer's settings"),  # field data: not a settings format
        ("^XA^LH0,0^JUS~JR^XZ" + LABEL, "printer's settings"),  # ~JR is no export setting
        (LABEL + SETTINGS, "more than one"),  # settings after the label
        ("^XA^LH0,0^XZ" + LABEL + LABEL, "more than one"),
    ],
)
async def test_anything_else_in_front_of_the_label_is_still_refused(client, admin_headers, zpl, words):
    r = await client.post(f"{API}/labels/templates", json={"name": "bad", "zpl": zpl}, headers=admin_headers)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "ZPL_INVALID" and words in detail["message"], detail


def test_an_error_after_the_preamble_names_its_offset_in_the_uploaded_file():
    export = EXPORT.decode("utf-8").replace("^FDSN-0000^FS", "^FDSN-0000")
    with pytest.raises(Unprocessable) as caught:
        validate_zpl(export)
    assert caught.value.code == "ZPL_INVALID" and "not closed by ^FS" in caught.value.message
    assert export[caught.value.extra["offset"] :].startswith("^FDSN-0000")
