"""Benchmark: one page of the history of a LOT with 100,000 events, on PostgreSQL, beside SELECT 1.

Builds a scratch database at head with N process records (``bench_dashboard.build``: one LOT,
``BENCH-BIG``, holds 100,000 of them, over 100 units) and their trace stream (as migration 0013
would have written it), starts the kernel under gunicorn, and times with sequential requests,
p50/p95:

- the readiness probe of the same server (one ``SELECT 1`` round trip plus the schema check): the
  baseline every figure is divided by;
- the LOT history, first page and a page 500 pages deep (by cursor), 100 events each;
- a unit's history (1,000 events), first page.

Goal (issue 13): a history page of the 100,000-event LOT p95 ≤ 30 ms. Traffic to 127.0.0.1 only.

    .venv/bin/python bench/bench_history.py                    # 1 M records
    .venv/bin/python bench/bench_history.py --records 200000   # a busy machine
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dashboard import BIG_EVENTS, BIG_LOT, _drop, bench_user, build, measure, start_server, stop, token  # noqa: E402


async def select1_round_trip(db_url: str, n: int) -> dict:
    """``SELECT 1`` straight to PostgreSQL (asyncpg), for reference beside the server's probe."""
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}


def walk(client: httpx.Client, path: str, pages: int) -> str:
    """The cursor ``pages`` pages into a history."""
    cursor = None
    for _ in range(pages):
        params = {"limit": 100, **({"before": cursor} if cursor else {})}
        page = client.get(path, params=params).json()
        cursor = page["next_before"]
        assert cursor, f"{path} has fewer than {pages} pages"
    return cursor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60, help="timed requests per endpoint")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    opts = parser.parse_args()
    if opts.records < BIG_EVENTS + 500:
        parser.error(f"--records must be at least {BIG_EVENTS + 500}")

    db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/mes_bench_hist_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="mes-bench-hist-"))
    server = None
    try:
        print(f"generating {opts.records:,} records and their trace stream …", file=sys.stderr)
        setup = asyncio.run(build(db_url, opts.records))
        server, base = start_server(db_url, work, cache_seconds=0, workers=opts.workers)
        headers = {"Authorization": f"Bearer {token(asyncio.run(bench_user(db_url)))}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            first = client.get(f"/api/v1/lots/{BIG_LOT}/history", params={"limit": 100}).json()
            assert first["total"] >= BIG_EVENTS, first["total"]
            serial = next(e["serial_number"] for e in first["events"] if e["serial_number"])
            deep = walk(client, f"/api/v1/lots/{BIG_LOT}/history", 500)
            paths = [
                ("LOT history page 1", f"/api/v1/lots/{BIG_LOT}/history?limit=100"),
                ("LOT history page 501", f"/api/v1/lots/{BIG_LOT}/history?limit=100&before={deep}"),
                ("unit history page 1", f"/api/v1/units/{serial}/history?limit=100"),
            ]
            for _, path in paths:  # warm-up: connections, plans
                for _ in range(5):
                    client.get(path)
            baseline = measure(client, "/api/v1/health/readiness", opts.requests)
            results = {name: measure(client, path, opts.requests) for name, path in paths}
        select1 = asyncio.run(select1_round_trip(db_url, opts.requests))
    finally:
        if server is not None:
            stop(server)
        if not opts.keep:
            asyncio.run(_drop(db_url))
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "setup": {**setup, "big_lot_events": first["total"], "workers": opts.workers,
                  "requests_per_endpoint": opts.requests, "cpus": os.cpu_count()},
        "baseline_readiness_select1": baseline,
        "select1_direct": select1,
        "endpoints": results,
    }
    print(json.dumps(report, indent=2))
    print()
    print(f"{'endpoint':<24} {'p50 ms':>8} {'p95 ms':>8}  p50 / SELECT 1  p95 / SELECT 1 (server probe p50)")
    print(f"{'SELECT 1 (readiness)':<24} {baseline['p50_ms']:>8} {baseline['p95_ms']:>8}  1.0")
    for name, r in results.items():
        print(f"{name:<24} {r['p50_ms']:>8} {r['p95_ms']:>8}  {r['p50_ms'] / baseline['p50_ms']:>14.1f}  "
              f"{r['p95_ms'] / baseline['p50_ms']:>14.1f}")
    worst = max(r["p95_ms"] for r in results.values())
    print(f"\nworst history page p95 {worst} ms (goal ≤ 30 ms for a 100,000-event LOT)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
