"""OEE performance of a line is its bottleneck's: ideal cycle time of the slowest step × the parts
made there ÷ run time, so a line at ideal speed shows 1.0 however many steps it has (issue 13,
F16: summing every step's ideal seconds showed 150 % for two steps, 502 % on the production
view). A performance above 1 (ideal set too slow) is kept and flagged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mes_kernel.db.models import Line, Process, Station
from mes_kernel.testing.helpers import register_lots_at

API = "/api/v1"
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
ONE_HOUR = {"shifts": [{"name": "H", "start": "08:00", "end": "09:00", "days": [0, 1, 2, 3, 4, 5, 6]}]}
PARAMS = {"line": "LINE-P", "from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC"}


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


async def _line(client, kernel, admin_headers, manager_headers, steps: dict[str, float | None]) -> int:
    """LINE-P with station ST-P1, the routing ``steps`` (id → ideal cycle seconds, in sequence
    order), LOT-P1 on it, and one shift 08:00–09:00."""
    async with kernel.sessionmaker() as session:
        row = Line(code="LINE-P", name="Line P", config={})
        session.add(row)
        session.add_all(
            Process(id=pid, name=pid, sequence=(i + 1) * 10, ideal_cycle_seconds=ideal)
            for i, (pid, ideal) in enumerate(steps.items())
        )
        await session.flush()
        session.add(Station(code="ST-P1", line_id=row.id, heartbeat={}))
        await session.commit()
        line_id = row.id
    r = await client.post(
        f"{API}/lots", json={"lot_number": "LOT-P1", "product": "NH-9", "line": "LINE-P"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    await register_lots_at(kernel, DAY - timedelta(days=1))  # before the records' station times
    # in force from the day the records are on: shift calendars are effective-dated, and dating one
    # back before today takes an admin (``shifts:backdate``)
    r = await client.put(
        f"{API}/lines/LINE-P/shifts", json={**ONE_HOUR, "effective_from": DAY.isoformat()}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    return line_id


async def _run(client, headers, steps, *, units: int, start: datetime, every: float) -> None:
    """``units`` units through every step, one leaving each step every ``every`` seconds."""
    records = [
        {
            "idempotency_key": uuid.uuid4().hex,
            "lot_number": "LOT-P1",
            "process_id": pid,
            "worker_id": "W-1",
            "station": "ST-P1",
            "result": "pass",
            "serial_number": None,  # LOT-level records: performance counts records, not items
            "recorded_at": (start + timedelta(seconds=u * every)).isoformat(),
        }
        for u in range(units)
        for pid in steps
    ]
    r = await client.post(f"{API}/process-records/batch", json={"records": records}, headers=headers)
    assert r.status_code == 200 and r.json()["errors"] == 0, r.text


@pytest.mark.parametrize(
    "steps",
    [
        {"ASSY-10": 30.0, "TEST-20": 60.0},
        {"KIT-10": 12.0, "ASSY-20": 30.0, "TEST-30": 60.0, "LABEL-40": None, "PACK-50": 45.0},
    ],
    ids=["2 steps", "5 steps"],
)
async def test_a_line_at_its_bottleneck_s_ideal_speed_performs_at_1_however_many_steps(
    client, kernel, admin_headers, manager_headers, worker_headers, executive_headers, steps
):
    await _line(client, kernel, admin_headers, manager_headers, steps)
    # one unit every 60 s (the bottleneck TEST's ideal) through every step for the whole hour
    await _run(client, worker_headers, steps, units=60, start=DAY + timedelta(hours=8), every=60)

    r = await client.get(f"{API}/kpi/oee", params=PARAMS, headers=executive_headers)
    assert r.status_code == 200, r.text
    oee = r.json()
    [shift] = oee["shifts"]
    assert shift["performance"] == 1.0 and shift["oee"] == 1.0, shift
    assert shift["bottleneck"] == next(p for p in steps if p.startswith("TEST"))
    assert shift["performance_over_ideal"] is False
    assert oee["oee"] == 1.0
    assert oee["performance"] == {
        "value": 1.0,
        "ideal_cycle_seconds_total": 3600.0,
        "run_seconds": 3600.0,
        "total_count": 60,
        "over_ideal": False,
        "computed_from": [
            {
                "line": "LINE-P",
                "counts_from": "records",
                "step": shift["bottleneck"],
                "ideal_cycle_seconds": 60.0,
                "count": 60,
                "ideal_seconds": 3600.0,
            }
        ],
    }
    assert oee["quality"] == {"value": 1.0, "good": 60 * len(steps), "total": 60 * len(steps)}
    # all lines together: the same line, the same figures
    r = await client.get(
        f"{API}/kpi/oee", params={k: v for k, v in PARAMS.items() if k != "line"}, headers=executive_headers
    )
    assert r.json()["performance"]["value"] == 1.0 and r.json()["oee"] == 1.0


async def test_two_steps_with_the_same_ideal_time_count_one_unit_once(
    client, kernel, admin_headers, manager_headers, worker_headers, executive_headers
):
    steps = {"ASSY-10": 60.0, "TEST-20": 60.0}
    await _line(client, kernel, admin_headers, manager_headers, steps)
    await _run(client, worker_headers, steps, units=30, start=DAY + timedelta(hours=8), every=120)
    oee = (await client.get(f"{API}/kpi/oee", params=PARAMS, headers=executive_headers)).json()
    assert oee["performance"]["value"] == 0.5  # half speed, not 1.0 (30 × 60 × 2 steps)
    assert oee["performance"]["computed_from"][0]["step"] == "TEST-20"  # the later step of the tie


async def test_faster_than_ideal_is_kept_and_flagged_in_oee_and_lines_now(
    client, kernel, admin_headers, manager_headers, worker_headers, executive_headers, viewer_headers
):
    """The ideal cycle time is set too slow (the line makes a unit every 30 s, TEST's ideal says
    60 s): performance 2.0 is the honest figure of that setting, so it is kept — and flagged,
    for the views to show a warning instead of an OEE of 200 %."""
    steps = {"ASSY-10": 20.0, "TEST-20": 60.0}
    await _line(client, kernel, admin_headers, manager_headers, steps)
    await _run(client, worker_headers, steps, units=120, start=DAY + timedelta(hours=8), every=30)
    oee = (await client.get(f"{API}/kpi/oee", params=PARAMS, headers=executive_headers)).json()
    assert oee["performance"]["value"] == 2.0 and oee["performance"]["over_ideal"] is True
    assert oee["oee"] == 2.0
    assert oee["shifts"][0]["performance_over_ideal"] is True

    # today, on the production view's endpoint: a day-long shift and a step whose ideal is a day
    r = await client.put(
        f"{API}/lines/LINE-P/shifts",
        json={"shifts": [{"name": "All", "start": "00:00", "end": "00:00", "days": [0, 1, 2, 3, 4, 5, 6]}]},
        headers=manager_headers,
    )
    assert r.status_code == 200, r.text
    r = await client.patch(f"{API}/processes/TEST-20", json={"ideal_cycle_seconds": 86400}, headers=manager_headers)
    assert r.status_code == 200, r.text
    await _run(client, worker_headers, steps, units=2, start=datetime.now(UTC) - timedelta(seconds=1), every=0)
    now = (await client.get(f"{API}/kpi/lines/now", headers=viewer_headers)).json()
    [item] = [i for i in now["items"] if i["line"] == "LINE-P"]
    assert item["performance_over_ideal"] is True and item["oee"] > 1, item


async def test_machines_in_series_take_the_slowest_machine_s_parts(
    client, kernel, admin_headers, manager_headers, executive_headers
):
    """Two machines of a line in series (ideal 10 s and 20 s) each count the line's 180 parts in
    the hour: performance 180 × 20 s ÷ 3,600 s = 1.0, not 1.5 (the sum of both)."""
    from mes_kernel.contracts import MachineMapping
    from mes_kernel.db.models import Device

    line_id = await _line(client, kernel, admin_headers, manager_headers, {"ASSY-10": 30.0})
    configs = {}
    async with kernel.sessionmaker() as session:
        for code, ideal in (("MC-P1", 10.0), ("MC-P2", 20.0)):
            configs[code] = {
                "nodes": {"state": "s", "good": "g", "bad": "b"},
                "states": {"running": [1], "down": [3]},
                "ideal_cycle_seconds": ideal,
            }
            session.add(Device(code=code, kind="opcua", driver="opcua", line_id=line_id, config=configs[code]))
        await session.commit()
    start = DAY + timedelta(hours=8)
    for code, config in configs.items():
        sink = await kernel.machine_data.open(code, source="test", mapping=MachineMapping.from_config(config))
        sink.submit("state", 1, start)
        sink.submit("good", 0, start)
        sink.submit("bad", 0, start)
        sink.submit("good", 180, start + timedelta(minutes=59))
    await kernel.machine_data.flush()
    oee = (await client.get(f"{API}/kpi/oee", params=PARAMS, headers=executive_headers)).json()
    assert oee["shifts"][0]["counts_from"] == "machines" and oee["shifts"][0]["bottleneck"] == "MC-P2"
    assert oee["performance"]["value"] == 1.0, oee["performance"]
    assert oee["performance"]["computed_from"][0] == {
        "line": "LINE-P",
        "counts_from": "machines",
        "step": "MC-P2",
        "ideal_cycle_seconds": 20.0,
        "count": 180,
        "ideal_seconds": 3600.0,
    }
