"""Station times the kernel stores: within [receipt − max age, receipt + max lead] and in no archived
month, at every entry point (records, batch items, station scans and device results, plugins' device
actions, machine data); outside, 422 ``IMPLAUSIBLE_TIME`` naming the field and the window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mes_kernel.contracts import MachineMapping, Status
from mes_kernel.db.models import (
    ArchivedMonth,
    Device,
    DeviceAction,
    Line,
    MachineState,
    ProcessRecord,
    StationEvent,
)
from mes_kernel.station_times import ImplausibleTime

API = "/api/v1"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # the kernel's clock in these tests
MAX_AGE = timedelta(days=30)  # the defaults
MAX_LEAD = timedelta(seconds=300)
SECOND = timedelta(seconds=1)

IMPLAUSIBLE = {
    "year 0001": "0001-01-01T00:00:00+00:00",
    "year 1900": "1900-01-01T00:00:00+00:00",
    "year 2999": "2999-01-01T00:00:00+00:00",
    "a second older than the max age": (NOW - MAX_AGE - SECOND).isoformat(),
    "a second beyond the max lead": (NOW + MAX_LEAD + SECOND).isoformat(),
}
ON_THE_BOUNDS = {"exactly max age old": NOW - MAX_AGE, "exactly max lead ahead": NOW + MAX_LEAD}


@pytest.fixture(autouse=True)
def _clock(kernel):
    kernel.clock = lambda: NOW


@pytest.fixture
def make_lot(make_lot):
    """LOTs (and units) registered before the oldest station time these tests send (a station time
    before its LOT's registration is refused: tests/test_station_times_registration.py)."""

    async def make(*args, **kwargs):
        return await make_lot(*args, registered_at=NOW - 2 * MAX_AGE, **kwargs)

    return make


def _record(lot_number: str, recorded_at: str | None, **extra) -> dict:
    return {"idempotency_key": uuid.uuid4().hex, "lot_number": lot_number, "process_id": "ASSY-10",
            "worker_id": "W-1", "result": "pass", "recorded_at": recorded_at, **extra}


async def _count(kernel, model) -> int:
    async with kernel.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def _implausible(r, field: str, value: str) -> dict:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "IMPLAUSIBLE_TIME", r.text
    assert detail["field"] == field and datetime.fromisoformat(detail["value"]) == datetime.fromisoformat(value)
    assert detail["accepted_from"] == (NOW - MAX_AGE).isoformat()
    assert detail["accepted_until"] == (NOW + MAX_LEAD).isoformat()
    assert field in detail["message"] and (NOW - MAX_AGE).isoformat() in detail["message"]
    return detail


@pytest.mark.parametrize("moment", list(IMPLAUSIBLE.values()), ids=list(IMPLAUSIBLE))
async def test_a_record_outside_the_window_is_422_implausible_time_and_stores_nothing(
    client, kernel, make_lot, worker_headers, moment
):
    lot = await make_lot()
    before = await _count(kernel, ProcessRecord)
    r = await client.post(f"{API}/process-records", json=_record(lot["lot_number"], moment), headers=worker_headers)
    _implausible(r, "recorded_at", moment)
    assert await _count(kernel, ProcessRecord) == before
    r = await client.get(f"{API}/lots/{lot['lot_number']}", headers=worker_headers)
    assert r.json()["status"] == "created"  # nothing started the LOT either


@pytest.mark.parametrize("moment", list(ON_THE_BOUNDS.values()), ids=list(ON_THE_BOUNDS))
async def test_a_record_exactly_on_a_bound_is_stored_at_its_station_time(
    client, make_lot, worker_headers, moment
):
    lot = await make_lot()
    r = await client.post(
        f"{API}/process-records", json=_record(lot["lot_number"], moment.isoformat()), headers=worker_headers
    )
    assert r.status_code == 201, r.text
    assert datetime.fromisoformat(r.json()["recorded_at"]) == moment


async def test_the_bounds_follow_the_settings(client, kernel, make_lot, worker_headers):
    kernel.settings.station_time_max_lead_seconds = 0
    kernel.settings.station_time_max_age_days = 1
    lot = await make_lot()
    ahead = (NOW + SECOND).isoformat()
    r = await client.post(f"{API}/process-records", json=_record(lot["lot_number"], ahead), headers=worker_headers)
    assert r.status_code == 422 and r.json()["detail"]["accepted_until"] == NOW.isoformat(), r.text
    day_old = (NOW - timedelta(days=1)).isoformat()
    r = await client.post(f"{API}/process-records", json=_record(lot["lot_number"], day_old), headers=worker_headers)
    assert r.status_code == 201, r.text


async def test_in_a_batch_only_the_implausible_item_is_an_error(client, kernel, make_lot, station_headers):
    lot = await make_lot()
    before = await _count(kernel, ProcessRecord)
    items = [_record(lot["lot_number"], (NOW - timedelta(hours=1)).isoformat()),
             _record(lot["lot_number"], IMPLAUSIBLE["year 1900"]),
             _record(lot["lot_number"], None)]
    r = await client.post(f"{API}/process-records/batch", json={"records": items}, headers=station_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["status"] for i in body["results"]] == ["created", "error", "created"], r.text
    assert (body["created"], body["errors"]) == (2, 1)
    error = body["results"][1]["error"]
    assert error["code"] == "IMPLAUSIBLE_TIME" and error["field"] == "recorded_at", error
    assert body["results"][1]["idempotency_key"] == items[1]["idempotency_key"]
    assert await _count(kernel, ProcessRecord) == before + 2


async def test_a_record_stored_in_time_is_answered_as_a_duplicate_once_its_time_is_old(
    client, kernel, make_lot, worker_headers
):
    """Idempotency wins: the answer lost, the station resends two months later; it gets the
    original, not a refusal (nothing new is stored)."""
    lot = await make_lot()
    body = _record(lot["lot_number"], (NOW - timedelta(days=1)).isoformat())
    first = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    assert first.status_code == 201, first.text
    kernel.clock = lambda: NOW + timedelta(days=60)
    again = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
    r = await client.post(f"{API}/process-records/batch", json={"records": [body]}, headers=worker_headers)
    assert r.json()["results"][0]["status"] == "duplicate", r.text


async def test_a_station_time_in_an_archived_month_is_refused(
    client, kernel, make_lot, worker_headers, station_headers
):
    """Its rollups are closed (the month's records are offline): even within a long max age."""
    kernel.settings.station_time_max_age_days = 120
    async with kernel.sessionmaker() as session:
        session.add(ArchivedMonth(month_start=datetime(2026, 4, 1, tzinfo=UTC), state="archived"))
        await session.commit()
    lot = await make_lot()
    in_april = "2026-04-30T23:59:59+00:00"
    r = await client.post(f"{API}/process-records", json=_record(lot["lot_number"], in_april), headers=worker_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "IMPLAUSIBLE_TIME", r.text
    assert r.json()["detail"]["archived_month"] == "2026-04" and "archived" in r.json()["detail"]["message"]
    items = [_record(lot["lot_number"], in_april), _record(lot["lot_number"], "2026-05-01T00:00:00+00:00")]
    r = await client.post(f"{API}/process-records/batch", json={"records": items}, headers=worker_headers)
    assert [i["status"] for i in r.json()["results"]] == ["error", "created"], r.text
    scan = {"idempotency_key": uuid.uuid4().hex, "type": "scan",
            "payload": {"code": lot["lot_number"], "recorded_at": "2026-04-02T00:00:00+09:00"}}  # 1 April UTC
    r = await client.post(f"{API}/stations/events", json=scan, headers=station_headers)
    assert r.status_code == 422 and r.json()["detail"]["archived_month"] == "2026-04", r.text


def _event(type_: str, **payload) -> dict:
    return {"idempotency_key": uuid.uuid4().hex, "type": type_, "payload": payload, "station_seq": 1}


async def test_a_station_scan_outside_the_window_is_refused_and_one_on_the_bound_joins_the_history(
    client, kernel, make_lot, station_headers, viewer_headers
):
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    before = await _count(kernel, StationEvent)
    for moment in IMPLAUSIBLE.values():
        r = await client.post(f"{API}/stations/events", json=_event("scan", code=serial, recorded_at=moment),
                              headers=station_headers)
        _implausible(r, "payload.recorded_at", moment)
    # without recorded_at, station_time is the event's time and is judged the same way
    r = await client.post(f"{API}/stations/events", json=_event("scan", code=serial, station_time="1900-01-01T00:00Z"),
                          headers=station_headers)
    _implausible(r, "payload.station_time", "1900-01-01T00:00:00+00:00")
    assert await _count(kernel, StationEvent) == before

    oldest = (NOW - MAX_AGE).isoformat()
    # the agent's raw clock (station_time) wrong, its corrected time (recorded_at) right: kept as sent
    r = await client.post(
        f"{API}/stations/events",
        json=_event("scan", code=serial, recorded_at=oldest, station_time="1900-01-01T00:00:00+00:00"),
        headers=station_headers,
    )
    assert r.status_code == 201 and r.json()["traced"] is True, r.text
    r = await client.get(f"{API}/units/{serial}/history", headers=viewer_headers)
    scans = [e for e in r.json()["events"] if e["type"] == "scan"]
    assert [e["at"] for e in scans] == [oldest]


async def test_a_station_device_result_outside_the_window_is_refused(client, kernel, make_lot, station_headers):
    lot = await make_lot(units=1)
    before = await _count(kernel, DeviceAction)
    event = _event("device_result", serial_number=lot["serial_numbers"][0], action="print", outcome="printed",
                   recorded_at=IMPLAUSIBLE["year 2999"])
    r = await client.post(f"{API}/stations/events", json=event, headers=station_headers)
    _implausible(r, "payload.recorded_at", IMPLAUSIBLE["year 2999"])
    assert await _count(kernel, DeviceAction) == before


async def test_a_stored_event_resent_after_its_time_grew_old_is_a_duplicate(client, kernel, station_headers):
    event = _event("scan", code="SN-UNKNOWN", recorded_at=(NOW - timedelta(days=1)).isoformat())
    r = await client.post(f"{API}/stations/events", json=event, headers=station_headers)
    assert r.status_code == 201, r.text
    kernel.clock = lambda: NOW + timedelta(days=60)
    again = await client.post(f"{API}/stations/events", json=event, headers=station_headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text


async def test_a_plugins_device_action_at_an_implausible_time_is_refused(client, kernel, make_lot):
    lot = await make_lot()
    before = await _count(kernel, DeviceAction)
    action = {"action": "print", "plugin": "label_printer", "device": "PR-1", "driver": "simulator",
              "driver_version": "1", "actor": "user:admin", "outcome": "ok", "lot_number": lot["lot_number"]}
    with pytest.raises(ImplausibleTime) as refused:
        await kernel.record_device_action(**action, recorded_at=datetime(1900, 1, 1, tzinfo=UTC))
    assert refused.value.status == 422 and refused.value.extra["field"] == "recorded_at"
    await kernel.record_device_action(**action, recorded_at=NOW - MAX_AGE)
    assert await _count(kernel, DeviceAction) == before + 1


# ---------------------------------------------------------------- machine data (connectors)
CONFIG = {"nodes": {"state": "ns=2;s=State", "good": "ns=2;s=Good"}, "states": {"running": [1], "down": [3]}}


@pytest.fixture
async def machine(kernel):
    async with kernel.sessionmaker() as session:
        line = Line(code="LINE-T", name="Line T", config={})
        session.add(line)
        await session.flush()
        session.add(Device(code="MC-T", kind="machine", driver="test", line_id=line.id, config=CONFIG))
        await session.commit()


async def test_a_connector_time_outside_the_window_is_stored_at_the_kernels_time_and_degrades_the_device(
    kernel, machine
):
    hub = kernel.machine_data
    sink = await hub.open("MC-T", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.connected()
    sink.subscription(True)
    sink.submit("state", 1, datetime(1900, 1, 1, tzinfo=UTC))  # a PLC whose clock was never set
    health = sink.health()
    assert health.status == Status.DEGRADED and "1900-01-01" in health.reason, health
    assert health.details["implausible_times"] == 1
    sink.submit("state", 3, NOW + MAX_LEAD)  # plausible again (on the bound): the problem is gone
    assert sink.health().status == Status.UP
    sink.submit("state", 1, NOW + MAX_LEAD + SECOND)
    await hub.flush()
    async with kernel.sessionmaker() as session:
        rows = (await session.execute(
            select(MachineState.state, MachineState.started_at).where(MachineState.device == "MC-T")
            .order_by(MachineState.id))).all()
    assert [tuple(r) for r in rows] == [("running", NOW), ("down", NOW + MAX_LEAD), ("running", NOW + MAX_LEAD)]
    assert sink.health().details["implausible_times"] == 2
