"""Run the spec's load test (``bench/locustfile.py``) against a real server, bounded, and report.

Builds a scratch PostgreSQL database at head with an admin account, optionally fills it with
``--records`` process records through SQL plus ``mes kpi rebuild`` (so dashboards read a year-like
history rather than an empty plant), starts the kernel under gunicorn (``deploy/gunicorn.conf.py``,
``--workers`` uvicorn workers, PostgreSQL + Redis, the production rate limits), and runs

    locust -f bench/locustfile.py --headless -u 100 -r 20 -t <run-time> --host <server>

100 users: 10 stations recording at a combined 20 records/s, the rest managers polling their
views as the web does. Prints failures and p50/p95/p99 per endpoint from locust's statistics, the
records the stations had acknowledged against the records stored, then stops the server and drops
the database. Traffic goes to 127.0.0.1 only.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/run_locust.py                       # -u 100 -r 20, 60 s of load
    .venv/bin/python bench/run_locust.py --records 1000000     # on a filled database
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_dashboard import PG_ADMIN, _drop, build, rebuild, start_server, stop  # noqa: E402

ADMIN_PASSWORD = "locust-admin-password-0123"


async def prepare(db_url: str, records: int) -> None:
    """A database at head (filled when ``records``) with the admin account locust logs in as."""
    import asyncpg

    from mes_kernel.security import hash_password

    if records:
        await build(db_url, records)
    else:
        from mes_kernel.migrate import upgrade
        from mes_kernel.settings import Settings

        conn = await asyncpg.connect(PG_ADMIN)
        name = db_url.rsplit("/", 1)[1]
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        await asyncio.to_thread(upgrade, Settings(database_url=db_url, _env_file=None))
    from mes_kernel.db.base import make_engine, make_sessionmaker
    from mes_kernel.db.models import User
    from mes_kernel.settings import Settings

    engine = make_engine(Settings(database_url=db_url, _env_file=None))
    async with make_sessionmaker(engine)() as session:
        session.add(User(username="admin", role="admin", password_hash=hash_password(ADMIN_PASSWORD)))
        await session.commit()
    await engine.dispose()


async def stored_records(db_url: str, lot_prefix: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchval("SELECT count(*) FROM process_records WHERE lot_number LIKE $1", lot_prefix + "%")
    finally:
        await conn.close()


def report(prefix: Path) -> tuple[list[dict], dict]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    endpoints = [r for r in rows if r["Name"] != "Aggregated"]
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return endpoints, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=int, default=20)
    parser.add_argument("--run-time", type=int, default=60, help="seconds of load (set-up comes on top)")
    parser.add_argument("--setup-time", type=int, default=60, help="seconds allowed for locust's set-up")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--records", type=int, default=0, help="process records generated up front")
    opts = parser.parse_args()
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    if not locust:
        print("locust is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/mes_bench_locust_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="mes-bench-locust-"))
    run = uuid.uuid4().hex[:6].upper()
    server = None
    try:
        asyncio.run(prepare(db_url, opts.records))
        if opts.records:
            rebuild(db_url)
        # The production limits (100 writes/min per person, 600 reads): the scenario must live with them.
        server, base = start_server(
            db_url, work, cache_seconds=5, workers=opts.workers, env={"RATE_LIMIT_PER_MINUTE": "100"}
        )
        prefix = work / "locust"
        # The set-up (accounts, stations, tokens through the API) runs inside locust's clock: add it.
        cmd = [
            locust, "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "-u", str(opts.users),
            "-r", str(opts.spawn_rate), "-t", f"{opts.run_time + opts.setup_time}s", "--host", base,
            "--csv", str(prefix), "--only-summary", "--stop-timeout", "10",
        ]  # fmt: skip
        env = {**os.environ, "MES_ADMIN_PASSWORD": ADMIN_PASSWORD, "MES_LOCUST_RUN": run}
        bound = opts.run_time + opts.setup_time + 180
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=bound)
        if not Path(f"{prefix}_stats.csv").exists():
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            return 1
        endpoints, total = report(prefix)
        stored = asyncio.run(stored_records(db_url, f"LOT-LOAD-{run}"))
    finally:
        if server is not None:
            stop(server)
        asyncio.run(_drop(db_url))
        shutil.rmtree(work, ignore_errors=True)

    print(f"locust -u {opts.users} -r {opts.spawn_rate}, {opts.run_time} s of load (+{opts.setup_time} s set-up), "
          f"gunicorn {opts.workers} workers, PostgreSQL + Redis, {opts.records:,} records up front")  # fmt: skip
    print(f"{'endpoint':<34} {'requests':>8} {'failures':>8} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6}  ms")
    for r in [*endpoints, total]:
        print(
            f"{r['Name']:<34} {r['Request Count']:>8} "
            f"{r['Failure Count']:>8} {float(r['Requests/s']):>7.1f} {r['50%']:>6} {r['95%']:>6} {r['99%']:>6}"
        )
    posted = next((r for r in endpoints if r["Name"] == "POST /process-records"), None)
    acknowledged = int(posted["Request Count"]) - int(posted["Failure Count"]) if posted else 0
    # A request still in flight when locust stops may be stored without its answer being counted.
    print(f"records acknowledged {acknowledged}, stored {stored} (stored >= acknowledged: {stored >= acknowledged})")
    failures = int(total["Failure Count"])
    return 0 if failures == 0 and stored >= acknowledged else 1


if __name__ == "__main__":
    sys.exit(main())
