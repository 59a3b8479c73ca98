"""Benchmark: the archive's uncount step (a month's trace events out of ``trace_totals``, its
records' keys out of ``process_record_keys``) in one transaction against bounded batches.

Builds one scratch PostgreSQL database at head with N process records and N trace events in a
month two years back (spread over ``--lots`` LOTs), copies it per variant (``CREATE DATABASE …
TEMPLATE``), detaches the month and times the uncount: ``--batch-rows`` huge (the earlier single
transaction) and the given batch size, in the same run. Reports the wall time of the whole step,
the longest single transaction (what holds locks on the totals and keeps WAL and a crash's rework),
and checks both variants leave identical totals and keys. Traffic to 127.0.0.1 only.

    .venv/bin/python bench/bench_archive_uncount.py --records 300000 --batch-rows 50000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from mes_kernel.db import archive, partitions
from mes_kernel.db.base import make_engine
from mes_kernel.migrate import upgrade
from mes_kernel.settings import Settings

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _url(name: str, driver: str = "postgresql") -> str:
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql", driver, 1) + "/" + name


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def build(name: str, records: int, lots: int, month: partitions.Month) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    settings = Settings(database_url=_url(name, "postgresql+asyncpg"), _env_file=None)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    try:
        await partitions.ensure_partitions(engine, today=month.start.date(), ahead=0)
    finally:
        await engine.dispose()
    at = month.start + timedelta(days=3)
    conn = await asyncpg.connect(_url(name))
    try:
        await conn.execute(
            "INSERT INTO processes (id, name, sequence, created_at, updated_at) VALUES ('P10', 'P10', 10, now(), now())"
        )
        await conn.execute(
            "INSERT INTO lots (id, lot_number, product, quantity, status, note, created_at, updated_at) "
            "SELECT g, 'L-' || g, 'P', 1, 'closed', '', $1, $1 FROM generate_series(1, $2) g",
            at,
            lots,
        )
        await conn.execute(
            "INSERT INTO process_records (id, idempotency_key, request_hash, lot_id, lot_number, process_id, "
            "worker_id, result, data, event_at, created_by, created_at) "
            "SELECT g, 'k-' || g, 'h', 1 + g % $3, 'L-' || (1 + g % $3), 'P10', 'W', 'pass', '{}', "
            "$1::timestamptz + g * interval '1 second', 'bench', $1::timestamptz + g * interval '1 second' "
            "FROM generate_series(1, $2) g",
            at,
            records,
            lots,
        )
        await conn.execute(
            "INSERT INTO process_record_keys (idempotency_key, created_at) "
            "SELECT idempotency_key, created_at FROM process_records"
        )
        await conn.execute(
            "INSERT INTO trace_events (id, lot_id, kind, recorded_at, station_seq, received_at, actor, source_id, "
            "payload) SELECT id, lot_id, 'process_record', event_at, 0, created_at, 'bench', id, '{}' "
            "FROM process_records"
        )
        # This month's events of the same LOTs stay online: their totals must survive the uncount.
        await conn.execute(
            "INSERT INTO trace_events (lot_id, kind, recorded_at, station_seq, received_at, actor, payload) "
            "SELECT 1 + g % $1, 'scan', now(), 0, now(), 'bench', '{}' FROM generate_series(1, $1 * 3) g",
            lots,
        )
        await conn.execute(
            "INSERT INTO trace_totals (scope, subject_id, events) "
            "SELECT 'lot', lot_id, count(*) FROM trace_events GROUP BY lot_id"
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def uncount(name: str, month: partitions.Month, batch_rows: int) -> dict:
    engine = make_engine(Settings(database_url=_url(name, "postgresql+asyncpg"), _env_file=None))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: archive._detach_older(sync, month.next().start.date()))
        async with engine.connect() as conn:
            tables = (await conn.run_sync(archive._waiting))[month]
        longest, batches, start = 0.0, 0, time.perf_counter()
        while True:
            began = time.perf_counter()
            async with engine.begin() as conn:
                rows, _ = await conn.run_sync(lambda sync: archive._uncount_batch(sync, month, tables, batch_rows))
            longest = max(longest, time.perf_counter() - began)
            if not rows:
                break
            batches += 1
        total = time.perf_counter() - start
        async with engine.connect() as conn:
            from sqlalchemy import text

            totals = (await conn.execute(text("SELECT sum(events), count(*) FROM trace_totals"))).one()
            keys = (await conn.execute(text("SELECT count(*) FROM process_record_keys"))).scalar()
    finally:
        await engine.dispose()
    return {"seconds": total, "longest_txn": longest, "batches": batches, "totals": tuple(totals), "keys": keys}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--lots", type=int, default=2_000)
    parser.add_argument("--batch-rows", type=int, default=50_000)
    args = parser.parse_args()
    now = partitions.Month.of(datetime.now(UTC))
    month = partitions.Month(now.year - 2, now.month)
    base = f"mes_bench_uncount_{os.getpid()}"
    began = time.perf_counter()
    await build(base, args.records, args.lots, month)
    print(f"built {args.records} records + {args.records} trace events in {time.perf_counter() - began:.0f} s")
    results = {}
    try:
        for label, size in (("one per table", args.records * 4), (f"batches of {args.batch_rows}", args.batch_rows)):
            copy = f"{base}_{size}"
            await _admin(f'DROP DATABASE IF EXISTS "{copy}"', f'CREATE DATABASE "{copy}" TEMPLATE "{base}"')
            try:
                results[label] = await uncount(copy, month, size)
            finally:
                await _admin(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{base}" WITH (FORCE)')
    one = results["one per table"]
    for label, r in results.items():
        print(
            f"{label:>24}: {r['seconds']:.2f} s in {max(r['batches'], 1)} transaction(s), "
            f"longest {r['longest_txn']:.2f} s"
            f" ({r['seconds'] / one['seconds']:.2f}× the single transaction's time)"
        )
    [a, b] = results.values()
    assert (a["totals"], a["keys"]) == (b["totals"], b["keys"]), (a, b)
    print(f"same totals and keys left: {a['totals']}, {a['keys']} keys; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
