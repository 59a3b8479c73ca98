"""Trace events partitioned with the process records (PostgreSQL): an archived month takes both,
a killed archive run finishes when run again, ``mes db partitions restore`` brings a month's
histories back whole with true totals, and a history page reads one index range per partition.
SQLite keeps one table and the commands say so."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text

from mes_kernel.db import archive, partitions
from mes_kernel.db.base import make_engine, make_sessionmaker
from mes_kernel.services import trace
from mes_kernel.testing.helpers import TRACE_TOTALS_OFF as TOTALS_OFF
from mes_kernel.testing.helpers import run_sql as _sql

MES = Path(sys.executable).with_name("mes")
API = "/api/v1"


def _mes(settings, *args: str, tmp_path: Path, path_first: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_", "DATABASE_", "REDIS_"))}
    env.update({"DATABASE_URL": settings.database_url, "FILES_DIR": str(tmp_path / "files"), "LOG_LEVEL": "WARNING",
                "COLUMNS": "300", "NO_COLOR": "1"})
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(MES), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)



async def _history(client, headers, lot_number: str) -> dict:
    r = await client.get(f"{API}/lots/{lot_number}/history", params={"limit": 500}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _killing_pg_dump(folder: Path, month: partitions.Month) -> Path:
    """A ``pg_dump`` that runs the real one, then kills the command that called it (SIGKILL, as a
    power cut would) when it dumped ``month``: the dump is written, nothing after it ran."""
    folder.mkdir()
    script = folder / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'"{shutil.which("pg_dump")}" "$@" || exit $?\n'
        f'case "$*" in *_{month.label}*) kill -9 "$PPID" ;; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.postgres_only
async def test_an_archive_killed_half_way_finishes_when_run_again_and_restore_brings_histories_back_whole(
    settings, client, make_lot, worker_headers, tmp_path
):
    lot = await make_lot(units=2)
    posted = []
    for i in range(6):
        body = {"idempotency_key": uuid.uuid4().hex, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
                "worker_id": "W-1", "result": "pass", "serial_number": lot["serial_numbers"][i % 2]}
        r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
        assert r.status_code == 201, r.text
        posted.append((body, r.json()["id"]))
    now = partitions.Month.of(datetime.now(UTC))
    old1 = partitions.Month(now.year - 2, now.month)  # two old months, well before "archive"
    old2 = old1.next()
    engine = make_engine(settings)
    try:
        created = await partitions.ensure_partitions(engine, today=old1.start.date(), ahead=1)
    finally:
        await engine.dispose()
    assert set(created) == {m.of_table(t) for m in (old1, old2) for t in partitions.TABLES}
    # Records 0-1 received in old1, 2-3 in old2, 4-5 now; their history entries move with them.
    for month, ids in ((old1, [posted[0][1], posted[1][1]]), (old2, [posted[2][1], posted[3][1]])):
        at = month.start + timedelta(days=3)
        await _sql(settings, "UPDATE process_record_keys k SET created_at = :at FROM process_records r "
                   "WHERE r.id = ANY(:ids) AND k.idempotency_key = r.idempotency_key", at=at, ids=ids)
        await _sql(settings, "UPDATE process_records SET created_at = :at, event_at = :at WHERE id = ANY(:ids)",
                   at=at, ids=ids)
        await _sql(settings, "UPDATE trace_events SET received_at = :at, recorded_at = :at "
                   "WHERE kind = 'process_record' AND source_id = ANY(:ids)", at=at, ids=ids)
    where = await _sql(settings, "SELECT DISTINCT tableoid::regclass::text FROM trace_events "
                       "WHERE kind = 'process_record' AND source_id = ANY(:ids)", ids=[posted[0][1], posted[1][1]])
    assert where == [(f"{partitions.SCHEMA}.{old1.of_table(partitions.TRACE)}",)]
    whole = await _history(client, worker_headers, lot["lot_number"])
    assert whole["total"] == len(whole["events"]) == 6 + 2 + 2  # records, registrations, created + started
    # A run of the earlier code that died after detaching old2's records: detached, still counted.
    await _sql(settings, f"ALTER TABLE process_records DETACH PARTITION {partitions.SCHEMA}.{old2.name}")

    backups = tmp_path / "backups"
    args = ("db", "partitions", "archive", "--before", old2.next().start.date().isoformat(),
            "--backup-dir", str(backups))
    killed = _mes(settings, *args, tmp_path=tmp_path, path_first=_killing_pg_dump(tmp_path / "bin", old2))
    assert killed.returncode == -9, killed.stderr
    folder = backups / "partitions"
    [first] = folder.glob(f"process_data_{old1.label}-*.dump")
    assert first.with_name(first.name + ".sha256").read_text().split()[1] == first.name
    assert list(folder.glob(f"process_data_{old2.label}-*.dump.partial")) and not list(
        folder.glob(f"process_data_{old2.label}-*.dump"))
    # Half-way: old2's tables detached and taken out of the totals; every total still true.
    assert await _sql(settings, "SELECT state FROM archived_months WHERE month_start = :m", m=old2.start) == [
        (archive.UNCOUNTED_STATE,)]
    assert await _sql(settings, TOTALS_OFF) == []
    half = await _history(client, worker_headers, lot["lot_number"])
    assert half["total"] == len(half["events"]) == 10 - 4

    again = _mes(settings, *args, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{old2.label}: {old2.name} 2 rows, {old2.of_table(partitions.TRACE)} 2 rows" in again.stdout
    assert old1.label not in again.stdout
    assert not list(folder.glob("*.partial"))
    [second] = folder.glob(f"process_data_{old2.label}-*.dump")
    listing = subprocess.run(["pg_restore", "--list", str(second)], capture_output=True, text=True, check=True).stdout
    for table in partitions.TABLES:
        assert f"TABLE DATA {partitions.SCHEMA} {old2.of_table(table)} " in listing
    left = await _sql(settings, "SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename LIKE :m",
                      s=partitions.SCHEMA, m=f"%_{old1.label[:4]}_%")
    assert not [name for (name,) in left if name.endswith((old1.label, old2.label))]
    assert await _sql(settings, TOTALS_OFF) == []
    assert await _sql(settings, "SELECT count(*) FROM process_record_keys WHERE idempotency_key = ANY(:k)",
                      k=[body["idempotency_key"] for body, _ in posted[:4]]) == [(0,)]
    assert "nothing to archive" in _mes(settings, *args, tmp_path=tmp_path).stderr

    # A damaged copy, or a file that is no archive, is refused and changes nothing.
    damaged = folder / "damaged.dump"
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    damaged.with_name("damaged.dump.sha256").write_text(first.with_name(first.name + ".sha256").read_text())
    refused = _mes(settings, "db", "partitions", "restore", str(damaged), tmp_path=tmp_path)
    assert refused.returncode == 1 and "does not match its .sha256" in refused.stderr
    (tmp_path / "notes.txt").write_text("not a dump")
    refused = _mes(settings, "db", "partitions", "restore", str(tmp_path / "notes.txt"), tmp_path=tmp_path)
    assert refused.returncode == 1 and "pg_restore failed" in refused.stderr
    assert (await _history(client, worker_headers, lot["lot_number"]))["total"] == 6

    for dump, month in ((second, old2), (first, old1)):
        restored = _mes(settings, "db", "partitions", "restore", str(dump), tmp_path=tmp_path)
        assert restored.returncode == 0, restored.stderr
        assert f"{month.label}: {month.name} 2 rows, {month.of_table(partitions.TRACE)} 2 rows attached" in (
            restored.stdout)
    back = await _history(client, worker_headers, lot["lot_number"])
    assert back == whole
    for serial in lot["serial_numbers"]:
        unit = (await client.get(f"{API}/units/{serial}/history", headers=worker_headers)).json()
        assert unit["total"] == len(unit["events"]) == 1 + 3
    assert await _sql(settings, TOTALS_OFF) == []
    body, record_id = posted[0]  # its key is claimed again: a late retry finds the original
    retry = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    assert retry.status_code == 200 and retry.json()["id"] == record_id, retry.text
    twice = _mes(settings, "db", "partitions", "restore", str(first), tmp_path=tmp_path)
    assert twice.returncode == 1 and "online already" in twice.stderr


@pytest.mark.postgres_only
async def test_a_history_page_reads_one_index_range_per_monthly_partition(settings):
    """Four months of events for 200 LOTs: the newest-first page (first and deep, by cursor) is a
    merge of backward scans of each partition's history index, stopped after the page's rows."""
    now = partitions.Month.of(datetime.now(UTC))
    first = partitions.Month(now.year - 1, now.month)
    engine = make_engine(settings)
    try:
        await partitions.ensure_partitions(engine, today=first.start.date(), ahead=4)
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO lots (id, lot_number, product, quantity, status, note, created_at, updated_at) "
                "SELECT g, 'LOT-P-' || g, 'P', 1, 'in_progress', '', now(), now() FROM generate_series(1, 200) g"))
            await conn.execute(text(
                "INSERT INTO trace_events (lot_id, kind, recorded_at, station_seq, received_at, actor, payload) "
                "SELECT 1 + g % 200, 'scan', CAST(:start AS timestamptz) + g * interval '2 minutes', g, "
                "CAST(:start AS timestamptz) + g * interval '2 minutes', 'station:ST', '{}' "
                "FROM generate_series(1, 80000) g"),
                {"start": first.start})
            await conn.execute(text("INSERT INTO trace_totals (scope, subject_id, events) "
                                    "SELECT 'lot', lot_id, count(*) FROM trace_events GROUP BY lot_id"))
            await conn.execute(text("ANALYZE trace_events"))
            parts = (await conn.execute(text(
                "SELECT count(DISTINCT tableoid) FROM trace_events WHERE lot_id = 7"))).scalar()
        assert parts >= 3
        statements = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            if "FROM trace_events" in statement:
                statements.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", keep)
        async with make_sessionmaker(engine)() as session:
            page = await trace.history(session=session, secret=settings.secret_key, lot_id=7, limit=100)
            deep = await trace.history(session=session, secret=settings.secret_key, lot_id=7, limit=100,
                                       before=trace.decode_cursor(page["next_before"], secret=settings.secret_key,
                                                                  lot_id=7))
        event.remove(engine.sync_engine, "before_cursor_execute", keep)
        assert len(statements) == 2
        assert page["total"] == 400 and len(page["events"]) == len(deep["events"]) == 100
        assert [e["id"] for e in deep["events"]][0] < page["events"][-1]["id"]
        for statement, parameters in statements:
            async with engine.connect() as conn:
                plan = (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)).scalar()
            nodes = list(_nodes(plan[0]["Plan"]))
            scans = [n for n in nodes if n.get("Relation Name", "").startswith("trace_events")]
            assert len(scans) >= parts and all(
                n["Node Type"] in ("Index Scan", "Index Only Scan") and n["Scan Direction"] == "Backward"
                and n["Index Name"].startswith("trace_events_") for n in scans), scans
            assert any(n["Node Type"] == "Merge Append" for n in nodes)
            assert not any(n["Node Type"] == "Sort" and n.get("Actual Rows", 0) > 101 for n in nodes)
            # The page, plus at most one row read ahead in each partition the merge opened.
            assert sum(n["Actual Rows"] for n in scans) <= 101 + len(scans)
    finally:
        await engine.dispose()


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.sqlite_only
async def test_sqlite_keeps_one_trace_table_and_the_partition_commands_say_so(settings, tmp_path):
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(partitions.partitioned_tables) == []
        assert await partitions.ensure_partitions(engine) == []
    finally:
        await engine.dispose()
    tables = await _sql(settings, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'trace_%'")
    assert sorted(tables) == [("trace_events",), ("trace_totals",)]
    this_month = datetime.now(UTC).date().replace(day=1).isoformat()  # the latest --before allowed
    archived = _mes(settings, "db", "partitions", "archive", "--before", this_month, "--backup-dir",
                    str(tmp_path / "b"), tmp_path=tmp_path)
    assert archived.returncode == 0 and "nothing to archive" in archived.stderr, archived.stderr
    (tmp_path / "x.dump").write_bytes(b"PGDMP")
    restored = _mes(settings, "db", "partitions", "restore", str(tmp_path / "x.dump"), tmp_path=tmp_path)
    assert restored.returncode == 1 and "PostgreSQL only" in restored.stderr, restored.stderr


async def test_a_lots_start_is_received_when_its_first_record_is_whatever_time_the_station_gives(
    settings, client, kernel, make_lot, worker_headers
):
    """The start a LOT's first record causes happened at the record's station time, but was
    received with the record: its receipt time (the partition key, the month it is archived with)
    is the server's, so a station time two months back (a plant that accepts 90 days) cannot file
    it under an old month."""
    kernel.settings.station_time_max_age_days = 90
    lot = await make_lot(registered_at=datetime.now(UTC) - timedelta(days=70))  # before its first record
    station_time = datetime.now(UTC) - timedelta(days=62)
    body = {"idempotency_key": uuid.uuid4().hex, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
            "worker_id": "W-1", "result": "pass", "recorded_at": station_time.isoformat()}
    r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    assert r.status_code == 201, r.text
    events = (await _history(client, worker_headers, lot["lot_number"]))["events"]
    record = next(e for e in events if e["type"] == "process_record")
    [started] = [e for e in events if e["type"] == "status_change" and e["data"]["to"] == "in_progress"]
    assert datetime.fromisoformat(started["at"]) == station_time
    assert started["received_at"] == record["received_at"] == r.json()["created_at"]
    if not settings.is_sqlite:
        where = await _sql(settings, "SELECT tableoid::regclass::text FROM trace_events WHERE lot_id = :id "
                           "AND kind = 'status_change' AND payload ->> 'to' = 'in_progress'", id=lot["id"])
        month = partitions.Month.of(datetime.fromisoformat(r.json()["created_at"]))
        assert where == [(f"{partitions.SCHEMA}.{month.of_table(partitions.TRACE)}",)]


@pytest.mark.postgres_only
async def test_an_old_months_events_left_in_the_default_partition_are_archived_with_it(settings, tmp_path):
    """A month whose partition was never created kept its rows in the default partition; archiving
    creates the month's partition (moving them), then archives it like any other."""
    now = partitions.Month.of(datetime.now(UTC))
    old = partitions.Month(now.year - 1, now.month)
    at = old.start + timedelta(days=10)
    await _sql(settings, "INSERT INTO lots (id, lot_number, product, quantity, status, note, created_at, updated_at) "
               "VALUES (5, 'LOT-STRAY', 'P', 1, 'closed', '', :at, :at)", at=at)
    await _sql(settings, "INSERT INTO trace_events (lot_id, kind, recorded_at, station_seq, received_at, actor, "
               "payload) VALUES (5, 'scan', :at, 0, :at, '', '{}'), (5, 'scan', now(), 0, now(), '', '{}')", at=at)
    await _sql(settings, "INSERT INTO trace_totals (scope, subject_id, events) VALUES ('lot', 5, 2)")
    assert await _sql(settings, f"SELECT count(*) FROM {partitions.SCHEMA}.{partitions.TRACE.default}") == [(1,)]
    engine = make_engine(settings)
    try:
        done = await archive.archive_partitions(engine, database_url=settings.database_url,
                                                before=old.next().start.date(), backup_dir=tmp_path)
    finally:
        await engine.dispose()
    assert [(d["month"], d["rows"]) for d in done] == [(old.label, {old.of_table(partitions.TRACE): 1})]
    assert await _sql(settings, f"SELECT count(*) FROM {partitions.SCHEMA}.{partitions.TRACE.default}") == [(0,)]
    assert await _sql(settings, "SELECT events FROM trace_totals WHERE scope = 'lot' AND subject_id = 5") == [(1,)]
    assert await _sql(settings, TOTALS_OFF) == []
