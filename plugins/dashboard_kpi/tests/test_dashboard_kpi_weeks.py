"""Output and OEE by week answer the same weeks: ISO 8601 weeks from the plant's Monday 00:00,
whatever day the range starts on; a week the range cuts says so, and its output and plan count
the same days — the ones inside the range (issue 13, T3).

The plant is in Seoul here (``MES_DASHBOARD_TIMEZONE``): its weeks start Sunday 15:00 UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from mes_kernel.db.models import Line, Process, Station

API = "/api/v1"
SEOUL = ZoneInfo("Asia/Seoul")
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]
_today = datetime.now(SEOUL).date()
# A Monday in Seoul two to three weeks ahead, and the Wednesday after it: the range starts there.
MONDAY = datetime.combine(_today + timedelta(days=14 + (7 - _today.weekday()) % 7), datetime.min.time(), SEOUL)
WEDNESDAY = MONDAY + timedelta(days=2)


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.date().isocalendar()
    return f"{year}-W{week:02d}"


@pytest.fixture(autouse=True)
def _plant_in_seoul(monkeypatch):
    """Set before the app is built (no autouse fixture here asks for the kernel)."""
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")
    monkeypatch.setenv("MES_DASHBOARD_TIMEZONE", "Asia/Seoul")


@pytest.fixture
async def line(client, kernel, admin_headers):
    """LINE-W with station ST-W1, step PACK-30, LOT-W1 with units, shifts Day 06–14 (plan 100) and
    Night 22–06 (plan 50) every day on the plant's clock; the kernel's clock after the records
    here (station times ahead of the real time are refused)."""
    kernel.clock = lambda: MONDAY + timedelta(days=20)
    async with kernel.sessionmaker() as session:
        row = Line(code="LINE-W", name="Line W", config={})
        session.add(row)
        session.add(Process(id="PACK-30", name="Pack", sequence=30, ideal_cycle_seconds=20.0))
        await session.flush()
        session.add(Station(code="ST-W1", line_id=row.id, heartbeat={}))
        await session.commit()
        await session.execute(update(Station).values(last_heartbeat_at=MONDAY + timedelta(days=20)))
        await session.commit()
    r = await client.post(
        f"{API}/lots", json={"lot_number": "LOT-W1", "product": "NH-7", "line": "LINE-W"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"{API}/lots/LOT-W1/units", json={"serial_numbers": [f"SN-W{i}" for i in range(8)]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    shifts = [
        {"name": "Day", "start": "06:00", "end": "14:00", "days": EVERY_DAY, "planned_output": 100},
        {"name": "Night", "start": "22:00", "end": "06:00", "days": EVERY_DAY, "planned_output": 50},
    ]
    # in force from before the records (the kernel's clock is weeks ahead: a calendar put "now" would
    # start then); dating it back takes an admin (``shifts:backdate``)
    body = {"shifts": shifts, "effective_from": (MONDAY - timedelta(days=14)).isoformat()}
    r = await client.put(f"{API}/lines/LINE-W/shifts", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    return row


async def _pack(client, headers, *, at: datetime, serial: str) -> None:
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": "LOT-W1",
        "process_id": "PACK-30",
        "worker_id": "W-1",
        "station": "ST-W1",
        "result": "pass",
        "serial_number": serial,
        "recorded_at": at.isoformat(),
    }
    r = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert r.status_code == 201, r.text


async def _weeks(client, headers, since: datetime, last_day: datetime, *, tz: str | None = None):
    params = {"line": "LINE-W", "from": since.date().isoformat(), "to": last_day.date().isoformat(), "bucket": "week"}
    if tz:
        params["tz"] = tz
    output = await client.get(f"{API}/kpi/output", params=params, headers=headers)
    assert output.status_code == 200, output.text
    oee = await client.get(f"{API}/kpi/oee", params=params, headers=headers)
    assert oee.status_code == 200, oee.text
    return output.json()["items"], oee.json()["buckets"]


BOUNDS = ("period", "start", "end", "counted_from", "counted_to", "partial")


async def test_a_range_from_wednesday_answers_whole_weeks_from_monday_both_partial(
    client, line, worker_headers, executive_headers
):
    # 3 packs on Thursday (week 1), 2 on the Monday after (week 2), in the day shift
    for i, day in enumerate([1, 1, 1, 5, 5]):
        await _pack(client, worker_headers, at=WEDNESDAY + timedelta(days=day, hours=9, minutes=i), serial=f"SN-W{i}")
    output, oee = await _weeks(client, executive_headers, WEDNESDAY, WEDNESDAY + timedelta(days=6))
    next_monday = MONDAY + timedelta(days=7)
    expected = [
        {
            "period": iso_week(MONDAY),
            "start": utc(MONDAY),  # Monday 00:00 in Seoul, not the range's Wednesday
            "end": utc(next_monday),
            "counted_from": utc(WEDNESDAY),
            "counted_to": utc(next_monday),
            "partial": True,
        },
        {
            "period": iso_week(next_monday),
            "start": utc(next_monday),
            "end": utc(next_monday + timedelta(days=7)),
            "counted_from": utc(next_monday),
            "counted_to": utc(WEDNESDAY + timedelta(days=7)),
            "partial": True,
        },
    ]
    assert [{k: o[k] for k in BOUNDS} for o in output] == expected
    assert [{k: w[k] for k in BOUNDS} for w in oee] == expected  # the same weeks, the same way
    assert [o["good"] for o in output] == [3, 2]
    # each shift's plan spread over its hours: week 1 counts the range's Wednesday to Sunday — the
    # tail of Tuesday's night (6 of 8 h), five days, four whole nights, Sunday night's first 2 h —
    # and week 2 the range's Monday and Tuesday; together the range's seven days, no more
    night_tail, night_head = 50 * 6 / 8, 50 * 2 / 8
    assert [o["plan"] for o in output] == [
        night_tail + 5 * 100 + 4 * 50 + night_head,
        night_tail + 2 * 100 + 50 + night_head,
    ]
    assert sum(o["plan"] for o in output) == 7 * (100 + 50)


async def test_whole_weeks_are_not_partial_and_plan_a_whole_week(client, line, executive_headers):
    output, oee = await _weeks(client, executive_headers, MONDAY, MONDAY + timedelta(days=13))
    starts = [utc(MONDAY), utc(MONDAY + timedelta(days=7))]
    assert [(o["start"], o["partial"]) for o in output] == [(s, False) for s in starts]
    assert [(w["start"], w["partial"]) for w in oee] == [(s, False) for s in starts]
    assert [o["plan"] for o in output] == [7 * 150, 7 * 150]


async def test_weeks_start_on_the_readers_monday_when_asked_in_another_zone(client, line, executive_headers):
    """``tz`` chooses where the reader's weeks start (docs/kpi.md); both endpoints follow it alike."""
    monday_utc = datetime.combine(MONDAY.date(), datetime.min.time(), UTC)
    output, oee = await _weeks(client, executive_headers, monday_utc, monday_utc + timedelta(days=6), tz="UTC")
    assert [o["start"] for o in output] == [w["start"] for w in oee] == [monday_utc.isoformat()]
    assert output[0]["partial"] is oee[0]["partial"] is False
