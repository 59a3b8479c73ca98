"""Station silence counts against the line the station was on during it: each silence alert names
its line (``detail.line_id``), a line configuration that moves a silent station splits its alert at
the move, and the station's own "silent now" interval on its new line starts no earlier than the
move (docs/kpi.md, *Station silence*; ``mes_kernel.services.silence.move_silence``).

A real kernel on SQLite and PostgreSQL; its clock (the heartbeats' receipt, the watchdog's round, the
move) and the OEE's ``now`` are injected, on a Monday two to three weeks after the test's real time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mes_dashboard_kpi import oee
from mes_dashboard_kpi.ranges import Range
from sqlalchemy import select, update

from mes_kernel.db.models import Alert, Line, Station
from mes_kernel.services.stations import watch_stations

API = "/api/v1"
_today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
MONDAY = _today + timedelta(days=14 + (7 - _today.weekday()) % 7)
T0 = MONDAY + timedelta(hours=6)  # the day shift's start, 06:00 UTC
HOUR = 3600.0
KEY = "station:ST-01:silent"


async def _lines(client, admin_headers, manager_headers, kernel) -> dict[str, int]:
    """LINE-A (ST-01's, from ``station_headers``) and LINE-B (created by its configuration), each
    with a day shift 06–22 every day; their ids by code. ST-01 registered at 05:59 Monday."""
    r = await client.put(f"{API}/lines/LINE-B", json={"name": "Line B"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    shifts = [{"name": "Day", "start": "06:00", "end": "22:00", "days": list(range(7)), "planned_output": 100}]
    for code in ("LINE-A", "LINE-B"):
        r = await client.put(f"{API}/lines/{code}/shifts", json={"shifts": shifts}, headers=manager_headers)
        assert r.status_code == 200, r.text
    async with kernel.sessionmaker() as session:
        await session.execute(
            update(Station).where(Station.code == "ST-01").values(created_at=T0 - timedelta(minutes=1))
        )
        await session.commit()
        return dict((await session.execute(select(Line.code, Line.id))).all())


async def _beat(client, headers, kernel, at: datetime) -> None:
    kernel.clock = lambda: at
    r = await client.post(f"{API}/stations/heartbeat", json={"agent_version": "1"}, headers=headers)
    assert r.status_code == 200, r.text


async def _down(kernel, code: str, now: datetime) -> tuple[float, float]:
    """Monday's planned and down seconds of line ``code``, read at ``now``."""
    async with kernel.sessionmaker() as session:
        line = (await session.execute(select(Line).where(Line.code == code))).scalar_one()
        span = Range(MONDAY, MONDAY + timedelta(days=1), ZoneInfo("UTC"))
        figures = (await oee.oee(session=session, span=span, line=line, now=now))["availability"]
    return figures["planned_seconds"], figures["downtime_seconds"]


async def _silences(kernel) -> list[tuple[datetime, datetime | None, int | None]]:
    async with kernel.sessionmaker() as session:
        rows = (await session.execute(select(Alert).where(Alert.key == KEY).order_by(Alert.id))).scalars()
        return [(a.raised_at, a.resolved_at, a.detail.get("line_id")) for a in rows]


async def test_a_station_moved_while_silent_is_down_on_each_line_for_its_part(
    client, kernel, station_headers, admin_headers, manager_headers
):
    ids = await _lines(client, admin_headers, manager_headers, kernel)
    await _beat(client, station_headers, kernel, T0)
    kernel.clock = lambda: T0 + timedelta(hours=1)
    await watch_stations(kernel, kernel.state["notifier"])
    assert await _silences(kernel) == [(T0, None, ids["LINE-A"])]
    # 10:00: ST-01 leaves LINE-A (its row by hand: no API takes a station off its line) and joins
    # LINE-B by applying LINE-B's configuration — silent on
    moved = T0 + timedelta(hours=4)
    async with kernel.sessionmaker() as session:
        await session.execute(update(Station).where(Station.code == "ST-01").values(line_id=None))
        await session.commit()
    kernel.clock = lambda: moved
    body = {"name": "Line B", "stations": [{"code": "ST-01"}]}
    r = await client.put(f"{API}/lines/LINE-B", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert await _silences(kernel) == [(T0, moved, ids["LINE-A"]), (moved, None, ids["LINE-B"])]
    noon = T0 + timedelta(hours=6)
    # LINE-A: down 06–10, its alert's part (the station left it); LINE-B: down 10–12, not from the
    # last heartbeat at 06:00 (its open alert and the station's own silent-now interval both start
    # at the move)
    assert await _down(kernel, "LINE-A", noon) == (6 * HOUR, 4 * HOUR)
    assert await _down(kernel, "LINE-B", noon) == (6 * HOUR, 2 * HOUR)
    kernel.clock = lambda: noon
    await watch_stations(kernel, kernel.state["notifier"])  # the moved alert is open: nothing raised
    # 13:00: heard again; the heartbeat resolves the moved alert, the split stays
    back = T0 + timedelta(hours=7)
    await _beat(client, station_headers, kernel, back)
    assert await _silences(kernel) == [(T0, moved, ids["LINE-A"]), (moved, back, ids["LINE-B"])]
    after = back + timedelta(seconds=60)
    assert await _down(kernel, "LINE-A", after) == (7 * HOUR + 60, 4 * HOUR)
    assert await _down(kernel, "LINE-B", after) == (7 * HOUR + 60, 3 * HOUR)


async def test_an_alert_counts_for_the_line_it_names(client, kernel, station_headers, admin_headers, manager_headers):
    """ST-01 is on LINE-A and heard throughout; its alerts name the line it was on. One naming
    LINE-B counts for LINE-B, one naming no line for none, one without ``line_id`` (written before
    alerts named their line) for LINE-A, from the last heartbeat its detail names; one naming LINE-A
    counts from when it was raised, not from that heartbeat."""
    ids = await _lines(client, admin_headers, manager_headers, kernel)
    async with kernel.sessionmaker() as session:
        far = MONDAY + timedelta(days=30)
        await session.execute(update(Station).where(Station.code == "ST-01").values(last_heartbeat_at=far))

        def silence(hours: float, until: float, **detail) -> Alert:
            return Alert(key=KEY, severity="warning", source="station", message="silent",
                         detail={"code": "STATION_SILENT", "station": "ST-01", **detail},
                         raised_at=MONDAY + timedelta(hours=hours), resolved_at=MONDAY + timedelta(hours=until))

        heard = (MONDAY + timedelta(hours=11)).isoformat()
        late_heard = (MONDAY + timedelta(hours=14)).isoformat()
        session.add_all(
            [
                silence(8, 9, line_id=ids["LINE-B"]),
                silence(9, 10, line_id=None),
                silence(11.5, 12, last_heartbeat_at=heard),
                silence(14.5, 15, last_heartbeat_at=late_heard, line_id=ids["LINE-A"]),
            ]
        )
        await session.commit()
    evening = MONDAY + timedelta(hours=22)
    assert await _down(kernel, "LINE-A", evening) == (16 * HOUR, HOUR + HOUR / 2)
    assert await _down(kernel, "LINE-B", evening) == (16 * HOUR, HOUR)


async def _move(client, admin_headers, kernel, line: str | None, at: datetime) -> None:
    kernel.clock = lambda: at
    r = await client.put(f"{API}/stations/ST-01/line", json={"line": line}, headers=admin_headers)
    assert r.status_code == 200, r.text


async def test_a_move_before_the_silence_alert_splits_the_alert_the_watchdog_raises_later(
    client, kernel, station_headers, admin_headers, manager_headers
):
    """Heard at 06:00, moved to LINE-B at 06:01 — under the 120 s after which a station is silent,
    so no alert to split yet — and to LINE-A and back to LINE-B later still, before any watchdog
    round: the alert raised at 08:00 is cut at each move, every line down for its part only."""
    ids = await _lines(client, admin_headers, manager_headers, kernel)
    await _beat(client, station_headers, kernel, T0)
    first, second, third = (T0 + timedelta(minutes=m) for m in (1, 30, 60))
    await _move(client, admin_headers, kernel, "LINE-B", first)
    await _move(client, admin_headers, kernel, "LINE-A", second)
    await _move(client, admin_headers, kernel, "LINE-B", third)
    assert await _silences(kernel) == []
    kernel.clock = lambda: T0 + timedelta(hours=2)
    await watch_stations(kernel, kernel.state["notifier"])
    a, b = ids["LINE-A"], ids["LINE-B"]
    assert await _silences(kernel) == [(T0, first, a), (first, second, b), (second, third, a), (third, None, b)]
    eight = T0 + timedelta(hours=2)
    assert await _down(kernel, "LINE-A", eight) == (2 * HOUR, 60 + 30 * 60)
    assert await _down(kernel, "LINE-B", eight) == (2 * HOUR, 29 * 60 + HOUR)
    # a move now splits the open alert as before; the kept moves were spent on the alerts above
    fourth = T0 + timedelta(hours=3)
    await _move(client, admin_headers, kernel, "LINE-A", fourth)
    back = T0 + timedelta(hours=4)
    await _beat(client, station_headers, kernel, back)
    assert await _silences(kernel) == [
        (T0, first, a), (first, second, b), (second, third, a), (third, fourth, b), (fourth, back, a)
    ]  # fmt: skip
    async with kernel.sessionmaker() as session:
        assert (await session.execute(select(Station.line_moves).where(Station.code == "ST-01"))).scalar() == []


async def test_a_move_before_the_silence_alert_splits_the_silence_the_heartbeat_records(
    client, kernel, station_headers, admin_headers, manager_headers
):
    """No watchdog ran (the kernel was down): the heartbeat that ends the silence records it cut at
    the move. A move after which the station reports within 120 s records nothing, and the
    heartbeat forgets the move: it does not split the next silence."""
    ids = await _lines(client, admin_headers, manager_headers, kernel)
    await _beat(client, station_headers, kernel, T0)
    moved = T0 + timedelta(minutes=1)
    await _move(client, admin_headers, kernel, "LINE-B", moved)
    back = T0 + timedelta(hours=3)
    await _beat(client, station_headers, kernel, back)
    a, b = ids["LINE-A"], ids["LINE-B"]
    assert await _silences(kernel) == [(T0, moved, a), (moved, back, b)]
    async with kernel.sessionmaker() as session:
        rows = (await session.execute(select(Alert).where(Alert.key == KEY).order_by(Alert.id))).scalars().all()
    assert [r.detail.get("moved_to_line_id") for r in rows] == [b, None]
    assert [r.detail.get("moved_from_line_id") for r in rows] == [None, a]
    assert [r.detail["silent_seconds"] for r in rows] == [60, 3 * 3600]
    assert await _down(kernel, "LINE-A", back) == (3 * HOUR, 60)
    assert await _down(kernel, "LINE-B", back) == (3 * HOUR, 3 * HOUR - 60)
    # heard again 60 s after a move back: no silence, and the move is forgotten
    await _move(client, admin_headers, kernel, "LINE-A", back + timedelta(seconds=30))
    await _beat(client, station_headers, kernel, back + timedelta(seconds=90))
    later = back + timedelta(hours=1)
    await _beat(client, station_headers, kernel, later)
    assert (await _silences(kernel))[2:] == [(back + timedelta(seconds=90), later, a)]


async def test_silent_now_after_a_move_before_any_alert_counts_each_line_for_its_part(
    client, kernel, station_headers, admin_headers, manager_headers
):
    """No alert raised yet (no watchdog round), the station's row alone: silent since 06:00, moved
    to LINE-B at 06:01 — LINE-A is down 60 s, LINE-B from the move on."""
    await _lines(client, admin_headers, manager_headers, kernel)
    await _beat(client, station_headers, kernel, T0)
    await _move(client, admin_headers, kernel, "LINE-B", T0 + timedelta(minutes=1))
    assert await _silences(kernel) == []
    two = T0 + timedelta(hours=2)
    assert await _down(kernel, "LINE-A", two) == (2 * HOUR, 60)
    assert await _down(kernel, "LINE-B", two) == (2 * HOUR, 2 * HOUR - 60)


async def test_silence_alerts_name_their_lines_by_code_too(
    client, kernel, station_headers, admin_headers, manager_headers
):
    """Line ids are the database's; people and ``GET /lines`` know lines by code: every line id of a
    silence alert's detail has its code beside it (null for no line), moves included."""
    await _lines(client, admin_headers, manager_headers, kernel)
    await _beat(client, station_headers, kernel, T0)
    await _move(client, admin_headers, kernel, "LINE-B", T0 + timedelta(minutes=1))
    kernel.clock = lambda: T0 + timedelta(hours=1)
    await watch_stations(kernel, kernel.state["notifier"])
    await _move(client, admin_headers, kernel, None, T0 + timedelta(hours=2))
    await _beat(client, station_headers, kernel, T0 + timedelta(hours=3))
    r = await client.get(f"{API}/alerts", params={"include_resolved": "true"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    named = sorted(
        (a["raised_at"], a["detail"].get("line"), a["detail"].get("moved_from_line"), a["detail"].get("moved_to_line"))
        for a in r.json()["items"] if a["key"] == KEY
    )  # fmt: skip
    assert [n[1:] for n in named] == [
        ("LINE-A", None, "LINE-B"), ("LINE-B", "LINE-A", None), (None, "LINE-B", None)
    ], named  # fmt: skip
