"""OEE per ISO week and day (one request for a year's trend), OEE 0 for planned time with no output,
and station silence as downtime — never heard, silent over a weekend, heard throughout.

The OEE functions are called with an injected clock (``now``) on a window weeks after the test's
real time (the stations and calendars are created now, before it), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from mes_dashboard_kpi import oee
from mes_dashboard_kpi.ranges import Range
from sqlalchemy import select, update

from mes_kernel.db.models import Alert, Line, Process, Station

API = "/api/v1"
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]
_today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# A Monday 00:00 UTC two to three weeks ahead: the window every test here reads.
MONDAY = _today + timedelta(days=14 + (7 - _today.weekday()) % 7)
HOUR = 3600.0


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


@pytest.fixture(autouse=True)
def _kernel_after_the_window(kernel):
    """The kernel's clock a day after the last record here: station times weeks ahead of the real
    time are then in the past, within the accepted window (:mod:`mes_kernel.station_times`)."""
    kernel.clock = lambda: MONDAY + timedelta(days=15)


@pytest.fixture
async def line(client, kernel, admin_headers):
    """LINE-P with station ST-P1 (registered now, heard at no time yet), steps ASSY-10 (ideal 30 s)
    and PACK-30 (ideal 20 s), LOT-P1 with units, and shifts Day 06–14 and Night 22–06 every day."""
    async with kernel.sessionmaker() as session:
        row = Line(code="LINE-P", name="Line P", config={})
        session.add(row)
        session.add_all(
            [
                Process(id="ASSY-10", name="Assembly", sequence=10, ideal_cycle_seconds=30.0),
                Process(id="PACK-30", name="Pack", sequence=30, ideal_cycle_seconds=20.0),
            ]
        )
        await session.flush()
        session.add(Station(code="ST-P1", line_id=row.id, heartbeat={}))
        await session.commit()
    r = await client.post(
        f"{API}/lots", json={"lot_number": "LOT-P1", "product": "NH-7", "line": "LINE-P"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"{API}/lots/LOT-P1/units", json={"serial_numbers": [f"SN-P{i}" for i in range(8)]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    shifts = [
        {"name": "Day", "start": "06:00", "end": "14:00", "days": EVERY_DAY, "planned_output": 100},
        {"name": "Night", "start": "22:00", "end": "06:00", "days": EVERY_DAY, "planned_output": 50},
    ]
    # in force from before the records (the kernel's clock is weeks ahead: a calendar put "now" would
    # start then); dating it back takes an admin (``shifts:backdate``)
    body = {"shifts": shifts, "effective_from": (MONDAY - timedelta(days=14)).isoformat()}
    r = await client.put(f"{API}/lines/LINE-P/shifts", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    return row


async def _heard(kernel, at: datetime | None, *, registered: datetime | None = None) -> None:
    values = {"last_heartbeat_at": at}
    if registered is not None:
        values["created_at"] = registered
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-P1").values(**values))
        await session.commit()


async def _record(client, headers, *, at: datetime, process_id: str, serial: str, result: str = "pass") -> None:
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": "LOT-P1",
        "process_id": process_id,
        "worker_id": "W-1",
        "station": "ST-P1",
        "result": result,
        "serial_number": serial,
        "defect_code": "SOLDER" if result == "fail" else None,
        "recorded_at": at.isoformat(),
    }
    r = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert r.status_code == 201, r.text


async def _oee(kernel, line, since: datetime, until: datetime, now: datetime, **kwargs):
    async with kernel.sessionmaker() as session:
        found = (await session.execute(select(Line).where(Line.id == line.id))).scalar_one()
        return await oee.oee(session=session, span=Range(since, until, ZoneInfo("UTC")), line=found, now=now, **kwargs)


FIGURES = ("planned_seconds", "downtime_seconds", "run_seconds")


async def test_oee_by_iso_week_and_day_sums_whole_shifts_and_adds_up_to_the_range(client, kernel, line, worker_headers):
    await _heard(kernel, MONDAY + timedelta(days=30))  # heard throughout (its clock: after every `now` here)
    # week 1: 6 assemblies on Tuesday's day shift (one failed), 4 packs in Wednesday's night shift
    for i in range(6):
        at = MONDAY + timedelta(days=1, hours=8, minutes=i)
        result = "fail" if i == 5 else "pass"
        await _record(client, worker_headers, at=at, process_id="ASSY-10", serial=f"SN-P{i}", result=result)
    for i in range(4):
        at = MONDAY + timedelta(days=2, hours=23, minutes=i)
        await _record(client, worker_headers, at=at, process_id="PACK-30", serial=f"SN-P{i}")
    since, until = MONDAY, MONDAY + timedelta(days=14)
    answer = await _oee(kernel, line, since, until, now=until, bucket="week")
    assert answer["bucket"] == "week" and "shifts" not in answer
    weeks = answer["buckets"]
    year, week, _ = MONDAY.date().isocalendar()
    assert [w["period"] for w in weeks][0] == f"{year}-W{week:02d}"
    assert [(w["start"], w["end"]) for w in weeks] == [
        (MONDAY.isoformat(), (MONDAY + timedelta(days=7)).isoformat()),
        ((MONDAY + timedelta(days=7)).isoformat(), until.isoformat()),
    ]
    # a week is the shifts that start in it: Sunday's night shift (22:00–06:00) counts in its week
    # (the range's first Monday 00–06 is the tail of a night shift that began the Sunday before, in
    # the range: it counts in week 1 too, as the range clips it)
    alone = await _oee(kernel, line, since, MONDAY + timedelta(days=7, hours=6), now=until)
    first = weeks[0]
    assert first["availability"] == alone["availability"]
    # the range's answer also names each line's bottleneck (``performance.computed_from``); a period
    # uses the same bottleneck, named once at the top
    assert answer["performance"]["computed_from"] == alone["performance"].pop("computed_from")
    assert first["performance"] == alone["performance"] and first["quality"] == alone["quality"]
    assert first["oee"] == alone["oee"] and first["computed_from"] == "factors"
    assert first["quality"] == {"value": round(9 / 10, 4), "good": 9, "total": 10}
    assert first["availability"]["planned_seconds"] == 6 * HOUR + 7 * 16 * HOUR
    # week 2 ran its shifts and made nothing: OEE 0 (good × ideal cycle ÷ planned), quality unknown
    second = weeks[1]
    assert second["oee"] == 0.0 and second["computed_from"] == "no_output"
    assert second["performance"]["value"] == 0.0 and second["quality"]["value"] is None
    assert second["availability"]["value"] == 1.0
    # the weeks add up to the range, and so do the days
    whole = await _oee(kernel, line, since, until, now=until)
    for name in FIGURES:
        assert sum(w["availability"][name] for w in weeks) == whole["availability"][name]
    assert answer["availability"] == whole["availability"] and answer["oee"] == whole["oee"]
    days = (await _oee(kernel, line, since, until, now=until, bucket="day"))["buckets"]
    assert [d["period"] for d in days] == [(MONDAY + timedelta(days=i)).date().isoformat() for i in range(14)]
    assert sum(d["availability"]["planned_seconds"] for d in days) == whole["availability"]["planned_seconds"]
    assert sum(d["quality"]["total"] for d in days) == whole["quality"]["total"] == 10
    tuesday = days[1]
    assert tuesday["quality"] == {"value": round(5 / 6, 4), "good": 5, "total": 6}
    assert tuesday["performance"]["ideal_cycle_seconds_total"] == 6 * 30.0
    assert days[2]["quality"]["total"] == 4  # Wednesday's night shift, its packs after 22:00
    # periods not yet planned (after `now`) have no planned time: OEE unknown, not 0
    early = await _oee(kernel, line, since, until, now=MONDAY + timedelta(days=3), bucket="day")
    assert early["buckets"][5]["oee"] is None and early["buckets"][5]["computed_from"] == "no_planned_time"


async def test_weeks_follow_the_plant_zone_and_iso_week_numbers(client, kernel, line):
    """In Seoul, a week starts Monday 00:00 Seoul (Sunday 15:00 UTC); week 1 of 2027 starts 2027-01-04."""
    await _heard(kernel, datetime(2028, 1, 1, tzinfo=UTC))
    seoul = ZoneInfo("Asia/Seoul")
    since = datetime(2026, 12, 28, tzinfo=seoul).astimezone(UTC)
    until = datetime(2027, 1, 11, tzinfo=seoul).astimezone(UTC)
    async with kernel.sessionmaker() as session:
        found = (await session.execute(select(Line).where(Line.id == line.id))).scalar_one()
        answer = await oee.oee(session=session, span=Range(since, until, seoul), line=found, now=until, bucket="week")
    assert [(b["period"], b["start"]) for b in answer["buckets"]] == [
        ("2026-W53", "2026-12-27T15:00:00+00:00"),
        ("2027-W01", "2027-01-03T15:00:00+00:00"),
    ]


async def test_a_planned_shift_that_made_nothing_has_oee_zero_and_says_why(client, kernel, line):
    await _heard(kernel, MONDAY + timedelta(days=30))
    shift, off_shift, later = (
        (MONDAY + timedelta(hours=6), MONDAY + timedelta(hours=14)),
        (MONDAY + timedelta(hours=14), MONDAY + timedelta(hours=22)),
        MONDAY + timedelta(days=1),
    )
    day = await _oee(kernel, line, *shift, now=later)
    assert day["oee"] == 0.0 and day["computed_from"] == "no_output"
    assert day["quality"] == {"value": None, "good": 0, "total": 0}
    assert [(s["shift"], s["oee"], s["computed_from"]) for s in day["shifts"]] == [("Day", 0.0, "no_output")]
    # no step with an ideal cycle time: nothing made is still nothing (0 × any ideal time)
    async with kernel.sessionmaker() as session:
        await session.execute(update(Process).values(ideal_cycle_seconds=None))
        await session.commit()
    again = await _oee(kernel, line, *shift, now=later)
    assert again["oee"] == 0.0 and again["computed_from"] == "no_output"
    # nothing planned: unknown, not 0
    off = await _oee(kernel, line, *off_shift, now=later)
    assert off["oee"] is None and off["computed_from"] == "no_planned_time"


# ------------------------------------------------------------------ station silence as downtime
WEEK = (MONDAY, MONDAY + timedelta(days=7))
DAY_SHIFTS = 7 * 8 * HOUR  # Day 06–14 every day of the week (the Night shift is dropped below)


async def _day_shift_only(client, admin_headers):
    """The Day shift alone, from a week before the window (after the line's first calendar)."""
    shifts = [{"name": "Day", "start": "06:00", "end": "14:00", "days": EVERY_DAY, "planned_output": 100}]
    body = {"shifts": shifts, "effective_from": (MONDAY - timedelta(days=7)).isoformat()}
    r = await client.put(f"{API}/lines/LINE-P/shifts", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text


async def test_a_station_never_heard_is_silent_from_its_registration(client, kernel, line, admin_headers):
    await _day_shift_only(client, admin_headers)
    await _heard(kernel, None)  # registered before the week, never sent a heartbeat
    week = await _oee(kernel, line, *WEEK, now=WEEK[1])
    assert week["availability"] == {
        "value": 0.0,
        "planned_seconds": DAY_SHIFTS,
        "downtime_seconds": DAY_SHIFTS,
        "run_seconds": 0.0,
    }
    assert week["oee"] == 0.0 and week["computed_from"] == "no_output"
    # registered on Wednesday 10:00: silent from then on, not before
    await _heard(kernel, None, registered=MONDAY + timedelta(days=2, hours=10))
    week = await _oee(kernel, line, *WEEK, now=WEEK[1])
    assert week["availability"]["downtime_seconds"] == 4 * HOUR + 4 * 8 * HOUR


async def test_a_station_silent_over_the_weekend_is_down_in_the_weekend_shifts(client, kernel, line, admin_headers):
    await _day_shift_only(client, admin_headers)
    friday, saturday = MONDAY + timedelta(days=4), MONDAY + timedelta(days=5)
    # the watchdog's alert, as it leaves it: raised two minutes after the last heartbeat (Friday
    # 18:00), resolved when the station reported again on the next Monday 05:00
    await _heard(kernel, MONDAY + timedelta(days=7, hours=5))
    async with kernel.sessionmaker() as session:
        session.add(
            Alert(
                key="station:ST-P1:silent",
                severity="warning",
                source="station",
                message="silent",
                detail={"station": "ST-P1", "last_heartbeat_at": (friday + timedelta(hours=18)).isoformat()},
                raised_at=friday + timedelta(hours=18, minutes=2),
                resolved_at=MONDAY + timedelta(days=7, hours=5),
            )
        )
        await session.commit()
    week = await _oee(kernel, line, *WEEK, now=WEEK[1])
    assert week["availability"]["downtime_seconds"] == 2 * 8 * HOUR  # Saturday's and Sunday's day shifts
    assert week["availability"]["value"] == round(5 / 7, 4)
    # silent now, before the watchdog raised anything: from the last heartbeat (Saturday 00:00) to now
    async with kernel.sessionmaker() as session:
        await session.execute(Alert.__table__.delete())
        await session.commit()
    await _heard(kernel, saturday)
    now = saturday + timedelta(days=1, hours=10)  # Sunday 10:00
    week = await _oee(kernel, line, *WEEK, now=now)
    assert week["availability"]["planned_seconds"] == 6 * 8 * HOUR + 4 * HOUR
    assert week["availability"]["downtime_seconds"] == 8 * HOUR + 4 * HOUR
    # within the silence threshold it still counts as reporting
    week = await _oee(kernel, line, *WEEK, now=saturday + timedelta(seconds=60), silent_after=120)
    assert week["availability"]["downtime_seconds"] == 0.0


async def test_a_station_heard_throughout_leaves_availability_whole(client, kernel, line, admin_headers):
    await _day_shift_only(client, admin_headers)
    await _heard(kernel, WEEK[1] - timedelta(seconds=30))
    week = await _oee(kernel, line, *WEEK, now=WEEK[1])
    assert week["availability"]["value"] == 1.0 and week["availability"]["downtime_seconds"] == 0.0


async def test_oee_bucket_through_the_api_and_bad_buckets(client, line, executive_headers):
    params = {"line": "LINE-P", "from": "2026-11-02", "to": "2026-11-15", "tz": "UTC"}
    r = await client.get(f"{API}/kpi/oee", params={**params, "bucket": "week"}, headers=executive_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b["period"] for b in body["buckets"]] == ["2026-W45", "2026-W46"] and "shifts" not in body
    assert {"oee", "computed_from", "availability", "performance", "quality", "start", "end"} <= set(body["buckets"][0])
    r = await client.get(f"{API}/kpi/oee", params=params, headers=executive_headers)
    assert "shifts" in r.json() and "buckets" not in r.json()
    for bad in ("month", "hour", ""):
        r = await client.get(f"{API}/kpi/oee", params={**params, "bucket": bad}, headers=executive_headers)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"]["code"] == "VALIDATION_ERROR"


def test_oee_is_the_product_of_the_exact_factors_rounded_once():
    """A line down all but 4 s of its planned 100,000 s that still made a part whose ideal cycle
    is 830 s (counts over the ideal: a mis-set cycle time): availability rounds to 0.0, but OEE is
    good × ideal ÷ planned = 0.0083 — not the 0.0 the rounded factors' product gives."""
    result = oee.factors(100_000.0, 99_996.0, 830.0, 1, 1, 1, timed=1)
    assert result["availability"]["value"] == 0.0
    assert result["oee"] == 0.0083 and result["computed_from"] == "factors"


def test_seconds_are_shown_to_the_microsecond_without_float_noise():
    """Downtime summed from intervals of a tenth and two tenths of a second is 0.3 s, not
    0.30000000000000004; periods' seconds add up to their range's as written."""
    tenth, fifth = timedelta(microseconds=100_000), timedelta(microseconds=200_000)
    later = MONDAY + timedelta(seconds=5)
    covered = sum(
        oee._covered([span], MONDAY, MONDAY + timedelta(hours=1))
        for span in [(MONDAY, MONDAY + tenth), (later, later + fifth)]
    )
    assert covered != 0.3  # the noise this guards against
    result = oee.factors(float(HOUR), covered, 0.0, 0, 0, 0)
    assert result["availability"]["downtime_seconds"] == 0.3
    assert result["availability"]["run_seconds"] == HOUR - 0.3 == 3599.7
