"""Benchmark: what maintaining the KPI rollups costs the recording transaction, without HTTP.

``bench/bench_records.py`` measures the whole request path under gunicorn; on a busy shared
machine its figures are dominated by the Python workers' CPU (authentication, validation, JSON)
and swing by an order of magnitude from one minute to the next. This script isolates the part
the rollups add to: the kernel's own ``write_rows`` (claim idempotency keys, insert the records,
audit them, count them into the rollups, commit) driven by ``--concurrency`` tasks on a scratch
PostgreSQL database, each writing transactions of ``--batch-size`` records, alternately with the
rollups on and off (same process, same database, ``--rounds`` pairs, order swapped each round so
drift in the machine's load hits both alike). Prints records/s of each and the cost
(goal: at most 15 %), and checks the rollups against a plain count of the records.

Records/s moves with whatever else runs on the machine; so it also reads the CPU seconds used by
this process and by the PostgreSQL backends serving its database (``/proc``, same machine) and
prints CPU per record with rollups on and off: on a CPU-bound machine, records/s is inversely
proportional to it. (The WAL writer, checkpointer and autovacuum are not counted.)

The default scenario is bench_records.py's: one LOT, one step, one station, every record a
unit's first attempt (``--retests`` makes a share of them retests of units already seen).

    .venv/bin/python bench/bench_rollup_cost.py --batch-size 100 --concurrency 24
    .venv/bin/python bench/bench_rollup_cost.py --batch-size 20 --concurrency 4   # like group commit
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def prepare(db_url: str, units: int) -> dict:
    import asyncpg
    from sqlalchemy import text

    from mes_kernel.db.base import make_engine, make_sessionmaker
    from mes_kernel.db.models import Line, Lot, Process, Station
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    name = db_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    settings = Settings(database_url=db_url, _env_file=None)
    await asyncio.to_thread(upgrade, settings)
    engine = make_engine(settings)
    async with make_sessionmaker(engine)() as session:
        line = Line(code="BENCH", name="bench", config={})
        session.add(line)
        await session.flush()
        station = Station(code="ST-BENCH", line_id=line.id, heartbeat={})
        session.add(station)
        session.add(Process(id="ASSY-10", name="Assembly", sequence=10, ideal_cycle_seconds=30.0))
        lot = Lot(lot_number="BENCH-LOT", product="PRD-1", status="in_progress", line_id=line.id)
        session.add(lot)
        await session.flush()
        await session.execute(
            text(
                "INSERT INTO units (serial_number, lot_id, status, created_at, updated_at) "
                "SELECT 'BENCH-LOT-' || lpad(g::text, 7, '0'), :lot, 'in_progress', now(), now() "
                "FROM generate_series(0, :n - 1) g"
            ),
            {"lot": lot.id, "n": units},
        )
        ids = {"line_id": line.id, "station_id": station.id, "lot_id": lot.id}
        await session.commit()
    await engine.dispose()
    return ids


def make_row(ids: dict, n: int, prefix: str, serial: int) -> dict:
    from mes_kernel.db.base import utcnow

    now = utcnow()
    return {
        "idempotency_key": f"{prefix}-{n}",
        "request_hash": f"{n:064x}",
        "lot_id": ids["lot_id"],
        "lot_number": "BENCH-LOT",
        "process_id": "ASSY-10",
        "worker_id": f"W-{n % 50}",
        "station_id": ids["station_id"],
        "line_id": ids["line_id"],
        "unit_id": None,
        "serial_number": f"BENCH-LOT-{serial:07d}",
        "result": "fail" if n % 23 == 0 else "pass",
        "defect_code": "SOLDER" if n % 23 == 0 else None,
        "data": {"torque": n % 97, "cycle_seconds": 20 + n % 40},
        "recorded_at": None,
        "event_at": now,
        "created_by": "station:ST-BENCH",
        "created_at": now,
        "_lot_status": "in_progress",
        "_station_seq": n + 1,  # the station's outbox sequence number (the trace stream keeps it)
        "_product": "PRD-1",
        "_request_id": None,
        "_client_ip": None,
    }


async def run_round(sessionmaker, ids, opts, *, rollups: bool, serials, prefix: str) -> float:
    from mes_kernel.services import records

    records.ROLLUPS = rollups
    counter = iter(range(10**9))
    stop = time.monotonic() + opts.duration
    written = 0

    async def writer() -> None:
        nonlocal written
        while time.monotonic() < stop:
            rows = []
            for _ in range(opts.batch_size):
                n = next(counter)
                rows.append(make_row(ids, n, prefix, next(serials)))
            async with sessionmaker() as session:
                await records.write_rows(session, rows)
                await session.commit()
            written += len(rows)

    started, cpu = time.monotonic(), await cpu_seconds(sessionmaker)
    await asyncio.gather(*(writer() for _ in range(opts.concurrency)))
    elapsed, used = time.monotonic() - started, await cpu_seconds(sessionmaker, since=cpu)
    return written / elapsed, written, used / written


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_seconds(sessionmaker, since: dict | None = None):
    """CPU used by this process and by the PostgreSQL backends serving its database: a reading,
    or (``since`` a reading) the seconds used since then. Unlike records/s, this does not move
    when other work on the machine takes the CPUs away."""
    from sqlalchemy import text

    async with sessionmaker() as session:
        pids = (
            (await session.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")))
            .scalars()
            .all()
        )
    reading = {"self": time.process_time(), **{pid: _proc_cpu(pid) for pid in pids}}
    if since is None:
        return reading
    # backends that came or went in between count from 0 / are dropped: the pool keeps its connections
    return sum(value - since.get(key, 0.0) for key, value in reading.items())


async def check(sessionmaker) -> tuple[int, int, int]:
    from sqlalchemy import text

    async with sessionmaker() as session:
        raw = (await session.execute(text("SELECT count(*) FROM process_records"))).scalar()
        rolled = (await session.execute(text("SELECT coalesce(sum(total), 0) FROM kpi_hourly"))).scalar()
        items = (await session.execute(text("SELECT count(*) FROM process_items"))).scalar()
    return int(raw), int(rolled), int(items)


async def main_async(opts) -> int:
    from mes_kernel.db.base import make_engine, make_sessionmaker
    from mes_kernel.settings import Settings

    db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/mes_bench_rollup_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=db_url, _env_file=None, db_pool_size=opts.concurrency, db_max_overflow=0, workers=1
    )
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)

    def serial_source(start: int):
        # New units in order; with --retests, every k-th record goes back to a unit already tried.
        n, seen = start, start
        while True:
            n += 1
            if opts.retests and n % opts.retests == 0 and seen > start:
                yield start + (n * 7919) % (seen - start)
            else:
                seen += 1
                yield seen % opts.units

    rates: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    try:
        ids = await prepare(db_url, opts.units)
        serials = serial_source(0)
        _, counted, _ = await run_round(sessionmaker, ids, opts, rollups=True, serials=serials, prefix="warm")
        for i in range(opts.rounds):
            for rollups in (True, False) if i % 2 == 0 else (False, True):
                rate, written, per_record = await run_round(
                    sessionmaker, ids, opts, rollups=rollups, serials=serials, prefix=f"r{i}{int(rollups)}"
                )
                rates[rollups].append(rate)
                cpu[rollups].append(per_record)
                counted += written if rollups else 0
                print(
                    f"round {i} rollups {'on ' if rollups else 'off'} {rate:9.1f} rec/s, "
                    f"{per_record * 1e6:7.0f} µs CPU per record",
                    file=sys.stderr,
                )
        raw, rolled, items = await check(sessionmaker)
    finally:
        await engine.dispose()
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await conn.close()
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    pairs = [a / b for a, b in zip(rates[True], rates[False], strict=True)]
    print(
        f"batch {opts.batch_size} x concurrency {opts.concurrency}: rollups off {off:.1f} rec/s, on {on:.1f} rec/s; "
        f"cost {1 - on / off:.1%} of records/s (goal <= 15 %); per-round on/off " + ", ".join(f"{p:.3f}" for p in pairs)
    )
    cpu_on, cpu_off = statistics.median(cpu[True]), statistics.median(cpu[False])
    print(
        f"CPU per record (this process + its PostgreSQL backends): off {cpu_off * 1e6:.0f} µs, "
        f"on {cpu_on * 1e6:.0f} µs; records/s on CPU alone would drop {1 - cpu_off / cpu_on:.1%} (goal <= 15 %)"
    )
    print(
        f"records stored {raw}; written with rollups on {counted}, counted by the rollups {rolled} "
        f"({'exact' if rolled == counted else 'MISMATCH'}); items {items}"
    )
    print(f"started {datetime.now(UTC).isoformat(timespec='seconds')}, cpus {os.cpu_count()}")
    return 0 if rolled == counted else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--retests", type=int, default=0, help="every k-th record retests a unit (0: none)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
