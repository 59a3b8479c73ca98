"""Benchmark: scan-to-screen latency at a station — a barcode on the wire to the unit's data in hand.

A real serial scanner driver reads a pty (the test harness writes the barcode bytes into the
master side, as a USB-CDC scanner would), the real station agent receives the scan, records it in
its outbox and looks the code up on the real kernel (``POST /scans/lookup`` over HTTP on
127.0.0.1, embedded SQLite); the clock stops when the lookup answer — what the window shows —
is back. Printed: p50/p95/p99 of the whole path and of its two parts (driver: bytes → scan event;
lookup: scan → answer), beside a bare ``GET /health/liveness`` round trip of the same server.

    .venv/bin/python bench/bench_scan.py --scans 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:<22} p50 {pct(values, 0.5):7.2f} ms  p95 {pct(values, 0.95):7.2f} ms  "
        f"p99 {pct(values, 0.99):7.2f} ms  (n={len(values)})"
    )


async def run(scans: int) -> None:
    from mes_station.agent import Agent
    from mes_station.testing.helpers import write_station_toml
    from mes_station.testing.kernel_server import embedded_kernel_settings, start_kernel


    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        work = Path(tmp)
        settings = embedded_kernel_settings(work)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        kernel = start_kernel(settings, port=port)
        serials = kernel.make_lot("LOT-SCAN", units=20, serial_prefix="SN-BENCH")
        master, slave = os.openpty()
        toml = write_station_toml(
            work / "station.toml",
            server_url=f"http://127.0.0.1:{port}",
            work_dir=work / "station",
            server={"url": f"http://127.0.0.1:{port}", "token": kernel.station_token, "timeout": 10.0},
            heartbeat={"interval": 60.0},
            devices={"scanner": {"driver": "serial", "port": os.ttyname(slave), "terminator": "CR"}},
        )
        agent = Agent.from_config(toml)
        await agent.start()
        seen: asyncio.Queue = asyncio.Queue()
        agent.subscribe(
            lambda kind, payload: seen.put_nowait((time.perf_counter(), payload)) if kind == "scan" else None
        )
        totals, drivers, lookups, lives = [], [], [], []
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for i in range(scans + 10):
                    code = serials[i % len(serials)]
                    t0 = time.perf_counter()
                    os.write(master, code.encode() + b"\r")
                    t_scan, scan = await asyncio.wait_for(seen.get(), 10)
                    assert getattr(scan, "code", None) == code, scan
                    answer = await agent.lookup(code)
                    t1 = time.perf_counter()
                    assert answer.get("unit", {}).get("serial_number") == code or code in str(answer), answer
                    l0 = time.perf_counter()
                    await client.get("/api/v1/health/liveness")
                    if i >= 10:  # warm-up excluded
                        totals.append(t1 - t0)
                        drivers.append(t_scan - t0)
                        lookups.append(t1 - t_scan)
                        lives.append(time.perf_counter() - l0)
        finally:
            await agent.stop()
            os.close(master)
            os.close(slave)
            kernel.stop()
        print(line("scan to screen", totals))
        print(line("  driver (pty → scan)", drivers))
        print(line("  lookup (HTTP)", lookups))
        print(line("liveness round trip", lives))
        print(
            f"scan-to-screen median is {statistics.median(totals) / statistics.median(lives):.1f}x "
            "a bare HTTP round trip to the same server"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=200)
    asyncio.run(run(parser.parse_args().scans))


if __name__ == "__main__":
    main()
