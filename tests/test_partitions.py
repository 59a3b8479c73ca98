"""Monthly partitions of process records on PostgreSQL, through the real ``mes`` command: created
ahead, a stray row moved into its month, old months detached, dumped (and the dump restorable),
dropped; a retry of a record a month later still finds the original; ``mes kpi rebuild``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mes_kernel.db import partitions
from mes_kernel.db.base import make_engine
from mes_kernel.testing.helpers import run_sql as _sql

MES = Path(sys.executable).with_name("mes")
API = "/api/v1"


def _mes(settings, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_", "DATABASE_", "REDIS_"))}
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "FILES_DIR": str(tmp_path / "files"),
            "LOG_LEVEL": "WARNING",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    return subprocess.run([str(MES), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.postgres_only
async def test_partitions_are_kept_ahead_and_old_months_archived_to_a_restorable_dump(
    settings, client, make_lot, worker_headers, tmp_path
):
    month = partitions.Month.of(datetime.now(UTC))
    names = {
        row[0]
        for row in await _sql(settings, "SELECT tablename FROM pg_tables WHERE schemaname = :s", s=partitions.SCHEMA)
    }
    ahead = [month, month.next(), month.next().next(), month.next().next().next()]
    assert {m.name for m in ahead} | {partitions.DEFAULT} <= names
    assert (await _sql(settings, "SELECT relkind::text FROM pg_class WHERE relname = 'process_records'"))[0][0] == "p"

    lot = await make_lot()
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot["lot_number"],
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "result": "pass",
    }
    r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    assert r.status_code == 201, r.text
    # Move the stored record (and its key) 14 months back, as if it had been received then: a
    # retry now must still find it, not land a copy in this month's partition.
    old = partitions.Month(month.year - 1, month.month).next().next()  # 10 months back, before "archive"
    old_at = old.start + timedelta(days=3)
    result = _mes(settings, "db", "partitions", "ensure", "--ahead", "0", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    await _sql(
        settings,
        # happened then too: a station time ten months after receipt is a clock far off, which the
        # archive refuses (tests/test_archive_guards.py)
        "UPDATE process_records SET created_at = :at, event_at = :at WHERE idempotency_key = :k",
        at=old_at,
        k=body["idempotency_key"],
    )
    await _sql(
        settings,
        "UPDATE process_record_keys SET created_at = :at WHERE idempotency_key = :k",
        at=old_at,
        k=body["idempotency_key"],
    )
    where = (
        await _sql(
            settings,
            "SELECT tableoid::regclass::text FROM process_records WHERE idempotency_key = :k",
            k=body["idempotency_key"],
        )
    )[0][0]
    assert where == f"{partitions.SCHEMA}.{partitions.DEFAULT}"  # no partition for that month yet
    retry = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    assert retry.status_code == 200 and retry.json()["id"] == r.json()["id"], retry.text
    changed = await client.post(f"{API}/process-records", json={**body, "result": "fail"}, headers=worker_headers)
    assert changed.status_code == 409 and changed.json()["detail"]["code"] == "IDEMPOTENCY_CONFLICT"

    engine = make_engine(settings)
    try:
        created = await partitions.ensure_partitions(engine, today=old.start.date(), ahead=0)
    finally:
        await engine.dispose()
    assert created == [old.name, old.of_table(partitions.TRACE)]
    where = (
        await _sql(
            settings,
            "SELECT tableoid::regclass::text FROM process_records WHERE idempotency_key = :k",
            k=body["idempotency_key"],
        )
    )[0][0]
    assert where == f"{partitions.SCHEMA}.{old.name}"  # moved out of the default partition

    backups = tmp_path / "backups"
    result = _mes(
        settings,
        "db",
        "partitions",
        "archive",
        "--before",
        old.next().start.date().isoformat(),
        "--backup-dir",
        str(backups),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"{old.label}: {old.name} 1 rows, {old.of_table(partitions.TRACE)} 0 rows" in result.stdout
    [dump] = list((backups / "partitions").glob(f"process_data_{old.label}-*.dump"))
    assert dump.with_name(dump.name + ".sha256").read_text().split()[1] == dump.name
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    assert f"TABLE DATA {partitions.SCHEMA} {old.name}" in listing
    names = {
        row[0]
        for row in await _sql(settings, "SELECT tablename FROM pg_tables WHERE schemaname = :s", s=partitions.SCHEMA)
    }
    assert old.name not in names and month.name in names
    assert await _sql(settings, "SELECT count(*) FROM process_records") == [(0,)]
    again = _mes(
        settings,
        "db",
        "partitions",
        "archive",
        "--before",
        date.today().replace(day=1).isoformat(),
        "--backup-dir",
        str(backups),
        tmp_path=tmp_path,
    )
    assert again.returncode == 0 and "nothing to archive" in again.stderr, again.stderr


async def test_kpi_rebuild_command_recomputes_rollups_from_raw_records(
    settings, client, make_lot, worker_headers, tmp_path
):
    lot = await make_lot(units=2)
    for serial, result in zip(lot["serial_numbers"], ("pass", "fail"), strict=True):
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "lot_number": lot["lot_number"],
            "process_id": "ASSY-10",
            "worker_id": "W-1",
            "result": result,
            "serial_number": serial,
            "defect_code": "X" * (result == "fail"),
        }
        assert (await client.post(f"{API}/process-records", json=body, headers=worker_headers)).status_code == 201
    totals = "SELECT sum(total), sum(passed), sum(first_total), sum(first_passed), sum(final_passed) FROM kpi_hourly"
    before = await _sql(settings, totals)
    assert before == [(2, 1, 2, 1, 1)]
    await _sql(settings, "UPDATE kpi_hourly SET total = 99")
    await _sql(settings, "DELETE FROM kpi_hourly_defects")
    result = _mes(settings, "kpi", "rebuild", "--since", date.today().isoformat(), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kpi_hourly: 1 rows" in result.stderr
    assert (
        await _sql(settings, "SELECT total, passed, first_total, first_passed, final_passed FROM kpi_hourly") == before
    )
    assert await _sql(settings, "SELECT defect_code, count FROM kpi_hourly_defects") == [("X", 1)]
    # ...and analyzed the tables it rewrote, so the planner knows their new sizes
    if settings.is_sqlite:
        analyzed = await _sql(settings, "SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY tbl")
        assert {"kpi_hourly", "kpi_hourly_defects", "process_items"} <= {t for (t,) in analyzed}
    else:
        analyzed = await _sql(settings, "SELECT relname, analyze_count FROM pg_stat_user_tables "
                              "WHERE relname IN ('kpi_hourly', 'kpi_hourly_defects', 'process_items', 'kpi_daily', "
                              "'kpi_line_daily_defects', 'kpi_line_hourly') AND analyze_count > 0")
        assert len(analyzed) == 6, analyzed
    bad = _mes(settings, "kpi", "rebuild", "--since", "yesterday", tmp_path=tmp_path)
    assert bad.returncode == 2 and "--since must be a date" in bad.stderr
