"""Benchmark: every dashboard and KPI endpoint, and one page of a big LOT's history, over N records.

Builds a scratch PostgreSQL database at head (partitioned process records), fills it with N process
records through SQL (default 1,000,000 over the last 30 days; 4 lines × 3 stations, 5 steps, one
LOT with 100,000 events), then runs ``mes kpi rebuild`` (timed). Starts the kernel under gunicorn
twice side by side — caches off (``MES_DASHBOARD_CACHE_SECONDS=0``: cold, every request computes)
and on (warm) — and times each endpoint with sequential requests, p50/p95, beside the readiness
probe of the same server (one ``SELECT 1`` round trip plus the schema check) as the baseline.
Beside the times, the CPU milliseconds per request the cold server's workers and its database
backends spent (``/proc``): the figure that a busy machine moves least.

Goals (issue 13, at 10 M records): every dashboard/KPI endpoint p95 ≤ 50 ms cold; one history
page of a 100,000-event LOT p95 ≤ 30 ms. Traffic to 127.0.0.1 only.

    .venv/bin/python bench/bench_dashboard.py                 # 1 M records
    .venv/bin/python bench/bench_dashboard.py --records 10000000
    .venv/bin/python bench/bench_dashboard.py --records 10000000 --build-only --db mes_bench_10m   # build, keep
    .venv/bin/python bench/bench_dashboard.py --reuse mes_bench_10m     # time against a kept database
    .venv/bin/python bench/bench_dashboard.py --reuse mes_bench_10m --only oee --only "lines now"
    .venv/bin/python bench/bench_dashboard.py --records 10000000 --older-months 11 --db mes_bench_year

``--older-months N`` puts N more months of receipts before the data's own, holding copies of its
newest month's failed records (what a Pareto bar's drill-down reads across partitions).

A database built with ``--db NAME`` (or ``--keep``) is kept; ``--reuse NAME`` skips the build and the
rebuild and times the endpoints against it (its records end at the time it was built).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "bench-secret-key-0123456789abcdef0123456789"
BIG_LOT = "BENCH-BIG"
BIG_EVENTS = 100_000
PROCESSES = [("P10", 10, 20.0), ("P20", 20, 30.0), ("P30", 30, 45.0), ("P40", 40, 25.0), ("P50", 50, 60.0)]
SHIFTS = [
    {"name": "A", "start": "06:00", "end": "14:00", "days": [0, 1, 2, 3, 4, 5, 6], "planned_output": 900},
    {"name": "B", "start": "14:00", "end": "22:00", "days": [0, 1, 2, 3, 4, 5, 6], "planned_output": 900},
    {"name": "C", "start": "22:00", "end": "06:00", "days": [0, 1, 2, 3, 4, 5, 6], "planned_output": 600},
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def build(db_url: str, records: int) -> dict:
    """Migrate, ensure partitions for the window, and generate the data in SQL."""
    import asyncpg

    from mes_kernel.db import partitions
    from mes_kernel.db.base import make_engine
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
    now = datetime.now(UTC)
    await partitions.ensure_partitions(engine, today=(now - timedelta(days=31)).date(), ahead=4)
    await engine.dispose()

    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    started = time.perf_counter()
    try:
        await conn.execute("SET synchronous_commit = off")
        for code in range(1, 5):
            line_id = await conn.fetchval(
                "INSERT INTO lines (code, name, config, config_version, created_at, updated_at) "
                "VALUES ($1, $2, '{}', 1, now(), now()) RETURNING id",
                f"L{code}",
                f"Line {code}",
            )
            for s in range(1, 4):
                await conn.execute(
                    "INSERT INTO stations (code, name, line_id, heartbeat, last_heartbeat_at, created_at, updated_at) "
                    "VALUES ($1, $1, $2, '{}', now(), now(), now())",
                    f"L{code}-S{s}",
                    line_id,
                )
            await conn.execute(
                # in force since before the generated records (they go back 30 days)
                "INSERT INTO shift_calendar_versions (line_id, valid_from, shifts, updated_by, updated_at) "
                "VALUES ($1, now() - interval '400 days', $2::jsonb, 'bench', now())",
                line_id,
                json.dumps(SHIFTS),
            )
        for pid, seq, ideal in PROCESSES:
            await conn.execute(
                "INSERT INTO processes (id, name, sequence, ideal_cycle_seconds, created_at, "
                "updated_at) VALUES ($1, $1, $2, $3, now(), now())",
                pid,
                seq,
                ideal,
            )
        per_lot = 500
        lots = max(1, (records - BIG_EVENTS) // per_lot)
        await conn.execute(f"""
            INSERT INTO lots (lot_number, product, quantity, status, line_id, note, created_at, updated_at)
            SELECT 'BENCH-' || g, 'PRD-' || (g % 7), {per_lot}, 'in_progress', 1 + g % 4, '', now(), now()
            FROM generate_series(1, {lots}) g""")
        await conn.execute(f"""INSERT INTO lots (lot_number, product, quantity, status, line_id, note, created_at,
                               updated_at) VALUES ('{BIG_LOT}', 'PRD-BIG', {BIG_EVENTS}, 'in_progress', 1, '',
                               now(), now())""")
        big_id = await conn.fetchval("SELECT id FROM lots WHERE lot_number = $1", BIG_LOT)
        window = 30 * 86400
        # One statement per million, so a 10 M run commits as it goes.
        step = 1_000_000
        for first in range(1, records + 1, step):
            last = min(records, first + step - 1)
            await conn.execute(f"""
                INSERT INTO process_records (idempotency_key, request_hash, lot_id, lot_number, process_id,
                    worker_id, station_id, line_id, serial_number, result, defect_code, data, recorded_at, event_at,
                    created_by, created_at)
                SELECT 'bench-' || g, md5(g::text), l.id, l.lot_number, 'P' || (10 * (1 + g % 5)),
                       'W-' || (g % 40), s.id, l.line_id, l.lot_number || '-' || ((g / 5) % 100),
                       CASE WHEN g % 23 = 0 THEN 'fail' ELSE 'pass' END,
                       CASE WHEN g % 23 = 0 THEN 'D' || (g % 11) END,
                       jsonb_build_object('cycle_seconds', 20 + g % 40),
                       t.at, t.at, 'station:bench', t.at + interval '2 seconds'
                FROM generate_series({first}, {last}) g
                CROSS JOIN LATERAL (SELECT now() - make_interval(secs => {window} * ({records} - g)::float8 / {records})
                                    AS at) t
                JOIN lots l ON l.id = CASE WHEN g <= {BIG_EVENTS} THEN {big_id}
                                           ELSE 1 + (g / {per_lot}) % {lots} END
                JOIN stations s ON s.code = 'L' || l.line_id || '-S' || (1 + g % 3)""")
            print(f"  generated {last:,} records", file=sys.stderr)
        await conn.execute(
            "INSERT INTO process_record_keys (idempotency_key, created_at) "
            "SELECT idempotency_key, created_at FROM process_records"
        )
        trace_started = time.perf_counter()
        await fill_trace(conn, big_id)
        print(f"  trace stream filled in {time.perf_counter() - trace_started:.1f} s", file=sys.stderr)
    finally:
        await conn.close()
    # As autovacuum would have by now: visibility maps let counts read the index alone.
    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return {"records": records, "lots": lots + 1, "generate_s": round(time.perf_counter() - started, 1)}


async def fill_trace(conn, big_id: int) -> None:
    """The trace stream of the generated records, as the ingest path writes it (migration 0013's
    backfill, plus units): the big LOT's serial numbers become 100 registered units, each record a
    ``process_record`` event (its outbox sequence number made up), and every total is kept."""
    await conn.execute(
        "INSERT INTO units (serial_number, lot_id, status, created_at, updated_at) "
        "SELECT DISTINCT serial_number, lot_id, 'in_progress', now(), now() FROM process_records WHERE lot_id = $1",
        big_id,
    )
    await conn.execute(
        "INSERT INTO trace_events (lot_id, unit_id, kind, recorded_at, station_seq, received_at, station_id, actor, "
        "source_id, payload) SELECT r.lot_id, u.id, 'process_record', r.event_at, r.id % 100000, r.created_at, "
        "r.station_id, r.created_by, r.id, jsonb_build_object('lot_number', r.lot_number, 'serial_number', "
        "r.serial_number, 'process_id', r.process_id, 'result', r.result, 'defect_code', r.defect_code, "
        "'worker_id', r.worker_id) FROM process_records r LEFT JOIN units u ON u.serial_number = r.serial_number"
    )
    await conn.execute(
        "INSERT INTO trace_totals (scope, subject_id, events) "
        "SELECT 'lot', lot_id, count(*) FROM trace_events GROUP BY lot_id"
    )
    await conn.execute(
        "INSERT INTO trace_totals (scope, subject_id, events) "
        "SELECT 'unit', unit_id, count(*) FROM trace_events WHERE unit_id IS NOT NULL GROUP BY unit_id"
    )


async def add_older_months(db_url: str, months: int) -> dict:
    """Give the database ``months`` more months of receipts before its own, holding failed records
    only: copies of the newest month's failures, station time and receipt shifted back 35, 70, …
    days (new partitions for them). A plant a year in reads its recent ranges beside the months
    behind them; a Pareto bar's drill-down reads failed records, which partitions by receipt and
    ranges by station time do not bound by themselves. The rollups do not count the copies (no
    30-day range reaches them)."""
    import asyncpg

    from mes_kernel.db import partitions
    from mes_kernel.db.base import make_engine
    from mes_kernel.settings import Settings

    started = time.perf_counter()
    engine = make_engine(Settings(database_url=db_url, _env_file=None))
    oldest = datetime.now(UTC) - timedelta(days=31 + 35 * months)
    await partitions.ensure_partitions(engine, today=oldest.date(), ahead=months + 2)
    await engine.dispose()
    kept = "idempotency_key, request_hash, lot_id, lot_number, process_id, worker_id, station_id, line_id, unit_id"
    more = "serial_number, result, defect_code, data, created_by"
    columns = f"{kept}, {more}, recorded_at, event_at, created_at"
    shifted = f"{kept}, {more}, recorded_at - $1::interval, event_at - $1::interval, created_at - $1::interval"
    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        newest = await conn.fetchval("SELECT max(created_at) FROM process_records")
        source = "process_records WHERE result = 'fail' AND created_at > $2"
        for k in range(1, months + 1):
            await conn.execute(
                f"INSERT INTO process_records ({columns}) SELECT {shifted} FROM {source}",
                timedelta(days=35 * k),
                newest - timedelta(days=35),
            )
        await conn.execute("VACUUM ANALYZE process_records")
    finally:
        await conn.close()
    return {"older_months": months, "older_months_s": round(time.perf_counter() - started, 1)}


def rebuild(db_url: str) -> float:
    """``mes kpi rebuild``'s seconds: it analyzes what it rewrote in its transaction and vacuums
    it after the commit, so the timed requests read what a plant's autovacuum would have left."""
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_", "DATABASE_"))}
    subprocess.run(
        [str(Path(sys.executable).with_name("mes")), "kpi", "rebuild"],
        check=True,
        env={**env, "DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"},
        capture_output=True,
    )
    return round(time.perf_counter() - started, 1)


def start_server(
    db_url: str, work: Path, *, cache_seconds: float, workers: int, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    prom = work / f"prom-{port}"
    prom.mkdir()
    settings = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "production",
        "BIND": f"127.0.0.1:{port}",
        "WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        "FILES_DIR": str(work / "files"),
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "1",
        "MES_DASHBOARD_CACHE_SECONDS": str(cache_seconds),
        "REDIS_NAMESPACE": f"bench{uuid.uuid4().hex[:8]}",
        **(env or {}),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
        cwd=work,
        env=settings,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health/readiness", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise RuntimeError("server did not become ready")


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


async def bench_user(db_url: str) -> int:
    """The id of user ``bench`` (admin), created if missing. The timed requests carry a token of a
    real user, as a dashboard's do: a token of a user id that does not exist (the test kit's
    ``uid=0``) costs one more database query per request, since no user state is cached for it."""
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "INSERT INTO users (username, username_key, full_name, password_hash, role, is_active, token_version, "
            "failed_logins, created_at, updated_at) VALUES ('bench', 'bench', 'bench', '!', 'admin', true, 0, 0, "
            "now(), now()) ON CONFLICT DO NOTHING"
        )
        return await conn.fetchval("SELECT id FROM users WHERE username_key = 'bench'")
    finally:
        await conn.close()


def token(uid: int) -> str:
    from mes_kernel.security import create_access_token

    return create_access_token(subject="bench", role="admin", uid=uid, ver=0, secret=SECRET, minutes=120)


def endpoints(base: str, headers: dict) -> list[tuple[str, str]]:
    today = datetime.now(UTC).date()
    week = (today - timedelta(days=7)).isoformat()
    month = (today - timedelta(days=30)).isoformat()
    first = httpx.get(
        f"{base}/api/v1/lots/{BIG_LOT}/history", params={"limit": 100}, headers=headers, timeout=60
    ).json()
    cursor = first["next_before"]
    for _ in range(20):  # a page deep in the LOT
        cursor = httpx.get(
            f"{base}/api/v1/lots/{BIG_LOT}/history",
            params={"limit": 100, "before": cursor},
            headers=headers,
            timeout=60,
        ).json()["next_before"]
    return [
        ("dashboard summary", "/api/v1/dashboard/summary"),
        ("panel yield today", "/api/v1/dashboard/kpi/yield"),
        ("panel throughput 24h", "/api/v1/dashboard/kpi/throughput"),
        ("panel defects today", "/api/v1/dashboard/kpi/defects"),
        ("alerts", "/api/v1/alerts"),
        ("kpi oee line 7d", f"/api/v1/kpi/oee?line=L1&from={week}&to={today}"),
        ("kpi oee all 30d", f"/api/v1/kpi/oee?from={month}&to={today}"),
        ("kpi oee all 30d by week", f"/api/v1/kpi/oee?from={month}&to={today}&bucket=week"),
        ("kpi yield process 30d", f"/api/v1/kpi/yield?group_by=process&from={month}&to={today}"),
        ("kpi yield station 30d", f"/api/v1/kpi/yield?group_by=station&from={month}&to={today}"),
        ("kpi yield product 30d", f"/api/v1/kpi/yield?group_by=product&from={month}&to={today}"),
        ("kpi pareto 30d", f"/api/v1/kpi/pareto?from={month}&to={today}"),
        ("kpi drilldown defect 7d", f"/api/v1/kpi/drilldown?kind=defect&key=D1&from={week}&to={today}"),
        ("kpi drilldown defect 30d", f"/api/v1/kpi/drilldown?kind=defect&key=D1&from={month}&to={today}"),
        (
            "kpi drilldown step loss 30d",
            f"/api/v1/kpi/drilldown?kind=process&key=P10&outcome=first_fail&from={month}&to={today}",
        ),
        ("kpi drilldown step all 7d", f"/api/v1/kpi/drilldown?kind=process&key=P10&from={week}&to={today}"),
        ("kpi drilldown step all 30d", f"/api/v1/kpi/drilldown?kind=process&key=P10&from={month}&to={today}"),
        (
            "kpi drilldown station failed 30d",
            f"/api/v1/kpi/drilldown?kind=station&key=L1-S1&outcome=failed&from={month}&to={today}",
        ),
        ("kpi drilldown product all 7d", f"/api/v1/kpi/drilldown?kind=product&key=PRD-1&from={week}&to={today}"),
        ("kpi drilldown product all 30d", f"/api/v1/kpi/drilldown?kind=product&key=PRD-1&from={month}&to={today}"),
        ("kpi output day 30d", f"/api/v1/kpi/output?bucket=day&from={month}&to={today}"),
        ("kpi output hour today", "/api/v1/kpi/output?bucket=hour"),
        ("kpi lines now", "/api/v1/kpi/lines/now"),
        ("history page 1 (100k LOT)", f"/api/v1/lots/{BIG_LOT}/history?limit=100"),
        ("history page 21 (cursor)", f"/api/v1/lots/{BIG_LOT}/history?limit=100&before={cursor}"),
    ]


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes that still runs (``/proc``)."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


class CpuMeter:
    """CPU seconds spent by a server's gunicorn workers and by the PostgreSQL backends of its
    database: unlike wall time, this hardly moves with what else the machine runs, so the
    figures of two runs on a busy machine can be compared. Both servers share the database; the
    other one is idle while one is measured (its background loops are counted, a little)."""

    def __init__(self, server: subprocess.Popen, db_name: str) -> None:
        self.server, self.db_name = server, db_name

    def pids(self) -> list[int]:
        workers = subprocess.run(["pgrep", "-P", str(self.server.pid)], capture_output=True, text=True).stdout.split()
        backends = subprocess.run(
            ["psql", PG_ADMIN, "-Atc", f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.db_name}'"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return [int(p) for p in workers + backends]

    def read(self) -> dict[int, float]:
        return _cpu_seconds(self.pids())

    def spent(self, before: dict[int, float]) -> float:
        """CPU seconds since ``before``: of the processes still there, and all of those started
        since (a connection the pool opened meanwhile); one that ended meanwhile is not counted."""
        after = self.read()
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def measure(client: httpx.Client, url: str, n: int, meter: CpuMeter | None = None) -> dict:
    times = []
    cpu_before = meter.read() if meter else {}
    for _ in range(n):
        started = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    times.sort()
    out = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}
    if meter:
        out["cpu_ms"] = round(meter.spent(cpu_before) * 1000 / n, 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--db", metavar="NAME", help="build into this database name (kept)")
    parser.add_argument("--reuse", metavar="NAME", help="time against a database built earlier; no build")
    parser.add_argument("--build-only", action="store_true", help="build (and keep) the database, time nothing")
    parser.add_argument(
        "--older-months",
        type=int,
        default=0,
        metavar="N",
        help="build: N more months of receipts before the data's own, failed records only (a year in: 11)",
    )
    parser.add_argument(
        "--only",
        metavar="TEXT",
        action="append",
        help="time only the endpoints whose label or path contains TEXT (repeatable; SELECT 1 is always timed)",
    )
    opts = parser.parse_args()
    if opts.records < BIG_EVENTS + 500:
        parser.error(f"--records must be at least {BIG_EVENTS + 500}")
    if opts.reuse and (opts.db or opts.build_only):
        parser.error("--reuse times an existing database; it cannot be combined with --db or --build-only")
    name = opts.reuse or opts.db or f"mes_bench_dash_{uuid.uuid4().hex[:8]}"
    keep = opts.keep or bool(opts.db or opts.reuse) or opts.build_only
    db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    work = Path(tempfile.mkdtemp(prefix="mes-bench-dash-"))
    servers = []
    try:
        if opts.reuse:
            setup = asyncio.run(_describe(db_url))
        else:
            print(f"generating {opts.records:,} records into {name} …", file=sys.stderr)
            setup = asyncio.run(build(db_url, opts.records))
            setup["rebuild_s"] = rebuild(db_url)
            if opts.older_months:
                setup.update(asyncio.run(add_older_months(db_url, opts.older_months)))
            print(f"generated in {setup['generate_s']} s, rebuilt rollups in {setup['rebuild_s']} s", file=sys.stderr)
        setup["database"] = name
        if opts.build_only:
            print(json.dumps({"setup": setup}, indent=2))
            return 0
        headers = {"Authorization": f"Bearer {token(asyncio.run(bench_user(db_url)))}"}
        cold_server, cold = start_server(db_url, work, cache_seconds=0, workers=opts.workers)
        servers.append(cold_server)
        warm_server, warm = start_server(db_url, work, cache_seconds=30, workers=opts.workers)
        servers.append(warm_server)
        paths = endpoints(cold, headers)
        if opts.only:
            paths = [(label, path) for label, path in paths if any(t in label or t in path for t in opts.only)]
        results = {}
        with (
            httpx.Client(base_url=cold, headers=headers, timeout=60) as c_cold,
            httpx.Client(base_url=warm, headers=headers, timeout=60) as c_warm,
        ):
            for client in (c_cold, c_warm):  # warm-up: connections, imports, plans
                for _, path in paths:
                    client.get(path)
            meter = CpuMeter(cold_server, name)
            baseline_cold = measure(c_cold, "/api/v1/health/readiness", opts.requests, meter)
            baseline_warm = measure(c_warm, "/api/v1/health/readiness", opts.requests)
            for label, path in paths:
                results[label] = {
                    "cold": measure(c_cold, path, opts.requests, meter),
                    "warm": measure(c_warm, path, opts.requests),
                }
    finally:
        for server in servers:
            stop(server)
        if not keep:
            asyncio.run(_drop(db_url))
        shutil.rmtree(work, ignore_errors=True)

    base = baseline_cold["p50_ms"]
    report = {
        "setup": {**setup, "workers": opts.workers, "requests_per_endpoint": opts.requests, "cpus": os.cpu_count()},
        "baseline_readiness_select1": {"cold_server": baseline_cold, "warm_server": baseline_warm},
        "endpoints": results,
    }
    print(json.dumps(report, indent=2))
    print()
    print(
        f"{'endpoint':<28} {'cold p50':>9} {'cold p95':>9} {'warm p50':>9} {'warm p95':>9}  "
        f"{'p50/SELECT 1':>12} {'p95/SELECT 1':>12} {'cold CPU ms':>11}"
    )
    print(
        f"{'SELECT 1 (readiness)':<28} {baseline_cold['p50_ms']:>9} {baseline_cold['p95_ms']:>9} "
        f"{baseline_warm['p50_ms']:>9} {baseline_warm['p95_ms']:>9}  {1.0:>12} {1.0:>12} {baseline_cold['cpu_ms']:>11}"
    )
    worst = 0.0
    for label, r in results.items():
        worst = max(worst, r["cold"]["p95_ms"]) if not label.startswith("history") else worst
        print(
            f"{label:<28} {r['cold']['p50_ms']:>9} {r['cold']['p95_ms']:>9} {r['warm']['p50_ms']:>9} "
            f"{r['warm']['p95_ms']:>9}  {r['cold']['p50_ms'] / base:>12.1f} "
            f"{r['cold']['p95_ms'] / baseline_cold['p95_ms']:>12.1f} {r['cold']['cpu_ms']:>11}"
        )
    history = max((r["cold"]["p95_ms"] for n, r in results.items() if n.startswith("history")), default=None)
    print(f"\nworst KPI p95 cold {worst} ms (goal ≤ 50 at 10 M); worst history page p95 {history} ms (goal ≤ 30)")
    return 0


async def _describe(db_url: str) -> dict:
    """What a kept database holds (``--reuse``): its record count and the time its records end."""
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        records = await conn.fetchval("SELECT count(*) FROM process_records")
        lots = await conn.fetchval("SELECT count(*) FROM lots")
        newest = await conn.fetchval("SELECT max(created_at) FROM process_records")
    finally:
        await conn.close()
    return {"records": records, "lots": lots, "reused": True, "newest_record": newest.isoformat() if newest else None}


async def _drop(db_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


if __name__ == "__main__":
    sys.exit(main())
