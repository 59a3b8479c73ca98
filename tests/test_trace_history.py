"""LOT and unit histories as one stream: station order, scans, status changes, stable paging, true totals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mes_kernel.db.models import DeviceAction, ProcessRecord, TraceEvent, TraceTotal, Unit

API = "/api/v1"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _received_a_week_after_t0(kernel):
    """Station times of T0 stay within the accepted window whatever day the tests run."""
    kernel.clock = lambda: T0 + timedelta(days=7)


@pytest.fixture
def make_lot(make_lot):
    """LOTs (and units) registered the day before T0: a station time before them is refused."""

    async def make(*args, **kwargs):
        return await make_lot(*args, registered_at=T0 - timedelta(days=1), **kwargs)

    return make


def _record(lot_number: str, serial_number: str | None, *, result: str, at: datetime, seq: int | None, **extra):
    return {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot_number,
        "process_id": "TEST-20",
        "worker_id": "W-7",
        "serial_number": serial_number,
        "result": result,
        "recorded_at": at.isoformat(),
        "station_seq": seq,
        **extra,
    }


async def _all(client, path: str, headers, limit: int) -> tuple[list[dict], list[int]]:
    """Every event of a history, page by page; and the total each page reported."""
    events, totals, cursor = [], [], None
    while True:
        params = {"limit": limit, **({"before": cursor} if cursor else {})}
        r = await client.get(f"{API}{path}", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        events += page["events"]
        totals.append(page["total"])
        cursor = page["next_before"]
        if cursor is None:
            return events, totals


async def test_a_replayed_batch_keeps_the_order_it_happened_in_at_the_station(
    client, station_headers, viewer_headers, make_lot
):
    """A fail, a rework pass and a retest queued at the station within one clock tick (same
    recorded_at) arrive in another order after a partly failed batch: the station's sequence
    numbers put them back."""
    lot = await make_lot(units=1)
    number, serial = lot["lot_number"], lot["serial_numbers"][0]
    fail = _record(number, serial, result="fail", at=T0, seq=101, defect_code="D-SOLDER")
    rework = _record(number, serial, result="pass", at=T0, seq=102, data={"rework": True})
    retest = _record(number, serial, result="pass", at=T0, seq=103)
    later = _record(number, serial, result="pass", at=T0 + timedelta(seconds=1), seq=7)  # an outbox rebuilt
    # The first batch got only the rework and retest through; the fail follows in the replay.
    r = await client.post(f"{API}/process-records/batch", json={"records": [retest, rework]}, headers=station_headers)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    r = await client.post(f"{API}/process-records/batch", json={"records": [later, fail, rework]},
                          headers=station_headers)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text  # the rework again: a duplicate

    events, totals = await _all(client, f"/units/{serial}/history", viewer_headers, limit=2)
    # registered today, while the records are of a week ago
    assert events[0]["type"] == "registration" and events[0]["serial_number"] == serial
    records = events[1:]
    assert [(e["seq"], e["data"]["result"]) for e in records] == [(7, "pass"), (103, "pass"), (102, "pass"),
                                                                   (101, "fail")]
    assert records[3]["data"]["defect_code"] == "D-SOLDER" and records[2]["data"]["data"] == {"rework": True}
    assert {e["station"] for e in records} == {"ST-01"}
    assert set(totals) == {5} and len(events) == 5

    lot_events, _ = await _all(client, f"/lots/{number}/history", viewer_headers, limit=100)
    assert [e["seq"] for e in lot_events if e["type"] == "process_record"] == [7, 103, 102, 101]
    # The LOT started with the earliest of them; at one station time the start sorts first (oldest).
    started = next(e for e in lot_events if e["type"] == "status_change" and e["data"]["to"] == "in_progress")
    assert lot_events.index(started) == len(lot_events) - 1 == 6 and started["at"] == T0.isoformat()


async def test_a_station_scan_and_an_offline_print_join_the_unit_history_at_station_time(
    client, station_headers, viewer_headers, make_lot
):
    lot = await make_lot(units=2)
    number, (first, second) = lot["lot_number"], lot["serial_numbers"]

    async def event(type_: str, payload: dict, seq: int) -> dict:
        body = {"idempotency_key": uuid.uuid4().hex, "type": type_, "payload": payload, "station_seq": seq}
        r = await client.post(f"{API}/stations/events", json=body, headers=station_headers)
        assert r.status_code == 201, r.text
        return r.json()

    at = lambda minutes: (T0 + timedelta(minutes=minutes)).isoformat()  # noqa: E731
    scan = await event("scan", {"code": first, "source": "scanner", "worker": "W-7", "recorded_at": at(1)}, 11)
    gs1 = await event("scan", {"code": f"0109501101530003\x1d21{second}", "symbology": "]d2",
                               "station_time": at(2)}, 12)
    of_lot = await event("scan", {"code": number, "recorded_at": at(3)}, 13)
    unknown = await event("scan", {"code": "NO-SUCH-THING", "recorded_at": at(4)}, 14)
    printed = await event("device_result", {"action": "print", "serial_number": first, "outcome": "printed",
                                            "driver": "zpl_tcp", "recorded_at": at(5)}, 15)
    assert [e["traced"] for e in (scan, gs1, of_lot, unknown, printed)] == [True, True, True, False, True]

    # Registered today; the station's events happened a week ago, and sort so.
    unit, _ = await _all(client, f"/units/{first}/history", viewer_headers, limit=100)
    assert [(e["type"], e["at"], e["seq"], e["station"]) for e in unit[1:]] == [
        ("device_action", at(5), 15, "ST-01"),
        ("scan", at(1), 11, "ST-01"),
    ]
    assert unit[0]["type"] == "registration"
    assert unit[1]["data"]["action"] == "print" and unit[1]["data"]["outcome"] == "ok"
    assert (unit[2]["data"]["code"], unit[2]["data"]["source"], unit[2]["data"]["id"]) == (first, "scanner",
                                                                                           scan["id"])
    assert unit[2]["actor"] == "station:ST-01 (worker? W-7)" and unit[2]["received_at"] > unit[2]["at"]

    other, _ = await _all(client, f"/units/{second}/history", viewer_headers, limit=100)
    assert [(e["type"], e["serial_number"]) for e in other] == [("registration", second), ("scan", second)]
    assert other[1]["data"]["symbology"] == "]d2" and other[1]["at"] == at(2)

    whole, totals = await _all(client, f"/lots/{number}/history", viewer_headers, limit=3)
    assert [(e["type"], e["serial_number"]) for e in whole[3:]] == [
        ("device_action", first), ("scan", None), ("scan", second), ("scan", first)]
    assert set(totals) == {len(whole)} == {7}  # and two registrations, the creation


async def test_status_changes_say_who_and_why(client, manager_headers, viewer_headers, make_lot):
    number = (await make_lot())["lot_number"]
    for body in ({"status": "on_hold", "reason": "solder paste expired"}, {"status": "in_progress"},
                 {"note": "only a note", "quantity": 5}, {"status": "scrapped", "reason": "contaminated"}):
        r = await client.patch(f"{API}/lots/{number}", json=body, headers=manager_headers)
        assert r.status_code == 200, r.text
    refused = await client.patch(f"{API}/lots/{number}", json={"status": "closed"}, headers=manager_headers)
    assert refused.status_code == 409

    events, totals = await _all(client, f"/lots/{number}/history", viewer_headers, limit=100)
    changes = [(e["data"]["from"], e["data"]["to"], e["data"].get("reason")) for e in events]
    assert changes == [
        ("in_progress", "scrapped", "contaminated"),
        ("on_hold", "in_progress", None),
        ("created", "on_hold", "solder paste expired"),
        (None, "created", None),
    ]
    assert {e["type"] for e in events} == {"status_change"} and totals == [4]
    assert events[0]["actor"] == "user:manager"


async def test_paging_is_stable_while_new_events_arrive(client, kernel, worker_headers, viewer_headers, make_lot):
    lot = await make_lot(units=1)
    number, serial = lot["lot_number"], lot["serial_numbers"][0]
    batch = [_record(number, serial, result="pass", at=T0 + timedelta(minutes=m), seq=m) for m in range(40)]
    r = await client.post(f"{API}/process-records/batch", json={"records": batch}, headers=worker_headers)
    assert r.status_code == 200, r.text

    first = (await client.get(f"{API}/lots/{number}/history", params={"limit": 15}, headers=viewer_headers)).json()
    assert first["total"] == 43
    # Meanwhile: a newer record, a record replayed from before the cursor, a print just now.
    newer = _record(number, serial, result="pass", at=T0 + timedelta(hours=1), seq=99)
    replayed = _record(number, serial, result="fail", at=T0 + timedelta(seconds=30), seq=98)
    r = await client.post(f"{API}/process-records/batch", json={"records": [newer, replayed]}, headers=worker_headers)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    await kernel.record_device_action(action="print", plugin="label_printer", device="PRN-01", driver="simulator",
                                      driver_version="1.0", actor="user:worker", outcome="ok", serial_number=serial)

    rest, cursor, totals = [], first["next_before"], []
    while cursor:
        page = (await client.get(f"{API}/lots/{number}/history", params={"limit": 15, "before": cursor},
                                 headers=viewer_headers)).json()
        rest += page["events"]
        totals.append(page["total"])
        cursor = page["next_before"]
    assert set(totals) == {46}
    seen = first["events"] + rest
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) == 44  # all that existed, plus the replay that sorts below the cursor
    keys = [(e["at"], e["seq"] or 0, e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert any(e["data"].get("result") == "fail" for e in rest)  # the replay found its place
    fresh, _ = await _all(client, f"/lots/{number}/history", viewer_headers, limit=500)
    assert fresh[0]["type"] == "device_action" and len(fresh) == 46
    assert next(e for e in fresh if e["type"] == "process_record")["seq"] == 99


async def test_totals_are_true_counts_of_what_was_committed(client, kernel, worker_headers, manager_headers,
                                                            viewer_headers, make_lot):
    """Retries, refusals and rolled-back work add nothing; every committed event counts once."""
    lot = await make_lot(units=3)
    number, serials = lot["lot_number"], lot["serial_numbers"]
    records = [_record(number, serials[i % 3], result="pass", at=T0 + timedelta(minutes=i), seq=i) for i in range(9)]
    for _ in range(2):  # the second time: retries
        r = await client.post(f"{API}/process-records/batch", json={"records": records}, headers=worker_headers)
        assert r.status_code == 200, r.text
    r = await client.post(f"{API}/process-records", json=_record(number, "SN-UNKNOWN", result="pass", at=T0, seq=1),
                          headers=worker_headers)
    assert r.status_code == 404
    r = await client.post(f"{API}/lots/{number}/units", json={"serial_numbers": [serials[0], "NEW-1"]},
                          headers=manager_headers)
    assert r.status_code == 409  # nothing of it registered
    r = await client.patch(f"{API}/lots/{number}", json={"status": "closed", "reason": "done"},
                           headers=manager_headers)
    assert r.status_code == 200
    r = await client.post(f"{API}/process-records", json=_record(number, None, result="pass", at=T0, seq=50),
                          headers=worker_headers)
    assert r.status_code == 409  # LOT_CLOSED

    async with kernel.sessionmaker() as session:
        for scope, column, ident in [("lot", TraceEvent.lot_id, lot["id"])] + [
            ("unit", TraceEvent.unit_id, uid)
            for uid in (await session.execute(select(Unit.id).where(Unit.lot_id == lot["id"]))).scalars()
        ]:
            stored = (await session.execute(select(func.count()).where(column == ident))).scalar_one()
            kept = (await session.execute(select(TraceTotal.events).where(
                TraceTotal.scope == scope, TraceTotal.subject_id == ident))).scalar_one()
            assert stored == kept, scope
        by_source = (await session.execute(select(func.count()).select_from(ProcessRecord).where(
            ProcessRecord.lot_id == lot["id"]))).scalar_one()
        actions = (await session.execute(select(func.count()).select_from(DeviceAction))).scalar_one()
    assert (by_source, actions) == (9, 0)
    events, totals = await _all(client, f"/lots/{number}/history", viewer_headers, limit=4)
    # 9 records, 3 registrations, created, started, closed
    assert set(totals) == {len(events)} == {15}
    assert sorted(e["serial_number"] for e in events if e["type"] == "registration") == sorted(serials)
    for serial in serials:
        unit_events, unit_totals = await _all(client, f"/units/{serial}/history", viewer_headers, limit=2)
        assert set(unit_totals) == {len(unit_events)} == {4}


async def test_odd_scan_payloads_are_kept_as_events_and_never_fail(client, station_headers, viewer_headers, make_lot):
    """Odd codes and subjects are kept as events; a station time that is no time with a zone is
    refused (422, nothing stored) as a process record's would be, never silently taken as receipt."""
    lot = await make_lot(units=1)
    serial = lot["serial_numbers"][0]
    odd = [
        {"code": 12345},
        {"code": None, "serial_number": ["not", "a", "string"]},
        {"code": "x" * 600},
        {"code": serial, "recorded_at": "yesterday", "station_time": 5},
        {"code": serial, "recorded_at": "2026-11-20T06:00:00"},  # no zone
        {"code": "\x00\x1d]d2"},  # NUL: refused
        {"lot_number": lot["lot_number"], "serial_number": "SN-ELSEWHERE", "recorded_at": T0.isoformat()},
        {"code": serial, "station_time": 5},  # no recorded_at: station_time is the time, and it is none
    ]
    traced = []
    for payload in odd:
        body = {"idempotency_key": uuid.uuid4().hex, "type": "scan", "payload": payload, "station_seq": 3}
        r = await client.post(f"{API}/stations/events", json=body, headers=station_headers)
        assert r.status_code in (201, 422), (payload, r.text)
        if r.status_code == 422:
            assert r.json()["detail"]["code"] == "VALIDATION_ERROR", r.text
            traced.append(r.json()["detail"].get("field", "refused"))
        else:
            traced.append(r.json()["traced"])
    assert traced == [False, False, False, "payload.recorded_at", "payload.recorded_at", "refused", True,
                      "payload.station_time"]
    events, _ = await _all(client, f"/lots/{lot['lot_number']}/history", viewer_headers, limit=100)
    scans = [e for e in events if e["type"] == "scan"]
    assert len(scans) == 1 and scans[0]["serial_number"] is None and scans[0]["at"] == T0.isoformat()
