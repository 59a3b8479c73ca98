"""A station time before its LOT's or unit's registration (less the clock lead) is refused with 422
``IMPLAUSIBLE_TIME`` naming the field, the value and the bound, at every entry point: a record, a
batch item (that item only), a station scan and device result, a plugin's device action."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from mes_kernel.db.models import DeviceAction, ProcessRecord, StationEvent, Unit
from mes_kernel.station_times import ImplausibleTime
from mes_kernel.testing.helpers import record_body

API = "/api/v1"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # the kernel's clock in these tests
LEAD = timedelta(seconds=300)  # the default max lead
SECOND = timedelta(seconds=1)
LOT_REGISTERED = NOW - timedelta(days=10)
UNIT_REGISTERED = LOT_REGISTERED + timedelta(days=2)  # the unit was added to its LOT later


@pytest.fixture(autouse=True)
def _clock(kernel):
    kernel.clock = lambda: NOW


@pytest.fixture
async def lot(make_lot, kernel) -> dict:
    made = await make_lot(units=1, registered_at=LOT_REGISTERED)
    async with kernel.sessionmaker() as session:
        await session.execute(
            update(Unit).where(Unit.serial_number == made["serial_numbers"][0]).values(created_at=UNIT_REGISTERED)
        )
        await session.commit()
    return made


def _before_registration(detail: dict, field: str, value: datetime, registered: str, at: datetime) -> None:
    assert detail["code"] == "IMPLAUSIBLE_TIME", detail
    assert detail["field"] == field and datetime.fromisoformat(detail["value"]) == value, detail
    assert detail["registered"] == registered and detail["registered_at"] == at.isoformat(), detail
    assert detail["accepted_from"] == (at - LEAD).isoformat(), detail
    assert registered in detail["message"] and (at - LEAD).isoformat() in detail["message"], detail


async def _count(kernel, model) -> int:
    async with kernel.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_a_record_before_its_lots_or_units_registration_is_refused_and_the_lead_is_allowed(
    client, kernel, lot, worker_headers
):
    number, (serial,) = lot["lot_number"], lot["serial_numbers"]
    early = LOT_REGISTERED - LEAD - SECOND
    r = await client.post(f"{API}/process-records", json=record_body(number, recorded_at=early), headers=worker_headers)
    assert r.status_code == 422, r.text
    _before_registration(r.json()["detail"], "recorded_at", early, f"LOT {number}", LOT_REGISTERED)
    # a day after the LOT's registration but before its unit's
    before_unit = UNIT_REGISTERED - timedelta(days=1)
    r = await client.post(
        f"{API}/process-records",
        json=record_body(number, recorded_at=before_unit, serial_number=serial),
        headers=worker_headers,
    )
    assert r.status_code == 422, r.text
    _before_registration(r.json()["detail"], "recorded_at", before_unit, f"unit {serial}", UNIT_REGISTERED)
    assert await _count(kernel, ProcessRecord) == 0
    r = await client.get(f"{API}/lots/{number}", headers=worker_headers)
    assert r.json()["status"] == "created"  # nothing started the LOT
    # on the bound: the registration less the clock lead (a station clock a little ahead of the server's)
    for body in (
        record_body(number, recorded_at=LOT_REGISTERED - LEAD),
        record_body(number, recorded_at=UNIT_REGISTERED - LEAD, serial_number=serial),
    ):
        r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
        assert r.status_code == 201, r.text


async def test_in_a_batch_only_the_item_before_its_registration_fails(client, kernel, lot, worker_headers):
    number, (serial,) = lot["lot_number"], lot["serial_numbers"]
    items = [
        record_body(number, recorded_at=LOT_REGISTERED - timedelta(hours=1)),
        record_body(number, recorded_at=NOW),
        record_body(number, recorded_at=LOT_REGISTERED + timedelta(hours=1), serial_number=serial),
    ]
    r = await client.post(f"{API}/process-records/batch", json={"records": items}, headers=worker_headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [i["status"] for i in results] == ["error", "created", "error"], r.text
    _before_registration(
        results[0]["error"], "recorded_at", LOT_REGISTERED - timedelta(hours=1), f"LOT {number}", LOT_REGISTERED
    )
    assert results[2]["error"]["registered"] == f"unit {serial}", results[2]
    assert await _count(kernel, ProcessRecord) == 1


def _event(type_: str, **payload) -> dict:
    return {"idempotency_key": uuid.uuid4().hex, "type": type_, "payload": payload, "station_seq": 1}


async def test_a_station_scan_or_device_result_before_the_registration_is_refused_and_nothing_stored(
    client, kernel, lot, station_headers
):
    number, (serial,) = lot["lot_number"], lot["serial_numbers"]
    events, actions = await _count(kernel, StationEvent), await _count(kernel, DeviceAction)
    early = UNIT_REGISTERED - timedelta(hours=2)
    r = await client.post(
        f"{API}/stations/events",
        json=_event("scan", code=serial, recorded_at=early.isoformat()),
        headers=station_headers,
    )
    assert r.status_code == 422, r.text
    _before_registration(r.json()["detail"], "payload.recorded_at", early, f"unit {serial}", UNIT_REGISTERED)
    before_lot = LOT_REGISTERED - timedelta(days=1)
    result = _event(
        "device_result", lot_number=number, action="print", outcome="printed", station_time=before_lot.isoformat()
    )
    r = await client.post(f"{API}/stations/events", json=result, headers=station_headers)
    assert r.status_code == 422, r.text
    _before_registration(r.json()["detail"], "payload.station_time", before_lot, f"LOT {number}", LOT_REGISTERED)
    assert (await _count(kernel, StationEvent), await _count(kernel, DeviceAction)) == (events, actions)
    # after the registration: stored and traced
    r = await client.post(
        f"{API}/stations/events",
        json=_event("scan", code=serial, recorded_at=UNIT_REGISTERED.isoformat()),
        headers=station_headers,
    )
    assert r.status_code == 201 and r.json()["traced"] is True, r.text


async def test_a_plugins_device_action_before_the_registration_raises(kernel, lot):
    number = lot["lot_number"]
    early = LOT_REGISTERED - timedelta(minutes=6)
    with pytest.raises(ImplausibleTime) as refused:
        await kernel.record_device_action(
            action="print",
            plugin="label_printer",
            device="PR-1",
            driver="zebra",
            driver_version="1",
            actor="kit",
            outcome="ok",
            lot_number=number,
            recorded_at=early,
        )
    _before_registration(refused.value.detail(), "recorded_at", early, f"LOT {number}", LOT_REGISTERED)
    assert await _count(kernel, DeviceAction) == 0
