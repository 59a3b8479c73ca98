"""The bundled plugins take names and identifiers by the kernel's rules (``Name``, ``Comment``,
``Identifier`` from ``mes_kernel.contracts``): a blank shift, template title or reason is refused, an
untrimmed serial, device or product is refused, never trimmed; nothing is written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mes_kernel.db.models import AuditEntry, DeviceJob, LabelTemplate, Line, ShiftCalendarVersion, StoredFile

API = "/api/v1"
SHIFT = {"name": "Day", "start": "06:00", "end": "14:00", "days": [0, 1, 2, 3, 4, 5, 6], "planned_output": 10}
BAD_NAMES = ["   ", "\u3000", "Day\tshift", "Day\u200b", "\ufeffDay", "Day\u202e"]
BAD_IDS = [" SN-1", "SN-1 ", "SN\u200b1", "SN\u00a01", "SN-1\n"]
ZPL = "^XA^FO50,50^A0N,40,40^FD{{serial}}^FS^XZ"


async def _counts(kernel) -> dict[str, int]:
    async with kernel.sessionmaker() as session:
        return {
            model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (AuditEntry, DeviceJob, LabelTemplate, ShiftCalendarVersion, StoredFile)
        }


def _refused(r, *loc_tail) -> None:
    assert r.status_code == 422, (r.request.method, r.request.url.path, r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail["code"] == "VALIDATION_ERROR", r.text
    assert any(list(e["loc"])[-len(loc_tail):] == list(loc_tail) for e in detail["errors"]), r.text


@pytest.fixture
async def line_k(kernel):
    async with kernel.sessionmaker() as session:
        session.add(Line(code="LINE-K", name="Line K", config={}))
        await session.commit()


async def test_a_shift_name_that_is_blank_or_holds_invisible_characters_is_refused(
    client, kernel, line_k, manager_headers
):
    before = await _counts(kernel)
    for name in BAD_NAMES:
        r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": [{**SHIFT, "name": name}]},
                             headers=manager_headers)
        _refused(r, "shifts", 0, "name")
    assert await _counts(kernel) == before
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": [{**SHIFT, "name": "  Day  "}]},
                         headers=manager_headers)
    assert r.status_code == 200 and r.json()["shifts"][0]["name"] == "Day", r.text
    # "Day" and " Day " are one name: the overlap check sees them as such
    twice = [{**SHIFT, "name": "Day"}, {**SHIFT, "name": " Day", "start": "14:00", "end": "22:00"}]
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": twice}, headers=manager_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (422, "SHIFTS_OVERLAP"), r.text


async def test_a_blank_shift_stored_before_the_rule_still_lets_the_oee_answer(
    client, kernel, line_k, executive_headers
):
    async with kernel.sessionmaker() as session:
        line_id = (await session.execute(select(Line.id).where(Line.code == "LINE-K"))).scalar_one()
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        session.add(ShiftCalendarVersion(line_id=line_id, valid_from=midnight, shifts=[{**SHIFT, "name": "   "}],
                                         updated_by="old", updated_at=datetime.now(UTC)))
        await session.commit()
    today = datetime.now(UTC).date().isoformat()
    r = await client.get(f"{API}/kpi/oee", params={"line": "LINE-K", "from": today, "to": today, "tz": "UTC"},
                         headers=executive_headers)
    assert r.status_code == 200, r.text


async def test_label_template_titles_descriptions_and_reasons_follow_the_kernel_rules(
    client, kernel, admin_headers
):
    await client.get(f"{API}/labels/templates", headers=admin_headers)  # the plugin seeds its samples first
    before = await _counts(kernel)
    fields = [{"name": "serial", "type": "text"}]
    for title in BAD_NAMES:
        r = await client.post(f"{API}/labels/templates", headers=admin_headers,
                              json={"name": "unit", "zpl": ZPL, "fields": fields, "title": title})
        _refused(r, "title")
        r = await client.post(f"{API}/labels/templates", headers=admin_headers,
                              data={"name": "unit", "title": title, "fields": '[{"name": "serial", "type": "text"}]'},
                              files={"file": ("unit.zpl", ZPL.encode())})
        _refused(r, "title")
    for reason in ("   ", "\u200b", "seal\x07"):
        r = await client.post(f"{API}/labels/templates", headers=admin_headers,
                              json={"name": "unit", "zpl": ZPL, "fields": fields, "description": reason})
        _refused(r, "description")
        r = await client.post(f"{API}/labels/templates/unit/retire", json={"reason": reason}, headers=admin_headers)
        _refused(r, "reason")
        r = await client.post(f"{API}/labels/jobs/1/reprint", headers=admin_headers,
                              json={"idempotency_key": uuid.uuid4().hex, "reason": reason})
        _refused(r, "reason")
    for value in BAD_IDS:
        for field in ("printer", "serial_number", "lot_number"):
            body = {"template": "unit", "printer": "PRN-1", "idempotency_key": uuid.uuid4().hex, field: value}
            _refused(await client.post(f"{API}/labels/print", json=body, headers=admin_headers), field)
    assert await _counts(kernel) == before
    r = await client.post(f"{API}/labels/templates", headers=admin_headers,
                          json={"name": "unit", "zpl": ZPL, "fields": fields, "title": "  Unit label\u3000"})
    assert r.status_code == 201 and r.json()["title"] == "Unit label", r.text


async def test_firmware_products_versions_and_serials_are_refused_untrimmed(client, kernel, admin_headers):
    before = await _counts(kernel)
    for value in BAD_IDS:
        for field in ("product", "version"):
            form = {"product": "WIDGET", "version": "1.0", field: value}
            r = await client.post(f"{API}/firmware/images", data=form, files={"file": ("fw.bin", b"abc")},
                                  headers=admin_headers)
            assert (r.status_code, r.json()["detail"]["code"]) == (422, "VALIDATION_ERROR"), r.text
            assert r.json()["detail"]["field"] == field, r.text
        for field in ("serial_number", "device", "product", "operator", "station_code"):
            body = {"serial_number": "SN-1", "idempotency_key": uuid.uuid4().hex, "product": "WIDGET",
                    "version": "1.0", field: value}
            _refused(await client.post(f"{API}/firmware/upload", json=body, headers=admin_headers), field)
    r = await client.post(f"{API}/firmware/images", data={"product": "WIDGET", "version": "1.0", "notes": "a\u200bb"},
                          files={"file": ("fw.bin", b"abc")}, headers=admin_headers)
    assert (r.status_code, r.json()["detail"]["field"]) == (422, "notes"), r.text
    assert await _counts(kernel) == before
    r = await client.post(f"{API}/firmware/images", data={"product": "WIDGET", "version": "1.0", "notes": " ok\n"},
                          files={"file": ("fw.bin", b"abc")}, headers=admin_headers)
    assert r.status_code == 201 and r.json()["notes"] == "ok", r.text


@pytest.mark.parametrize("plugin", ["opcua", "modbus", "mqtt"])
async def test_a_machine_write_names_its_signal_exactly(client, admin_headers, plugin):
    for value in BAD_IDS:
        r = await client.post(f"{API}/{plugin}/devices/MC-1/write", json={"name": value, "value": 1},
                              headers=admin_headers)
        _refused(r, "name")


async def test_a_scan_names_its_device_and_station_exactly(client, admin_headers):
    for value in BAD_IDS:
        for field in ("device", "driver", "station"):
            r = await client.post(f"{API}/scans/lookup", json={"code": "SN-1", field: value}, headers=admin_headers)
            _refused(r, field)
