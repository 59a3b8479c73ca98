"""Guards around archiving months and rebuilding rollups: the archive takes a month out of the
trace totals and idempotency keys in batches that resume after a kill without subtracting twice;
``mes kpi rebuild`` never rewrites the rollups of archived months; the commands refuse dates that
would archive the current month or rebuild the future; the SQLite file is private."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from mes_kernel.db import partitions
from mes_kernel.db.base import make_engine, make_sessionmaker
from mes_kernel.services import rollups
from mes_kernel.testing.helpers import TRACE_TOTALS_OFF as TOTALS_OFF
from mes_kernel.testing.helpers import run_sql as _sql

MES = Path(sys.executable).with_name("mes")
API = "/api/v1"
DEADLINE = 240.0  # seconds; a loaded 2-core machine starts `mes` in seconds, not minutes


def _env(settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_", "DATABASE_", "REDIS_"))}
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "FILES_DIR": str(tmp_path / "files"),
            "LOG_LEVEL": "WARNING",
            "COLUMNS": "300",
            "NO_COLOR": "1",
        }
    )
    return env


def _mes(settings, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MES), *args], env=_env(settings, tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=300
    )


KEY = "hour_start, line_id, process_id, station_id, product"
ROLLUPS = (
    f"SELECT {KEY}, sum(total), sum(passed), sum(first_total), sum(first_passed), sum(final_passed) "
    f"FROM kpi_hourly GROUP BY {KEY} ORDER BY {KEY}"
)
DEFECTS = f"SELECT {KEY}, defect_code, sum(count) FROM kpi_hourly_defects GROUP BY {KEY}, defect_code ORDER BY 1, 6"
ITEMS = (
    "SELECT process_id, item, first_record_id, last_record_id, hour_start, last_passed FROM process_items ORDER BY 1, 2"
)


async def _snapshot(settings) -> tuple:
    return tuple([await _sql(settings, q) for q in (ROLLUPS, DEFECTS, ITEMS)])


async def _move(settings, record_id: int, *, received: datetime, happened: datetime) -> None:
    """Make a stored record (its key and its history entry too) one received at ``received`` that
    happened at ``happened`` at the station."""
    await _sql(
        settings,
        "UPDATE process_record_keys k SET created_at = :at FROM process_records r "
        "WHERE r.id = :id AND k.idempotency_key = r.idempotency_key",
        at=received,
        id=record_id,
    )
    await _sql(
        settings,
        "UPDATE process_records SET created_at = :at, event_at = :ev WHERE id = :id",
        at=received,
        ev=happened,
        id=record_id,
    )
    await _sql(
        settings,
        "UPDATE trace_events SET received_at = :at, recorded_at = :ev "
        "WHERE kind = 'process_record' AND source_id = :id",
        at=received,
        ev=happened,
        id=record_id,
    )


async def _until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.2)


@pytest.mark.postgres_only
async def test_an_archive_killed_between_uncount_batches_resumes_without_subtracting_twice_and_rebuild_keeps_it(
    settings, client, make_lot, worker_headers, tmp_path
):
    now = partitions.Month.of(datetime.now(UTC))
    old1 = partitions.Month(now.year - 2, now.month)
    old2 = old1.next()
    engine = make_engine(settings)
    try:
        await partitions.ensure_partitions(engine, today=old1.start.date(), ahead=1)
    finally:
        await engine.dispose()

    lot_a, lot_b, lot_c = await make_lot(), await make_lot(), await make_lot()
    ids = {}
    for name, lot, result in (
        ("a1", lot_a, "pass"),
        ("a2", lot_a, "fail"),
        ("b1", lot_b, "pass"),
        ("c1", lot_c, "fail"),
        ("c2", lot_c, "pass"),
    ):
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "lot_number": lot["lot_number"],
            "process_id": "ASSY-10",
            "worker_id": "W-1",
            "result": result,
            "defect_code": "X" if result == "fail" else None,
        }
        r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
        assert r.status_code == 201, r.text
        ids[name] = (r.json()["id"], body["idempotency_key"])
    for name in ("a1", "a2", "b1"):  # received (and done) in old1
        at = old1.start + timedelta(days=3)
        await _move(settings, ids[name][0], received=at, happened=at)
    # c1: received in old2 from a station whose clock ran five days into the next month; its LOT's
    # retest c2 is online (this month): the item's first attempt is archived, its latest is not.
    ahead = old2.next().start + timedelta(days=5, hours=3, minutes=7)
    await _move(settings, ids["c1"][0], received=old2.start + timedelta(days=3), happened=ahead)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await rollups.rebuild(session)  # rollups as the moved records would have made them
    finally:
        await engine.dispose()
    before = await _snapshot(settings)
    trace_id = {
        name: (
            await _sql(
                settings,
                "SELECT id FROM trace_events WHERE kind = 'process_record' AND source_id = :id",
                id=ids[name][0],
            )
        )[0][0]
        for name in ids
    }
    assert trace_id["a1"] < trace_id["a2"] < trace_id["b1"]

    # LOT B's total is locked by another transaction: the archive, one row per batch, takes a1's
    # and a2's events out (two committed batches), then waits at b1's; it is killed there.
    lot_totals = "SELECT subject_id, events FROM trace_totals WHERE scope = 'lot' AND subject_id = ANY(:ids)"
    start = dict(await _sql(settings, lot_totals, ids=[lot_a["id"], lot_b["id"]]))
    blocker_engine = make_engine(settings)
    blocker = await blocker_engine.connect()
    await blocker.begin()
    await blocker.execute(
        text("SELECT 1 FROM trace_totals WHERE scope = 'lot' AND subject_id = :id FOR UPDATE"), {"id": lot_b["id"]}
    )
    backups = tmp_path / "backups"
    args = (
        "db",
        "partitions",
        "archive",
        "--before",
        old2.next().start.date().isoformat(),
        "--backup-dir",
        str(backups),
        "--batch-rows",
        "1",
    )
    run = subprocess.Popen(
        [str(MES), *args],
        env=_env(settings, tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = "SELECT state, trace_after, keys_after FROM archived_months WHERE month_start = :m"

        async def waiting_at_b1() -> bool:
            row = await _sql(settings, state, m=old1.start)
            waits = await _sql(
                settings,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE OF t%'",
            )
            return bool(row) and row[0][1] == trace_id["a2"] and waits[0][0] == 1

        await _until(waiting_at_b1, "the archive to wait at b1's batch")
        half = dict(await _sql(settings, lot_totals, ids=[lot_a["id"], lot_b["id"]]))
        assert half == {lot_a["id"]: start[lot_a["id"]] - 2, lot_b["id"]: start[lot_b["id"]]}  # a1, a2 out
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
        await blocker.rollback()
        await blocker.close()
        await blocker_engine.dispose()
    assert await _sql(settings, state, m=old1.start) == [("detached", trace_id["a2"], 0)]
    assert half == dict(await _sql(settings, lot_totals, ids=[lot_a["id"], lot_b["id"]]))

    again = _mes(settings, *args, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{old1.label}: {old1.name} 3 rows" in again.stdout and f"{old2.label}: {old2.name} 1 rows" in again.stdout
    # each batch's progress says what it did (trace events, then records), once
    said = (again.stdout + again.stderr).splitlines()
    progress = [line for line in said if line.startswith(f"{old2.label}: 1 ")]
    assert progress == [f"{old2.label}: 1 trace events taken out of the history totals",
                        f"{old2.label}: 1 records read for their latest station time",
                        f"{old2.label}: 1 idempotency keys past the retry window pruned"], said
    assert await _sql(settings, TOTALS_OFF) == []  # every event out of the totals exactly once
    assert await _sql(
        settings,
        "SELECT count(*) FROM process_record_keys WHERE idempotency_key = ANY(:k)",
        k=[ids[n][1] for n in ("a1", "a2", "b1", "c1")],
    ) == [(0,)]
    months = await _sql(settings, "SELECT month_start, state, last_event_at FROM archived_months ORDER BY 1")
    assert [(m, s) for m, s, _ in months] == [(old1.start, "archived"), (old2.start, "archived")]
    assert months[1][2] == ahead
    folder = backups / "partitions"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # Rebuilding everything keeps the archived months' rollups (and c1's hour, five days past them).
    first = (ahead + timedelta(days=1)).date().isoformat()
    rebuilt = _mes(settings, "kpi", "rebuild", tmp_path=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"{old1.start:%Y-%m}, {old2.start:%Y-%m} archived" in rebuilt.stderr
    assert f"rebuilding from {first}" in rebuilt.stderr
    assert await _snapshot(settings) == before
    refused = _mes(settings, "kpi", "rebuild", "--since", old2.start.date().isoformat(), tmp_path=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert f"{old2.start:%Y-%m} is archived" in refused.stderr and f"--since {first}" in refused.stderr
    assert await _snapshot(settings) == before
    assert _mes(settings, "kpi", "rebuild", "--since", first, tmp_path=tmp_path).returncode == 0
    assert await _snapshot(settings) == before

    [dump] = folder.glob(f"process_data_{old2.label}-*.dump")
    restored = _mes(settings, "db", "partitions", "restore", str(dump), tmp_path=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert await _sql(settings, "SELECT month_start FROM archived_months") == [(old1.start,)]


@pytest.mark.sqlite_only
def test_dates_that_would_archive_this_month_or_rebuild_the_future_are_refused_naming_the_latest_allowed(
    settings, tmp_path
):
    today = datetime.now(UTC).date()
    first = today.replace(day=1)
    tomorrow = today + timedelta(days=1)
    for before in (tomorrow, first + timedelta(days=40), today if today.day > 1 else tomorrow):
        r = _mes(settings, "db", "partitions", "archive", "--before", before.isoformat(), tmp_path=tmp_path)
        assert r.returncode == 2, r.stderr
        assert f"latest allowed date is {first.isoformat()}" in r.stderr and f"{first:%Y-%m}" in r.stderr
    r = _mes(
        settings,
        "db",
        "partitions",
        "archive",
        "--before",
        first.isoformat(),
        "--backup-dir",
        str(tmp_path / "b"),
        tmp_path=tmp_path,
    )
    assert r.returncode == 0 and "nothing to archive" in r.stderr, r.stderr
    r = _mes(settings, "kpi", "rebuild", "--since", tomorrow.isoformat(), tmp_path=tmp_path)
    assert r.returncode == 2 and "is in the future" in r.stderr and today.isoformat() in r.stderr, r.stderr
    for option in (("db", "partitions", "archive", "--before"), ("kpi", "rebuild", "--since")):
        for bad in ("2026-13-01", "2026-02-30", "20260101", "2026-W01-1", "yesterday", ""):
            r = _mes(settings, *option, bad, tmp_path=tmp_path)
            assert r.returncode == 2 and f"{option[-1]} must be a date like 2026-01-31" in r.stderr, (bad, r.stderr)
    r = _mes(settings, "kpi", "rebuild", "--since", today.isoformat(), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr


def test_the_sqlite_database_its_wal_and_the_first_admin_note_are_private(tmp_path):
    """``mes db upgrade`` and ``mes serve``'s first run on a new SQLite path (umask 022, as most
    systems): folder 0700, database and its -wal/-shm 0600; an existing 0644 file is tightened."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_", "DATABASE_", "REDIS_"))}
    url = f"sqlite+aiosqlite:///{tmp_path}/var/mes.db"
    env.update({"DATABASE_URL": url, "FILES_DIR": str(tmp_path / "var/files"), "LOG_LEVEL": "WARNING"})
    code = (
        "import asyncio, os\n"
        "os.umask(0o022)\n"
        "from mes_kernel.cli import _ensure_first_admin\n"
        "from mes_kernel.migrate import upgrade\n"
        "from mes_kernel.settings import Settings\n"
        "from mes_kernel.db.base import make_engine\n"
        "from sqlalchemy import text\n"
        "s = Settings(_env_file=None)\n"
        "upgrade(s)\n"
        "asyncio.run(_ensure_first_admin(s))\n"
        "async def write():\n"
        "    engine = make_engine(s)\n"
        "    async with engine.begin() as conn:\n"
        "        await conn.execute(text('CREATE TABLE probe (x INTEGER)'))\n"
        "    async with engine.connect() as conn:  # the pool keeps the connection, and the WAL, open\n"
        "        await conn.execute(text('SELECT count(*) FROM probe'))\n"
        "        open(os.environ['MODES'], 'w').write(' '.join(oct(os.stat(p).st_mode & 0o777) for p in\n"
        "            (s.database_url.split(':///')[1] + x for x in ('', '-wal', '-shm'))))\n"
        "    await engine.dispose()\n"
        "asyncio.run(write())\n"
    )
    env["MODES"] = str(tmp_path / "modes")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=300)
    assert (tmp_path / "modes").read_text() == "0o600 0o600 0o600"  # while open: the WAL and its index
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "var/mes.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var/initial-admin.txt").stat().st_mode) == 0o600
    os.chmod(tmp_path / "var/mes.db", 0o644)  # as an earlier version left it
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from mes_kernel.migrate import upgrade\n"
            "from mes_kernel.settings import Settings\nupgrade(Settings(_env_file=None))",
        ],
        env=env,
        cwd=tmp_path,
        check=True,
        timeout=300,
    )
    assert stat.S_IMODE((tmp_path / "var/mes.db").stat().st_mode) == 0o600


@pytest.mark.postgres_only
async def test_a_month_with_a_record_far_ahead_of_it_is_not_archived_and_the_records_are_named(
    settings, client, make_lot, worker_headers, tmp_path
):
    """F14: a station time of 9999-12-31 in a month to archive: nothing is detached, exit 1, the
    record named with what to do — archived, it would keep every rebuild from starting."""
    now = partitions.Month.of(datetime.now(UTC))
    old = partitions.Month(now.year - 2, now.month)
    engine = make_engine(settings)
    try:
        await partitions.ensure_partitions(engine, today=old.start.date(), ahead=1)
    finally:
        await engine.dispose()
    lot = await make_lot()
    ids = []
    for _ in range(2):
        body = {"idempotency_key": uuid.uuid4().hex, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
                "worker_id": "W-1", "result": "pass"}  # fmt: skip
        r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    received = old.start + timedelta(days=3)
    await _move(settings, ids[0], received=received, happened=received)
    await _move(settings, ids[1], received=received, happened=datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC))
    before = old.next().start.date().isoformat()
    refused = _mes(settings, "db", "partitions", "archive", "--before", before, "--backup-dir", str(tmp_path),
                   tmp_path=tmp_path)  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    message = " ".join(refused.stderr.split())
    assert f"#{ids[1]} " in message and "station time 9999-12-31 09:59 UTC" in message, message
    assert f"#{ids[0]} " not in message
    assert f"mes kpi rebuild --since {old.start:%Y-%m}-01" in message
    assert await _sql(settings, "SELECT count(*) FROM archived_months") == [(0,)]
    assert await _sql(settings, "SELECT count(*) FROM process_records WHERE id = ANY(:ids)", ids=ids) == [(2,)]
    # Corrected as the message says, the month archives
    await _sql(settings, "UPDATE process_records SET event_at = created_at WHERE id = :id", id=ids[1])
    done = _mes(settings, "db", "partitions", "archive", "--before", before, "--backup-dir", str(tmp_path),
                tmp_path=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert await _sql(settings, "SELECT state, last_event_at FROM archived_months") == [("archived", received)]


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    ("latest", "says"),
    [
        (datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC), "no rebuild can ever start after them"),
        (datetime(2031, 6, 1, 1, 0, tzinfo=UTC), "no rebuild can start before 2031-06-02"),
    ],
)
async def test_a_month_archived_with_a_far_station_time_makes_rebuild_say_so_not_crash(
    settings, client, make_lot, worker_headers, tmp_path, latest, says
):
    """F14: a month archived before the archive checked station times, its latest one 9999-12-31
    (Python's last day) or in 2031: `mes kpi rebuild`, with or without --since, exits 1 naming the
    month and what to do; no traceback, no rollup touched."""
    lot = await make_lot()
    body = {"idempotency_key": uuid.uuid4().hex, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
            "worker_id": "W-1", "result": "pass"}  # fmt: skip
    assert (await client.post(f"{API}/process-records", json=body, headers=worker_headers)).status_code == 201
    month = datetime(datetime.now(UTC).year - 1, 1, 1, tzinfo=UTC)
    await _sql(
        settings,
        "INSERT INTO archived_months (month_start, state, trace_after, keys_after, last_event_at, dump, updated_at) "
        "VALUES (:m, 'archived', 0, 0, :latest, '/nowhere.dump', now())",
        m=month,
        latest=latest,
    )
    before = await _snapshot(settings)
    for args in ((), ("--since", datetime.now(UTC).date().isoformat())):
        run = _mes(settings, "kpi", "rebuild", *args, tmp_path=tmp_path)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr and "rebuilding from" not in run.stderr
        message = " ".join(run.stderr.split())
        assert f"{month:%Y-%m} (up to {latest:%Y-%m-%d %H:%M} UTC)" in message and says in message, message
        assert "mes db partitions restore" in message
    assert await _snapshot(settings) == before
