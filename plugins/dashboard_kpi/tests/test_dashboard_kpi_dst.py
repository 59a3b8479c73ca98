"""Shifts across a daylight-saving change, on a plant in New York: a shift lasts what the wall clock
says (01:00–04:00 is 2 h the night the clocks spring forward, 4 h the night they fall back), and its
whole planned output is planned over that real length, in every bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from mes_dashboard_kpi.shifts import occurrences

from mes_kernel.db.models import Line

API = "/api/v1"
NEW_YORK = ZoneInfo("America/New_York")
# Sundays: 2026-03-08 the clocks spring forward at 02:00, 2026-11-01 they fall back at 02:00;
# 2026-03-01 is an ordinary Sunday
EARLY = {"name": "Early", "start": "01:00", "end": "04:00", "days": [6], "planned_output": 30}
DAYS = {"2026-03-01": 3, "2026-03-08": 2, "2026-11-01": 4}  # the shift's real hours


@pytest.fixture(autouse=True)
def _new_york(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_TIMEZONE", "America/New_York")
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


@pytest.mark.parametrize("day, hours", DAYS.items())
def test_a_shift_lasts_what_the_wall_clock_says_and_its_length_is_that(day, hours):
    midnight = datetime.fromisoformat(day).replace(tzinfo=NEW_YORK)
    [occ] = occurrences([EARLY], since=midnight.astimezone(UTC), until=(midnight + timedelta(days=1)).astimezone(UTC),
                        zone=NEW_YORK)  # fmt: skip
    assert occ.end - occ.start == timedelta(hours=hours)
    assert occ.full_seconds == hours * 3600  # the length its planned output is spread over


async def test_a_shift_across_a_clock_change_plans_its_whole_output_in_every_bucket(
    client, kernel, admin_headers, executive_headers
):
    async with kernel.sessionmaker() as session:
        session.add(Line(code="LINE-D", name="Line D", config={}))
        await session.commit()
    body = {"shifts": [EARLY], "effective_from": "2026-02-01"}  # before the line: an admin's (backdate)
    r = await client.put(f"{API}/lines/LINE-D/shifts", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    for day, hours in DAYS.items():
        params = {"line": "LINE-D", "from": day, "to": day}
        for bucket in ("day", "week", "hour"):
            r = await client.get(f"{API}/kpi/output", params={**params, "bucket": bucket}, headers=executive_headers)
            assert r.status_code == 200, r.text
            plans = [item["plan"] for item in r.json()["items"]]
            assert sum(plans) == pytest.approx(30), (day, bucket, plans)
            if bucket == "hour":  # spread evenly over its real hours
                assert [p for p in plans if p] == [pytest.approx(30 / hours)] * hours, (day, plans)
        r = await client.get(f"{API}/kpi/oee", params=params, headers=executive_headers)
        assert r.json()["availability"]["planned_seconds"] == hours * 3600, (day, r.text)
