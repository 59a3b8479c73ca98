"""Benchmark: OPC UA machine data at load — N subscribed nodes changing at H Hz on the simulator.

The simulator (``mes-opcua-sim``) runs in its own process and prints how many values it published;
the kernel runs in this process (the app's lifespan, its machine-data writer and the OPC UA
plugin's connector, as ``mes serve`` runs them) with one OPC UA device mapping every sensor node
(``record_values = "always"``). After a warm-up, over ``--seconds``:

  * the simulator's publish rate (values/s)            — the ceiling, measured in the same run
  * values stored (rows committed to ``machine_values``/s) and their ratio to the publish rate
  * lag from each value's source timestamp to its ``stored_at`` (p50 / p95; the commit follows
    within one write, whose mean duration is shown)
  * CPU of the kernel process and of the simulator (cores busy: 1.0 = one core)

    .venv/bin/python bench/bench_opcua.py                       # 1,000 nodes at 10 Hz, SQLite
    .venv/bin/python bench/bench_opcua.py --database-url postgresql+asyncpg://postgres@127.0.0.1/mes_bench

A PostgreSQL database named in ``--database-url`` is created when missing and dropped afterwards.
Traffic stays on 127.0.0.1; the run is bounded by ``--warmup`` + ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _pg_database(url: str, *, drop: bool) -> None:
    import asyncpg

    base, name = url.replace("+asyncpg", "").rsplit("/", 1)
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def run(opts: argparse.Namespace) -> dict:
    from mes_opcua.simulator import device_config

    from mes_kernel import lines
    from mes_kernel.app import create_app
    from mes_kernel.db.models import MachineValue
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-opcua-"))
    url = opts.database_url or f"sqlite+aiosqlite:///{work}/mes.db"
    postgres = url.startswith("postgresql")
    if postgres:
        await _pg_database(url, drop=False)
    settings = Settings(
        environment="production",
        database_url=url,
        redis_url=None,
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
        files_dir=str(work / "files"),
        log_level="WARNING",
        workers=1,
        _env_file=None,
    )
    await asyncio.to_thread(upgrade, settings)

    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mes_opcua.simulator",
            "--port",
            "0",
            "--cycle",
            "0",
            "--stats",
            "--sensors",
            str(opts.nodes),
            "--hz",
            str(opts.hz),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    published: list[tuple[float, int]] = []

    def read_stats() -> None:
        for line in sim.stdout:
            if line.startswith("{"):
                item = json.loads(line)
                published.append((item["at"], item["published"]))

    try:
        first = await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 60)
        endpoint = re.search(r"opc\.tcp://\S+", first).group(0)
        await asyncio.to_thread(sim.stdout.readline)  # the device configuration line
        reader = asyncio.get_running_loop().run_in_executor(None, read_stats)

        app = create_app(settings)
        async with app.router.lifespan_context(app):
            kernel = app.state.kernel
            config = device_config(
                endpoint,
                sensors=opts.nodes,
                record_values="always",
                publishing_interval_ms=opts.publishing_ms,
                queue_size=10,
            )
            device = {"code": "MC-BENCH", "kind": "opcua", "driver": "opcua", "config": config}
            async with kernel.sessionmaker() as session:
                parsed = lines.parse({"code": "BENCH", "name": "Bench line", "devices": [device]})
                await lines.apply(session=session, config=parsed, catalog=lines.catalog_from_app(app), actor="bench")
                await session.commit()
            print(
                f"simulator {endpoint}: {opts.nodes} nodes at {opts.hz} Hz; warming up {opts.warmup} s", file=sys.stderr
            )
            await asyncio.sleep(opts.warmup)

            async def stored() -> int:
                async with kernel.sessionmaker() as session:
                    return (await session.execute(select(func.count()).select_from(MachineValue))).scalar_one()

            hub = kernel.machine_data
            flush_started = hub.flushes
            t0, n0, cpu0, sim_cpu0 = time.time(), await stored(), _cpu_seconds(os.getpid()), _cpu_seconds(sim.pid)
            pub0 = published[-1] if published else (t0, 0)
            await asyncio.sleep(opts.seconds)
            t1, n1, cpu1, sim_cpu1 = time.time(), await stored(), _cpu_seconds(os.getpid()), _cpu_seconds(sim.pid)
            pub1 = published[-1]
            flushes = hub.flushes - flush_started
            node = hub.device_health("MC-BENCH")
            async with kernel.sessionmaker() as session:
                rows = (
                    await session.execute(
                        select(MachineValue.source_at, MachineValue.stored_at).where(
                            MachineValue.id > n0, MachineValue.id <= n1
                        )
                    )
                ).all()
        lags = [(stored_at - source_at).total_seconds() for source_at, stored_at in rows]
        from mes_kernel.machine_data.hub import FLUSH

        flush_sum = next(s.value for s in FLUSH.collect()[0].samples if s.name.endswith("_sum"))
        flush_count = next(s.value for s in FLUSH.collect()[0].samples if s.name.endswith("_count"))
        wall = t1 - t0
        report = {
            "nodes": opts.nodes,
            "hz": opts.hz,
            "database": "postgresql" if postgres else "sqlite",
            "seconds": round(wall, 2),
            "simulator_published_per_s": round((pub1[1] - pub0[1]) / (pub1[0] - pub0[0]), 1),
            "stored_per_s": round((n1 - n0) / wall, 1),
            "lag_p50_s": round(_percentile(lags, 0.50), 3),
            "lag_p95_s": round(_percentile(lags, 0.95), 3),
            "lag_mean_s": round(statistics.fmean(lags), 3) if lags else None,
            "writes": flushes,
            "write_mean_s": round(flush_sum / flush_count, 4) if flush_count else None,
            "kernel_cpu_cores": round((cpu1 - cpu0) / wall, 2),
            "simulator_cpu_cores": round((sim_cpu1 - sim_cpu0) / wall, 2),
            "device": {"status": node.status.value, "reason": node.reason, "dropped": node.details.get("dropped")},
        }
        report["stored_vs_published"] = round(report["stored_per_s"] / report["simulator_published_per_s"], 3)
        reader.cancel()
        return report
    finally:
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
        if postgres:
            await _pg_database(url, drop=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--publishing-ms", type=int, default=100, help="the subscription's publishing interval")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    opts = parser.parse_args()
    report = asyncio.run(run(opts))
    print(json.dumps(report, indent=2))
    print(
        f"\nstored {report['stored_per_s']:.0f} values/s of {report['simulator_published_per_s']:.0f} published "
        f"({report['stored_vs_published']:.1%}); lag p50 {report['lag_p50_s'] * 1000:.0f} ms, "
        f"p95 {report['lag_p95_s'] * 1000:.0f} ms; kernel {report['kernel_cpu_cores']:.2f} cores, "
        f"simulator {report['simulator_cpu_cores']:.2f} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
