"""A station silent while the kernel was stopped is downtime: the OEE of those days shows it after the
station reports again, counted once with the watchdog's alert, and heartbeats within the limit add
nothing (docs/kpi.md, *Station silence*; issue 13, T1).

Real kernels on one database, stopped and started, on SQLite and PostgreSQL; the kernels' clock
and the OEE's ``now`` are injected, on a week two to three weeks after the test's real time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from mes_dashboard_kpi import oee
from mes_dashboard_kpi.ranges import Range
from sqlalchemy import select

from mes_kernel.app import create_app
from mes_kernel.db.models import Alert, Line, Station, StationToken, User
from mes_kernel.security import (
    STATION_TOKEN_PREFIX,
    create_access_token,
    hash_password,
    new_opaque_token,
    token_digest,
)
from mes_kernel.services.stations import watch_stations

API = "/api/v1"
_today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
MONDAY = _today + timedelta(days=14 + (7 - _today.weekday()) % 7)
SUNDAY = MONDAY + timedelta(days=6)
MINUTE, HOUR = 60.0, 3600.0
KEY = "station:ST-S1:silent"


@asynccontextmanager
async def _kernel(settings) -> AsyncIterator[tuple]:
    """A kernel started on ``settings`` (its lifespan: plugins, watchdog …) and a client; stopped on exit."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as client:
            yield app.state.kernel, client


async def _plant(kernel, client) -> dict[str, str]:
    """LINE-S with a day shift 06–14 every day (UTC) and station ST-S1, registered Monday 05:59;
    the station's token headers."""
    token = new_opaque_token(STATION_TOKEN_PREFIX)
    async with kernel.sessionmaker() as session:
        session.add(line := Line(code="LINE-S", name="Line S", config={}))
        manager = User(
            username="manager", role="production_manager", full_name="M", password_hash=hash_password("x", 4)
        )
        session.add(manager)
        await session.flush()
        station = Station(
            code="ST-S1", line_id=line.id, heartbeat={}, created_at=MONDAY + timedelta(hours=5, minutes=59)
        )
        session.add(station)
        await session.flush()
        session.add(StationToken(station_id=station.id, name="test", token_hash=token_digest(token)))
        await session.commit()
    bearer = create_access_token(
        subject="manager", role="production_manager", uid=manager.id, secret=kernel.settings.secret_key, minutes=15
    )
    shifts = [{"name": "Day", "start": "06:00", "end": "14:00", "days": list(range(7)), "planned_output": 100}]
    r = await client.put(
        f"{API}/lines/LINE-S/shifts", json={"shifts": shifts}, headers={"Authorization": f"Bearer {bearer}"}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {token}"}


async def _beat(kernel, client, station: dict[str, str], at: datetime) -> None:
    kernel.clock = lambda: at
    r = await client.post(f"{API}/stations/heartbeat", json={"agent_version": "1"}, headers=station)
    assert r.status_code == 200, r.text


async def _availability(kernel, since: datetime, until: datetime, now: datetime) -> dict:
    async with kernel.sessionmaker() as session:
        line = (await session.execute(select(Line).where(Line.code == "LINE-S"))).scalar_one()
        answer = await oee.oee(session=session, span=Range(since, until, ZoneInfo("UTC")), line=line, now=now)
    return answer["availability"]


async def _silences(kernel) -> list[Alert]:
    async with kernel.sessionmaker() as session:
        return list((await session.execute(select(Alert).where(Alert.key == KEY).order_by(Alert.id))).scalars())


# Heard Monday 06:00, 06:01:40 and 06:03:20 (100 s apart: within the 120 s limit), then nothing until
# Sunday 10:00 — the kernel was stopped in between. Monday to Saturday: 6 day shifts of 8 h, of
# which only 06:00–06:03:20 on Monday ran.
LAST_BEFORE = MONDAY + timedelta(hours=6, seconds=200)
BACK = SUNDAY + timedelta(hours=10)
PLANNED = 6 * 8 * HOUR
DOWN = PLANNED - 200


async def _heard_on_monday(settings) -> dict[str, str]:
    """The first kernel: the plant set up and the station heard on Monday morning; its token headers."""
    async with _kernel(settings) as (kernel, client):
        station = await _plant(kernel, client)
        for seconds in (0, 100, 200):
            await _beat(kernel, client, station, MONDAY + timedelta(hours=6, seconds=seconds))
        # heartbeats within the limit add nothing
        assert await _silences(kernel) == []
        monday = await _availability(kernel, MONDAY, MONDAY + timedelta(days=1), now=LAST_BEFORE + timedelta(minutes=1))
        assert monday["downtime_seconds"] == 0.0 and monday["planned_seconds"] == 200 + MINUTE
    return station


async def test_a_station_silent_while_the_kernel_was_stopped_is_downtime_once_it_reports(settings):
    station = await _heard_on_monday(settings)
    # the kernel is stopped until Sunday; started again, it hears the station at 10:00
    async with _kernel(settings) as (kernel, client):
        await _beat(kernel, client, station, BACK)
        week = await _availability(kernel, MONDAY, SUNDAY, now=BACK + timedelta(seconds=30))
        assert week == {
            "value": round(200 / PLANNED, 4),
            "planned_seconds": PLANNED,
            "downtime_seconds": DOWN,
            "run_seconds": 200.0,
        }
        # kept as the silence's alert, raised at its start and resolved at the heartbeat that ended it
        (alert,) = await _silences(kernel)
        assert (alert.raised_at, alert.resolved_at) == (LAST_BEFORE, BACK)
        assert alert.detail["code"] == "STATION_SILENT" and alert.detail["recorded_at_heartbeat"] is True
        assert alert.detail["silent_seconds"] == int((BACK - LAST_BEFORE).total_seconds())
        # Sunday's shift up to the heartbeat (06:00–10:00) is down too; after it, heard again
        whole = await _availability(kernel, MONDAY, SUNDAY + timedelta(days=1), now=BACK + timedelta(seconds=30))
        assert whole["downtime_seconds"] == DOWN + 4 * HOUR and whole["run_seconds"] == 200.0 + 30


async def test_the_watchdogs_alert_after_the_restart_and_the_heartbeat_count_the_silence_once(settings):
    station = await _heard_on_monday(settings)
    async with _kernel(settings) as (kernel, client):
        # the watchdog's first round after the restart (Sunday 09:59, no grace asked) raises the
        # alert at the last heartbeat; the station reports a minute later
        kernel.clock = lambda: BACK - timedelta(minutes=1)
        await watch_stations(kernel, kernel.state["notifier"])
        (raised,) = await _silences(kernel)
        assert raised.raised_at == LAST_BEFORE and raised.resolved_at is None
        await _beat(kernel, client, station, BACK)
        (alert,) = await _silences(kernel)  # resolved at the heartbeat, no second alert
        assert (alert.id, alert.raised_at, alert.resolved_at) == (raised.id, LAST_BEFORE, BACK)
        assert "recorded_at_heartbeat" not in alert.detail
        week = await _availability(kernel, MONDAY, SUNDAY, now=BACK + timedelta(seconds=30))
        assert (week["downtime_seconds"], week["run_seconds"]) == (DOWN, 200.0)
