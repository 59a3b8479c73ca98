"""Benchmark: /api/v1/health with 20 plugins (one hanging), against liveness; kernel start-up time.

Each scenario starts one uvicorn process (the embedded default, SQLite) with 20 registered
plugins, each contributing a health check, and drives it with wrk over 50 connections:

  * liveness                — the ceiling, same server, same run
  * health, all healthy     — every request runs all checks (result cache off)
  * health, one hanging     — one check never answers; its 0.5 s timeout bounds every answer
  * health, one hanging, cached (the default 1.5 s) — what a probe storm really costs

Start-up: time from create_app() to the end of the lifespan start, with 0 and with 20 plugins.
Needs wrk (apt-get install wrk). Traffic only to 127.0.0.1, bounded by --duration.

    .venv/bin/python bench/bench_health.py --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HANG_TIMEOUT = 0.5

LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def make_plugins(count: int, hanging: bool) -> list:
    from mes_kernel import hookimpl
    from mes_kernel.contracts import CheckResult, HealthCheck, Status

    plugins = []
    for i in range(count):
        hang = hanging and i == count - 1

        class Plugin:
            MES_KERNEL_API = ">=1.0"
            __name__ = f"bench_plugin_{i:02d}"

            def __init__(self, index=i, hangs=hang):
                self.index, self.hangs = index, hangs

            @hookimpl
            def mes_register_health_checks(self, kernel):
                async def check():
                    if self.hangs:
                        await asyncio.Event().wait()
                    await asyncio.sleep(0.001)  # a device round trip
                    return CheckResult(Status.UP)

                return [HealthCheck(f"device_{self.index}", check, timeout=HANG_TIMEOUT)]

        plugins.append(Plugin())
    return plugins


def serve(port: int, plugins: int, hanging: bool, cache_seconds: float, db: str) -> None:
    import uvicorn

    from mes_kernel.app import create_app
    from mes_kernel.settings import Settings

    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", health_cache_seconds=cache_seconds,
                        log_level="WARNING", rate_limit_per_minute=10**9, _env_file=None)
    app = create_app(settings, extra_plugins=make_plugins(plugins, hanging))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def startup_seconds(plugins: int, db: str) -> float:
    from mes_kernel.app import create_app
    from mes_kernel.settings import Settings

    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", log_level="WARNING", _env_file=None)
    started = time.perf_counter()
    app = create_app(settings, extra_plugins=make_plugins(plugins, False))
    async with app.router.lifespan_context(app):
        elapsed = time.perf_counter() - started
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, script: Path, duration: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script),
                          url], capture_output=True, text=True, timeout=duration + 60)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    requests, micros, bad, sock, p50, p95, p99 = map(int, line.split()[1:])
    return {"rps": round(requests / (micros / 1e6), 1), "requests": requests, "non_2xx": bad, "socket_errors": sock,
            "p50_ms": round(p50 / 1000, 1), "p95_ms": round(p95 / 1000, 1), "p99_ms": round(p99 / 1000, 1)}


def scenario(name, path, *, plugins, hanging, cache, opts, work, script):
    port = free_port()
    db = work / f"{name}.db"
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    upgrade(Settings(database_url=f"sqlite+aiosqlite:///{db}", _env_file=None))
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--plugins", str(plugins),
                             "--cache", str(cache), "--db", str(db)] + (["--hanging"] if hanging else []))
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/health/liveness", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)  # warm-up
        return wrk(f"http://127.0.0.1:{port}{path}", script, opts.duration, opts.connections)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--plugins", type=int, default=20)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hanging", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        serve(opts.serve, opts.plugins, opts.hanging, opts.cache, opts.db)
        return 0
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mes-bench-health-"))
    script = work / "done.lua"
    script.write_text(LUA)
    try:
        from mes_kernel.migrate import upgrade
        from mes_kernel.settings import Settings

        db = work / "startup.db"
        upgrade(Settings(database_url=f"sqlite+aiosqlite:///{db}", _env_file=None))
        start0 = statistics.median(asyncio.run(startup_seconds(0, str(db))) for _ in range(3))
        start20 = statistics.median(asyncio.run(startup_seconds(opts.plugins, str(db))) for _ in range(3))
        n = opts.plugins
        results = {
            "liveness": scenario("live", "/api/v1/health/liveness", plugins=n, hanging=False, cache=0, opts=opts,
                                 work=work, script=script),
            "health_all_healthy": scenario("ok", "/api/v1/health", plugins=n, hanging=False, cache=0, opts=opts,
                                           work=work, script=script),
            "health_one_hanging": scenario("hang", "/api/v1/health", plugins=n, hanging=True, cache=0, opts=opts,
                                           work=work, script=script),
            "health_one_hanging_cached": scenario("hangc", "/api/v1/health", plugins=n, hanging=True, cache=1.5,
                                                  opts=opts, work=work, script=script),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    live = results["liveness"]["rps"]
    print(json.dumps({"plugins": n, "hang_timeout_s": HANG_TIMEOUT, "startup_s": {"0_plugins": round(start0, 3),
                      f"{n}_plugins": round(start20, 3)}, **results}, indent=2))
    print()
    for name, r in results.items():
        print(f"{name:<28} {r['rps']:>8.1f} req/s ({r['rps'] / live:>5.1%} of liveness)  p50 {r['p50_ms']} ms  "
              f"p95 {r['p95_ms']} ms  p99 {r['p99_ms']} ms  non-2xx {r['non_2xx']}")
    print(f"start-up: {start0 * 1000:.0f} ms with 0 plugins, {start20 * 1000:.0f} ms with {n}")
    hang = results["health_one_hanging"]
    print(f"one hanging check: p99 {hang['p99_ms']} ms against its {HANG_TIMEOUT * 1000:.0f} ms timeout")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
