"""``POST /api/v1/scans/lookup`` against the real kernel app (test kit fixtures, SQLite)."""

from __future__ import annotations

import uuid

import pytest
from mes_barcode_hid.parsing import ParserConfig
from mes_barcode_hid.routes import STATE_KEY
from sqlalchemy import select

from mes_kernel.db.models import Device, Line, Station

LOOKUP = "/api/v1/scans/lookup"
GTIN = "09501101530003"


@pytest.fixture
def plant_patterns(kernel):
    """The test kit's numbering: LOT-XXXXXXXX, units LOT-XXXXXXXX-0001."""
    kernel.state[STATE_KEY]["parser"] = ParserConfig(
        serial_patterns=(r"LOT-[0-9A-Z]{8}-\d{4}",), lot_patterns=(r"LOT-[0-9A-Z]{8}",)
    )


async def record(client, headers, lot_number, process_id, result="pass", serial_number=None):
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot_number,
        "process_id": process_id,
        "result": result,
        "serial_number": serial_number,
    }
    r = await client.post("/api/v1/process-records", json=body, headers=headers)
    assert r.status_code in (200, 201), r.text


async def test_serial_gives_unit_lot_and_next_process(client, worker_headers, make_lot, plant_patterns):
    lot = await make_lot(units=2)
    first, second = lot["serial_numbers"]
    await record(client, worker_headers, lot["lot_number"], "ASSY-10", serial_number=first)
    await record(client, worker_headers, lot["lot_number"], "TEST-20", "fail", serial_number=first)

    r = await client.post(LOOKUP, json={"code": first, "record": False}, headers=worker_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "unit"
    assert body["unit"]["serial_number"] == first and body["unit"]["lot_number"] == lot["lot_number"]
    assert body["lot"]["units"] == 2
    assert body["completed_processes"] == ["ASSY-10"]
    assert body["next_process"]["id"] == "TEST-20"  # failed, so still next
    assert body["parsed"]["kind"] == "serial" and body["recorded"] is False

    r = await client.post(LOOKUP, json={"code": second, "record": False}, headers=worker_headers)
    assert r.json()["next_process"]["id"] == "ASSY-10"


async def test_lot_wide_pass_counts_for_every_unit_and_all_passed_means_no_next(
    client, worker_headers, make_lot, plant_patterns
):
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    for process_id in ("ASSY-10", "TEST-20"):
        await record(client, worker_headers, lot["lot_number"], process_id)  # LOT-level records
    r = await client.post(LOOKUP, json={"code": serial, "record": False}, headers=worker_headers)
    assert r.json()["next_process"]["id"] == "PACK-30"
    await record(client, worker_headers, lot["lot_number"], "PACK-30", serial_number=serial)
    r = await client.post(LOOKUP, json={"code": serial, "record": False}, headers=worker_headers)
    assert r.json()["next_process"] is None
    assert r.json()["completed_processes"] == ["ASSY-10", "TEST-20", "PACK-30"]


async def test_lot_code_gives_lot_summary(client, worker_headers, make_lot, plant_patterns):
    lot = await make_lot(units=3)
    a, b, _c = lot["serial_numbers"]
    await record(client, worker_headers, lot["lot_number"], "ASSY-10", serial_number=a)
    await record(client, worker_headers, lot["lot_number"], "ASSY-10", serial_number=b)
    r = await client.post(LOOKUP, json={"code": "]C0" + lot["lot_number"], "record": False}, headers=worker_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "lot" and body["unit"] is None
    assert body["lot"]["lot_number"] == lot["lot_number"] and body["lot"]["units"] == 3
    assert body["units_by_process"] == {"ASSY-10": {"pass": 2, "fail": 0}}
    assert body["next_process"]["id"] == "ASSY-10"  # no LOT-wide pass yet
    assert body["parsed"]["symbology"] == "]C0"


async def test_gs1_label_with_serial_and_batch(client, worker_headers, make_lot, plant_patterns):
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    code = f"]C101{GTIN}10{lot['lot_number']}\x1d21{serial}"
    r = await client.post(LOOKUP, json={"code": code, "record": False}, headers=worker_headers)
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "unit" and r.json()["warnings"] == []
    wrong = f"(01){GTIN}(10)OTHERLOT(21){serial}"
    r = await client.post(LOOKUP, json={"code": wrong, "record": False}, headers=worker_headers)
    assert "OTHERLOT" in r.json()["warnings"][0]


async def test_unknown_code_is_404_unknown_code_with_the_reason(client, worker_headers):
    r = await client.post(LOOKUP, json={"code": "hello world"}, headers=worker_headers)
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert detail["code"] == "UNKNOWN_CODE" and detail["parsed"]["kind"] == "unknown"
    r = await client.post(LOOKUP, json={"code": f"]C101{GTIN[:-1]}7"}, headers=worker_headers)
    assert r.json()["detail"]["code"] == "UNKNOWN_CODE"
    assert "check digit" in r.json()["detail"]["parsed"]["reason"]
    r = await client.post(LOOKUP, json={"code": f"]C101{GTIN}"}, headers=worker_headers)
    assert r.json()["detail"]["code"] == "UNKNOWN_CODE" and "GTIN" in r.json()["detail"]["message"]


async def test_well_formed_but_absent_is_404_not_found(client, worker_headers):
    r = await client.post(LOOKUP, json={"code": "SN-NOSUCH1"}, headers=worker_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "NOT_FOUND"
    assert r.json()["detail"]["serial_number"] == "SN-NOSUCH1"
    r = await client.post(LOOKUP, json={"code": "LOT-NOSUCH"}, headers=worker_headers)
    assert r.status_code == 404 and r.json()["detail"]["lot_number"] == "LOT-NOSUCH"


async def test_default_patterns_find_sn_serials(client, worker_headers, admin_headers, make_lot):
    lot = await make_lot()
    r = await client.post(
        f"/api/v1/lots/{lot['lot_number']}/units", json={"serial_numbers": ["SN-000777"]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(LOOKUP, json={"code": "SN-000777", "record": False}, headers=worker_headers)
    assert r.status_code == 200 and r.json()["lot"]["lot_number"] == lot["lot_number"]


async def add_scanner(kernel, code: str, *, station: str | None = None, line: str | None = None) -> None:
    """Scanner ``code`` (serial driver); at ``station`` when given, else on ``line`` (created if missing)."""
    async with kernel.sessionmaker() as session:
        station_id = line_id = None
        if station:
            row = (await session.execute(select(Station).where(Station.code == station))).scalar_one()
            station_id, line_id = row.id, row.line_id
        elif line:
            row = (await session.execute(select(Line).where(Line.code == line))).scalar()
            if row is None:
                row = Line(code=line, name=line, config={})
                session.add(row)
                await session.flush()
            line_id = row.id
        session.add(
            Device(
                code=code,
                kind="barcode_scanner",
                driver="serial",
                config={"port": "/dev/null"},
                station_id=station_id,
                line_id=line_id,
            )
        )
        await session.commit()


async def test_a_station_names_only_its_own_scanners(client, kernel, station_headers, make_lot, plant_patterns):
    await add_scanner(kernel, "SCN-OWN", station="ST-01")
    await add_scanner(kernel, "SCN-LINE-A", line="LINE-A")  # the line's, at no station: usable by its stations
    await add_scanner(kernel, "SCN-LINE-B", line="LINE-B")
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    for device in ("SCN-OWN", "SCN-LINE-A"):
        r = await client.post(LOOKUP, json={"code": serial, "device": device}, headers=station_headers)
        assert r.status_code == 200, r.text
    r = await client.post(LOOKUP, json={"code": serial, "device": "SCN-LINE-B"}, headers=station_headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "DEVICE_NOT_ON_STATION", r.text
    r = await client.post(LOOKUP, json={"code": serial, "device": "SCN-NONE"}, headers=station_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "DEVICE_NOT_FOUND", r.text


async def test_lookup_is_recorded_as_a_scan_in_the_unit_history(
    client, kernel, worker_headers, make_lot, plant_patterns
):
    await add_scanner(kernel, "SCN-01")
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    body = {"code": serial, "device": "SCN-01", "driver": "serial", "driver_version": "0.1.0", "station": "ST-01"}
    r = await client.post(LOOKUP, json=body, headers=worker_headers)
    assert r.status_code == 200 and r.json()["recorded"] is True
    r = await client.get(f"/api/v1/lots/{lot['lot_number']}/history", headers=worker_headers)
    assert r.status_code == 200, r.text
    text = r.text
    assert '"scan"' in text and "SCN-01" in text and serial in text


async def test_every_role_may_look_up(client, worker_headers, manager_headers, viewer_headers, admin_headers):
    for headers in (worker_headers, manager_headers, viewer_headers, admin_headers):
        r = await client.post(LOOKUP, json={"code": "LOT-NOSUCH"}, headers=headers)
        assert r.status_code == 404 and r.json()["detail"]["code"] == "NOT_FOUND"  # let in, nothing found


async def test_lookup_needs_authentication(client):
    r = await client.post(LOOKUP, json={"code": "LOT-1"})
    assert r.status_code == 401


async def test_plugin_is_loaded_with_its_route_permission_and_breaker(client, admin_headers):
    r = await client.get("/api/v1/plugins", headers=admin_headers)
    assert r.status_code == 200, r.text
    plugins = r.json()
    plugins = plugins.get("plugins", plugins) if isinstance(plugins, dict) else plugins
    mine = next(p for p in plugins if p["name"] == "barcode_hid")
    assert mine["state"] == "loaded", mine
    assert "scans:lookup" in mine["permissions"]
    assert any("/api/v1/scans/lookup" in route for route in mine["routes"])
    assert {d["name"] for d in mine["drivers"]} >= {"evdev", "serial", "wedge", "simulator"}
