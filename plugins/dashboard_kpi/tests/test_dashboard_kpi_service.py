"""The KPI service functions against real databases: SQLite always, PostgreSQL when reachable."""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from mes_dashboard_kpi import kpi
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from mes_kernel.db.base import Base
from mes_kernel.db.models import Alert, Device, DeviceAction, Lot, Process, ProcessRecord, Station
from mes_kernel.services.rollups import add_to_rollups

NOW = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
TODAY = datetime(2026, 11, 26, tzinfo=UTC)
_KIT_PG = os.environ.get("MES_TEST_DATABASE_URL")  # the kernel test kit's server, when CI names one
PG_ADMIN_URL = os.environ.get("MES_DASHBOARD_TEST_PG") or (
    _KIT_PG.rsplit("/", 1)[0] + "/postgres" if _KIT_PG else "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
_keys = itertools.count()


async def _postgres_engine():
    """A scratch database of our own on the local PostgreSQL, or skip when there is none."""
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"mes_dashboard_kpi_{uuid.uuid4().hex[:8]}"
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server, no permission: nothing to test against
        await admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} not usable: {exc}")
    return admin, name, create_async_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def session(request, tmp_path):
    admin = name = None
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'kpi.db'}")
    else:
        admin, name, engine = await _postgres_engine()
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        session.add_all([Process(id="ASSY-10", name="Assembly"), Process(id="TEST-20", name="Test")])
        await session.flush()
        yield session
    await engine.dispose()
    if admin is not None:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _lot(session, lot_number: str, status: str = "in_progress", closed_at=None) -> Lot:
    lot = Lot(lot_number=lot_number, product="NH-100", quantity=10, status=status, closed_at=closed_at)
    session.add(lot)
    await session.flush()
    return lot


async def _record(
    session,
    lot: Lot,
    *,
    at: datetime,
    result: str = "pass",
    process_id: str = "ASSY-10",
    serial_number: str | None = None,
    defect_code: str | None = None,
    recorded_at=None,
) -> None:
    key = f"k-{next(_keys)}"
    record = ProcessRecord(
        idempotency_key=key,
        request_hash=key,
        lot_id=lot.id,
        lot_number=lot.lot_number,
        process_id=process_id,
        worker_id="W-1",
        serial_number=serial_number,
        result=result,
        defect_code=defect_code,
        recorded_at=recorded_at,
        event_at=recorded_at or at,
        created_by="user:test",
        created_at=at,
    )
    session.add(record)
    await session.flush()
    # The kernel counts a record into the rollups in the transaction that stores it; so do we.
    columns = {c.name: getattr(record, c.name) for c in ProcessRecord.__table__.columns}
    await add_to_rollups(session, [{**columns, "_product": lot.product}])


def test_day_window_follows_the_plant_time_zone():
    seoul = kpi.day_window(now=NOW, zone=ZoneInfo("Asia/Seoul"))
    assert seoul == (datetime(2026, 11, 25, 15, tzinfo=UTC), datetime(2026, 11, 26, 15, tzinfo=UTC))
    # The day clocks spring forward in New York has 23 hours.
    start, end = kpi.day_window(now=datetime(2026, 3, 8, 18, tzinfo=UTC), zone=ZoneInfo("America/New_York"))
    assert (start, end - start) == (datetime(2026, 3, 8, 5, tzinfo=UTC), timedelta(hours=23))


def test_unknown_time_zone_is_a_value_error():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        kpi.plant_zone("Mars/Olympus")


async def test_lots_by_status_lists_every_status_and_closures_today(session):
    await _lot(session, "L-1")
    await _lot(session, "L-2")
    await _lot(session, "L-3", status="on_hold")
    await _lot(session, "L-4", status="closed", closed_at=TODAY + timedelta(hours=1))
    await _lot(session, "L-5", status="closed", closed_at=TODAY - timedelta(hours=1))
    lots = await kpi.lots_by_status(session=session, closed_since=TODAY)
    assert lots["by_status"] == {"created": 0, "in_progress": 2, "on_hold": 1, "closed": 2, "scrapped": 0}
    assert (lots["total"], lots["closed_today"]) == (5, 1)


async def test_first_pass_yield_counts_a_reworked_unit_as_not_first_pass(session):
    lot = await _lot(session, "L-FPY")
    t = TODAY + timedelta(hours=8)
    await _record(session, lot, at=t, serial_number="SN-1", result="fail", defect_code="SCRATCH")
    await _record(session, lot, at=t + timedelta(minutes=5), serial_number="SN-1", result="pass")
    await _record(session, lot, at=t, serial_number="SN-2", result="pass")
    await _record(session, lot, at=t, serial_number="SN-2", result="pass", process_id="TEST-20")
    await _record(session, lot, at=t, result="pass")  # a LOT-level record counts the LOT as one item
    await _record(session, lot, at=TODAY - timedelta(hours=2), serial_number="SN-3", result="fail")  # yesterday
    # Done yesterday by an offline station, received today: it belongs to yesterday.
    await _record(session, lot, at=t, serial_number="SN-4", result="fail", recorded_at=TODAY - timedelta(hours=1))

    results = await kpi.process_results(session=session, since=TODAY, until=TODAY + timedelta(days=1))
    assert (results["total"], results["pass"], results["fail"]) == (5, 4, 1)
    assert (results["first_attempts"], results["first_pass"]) == (4, 3)
    assert results["first_pass_yield"] == 0.75


async def test_first_pass_yield_is_none_when_nothing_was_tested(session):
    results = await kpi.process_results(session=session, since=TODAY, until=TODAY + timedelta(days=1))
    assert results == {
        "total": 0,
        "pass": 0,
        "fail": 0,
        "first_attempts": 0,
        "first_pass": 0,
        "first_pass_yield": None,
    }


async def test_top_defects_most_frequent_first_failures_only(session):
    lot = await _lot(session, "L-DEF")
    t = TODAY + timedelta(hours=9)
    for code, n in [("SOLDER", 3), ("SCRATCH", 1), ("LABEL", 2)]:
        for i in range(n):
            await _record(session, lot, at=t, serial_number=f"{code}-{i}", result="fail", defect_code=code)
    await _record(session, lot, at=t, serial_number="P-1", result="pass", defect_code="NOTE")
    await _record(
        session, lot, at=TODAY - timedelta(hours=1), serial_number="Y-1", result="fail", defect_code="SCRATCH"
    )
    top = await kpi.top_defects(session=session, since=TODAY, until=TODAY + timedelta(days=1), limit=2)
    assert top == [{"defect_code": "SOLDER", "count": 3}, {"defect_code": "LABEL", "count": 2}]


async def test_throughput_has_24_hourly_buckets_by_event_time(session):
    lot = await _lot(session, "L-TP")
    await _record(session, lot, at=NOW - timedelta(minutes=10))  # 10:xx
    await _record(session, lot, at=NOW - timedelta(minutes=20), result="fail")  # 10:xx
    await _record(session, lot, at=NOW, recorded_at=NOW - timedelta(hours=3))  # happened at 07:30
    await _record(session, lot, at=NOW - timedelta(hours=23, minutes=30))  # 11:00 yesterday, first bucket
    await _record(session, lot, at=NOW - timedelta(hours=25))  # too old

    series = await kpi.throughput_per_hour(session=session, now=NOW)
    assert len(series) == 24
    assert series[0]["hour"] == "2026-11-25T11:00:00+00:00" and series[0]["records"] == 1
    assert series[-1] == {"hour": "2026-11-26T10:00:00+00:00", "records": 2, "pass": 1, "fail": 1}
    assert next(p for p in series if p["hour"].startswith("2026-11-26T07"))["records"] == 1
    assert sum(p["records"] for p in series) == 4


async def test_stations_devices_and_device_actions_are_counted(session):
    session.add_all(
        [
            Station(code="ST-01", last_heartbeat_at=NOW - timedelta(seconds=30)),
            Station(code="ST-02", last_heartbeat_at=NOW - timedelta(minutes=10)),
            Station(code="ST-03"),
            Device(code="PRN-01", kind="label_printer", driver="zpl_tcp"),
            Device(code="PRN-02", kind="label_printer", driver="zpl_tcp", enabled=False),
            Device(code="SCN-01", kind="barcode", driver="hid"),
        ]
    )
    for outcome, at in [("ok", NOW), ("ok", NOW), ("failed", NOW), ("ok", TODAY - timedelta(hours=1))]:
        session.add(
            DeviceAction(
                action="print",
                plugin="label_printer",
                device="PRN-01",
                driver="zpl_tcp",
                actor="user:test",
                outcome=outcome,
                created_at=at,
            )
        )
    await session.flush()

    stations = await kpi.station_counts(session=session, now=NOW, silent_after_seconds=120)
    assert stations == {"total": 3, "online": 1, "silent": 1, "never_seen": 1}
    devices = await kpi.device_counts(session=session)
    assert devices == {"total": 3, "enabled": 2, "by_kind": {"label_printer": 2, "barcode": 1}}
    actions = await kpi.device_actions(session=session, since=TODAY)
    assert actions == {"total": 3, "by_outcome": {"ok": 2, "failed": 1}}
    # The summary reads all of these in one UNION ALL: the same numbers.
    counts = await kpi.plant_counts(session=session, now=NOW, since=TODAY, silent_after_seconds=120)
    assert (counts["stations"], counts["devices"], counts["device_actions_today"]) == (stations, devices, actions)
    assert counts["lots"] == await kpi.lots_by_status(session=session, closed_since=TODAY)
    assert counts["alerts"] == await kpi.open_alert_counts(session=session)


async def test_alerts_newest_first_open_only_unless_asked(session):
    session.add_all(
        [
            Alert(
                key="breaker:label_printer:PRN-01",
                severity="critical",
                source="breakers",
                message="printer breaker open",
                raised_at=NOW - timedelta(minutes=5),
            ),
            Alert(
                key="station:ST-02:silent",
                severity="warning",
                source="stations",
                message="ST-02 silent",
                raised_at=NOW - timedelta(minutes=1),
            ),
            Alert(
                key="station:ST-03:silent",
                severity="warning",
                source="stations",
                message="ST-03 silent",
                raised_at=NOW - timedelta(hours=2),
                resolved_at=NOW - timedelta(hours=1),
            ),
        ]
    )
    await session.flush()

    open_only = await kpi.list_alerts(session=session)
    assert [a["key"] for a in open_only["items"]] == ["station:ST-02:silent", "breaker:label_printer:PRN-01"]
    assert (open_only["open"], open_only["open_by_severity"]) == (2, {"critical": 1, "warning": 1})
    assert open_only["items"][0]["raised_at"] == "2026-11-26T10:29:00+00:00"

    everything = await kpi.list_alerts(session=session, include_resolved=True)
    assert len(everything["items"]) == 3 and everything["items"][-1]["open"] is False
    critical = await kpi.list_alerts(session=session, severity="critical")
    assert [a["severity"] for a in critical["items"]] == ["critical"]


async def test_alerts_list_open_ones_first_then_the_latest_resolved(session):
    """A six-day silence recorded by the heartbeat that ended it (raised six days back, resolved a
    minute ago) is among the newest of the history, not six days down it; open alerts come first,
    even one raised three days ago."""

    def alert(key: str, raised: timedelta, resolved: timedelta | None = None) -> Alert:
        return Alert(key=key, severity="warning", source="station", message=key, raised_at=NOW - raised,
                     resolved_at=None if resolved is None else NOW - resolved)

    session.add_all(
        [
            alert("recorded-six-days", timedelta(days=6), timedelta(minutes=1)),
            alert("open-three-days", timedelta(days=3)),
            alert("resolved-this-morning", timedelta(hours=2), timedelta(minutes=30)),
            alert("open-just-now", timedelta(minutes=5)),
            alert("resolved-yesterday", timedelta(days=1, hours=1), timedelta(days=1)),
            alert("resolved-this-morning-too", timedelta(hours=3), timedelta(minutes=30)),  # same moment: id
        ]
    )
    await session.flush()
    everything = await kpi.list_alerts(session=session, include_resolved=True)
    assert [a["key"] for a in everything["items"]] == [
        "open-just-now",
        "open-three-days",
        "recorded-six-days",
        "resolved-this-morning-too",
        "resolved-this-morning",
        "resolved-yesterday",
    ]
    first_three = await kpi.list_alerts(session=session, include_resolved=True, limit=3)
    assert [a["key"] for a in first_three["items"]] == ["open-just-now", "open-three-days", "recorded-six-days"]
    open_only = await kpi.list_alerts(session=session)
    assert [a["key"] for a in open_only["items"]] == ["open-just-now", "open-three-days"]


async def test_summary_puts_it_all_together(session):
    lot = await _lot(session, "L-SUM")
    await _record(
        session, lot, at=NOW - timedelta(minutes=1), serial_number="SN-9", result="fail", defect_code="SOLDER"
    )
    summary = await kpi.summary(session=session, now=NOW, zone=ZoneInfo("Asia/Seoul"), silent_after_seconds=120)
    assert summary["timezone"] == "Asia/Seoul"
    assert summary["day_start"] == "2026-11-25T15:00:00+00:00"
    assert summary["lots"]["by_status"]["in_progress"] == 1
    assert summary["records_today"]["fail"] == 1 and summary["records_today"]["first_pass_yield"] == 0.0
    assert summary["top_defects"] == [{"defect_code": "SOLDER", "count": 1}]
    assert len(summary["throughput_per_hour"]) == 24
    assert {"stations", "devices", "device_actions_today", "alerts"} <= summary.keys()
