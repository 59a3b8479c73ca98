"""Shift calendars over time: a change applies from its moment on and leaves the past as it was
(plan, availability, OEE); nothing is planned before a line's first calendar; who may date a
change back; and shifts stay on the plant's clock whatever time zone a reader asks in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_dashboard_kpi_reports import API, DAY, EVERY_DAY, SHIFTS
from test_dashboard_kpi_reports import _uncached as _uncached  # noqa: F401  (fixtures)
from test_dashboard_kpi_reports import line as line  # noqa: F401  (fixture: LINE-K, made now)

from mes_kernel.db.models import Line

OTHER = {  # the calendar after the change: the night shift dropped, a longer day shift
    "shifts": [{"name": "Long", "start": "05:00", "end": "17:00", "days": EVERY_DAY, "planned_output": 600}]
}
pytestmark = pytest.mark.usefixtures("line")
SINCE = DAY - timedelta(days=1)  # every range here is in the past: planned time does not grow
UNTIL = DAY + timedelta(days=1)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def test_a_calendar_put_today_plans_nothing_before_it(client, manager_headers, executive_headers, viewer_headers):
    """F1: a line's calendar set today gave January a plan and 24 h of planned time."""
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=SHIFTS, headers=manager_headers)
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    body = (await client.get(f"{API}/lines/LINE-K/shifts", headers=viewer_headers)).json()
    assert body["shifts"] == r.json()["shifts"] and [s["name"] for s in body["shifts"]] == ["Day", "Night"]
    assert body["effective_from"] in {_hour(now).isoformat(), _hour(now - timedelta(minutes=5)).isoformat()}
    [version] = body["versions"]
    assert (version["effective_from"], version["until"]) == (body["effective_from"], None)
    assert version["updated_by"] == "user:manager"
    for params in (
        {"from": "2026-01-05", "to": "2026-01-06"},
        {"from": SINCE.isoformat(), "to": UNTIL.isoformat()},
    ):
        r = await client.get(
            f"{API}/kpi/output", params={**params, "line": "LINE-K", "bucket": "day"}, headers=executive_headers
        )
        assert r.status_code == 200 and {i["plan"] for i in r.json()["items"]} == {0.0}, r.text
        r = await client.get(f"{API}/kpi/oee", params={**params, "line": "LINE-K"}, headers=executive_headers)
        assert r.json()["availability"]["planned_seconds"] == 0.0 and r.json()["shifts"] == [], r.text


@pytest.mark.parametrize("change", [3, 14], ids=["in-the-night-shift", "between-shifts"])
async def test_a_range_across_a_change_is_the_old_calendar_before_it_and_the_new_one_after(
    client, kernel, admin_headers, manager_headers, executive_headers, change
):
    """LINE-K runs SHIFTS, then OTHER from ``change`` o'clock on DAY; LINE-1 runs SHIFTS all along,
    LINE-2 OTHER. LINE-K's plan per hour, planned time and shifts over the range are LINE-1's
    before the change and LINE-2's after it (a night shift running across the change is split)."""
    async with kernel.sessionmaker() as session:
        session.add_all([Line(code="LINE-1", name="1", config={}), Line(code="LINE-2", name="2", config={})])
        await session.commit()
    back = (SINCE - timedelta(days=1)).date().isoformat()
    at = DAY + timedelta(hours=change)
    for code, body in (("LINE-K", SHIFTS), ("LINE-1", SHIFTS), ("LINE-2", OTHER)):
        r = await client.put(f"{API}/lines/{code}/shifts", json={**body, "effective_from": back}, headers=admin_headers)
        assert r.status_code == 200, r.text

    async def read(code, since, until):
        params = {"line": code, "from": since.isoformat(), "to": until.isoformat()}
        oee = (await client.get(f"{API}/kpi/oee", params=params, headers=executive_headers)).json()
        output = await client.get(f"{API}/kpi/output", params={**params, "bucket": "hour"}, headers=executive_headers)
        return oee, {i["start"]: i["plan"] for i in output.json()["items"]}

    before_oee, before_plan = await read("LINE-K", SINCE, UNTIL)
    r = await client.put(
        f"{API}/lines/LINE-K/shifts", json={**OTHER, "effective_from": at.isoformat()}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert [(v["effective_from"], v["until"]) for v in r.json()["versions"]] == [
        (datetime.fromisoformat(back + "T00:00:00+00:00").isoformat(), at.isoformat()),
        (at.isoformat(), None),
    ]
    k_oee, k_plan = await read("LINE-K", SINCE, UNTIL)
    one_oee, one_plan = await read("LINE-1", SINCE, at)
    two_oee, two_plan = await read("LINE-2", at, UNTIL)
    assert k_plan == {**one_plan, **two_plan}
    assert k_oee["availability"]["planned_seconds"] == (
        one_oee["availability"]["planned_seconds"] + two_oee["availability"]["planned_seconds"]
    )
    assert k_oee["shifts"] == [{**s, "line": "LINE-K"} for s in one_oee["shifts"] + two_oee["shifts"]]
    # the time before the change kept its calendar: the earlier range reads as it did
    assert {h: p for h, p in k_plan.items() if h < at.isoformat()} == {
        h: p for h, p in before_plan.items() if h < at.isoformat()
    }
    old_before, _ = await read("LINE-K", SINCE, at)
    assert old_before["shifts"] == [s for s in before_oee["shifts"] if s["end"] <= at.isoformat()] + [
        {**s, "end": at.isoformat()} for s in before_oee["shifts"] if s["start"] < at.isoformat() < s["end"]
    ]


async def test_a_change_is_dated_back_to_today_by_managers_and_further_only_with_shifts_backdate(
    client, admin_headers, manager_headers, viewer_headers
):
    async def versions():
        return (await client.get(f"{API}/lines/LINE-K/shifts", headers=viewer_headers)).json()["versions"]

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for value in (yesterday, (datetime.now(UTC) - timedelta(days=1)).isoformat(), "2026-01-05"):
        r = await client.put(
            f"{API}/lines/LINE-K/shifts", json={**SHIFTS, "effective_from": value}, headers=manager_headers
        )
        assert r.status_code == 403, (value, r.text)
        detail = r.json()["detail"]
        assert (detail["code"], detail["permission"], detail["field"]) == (
            "FORBIDDEN",
            "shifts:backdate",
            "effective_from",
        )
    assert await versions() == []  # nothing written
    outside = ("0001-01-01", "9999-12-31T23:00:00-14:00", "9999-01-01", "9999-01-01T00:00:00Z")  # 1900-9998 only
    for value in ("yesterday", "2026-01-05T06:00:00", "2026-02-30", *outside):
        r = await client.put(
            f"{API}/lines/LINE-K/shifts", json={**SHIFTS, "effective_from": value}, headers=admin_headers
        )
        assert r.status_code == 422, (value, r.text)
        assert (r.json()["detail"]["code"], r.json()["detail"]["field"]) == ("INVALID_EFFECTIVE_FROM", "effective_from")
    assert await versions() == []
    # today (a date: the plant's midnight) is allowed, from the hour the line was created in
    today = datetime.now(UTC).date().isoformat()
    body = {**SHIFTS, "effective_from": today}
    r = await client.put(f"{API}/lines/LINE-K/shifts", json=body, headers=manager_headers)
    assert r.status_code == 200, r.text
    [version] = r.json()["versions"]
    assert version["effective_from"] >= today
    # a change scheduled ahead: the calendar in force stays until then
    ahead = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={**OTHER, "effective_from": ahead}, headers=manager_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["name"] for s in body["shifts"]] == ["Day", "Night"]
    assert [v["effective_from"][:10] for v in body["versions"]] == [version["effective_from"][:10], ahead]
    # the admin dates one back, before the line existed (a line registered late)
    r = await client.put(
        f"{API}/lines/LINE-K/shifts", json={**OTHER, "effective_from": "2026-01-05"}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["versions"][0]["effective_from"] == "2026-01-05T00:00:00+00:00"
    assert len(r.json()["versions"]) == 3


async def test_the_readers_time_zone_moves_days_not_shifts(client, admin_headers, executive_headers):
    """F3: the plant is on UTC, its day shift 06:00-14:00. Asked in Asia/Seoul the shifts still
    start at 06:00 and 22:00 UTC (not 06:00 Seoul), and the same span answers the same."""
    back = (SINCE - timedelta(days=1)).date().isoformat()
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={**SHIFTS, "effective_from": back}, headers=admin_headers)
    assert r.status_code == 200, r.text
    span = {"line": "LINE-K", "from": SINCE.isoformat(), "to": UNTIL.isoformat()}
    answers = {}
    for tz in ("UTC", "Asia/Seoul", "America/New_York", "Asia/Kolkata"):
        oee = (await client.get(f"{API}/kpi/oee", params={**span, "tz": tz}, headers=executive_headers)).json()
        output = await client.get(
            f"{API}/kpi/output", params={**span, "tz": tz, "bucket": "hour"}, headers=executive_headers
        )
        answers[tz] = (oee, output.json())
    assert all(answer == answers["UTC"] for answer in answers.values())
    seoul_day = DAY.date().isoformat()
    oee = (
        await client.get(
            f"{API}/kpi/oee",
            params={"line": "LINE-K", "from": seoul_day, "to": seoul_day, "tz": "Asia/Seoul"},
            headers=executive_headers,
        )
    ).json()
    assert oee["from"] == (DAY - timedelta(hours=9)).isoformat()  # the Seoul day
    starts = [(s["shift"], s["start"][11:16]) for s in oee["shifts"]]
    # the Seoul day's shifts: the night from 22:00 UTC before it, the day shift 06:00-14:00 UTC
    # (on the Seoul clock they would have started at 21:00 and 13:00 UTC)
    assert starts == [("Night", "22:00"), ("Day", "06:00")], starts


async def test_the_production_view_plans_the_readers_day_with_the_plants_shifts(client, admin_headers, manager_headers):
    """``/kpi/lines/now`` asked in Asia/Seoul: the Seoul day [15:00 UTC yesterday, 15:00 UTC today)
    holds the plant's (UTC) 20:00-23:00 shift of yesterday (UTC) only; read on the Seoul clock the
    shift would be 11:00-14:00 UTC of the other day."""
    now = datetime.now(UTC)
    seoul_day = (now + timedelta(hours=9)).date()
    utc_weekday = (seoul_day - timedelta(days=1)).weekday()
    shifts = [{"name": "Eve", "start": "20:00", "end": "23:00", "days": [utc_weekday], "planned_output": 300}]
    back = (now - timedelta(days=3)).date().isoformat()
    r = await client.put(
        f"{API}/lines/LINE-K/shifts", json={"shifts": shifts, "effective_from": back}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"{API}/kpi/lines/now", params={"tz": "Asia/Seoul"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["plan"] == 300.0


async def test_a_version_is_dated_on_the_hour_so_that_hour_s_parts_count_with_its_planned_time(
    client, admin_headers, manager_headers, executive_headers
):
    """A version from 04:30 planned 04:30–05:00 but counted none of the 04:00 hour's parts (rollup
    hours count for the shift their first instant is in): OEE "no output" while the line made parts.
    Every ``effective_from`` is rounded down to its whole UTC hour."""
    at = DAY.replace(hour=9, minute=40, second=12)
    r = await client.put(
        f"{API}/lines/LINE-K/shifts", json={**OTHER, "effective_from": at.isoformat()}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["versions"][0]["effective_from"] == DAY.replace(hour=9).isoformat()
    # a production manager's mid-hour "now" is on the hour too
    now = datetime.now(UTC)
    r = await client.put(
        f"{API}/lines/LINE-K/shifts",
        json={**OTHER, "effective_from": (now + timedelta(hours=2)).isoformat()},
        headers=manager_headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["versions"][-1]["effective_from"] == _hour(now + timedelta(hours=2)).isoformat()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"planned_output": "10"}, ["shifts", 0, "planned_output"]),  # a string of digits is no number
        ({"planned_output": True}, ["shifts", 0, "planned_output"]),  # nor is a boolean (it read as 1)
        ({"planned_output": 10.5}, ["shifts", 0, "planned_output"]),
        ({"days": [0, "1"]}, ["shifts", 0, "days", 1]),
        ({"plan": 5}, ["shifts", 0, "plan"]),  # a misspelt key is refused, not ignored
    ],
)
async def test_a_calendar_s_numbers_are_numbers_and_its_keys_known(client, admin_headers, change, field):
    shift = {**SHIFTS["shifts"][0], **change}
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={"shifts": [shift]}, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert [e["loc"][1:] for e in r.json()["detail"]["errors"]] == [field], r.text
    assert (await client.get(f"{API}/lines/LINE-K/shifts", headers=admin_headers)).json()["versions"] == []


async def test_a_calendar_s_unknown_key_is_refused_and_shift_names_compare_as_read(client, admin_headers):
    r = await client.put(f"{API}/lines/LINE-K/shifts", json={**SHIFTS, "effective_form": "2026-01-01"},
                         headers=admin_headers)  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["loc"] == ["body", "effective_form"], r.text
    night = SHIFTS["shifts"][1]
    for name in ("day", "ＤＡＹ", "DAY"):  # "Day" in another case or full-width: one name
        body = {"shifts": [SHIFTS["shifts"][0], {**night, "name": name}]}
        r = await client.put(f"{API}/lines/LINE-K/shifts", json=body, headers=admin_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "SHIFTS_OVERLAP", (name, r.text)
    assert (await client.get(f"{API}/lines/LINE-K/shifts", headers=admin_headers)).json()["versions"] == []
