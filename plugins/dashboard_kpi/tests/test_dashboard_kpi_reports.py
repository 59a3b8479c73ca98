"""The managers' KPIs through the API: OEE from a shift calendar, downtime and ideal cycle times;
output against plan; each line now; shift calendars; bad input; who may read and write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from mes_kernel.db.models import Alert, Line, MachineState, Process, Station
from mes_kernel.testing.helpers import register_lots_at

API = "/api/v1"
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


@pytest.fixture
async def line(client, kernel, admin_headers):
    """LINE-K with station ST-K1, steps ASSY-10 (ideal 30 s) and PACK-30 (the last step, ideal 20 s),
    and LOT-K1 on the line with six units."""
    async with kernel.sessionmaker() as session:
        row = Line(code="LINE-K", name="Line K", config={})
        session.add(row)
        session.add_all(
            [
                Process(id="ASSY-10", name="Assembly", sequence=10, ideal_cycle_seconds=30.0),
                Process(id="PACK-30", name="Pack", sequence=30, ideal_cycle_seconds=20.0),
            ]
        )
        await session.flush()
        session.add(Station(code="ST-K1", line_id=row.id, heartbeat={}))
        await session.commit()
        line_id = row.id
    r = await client.post(
        f"{API}/lots", json={"lot_number": "LOT-K1", "product": "NH-7", "line": "LINE-K"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    serials = [f"SN-K{i}" for i in range(6)]
    r = await client.post(f"{API}/lots/LOT-K1/units", json={"serial_numbers": serials}, headers=admin_headers)
    assert r.status_code == 201, r.text
    await register_lots_at(kernel, DAY - timedelta(days=1))  # before the records' station times
    return line_id


async def _record(client, headers, *, at: datetime, process_id: str, result: str = "pass", serial=None, defect=None):
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": "LOT-K1",
        "process_id": process_id,
        "worker_id": "W-1",
        "station": "ST-K1",
        "result": result,
        "serial_number": serial,
        "defect_code": defect,
        "recorded_at": at.isoformat(),
    }
    r = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert r.status_code == 201, r.text


SHIFTS = {
    "shifts": [
        {"name": "Day", "start": "06:00", "end": "14:00", "days": EVERY_DAY, "planned_output": 800},
        {"name": "Night", "start": "22:00", "end": "06:00", "days": EVERY_DAY, "planned_output": 400},
    ]
}
# The calendar in force since before the days these tests record on (dating it back needs
# shifts:backdate: admin); a calendar put without a date plans from now on.
BACKDATED = {**SHIFTS, "effective_from": (DAY - timedelta(days=1)).date().isoformat()}


async def test_oee_is_availability_times_performance_times_quality_per_line_and_shift(
    client, kernel, line, admin_headers, worker_headers, executive_headers
):
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=BACKDATED, headers=admin_headers)
    assert r.status_code == 200, r.text
    # Day shift: 8 h planned. Down 07:00–07:30 (a connector's machine state) and silent 07:18–07:40
    # (station alert, from its last heartbeat): 07:00–07:40 once, 2,400 s, not 3,000.
    async with kernel.sessionmaker() as session:
        session.add(
            MachineState(
                line_id=line,
                state="down",
                reason="jam",
                source="test",
                started_at=DAY + timedelta(hours=7),
                ended_at=DAY + timedelta(hours=7, minutes=30),
            )
        )
        session.add(
            Alert(
                key="station:ST-K1:silent",
                severity="warning",
                source="station",
                message="silent",
                detail={"station": "ST-K1", "last_heartbeat_at": (DAY + timedelta(hours=7, minutes=18)).isoformat()},
                raised_at=DAY + timedelta(hours=7, minutes=20),
                resolved_at=DAY + timedelta(hours=7, minutes=40),
            )
        )
        await session.commit()
    for i in range(6):  # 6 assemblies at 08:xx, one failed; 4 packs at 09:xx; all in the day shift
        await _record(
            client,
            worker_headers,
            at=DAY + timedelta(hours=8, minutes=i),
            process_id="ASSY-10",
            serial=f"SN-K{i}",
            result="fail" if i == 5 else "pass",
            defect="SOLDER" if i == 5 else None,
        )
    for i in range(4):
        await _record(
            client, worker_headers, at=DAY + timedelta(hours=9, minutes=i), process_id="PACK-30", serial=f"SN-K{i}"
        )
    await _record(client, worker_headers, at=DAY + timedelta(hours=23), process_id="PACK-30", serial="SN-K4")

    params = {"line": "LINE-K", "from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC"}
    r = await client.get(f"{API}/kpi/oee", params=params, headers=executive_headers)
    assert r.status_code == 200, r.text
    oee = r.json()
    day = next(s for s in oee["shifts"] if s["shift"] == "Day")
    planned, down = 8 * 3600.0, 2400.0
    run = planned - down
    # performance from the line's bottleneck (ASSY-10, the larger ideal cycle time): its 6 parts
    availability, performance, quality = run / planned, 6 * 30 / run, 9 / 10
    assert day["availability"] == round(availability, 4)
    assert day["performance"] == round(performance, 4)
    assert day["quality"] == round(quality, 4)
    assert day["oee"] == round(round(availability, 4) * round(performance, 4) * round(quality, 4), 4)
    # The line over the day: both night shifts (00–06 and 22–24) add planned time and the 23:00 pack.
    assert oee["availability"]["planned_seconds"] == planned + 6 * 3600 + 2 * 3600
    assert oee["availability"]["downtime_seconds"] == down
    assert oee["performance"]["ideal_cycle_seconds_total"] == 6 * 30
    assert oee["performance"]["total_count"] == 6
    assert oee["performance"]["computed_from"] == [
        {
            "line": "LINE-K",
            "counts_from": "records",
            "step": "ASSY-10",
            "ideal_cycle_seconds": 30.0,
            "count": 6,
            "ideal_seconds": 180.0,
        }
    ]
    assert oee["performance"]["over_ideal"] is False and day["performance_over_ideal"] is False
    assert day["bottleneck"] == "ASSY-10"
    assert oee["quality"] == {"value": round(10 / 11, 4), "good": 10, "total": 11}
    assert [s["shift"] for s in oee["shifts"]] == ["Night", "Day", "Night"]

    r = await client.get(f"{API}/kpi/output", params={**params, "bucket": "hour"}, headers=executive_headers)
    hours = {i["start"]: i for i in r.json()["items"]}
    assert len(hours) == 24
    assert hours[(DAY + timedelta(hours=9)).isoformat()] == {
        "start": (DAY + timedelta(hours=9)).isoformat(),
        "end": (DAY + timedelta(hours=10)).isoformat(),
        "good": 4,
        "first_tried": 4,
        "plan": 100.0,
    }
    assert hours[(DAY + timedelta(hours=8)).isoformat()]["good"] == 0  # assemblies are not output
    r = await client.get(f"{API}/kpi/output", params={**params, "bucket": "day"}, headers=executive_headers)
    whole_day = {
        "period": DAY.date().isoformat(),
        "start": DAY.isoformat(),
        "end": (DAY + timedelta(days=1)).isoformat(),
        "counted_from": DAY.isoformat(),
        "counted_to": (DAY + timedelta(days=1)).isoformat(),
        "partial": False,
    }
    assert r.json()["items"] == [{**whole_day, "good": 5, "first_tried": 5, "plan": 800 + 400 * 8 / 8}]


async def test_lines_now_shows_the_lot_in_progress_output_plan_and_open_alerts(
    client, kernel, line, admin_headers, manager_headers, worker_headers
):
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=BACKDATED, headers=admin_headers)
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    await _record(client, worker_headers, at=now, process_id="PACK-30", serial="SN-K0")
    async with kernel.sessionmaker() as session:
        session.add(
            Alert(
                key="station:ST-K1:backlog", severity="warning", source="station", message="m", detail={}, raised_at=now
            )
        )
        session.add(
            Alert(
                key="station:ST-ELSEWHERE:silent",
                severity="warning",
                source="station",
                message="m",
                detail={},
                raised_at=now,
            )
        )
        await session.commit()
    r = await client.get(f"{API}/kpi/lines/now", params={"tz": "UTC"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert (item["line"], item["name"], item["current_lot"]) == ("LINE-K", "Line K", "LOT-K1")
    assert (item["output"], item["plan"], item["open_alerts"]) == (1, 1200.0, 1)


async def test_yield_by_station_names_the_station(client, line, worker_headers, quality_headers):
    at = datetime.now(UTC)
    await _record(client, worker_headers, at=at, process_id="ASSY-10", serial="SN-K0", result="fail", defect="X")
    await _record(client, worker_headers, at=at, process_id="ASSY-10", serial="SN-K0")
    r = await client.get(f"{API}/kpi/yield", params={"group_by": "station"}, headers=quality_headers)
    assert r.json() == {
        "group_by": "station",
        "items": [
            {
                "key": "ST-K1",
                "total": 1,
                "passed": 1,
                "first_pass": 0,
                "first_pass_yield": 0.0,
                "final_yield": 1.0,
                "records": 2,
                "records_passed": 1,
            }
        ],
    }


async def test_shift_calendar_is_replaced_by_managers_and_refuses_overlaps(
    client, line, manager_headers, viewer_headers, quality_headers, executive_headers
):
    assert (await client.get(f"{API}/lines/LINE-K/shifts", headers=viewer_headers)).json() == {
        "line": "LINE-K",
        "timezone": "UTC",
        "effective_from": None,
        "shifts": [],
        "versions": [],
    }
    for headers in (viewer_headers, quality_headers, executive_headers):
        r = await client.put(f"{API}/lines/LINE-K/shifts", json=SHIFTS, headers=headers)
        assert r.status_code == 403, r.text
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=SHIFTS, headers=manager_headers)
    assert r.status_code == 200
    got = (await client.get(f"{API}/lines/LINE-K/shifts", headers=executive_headers)).json()["shifts"]
    assert [s["name"] for s in got] == ["Day", "Night"]

    overlapping = [
        [
            {"name": "A", "start": "06:00", "end": "14:00", "days": [0]},
            {"name": "B", "start": "13:00", "end": "20:00", "days": [0]},
        ],
        # Monday's night shift runs into Tuesday's early shift.
        [
            {"name": "N", "start": "22:00", "end": "06:00", "days": [0]},
            {"name": "E", "start": "05:00", "end": "08:00", "days": [1]},
        ],
        # Sunday night into Monday morning: the week wraps.
        [
            {"name": "N", "start": "22:00", "end": "06:00", "days": [6]},
            {"name": "E", "start": "05:30", "end": "08:00", "days": [0]},
        ],
        [
            {"name": "A", "start": "06:00", "end": "08:00", "days": [0]},
            {"name": "A", "start": "09:00", "end": "10:00", "days": [0]},
        ],
    ]
    for shifts in overlapping:
        r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": shifts}, headers=manager_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "SHIFTS_OVERLAP", (shifts, r.text)
    adjacent = [{"name": "A", "start": "06:00", "end": "14:00"}, {"name": "B", "start": "14:00", "end": "22:00"}]
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": adjacent}, headers=manager_headers)
    assert r.status_code == 200, r.text
    for bad in (
        {"name": "A", "start": "24:00", "end": "06:00"},
        {"name": "A", "start": "6:00", "end": "14:00"},
        {"name": "", "start": "06:00", "end": "14:00"},
        {"name": "A", "start": "06:00", "end": "14:00", "days": [7]},
        {"name": "A", "start": "06:00", "end": "14:00", "days": [1, 1]},
        {"name": "A", "start": "06:00", "end": "14:00", "planned_output": -1},
    ):
        r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": [bad]}, headers=manager_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR", (bad, r.text)
    r = await client.put(f"{API}/lines/NOPE/shifts", json=SHIFTS, headers=manager_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "LINE_NOT_FOUND"


@pytest.mark.parametrize("path", ["oee", "yield", "pareto", "output"])
async def test_bad_ranges_zones_and_lines_answer_422_with_a_code_naming_the_field(
    client, line, manager_headers, path
):
    cases = [
        ({"from": "2026-03-02", "to": "2026-03-01"}, 422, "INVALID_RANGE", "to"),
        ({"from": "2025-01-01", "to": "2026-01-03"}, 422, "INVALID_RANGE", "to"),
        ({"from": "2026-03-01T06:00:00"}, 422, "INVALID_RANGE", "from"),
        ({"from": "yesterday"}, 422, "INVALID_RANGE", "from"),
        ({"to": "2026-13-01"}, 422, "INVALID_RANGE", "to"),
        ({"tz": "Mars/Olympus"}, 422, "INVALID_TIMEZONE", "tz"),
        ({"tz": "Europe/" + "x" * 300}, 422, "INVALID_TIMEZONE", "tz"),  # too long for a file name: OSError
        ({"line": "NO-SUCH-LINE"}, 422, "LINE_NOT_FOUND", "line"),
        # Dates a datetime holds whose UTC time or next midnight it does not (an OverflowError once:
        # 422 VALIDATION_ERROR with no field), and dates too far out for the calendar arithmetic.
        ({"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Seoul"}, 422, "INVALID_RANGE", "from"),
        ({"from": "9998-12-31", "to": "9999-12-31"}, 422, "INVALID_RANGE", "to"),
        ({"from": "9999-12-30T00:00:00+00:00", "to": "9999-12-31T23:59:59-14:00"}, 422, "INVALID_RANGE", "from"),
        ({"from": "1899-12-31", "to": "1900-01-02"}, 422, "INVALID_RANGE", "from"),
        # no "to" sent: the "from" after today is what is wrong, and more than a year back too
        ({"from": "9000-01-01"}, 422, "INVALID_RANGE", "from"),
        ({"from": "2020-01-01"}, 422, "INVALID_RANGE", "from"),
    ]
    for params, status, code, field in cases:
        r = await client.get(f"{API}/kpi/{path}", params=params, headers=manager_headers)
        assert r.status_code == status, (params, r.text)
        assert (r.json()["detail"]["code"], r.json()["detail"]["field"]) == (code, field), params
    worded = [  # the message says what is wrong with this value
        ({"from": "2026-03-01T06:00:00+00:00", "to": "2026-03-01T06:00:00+00:00"}, "the range is empty"),
        # a date as "to" takes in its whole day: the day before "from" ends where it starts, yet
        # the caller wrote a range that ends before it starts
        ({"from": "2026-03-02", "to": "2026-03-01"}, "the range ends before it starts"),
        ({"from": "2026-W09"}, "no date as YYYY-MM-DD nor a date-time with its UTC offset"),
        ({"from": "20260301"}, "no date as YYYY-MM-DD nor a date-time with its UTC offset"),
    ]
    for params, words in worded:
        r = await client.get(f"{API}/kpi/{path}", params=params, headers=manager_headers)
        assert r.status_code == 422 and words in r.json()["detail"]["message"], (params, r.text)
    for params in (
        {"from": "2025-01-01", "to": "2025-12-31", "tz": "Asia/Seoul"},
        # the years 1900-9998 as written, on the reader's clock: in UTC these begin in 1899 and end
        # in 9999
        {"from": "1900-01-01", "to": "1900-01-02", "tz": "Asia/Seoul"},
        {"from": "9998-12-30", "to": "9998-12-31", "tz": "America/New_York"},
    ):
        ok = await client.get(f"{API}/kpi/{path}", params=params, headers=manager_headers)
        assert ok.status_code == 200, (params, ok.text)


async def test_every_report_s_line_naming_no_line_answers_422_naming_the_field(client, line, admin_headers):
    """Every GET of the plugin with a ``line`` query parameter, found in the OpenAPI schema (a new
    report is checked without a line here); an address naming no line stays a 404 resource."""
    schema = (await client.get("/openapi.json")).json()
    paths = [
        path
        for path, ops in schema["paths"].items()
        if any(p["name"] == "line" and p["in"] == "query" for p in ops.get("get", {}).get("parameters", []))
        and path.startswith((f"{API}/kpi", f"{API}/dashboard"))
    ]
    assert {f"{API}/kpi/{p}" for p in ("oee", "yield", "pareto", "output", "drilldown")} <= set(paths)
    for path in paths:
        params = {"line": "NO-SUCH-LINE", "kind": "product", "key": "NH-7"}  # the drill-down's bar, unused elsewhere
        r = await client.get(path, params=params, headers=admin_headers)
        assert r.status_code == 422, (path, r.text)
        detail = r.json()["detail"]
        assert (detail["code"], detail["field"], detail["value"]) == ("LINE_NOT_FOUND", "line", "NO-SUCH-LINE"), path
    r = await client.get(f"{API}/lines/NO-SUCH-LINE/shifts", headers=admin_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "LINE_NOT_FOUND", r.text


async def test_read_only_managers_read_what_their_views_need_and_write_nothing(
    client, line, quality_headers, executive_headers, worker_headers
):
    for url in ("/kpi/oee", "/kpi/pareto", "/kpi/lines/now", "/dashboard/summary", "/lots/LOT-K1/history"):
        assert (await client.get(API + url, headers=quality_headers)).status_code == 200, url
    for url in ("/kpi/oee", "/kpi/output", "/kpi/lines/now", "/dashboard/summary", "/lines/LINE-K/shifts"):
        assert (await client.get(API + url, headers=executive_headers)).status_code == 200, url
    assert (await client.get(f"{API}/lots/LOT-K1/history", headers=executive_headers)).status_code == 403
    assert (await client.get(f"{API}/kpi/oee", headers=worker_headers)).status_code == 403
    for headers in (quality_headers, executive_headers):
        r = await client.post(f"{API}/lots", json={"lot_number": "LOT-NEW", "product": "P"}, headers=headers)
        assert r.status_code == 403
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "lot_number": "LOT-K1",
            "process_id": "ASSY-10",
            "worker_id": "W",
            "result": "pass",
        }
        assert (await client.post(f"{API}/process-records", json=body, headers=headers)).status_code == 403


async def test_new_roles_are_accepted_by_the_user_api_and_log_in(client, admin_headers):
    for role in ("quality_manager", "executive"):
        r = await client.post(
            f"{API}/users",
            json={"username": f"u-{role}", "password": "a-long-password-1", "role": role},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        r = await client.post(f"{API}/auth/login", json={"username": f"u-{role}", "password": "a-long-password-1"})
        assert r.status_code == 200, r.text
        me = await client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert "kpi:read" in me.json()["permissions"] and "lots:write" not in me.json()["permissions"]


async def test_oee_counts_parts_from_the_line_machines_when_it_has_machine_data(
    client, kernel, line, admin_headers, worker_headers, executive_headers
):
    """A connector's machine (ideal cycle 10 s) counted 300 good and 60 bad parts in the day shift:
    performance and quality come from those counts, not from the process records; availability
    still takes the machine's down state."""
    from mes_kernel.contracts import MachineMapping
    from mes_kernel.db.models import Device

    config = {
        "nodes": {"state": "s", "good": "g", "bad": "b"},
        "states": {"running": [1], "down": [3]},
        "ideal_cycle_seconds": 10.0,
    }
    async with kernel.sessionmaker() as session:
        session.add(Device(code="MC-K1", kind="opcua", driver="opcua", line_id=line, config=config))
        await session.commit()
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=BACKDATED, headers=admin_headers)
    assert r.status_code == 200, r.text
    sink = await kernel.machine_data.open("MC-K1", source="test", mapping=MachineMapping.from_config(config))
    at = DAY + timedelta(hours=6)
    sink.submit("state", 1, at)
    sink.submit("good", 1000, at)
    sink.submit("bad", 10, at)
    sink.submit("state", 3, DAY + timedelta(hours=7))
    sink.submit("state", 1, DAY + timedelta(hours=8))  # one hour down
    sink.submit("good", 1300, DAY + timedelta(hours=9))
    sink.submit("bad", 70, DAY + timedelta(hours=10))
    await kernel.machine_data.flush()
    await _record(client, worker_headers, at=DAY + timedelta(hours=8), process_id="ASSY-10", serial="SN-K0")

    params = {"line": "LINE-K", "from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC"}
    r = await client.get(f"{API}/kpi/oee", params=params, headers=executive_headers)
    assert r.status_code == 200, r.text
    day = next(s for s in r.json()["shifts"] if s["shift"] == "Day")
    run = 8 * 3600.0 - 3600.0
    assert day["counts_from"] == "machines"
    assert day["availability"] == round(run / (8 * 3600.0), 4)
    assert day["performance"] == round(360 * 10.0 / run, 4)
    assert day["quality"] == round(300 / 360, 4)


async def test_ideal_cycle_times_are_set_through_the_api_and_feed_oee_performance(
    client, line, admin_headers, manager_headers, viewer_headers, worker_headers
):
    """A plant without machine data sets each step's ideal cycle time (ISO 22400 PTU) itself; it was
    a column no route wrote (``POST /processes`` dropped the field), so performance read 0."""
    r = await client.post(
        f"{API}/processes", json={"id": "TEST-20", "sequence": 20, "ideal_cycle_seconds": 45}, headers=manager_headers
    )
    assert r.status_code == 201 and r.json()["ideal_cycle_seconds"] == 45.0, r.text
    r = await client.patch(f"{API}/processes/ASSY-10", json={"ideal_cycle_seconds": 60}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "ASSY-10", "name": "Assembly", "sequence": 10, "ideal_cycle_seconds": 60.0}
    listed = (await client.get(f"{API}/processes", headers=viewer_headers)).json()
    assert {p["id"]: p["ideal_cycle_seconds"] for p in listed} == {"ASSY-10": 60.0, "TEST-20": 45.0, "PACK-30": 20.0}
    for body in ({"ideal_cycle_seconds": 0}, {"ideal_cycle_seconds": -1}, {"name": None}, {"cycle": 5}):
        r = await client.patch(f"{API}/processes/ASSY-10", json=body, headers=manager_headers)
        assert r.status_code == 422, (body, r.text)
    r = await client.patch(f"{API}/processes/ASSY-10", json={"ideal_cycle_seconds": 1}, headers=viewer_headers)
    assert r.status_code == 403
    r = await client.patch(f"{API}/processes/NO-SUCH", json={"name": "x"}, headers=manager_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "PROCESS_NOT_FOUND"

    r = await client.put(
        f"{API}/lines/LINE-K/shifts",
        json={
            "shifts": [{"name": "All", "start": "00:00", "end": "00:00", "days": EVERY_DAY}],
            "effective_from": BACKDATED["effective_from"],
        },
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    for i in range(3):
        await _record(
            client, worker_headers, at=DAY + timedelta(hours=2, minutes=i), process_id="ASSY-10", serial=f"SN-K{i}"
        )
    oee = (
        await client.get(
            f"{API}/kpi/oee",
            params={"line": "LINE-K", "from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()},
            headers=viewer_headers,
        )
    ).json()
    assert oee["performance"]["ideal_cycle_seconds_total"] == 3 * 60.0, oee


async def test_performance_is_unknown_not_zero_when_no_step_has_an_ideal_cycle_time(
    client, kernel, line, admin_headers, worker_headers, executive_headers
):
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=BACKDATED, headers=admin_headers)
    assert r.status_code == 200, r.text
    async with kernel.sessionmaker() as session:
        await session.execute(update(Process).values(ideal_cycle_seconds=None))
        await session.commit()
    for i in range(3):
        await _record(
            client, worker_headers, at=DAY + timedelta(hours=8, minutes=i), process_id="PACK-30", serial=f"SN-K{i}"
        )
    params = {"line": "LINE-K", "from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC"}
    r = await client.get(f"{API}/kpi/oee", params=params, headers=executive_headers)
    assert r.status_code == 200, r.text
    oee = r.json()
    day = next(s for s in oee["shifts"] if s["shift"] == "Day")
    assert day["availability"] == 1.0 and day["quality"] == 1.0
    assert day["performance"] is None and day["oee"] is None  # parts made, no ideal time to weigh them
    assert oee["performance"]["value"] is None and oee["oee"] is None
    assert oee["performance"]["total_count"] == 0 and oee["quality"]["total"] == 3
    # a shift that ran and made nothing performed at 0, known
    night = oee["shifts"][0]
    assert night["shift"] == "Night" and night["performance"] == 0.0
