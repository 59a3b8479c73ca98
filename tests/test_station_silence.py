"""A station's silence is kept as one ``station:<code>:silent`` alert from its last heartbeat to the
next, whoever saw it: the watchdog while it ran, else the heartbeat that ended it — two heartbeats
at once, a watchdog that read the station just before it reported, a kernel just restarted and a
station never heard before (mes_kernel.services.silence; docs/kpi.md, *Station silence*).

The kernel's clock is injected: heartbeats are received when the test says."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from mes_kernel.db.models import Alert, Station
from mes_kernel.services.silence import raise_silence
from mes_kernel.services.stations import watch_stations

KEY = "station:ST-01:silent"
T0 = datetime.now(UTC).replace(microsecond=0)  # ST-01 is registered at the test's real time, just before


async def _beat(client, headers, kernel, at: datetime) -> None:
    kernel.clock = lambda: at
    r = await client.post("/api/v1/stations/heartbeat", json={"agent_version": "1"}, headers=headers)
    assert r.status_code == 200, r.text


async def _silences(kernel) -> list[tuple[datetime, datetime | None]]:
    async with kernel.sessionmaker() as session:
        rows = (await session.execute(select(Alert).where(Alert.key == KEY).order_by(Alert.id))).scalars()
        return [(a.raised_at, a.resolved_at) for a in rows]


async def test_heartbeats_within_the_limit_keep_no_silence(client, station_headers, kernel):
    for seconds in (0, 60, 180, 300):  # 120 s apart at most: STATION_SILENT_AFTER_SECONDS
        await _beat(client, station_headers, kernel, T0 + timedelta(seconds=seconds))
    assert await _silences(kernel) == []


async def test_a_silence_no_watchdog_saw_is_recorded_by_the_heartbeat_that_ends_it(client, station_headers, kernel):
    await _beat(client, station_headers, kernel, T0)
    await _beat(client, station_headers, kernel, T0 + timedelta(days=6))
    assert await _silences(kernel) == [(T0, T0 + timedelta(days=6))]
    async with kernel.sessionmaker() as session:
        alert = (await session.execute(select(Alert).where(Alert.key == KEY))).scalar_one()
        line_a = (await session.execute(select(Station.line_id).where(Station.code == "ST-01"))).scalar_one()
    assert alert.severity == "warning" and alert.source == "station"
    assert alert.detail == {
        "code": "STATION_SILENT",
        "station": "ST-01",
        "silent_seconds": 6 * 86400,
        "last_heartbeat_at": T0.isoformat(),
        "never_heard": False,
        "recorded_at_heartbeat": True,
        "line_id": line_a,  # the station's line then: the silence counts against it wherever the station goes
        "line": "LINE-A",  # and its code, as people know it
    }


async def test_two_heartbeats_at_once_end_one_silence_once(client, station_headers, kernel):
    await _beat(client, station_headers, kernel, T0)
    back = T0 + timedelta(hours=1)
    kernel.clock = lambda: back
    beat = {"agent_version": "1"}
    answers = await asyncio.gather(
        *(client.post("/api/v1/stations/heartbeat", json=beat, headers=station_headers) for _ in range(4))
    )
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    assert await _silences(kernel) == [(T0, back)]


async def test_the_heartbeat_resolves_the_watchdogs_alert_at_its_receipt(client, station_headers, kernel):
    await _beat(client, station_headers, kernel, T0)
    kernel.clock = lambda: T0 + timedelta(minutes=10)
    await watch_stations(kernel, kernel.state["notifier"])
    await watch_stations(kernel, kernel.state["notifier"])  # raised once while it stays open
    assert await _silences(kernel) == [(T0, None)]  # raised at the silence's start, the last heartbeat
    async with kernel.sessionmaker() as session:
        raised = (await session.execute(select(Alert).where(Alert.key == KEY))).scalar_one()
        line_a = (await session.execute(select(Station.line_id).where(Station.code == "ST-01"))).scalar_one()
    assert raised.detail["line_id"] == line_a
    await _beat(client, station_headers, kernel, T0 + timedelta(minutes=30))
    assert await _silences(kernel) == [(T0, T0 + timedelta(minutes=30))]
    async with kernel.sessionmaker() as session:
        alert = (await session.execute(select(Alert).where(Alert.key == KEY))).scalar_one()
    assert alert.detail["silent_seconds"] == 1800 and "1800 s" in alert.message  # the whole silence
    await watch_stations(kernel, kernel.state["notifier"])
    assert await _silences(kernel) == [(T0, T0 + timedelta(minutes=30))]


async def test_a_watchdog_that_read_the_station_before_it_reported_raises_nothing(client, station_headers, kernel):
    await _beat(client, station_headers, kernel, T0)
    async with kernel.sessionmaker() as session:
        seen = (await session.execute(select(Station).where(Station.code == "ST-01"))).scalar_one()
    await _beat(client, station_headers, kernel, T0 + timedelta(minutes=1))  # reports between read and raise
    async with kernel.sessionmaker() as session:
        assert await raise_silence(session=session, station=seen, age=600.0) is None
    assert await _silences(kernel) == []
    async with kernel.sessionmaker() as session:  # read after the heartbeat, still silent: raised
        seen = (await session.execute(select(Station).where(Station.code == "ST-01"))).scalar_one()
        assert await raise_silence(session=session, station=seen, age=600.0) == "Station ST-01 silent for 600 s"
    assert await _silences(kernel) == [(T0 + timedelta(minutes=1), None)]


async def test_after_a_restart_the_watchdog_gives_stations_the_limit_to_report(client, station_headers, kernel):
    await _beat(client, station_headers, kernel, T0)
    started = T0 + timedelta(days=2)  # the kernel was down for two days
    notifier = kernel.state["notifier"]
    kernel.clock = lambda: started + timedelta(seconds=30)
    await watch_stations(kernel, notifier, watching_since=started)
    assert await _silences(kernel) == []  # it could not report while nobody listened
    kernel.clock = lambda: started + timedelta(seconds=121)
    await watch_stations(kernel, notifier, watching_since=started)
    assert await _silences(kernel) == [(T0, None)]  # silent since its last heartbeat all the same


async def test_a_station_heard_first_long_after_its_registration_keeps_that_silence(client, station_headers, kernel):
    registered = T0 - timedelta(days=3)
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-01").values(created_at=registered))
        await session.commit()
    await _beat(client, station_headers, kernel, T0)
    assert await _silences(kernel) == [(registered, T0)]  # as the OEE counted it while never heard
    async with kernel.sessionmaker() as session:
        alert = (await session.execute(select(Alert).where(Alert.key == KEY))).scalar_one()
    assert alert.detail["never_heard"] is True and alert.detail["last_heartbeat_at"] is None


async def test_a_station_heard_soon_after_its_registration_keeps_nothing(client, station_headers, kernel):
    async with kernel.sessionmaker() as session:
        registered = (await session.execute(select(Station.created_at).where(Station.code == "ST-01"))).scalar_one()
    await _beat(client, station_headers, kernel, registered + timedelta(seconds=100))
    assert await _silences(kernel) == []


async def test_an_alert_left_open_from_an_earlier_silence_ends_at_the_next_heartbeat(client, station_headers, kernel):
    # raised by a kernel before this rule, while silent since T0; the station reported at T0 + 1 h
    # and the kernel stopped before its watchdog resolved the alert
    async with kernel.sessionmaker() as session:
        heard = T0 + timedelta(hours=1)
        await session.execute(update(Station).where(Station.code == "ST-01").values(last_heartbeat_at=heard))
        session.add(
            Alert(
                key=KEY,
                severity="warning",
                source="station",
                message="Station ST-01 silent for 150 s",
                detail={"code": "STATION_SILENT", "station": "ST-01", "last_heartbeat_at": T0.isoformat()},
                raised_at=T0 + timedelta(seconds=150),
            )
        )
        await session.commit()
    await _beat(client, station_headers, kernel, T0 + timedelta(hours=1, seconds=30))
    # closed at the heartbeat that came after it (the one it missed), not at this one
    assert await _silences(kernel) == [(T0 + timedelta(seconds=150), T0 + timedelta(hours=1))]


async def test_a_station_never_heard_is_alerted_from_its_registration_until_its_first_heartbeat(
    client, station_headers, kernel
):
    """Registered on a line and never started: the OEE counts it down from its registration, and the
    watchdog says so (the alert explains the line's availability); its first heartbeat resolves that
    alert at its receipt — one silence, not a second one recorded."""
    registered = T0 - timedelta(minutes=10)
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-01").values(created_at=registered))
        await session.commit()
    notifier = kernel.state["notifier"]
    kernel.clock = lambda: registered + timedelta(seconds=100)
    await watch_stations(kernel, notifier)
    assert await _silences(kernel) == []  # within the limit of its registration
    kernel.clock = lambda: T0
    await watch_stations(kernel, notifier)
    await watch_stations(kernel, notifier)  # raised once while it stays open
    assert await _silences(kernel) == [(registered, None)]
    async with kernel.sessionmaker() as session:
        alert = (await session.execute(select(Alert).where(Alert.key == KEY))).scalar_one()
    assert alert.detail["never_heard"] is True and alert.detail["last_heartbeat_at"] is None
    assert "never heard" in alert.message
    await _beat(client, station_headers, kernel, T0 + timedelta(minutes=5))
    assert await _silences(kernel) == [(registered, T0 + timedelta(minutes=5))]


async def test_after_a_restart_a_station_never_heard_gets_the_limit_too(client, station_headers, kernel):
    registered = T0 - timedelta(days=2)
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-01").values(created_at=registered))
        await session.commit()
    notifier = kernel.state["notifier"]
    kernel.clock = lambda: T0 + timedelta(seconds=30)
    await watch_stations(kernel, notifier, watching_since=T0)
    assert await _silences(kernel) == []
    kernel.clock = lambda: T0 + timedelta(seconds=121)
    await watch_stations(kernel, notifier, watching_since=T0)
    assert await _silences(kernel) == [(registered, None)]


# ------------------------------------------------------------------ a line configuration moves a silent station
async def _onto_line_b(client, admin_headers, kernel, at: datetime) -> int:
    """ST-01 taken off LINE-A (no API does that: its row, by hand) and put on LINE-B by applying
    LINE-B's configuration at ``at`` (the kernel's clock); LINE-B's id."""
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-01").values(line_id=None))
        await session.commit()
    kernel.clock = lambda: at
    body = {"name": "Line B", "stations": [{"code": "ST-01"}]}
    r = await client.put("/api/v1/lines/LINE-B", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    async with kernel.sessionmaker() as session:
        return (await session.execute(select(Station.line_id).where(Station.code == "ST-01"))).scalar_one()


async def _alerts(kernel) -> list[Alert]:
    async with kernel.sessionmaker() as session:
        return list((await session.execute(select(Alert).where(Alert.key == KEY).order_by(Alert.id))).scalars())


async def test_a_move_splits_the_open_silence_alert_and_the_next_heartbeat_ends_the_new_one(
    client, station_headers, admin_headers, kernel
):
    await _beat(client, station_headers, kernel, T0)
    kernel.clock = lambda: T0 + timedelta(minutes=10)
    await watch_stations(kernel, kernel.state["notifier"])
    (raised,) = await _alerts(kernel)
    line_a = raised.detail["line_id"]
    moved_at = T0 + timedelta(minutes=40)
    line_b = await _onto_line_b(client, admin_headers, kernel, moved_at)
    old, new = await _alerts(kernel)
    assert (old.id, old.raised_at, old.resolved_at) == (raised.id, T0, moved_at)
    assert old.detail["line_id"] == line_a and old.detail["moved_to_line_id"] == line_b
    assert old.detail["silent_seconds"] == 40 * 60
    assert (new.raised_at, new.resolved_at) == (moved_at, None)
    assert new.detail["line_id"] == line_b and new.detail["moved_from_line_id"] == line_a
    assert new.detail["last_heartbeat_at"] == T0.isoformat() and new.detail["never_heard"] is False
    kernel.clock = lambda: T0 + timedelta(minutes=50)
    await watch_stations(kernel, kernel.state["notifier"])  # the moved alert is the open one: nothing more
    assert len(await _alerts(kernel)) == 2
    back = T0 + timedelta(hours=1)
    await _beat(client, station_headers, kernel, back)
    assert [(a.raised_at, a.resolved_at) for a in await _alerts(kernel)] == [(T0, moved_at), (moved_at, back)]
    # the same configuration again moves nothing
    kernel.clock = lambda: back + timedelta(hours=1)
    r = await client.put("/api/v1/lines/LINE-B", json={"name": "Line B", "stations": [{"code": "ST-01"}]},
                         headers=admin_headers)
    assert r.status_code == 200, r.text
    assert len(await _alerts(kernel)) == 2


async def test_a_move_with_no_open_silence_alert_writes_none(client, station_headers, admin_headers, kernel):
    await _beat(client, station_headers, kernel, T0)
    await _onto_line_b(client, admin_headers, kernel, T0 + timedelta(seconds=30))
    assert await _alerts(kernel) == []


async def test_a_move_gives_an_alert_raised_before_alerts_named_their_line_its_line_then(
    client, station_headers, admin_headers, kernel
):
    """An alert of a kernel before this rule: raised at the watchdog's round, 150 s after the last
    heartbeat, no ``line_id``, for a station on no line. Moved onto LINE-B, it names no line (the
    station's then) and starts at the heartbeat (what the OEE counted it from); an alert left open
    from an earlier silence is closed at the heartbeat after it, not carried on."""
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-01").values(line_id=None))
        await session.commit()
    await _beat(client, station_headers, kernel, T0)
    async with kernel.sessionmaker() as session:
        def legacy(raised: datetime, heard: datetime) -> Alert:
            detail = {"code": "STATION_SILENT", "station": "ST-01", "last_heartbeat_at": heard.isoformat()}
            return Alert(key=KEY, severity="warning", source="station", message="silent", raised_at=raised,
                         detail=detail)

        session.add_all(
            [
                legacy(T0 - timedelta(hours=2), T0 - timedelta(hours=3)),  # an earlier silence's, left open
                legacy(T0 + timedelta(seconds=150), T0),
            ]
        )
        await session.commit()
    moved_at = T0 + timedelta(minutes=20)
    line_b = await _onto_line_b(client, admin_headers, kernel, moved_at)
    earlier, old, new = await _alerts(kernel)
    assert (earlier.raised_at, earlier.resolved_at) == (T0 - timedelta(hours=2), T0)
    assert "moved_to_line_id" not in earlier.detail
    assert (old.raised_at, old.resolved_at) == (T0, moved_at)
    assert "line_id" in old.detail and old.detail["line_id"] is None and old.detail["moved_to_line_id"] == line_b
    assert (new.raised_at, new.resolved_at, new.detail["line_id"]) == (moved_at, None, line_b)
    assert new.detail["moved_from_line_id"] is None
