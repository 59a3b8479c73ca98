"""Benchmark: concurrent flashes through the kernel's API to N simulated uploader devices over real HTTP.

Starts N uploader simulator services and the kernel (SQLite in a temporary folder) on 127.0.0.1,
uploads one image, then sends ``--flashes`` flash requests round-robin over the devices, at most
``--concurrency`` at a time, and prints throughput and latency percentiles.

    .venv/bin/python bench/bench_flash.py --devices 8 --flashes 160 --flash-seconds 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from mes_firmware_uploader.simulator import SimulatorServer, ThreadedServer

from mes_kernel.app import create_app
from mes_kernel.db.base import make_engine, make_sessionmaker
from mes_kernel.db.models import Device, Lot, Unit, User
from mes_kernel.migrate import upgrade
from mes_kernel.security import create_access_token
from mes_kernel.settings import Settings

PRODUCT = "BENCH-PRD"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def prepare(settings: Settings, devices: list[SimulatorServer], units: int, poll: float) -> str:
    """Schema, a LOT with units, the uploader devices and an admin token (outside the API)."""
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        user = User(username="bench", role="admin", password_hash="-")
        lot = Lot(lot_number="LOT-BENCH", product=PRODUCT, quantity=units, status="in_progress")
        session.add_all([user, lot])
        await session.flush()
        session.add_all(Unit(serial_number=f"SN-{i:06d}", lot_id=lot.id) for i in range(units))
        session.add_all(
            Device(
                code=f"UPL-{i:02d}",
                kind="firmware_uploader",
                driver="http_uploader",
                config={"base_url": server.url, "timeout": 30.0, "poll_interval": poll},
            )
            for i, server in enumerate(devices)
        )
        await session.commit()
        uid = user.id
    await engine.dispose()
    return create_access_token(subject="bench", role="admin", uid=uid, secret=settings.secret_key, minutes=60)


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-flash-"))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{workdir / 'mes.db'}",
        files_dir=str(workdir / "files"),
        secret_key="bench-secret-key-0123456789-0123456789",
        rate_limit_per_minute=10_000_000,
        station_rate_limit_per_minute=10_000_000,
        log_level="WARNING",
        log_json=False,
        _env_file=None,
    )
    upgrade(settings)
    simulators = [SimulatorServer(flash_seconds=args.flash_seconds).start() for _ in range(args.devices)]
    token = await prepare(settings, simulators, args.flashes, args.poll_interval)
    kernel = ThreadedServer(create_app(settings), lifespan="on").start(timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            base_url=kernel.url,
            headers=headers,
            timeout=120.0,
            limits=httpx.Limits(max_connections=args.concurrency + 4),
        ) as client:
            image = os.urandom(args.image_kib * 1024)
            r = await client.post(
                "/api/v1/firmware/images",
                data={"product": PRODUCT, "version": "1.0.0"},
                files={"file": ("bench.bin", image)},
            )
            r.raise_for_status()
            image_id = r.json()["id"]

            gate = asyncio.Semaphore(args.concurrency)
            latencies: list[float] = []
            outcomes: Counter[str] = Counter()

            async def flash(i: int) -> None:
                order = {
                    "serial_number": f"SN-{i:06d}",
                    "image_id": image_id,
                    "device": f"UPL-{i % args.devices:02d}",
                    "idempotency_key": f"bench-{i}",
                }
                async with gate:
                    started = time.perf_counter()
                    response = await client.post("/api/v1/firmware/upload", json=order)
                    latencies.append(time.perf_counter() - started)
                code = "ok" if response.status_code == 201 else response.json()["detail"]["code"]
                outcomes[code] += 1

            started = time.perf_counter()
            await asyncio.gather(*(flash(i) for i in range(args.flashes)))
            wall = time.perf_counter() - started
    finally:
        kernel.stop()
        for server in simulators:
            server.stop()

    flashed = sum(len(s.state.flashes) for s in simulators)
    print(
        f"devices={args.devices} flashes={args.flashes} concurrency={args.concurrency} "
        f"flash_seconds={args.flash_seconds} image={args.image_kib} KiB poll={args.poll_interval}s"
    )
    print(f"outcomes: {dict(outcomes)}   flashes seen by the simulators: {flashed}")
    print(f"wall {wall:.2f} s   throughput {args.flashes / wall:.1f} flashes/s")
    print(
        f"latency p50 {percentile(latencies, 50) * 1000:.0f} ms   p95 {percentile(latencies, 95) * 1000:.0f} ms   "
        f"mean {statistics.mean(latencies) * 1000:.0f} ms   max {max(latencies) * 1000:.0f} ms"
    )
    ideal = args.flashes / args.concurrency * args.flash_seconds
    print(f"lower bound with {args.concurrency} in flight and {args.flash_seconds} s per flash: {ideal:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--flashes", type=int, default=160)
    parser.add_argument("--concurrency", type=int, default=0, help="requests in flight (default: one per device)")
    parser.add_argument("--flash-seconds", type=float, default=0.2, help="how long each simulated flash takes")
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--image-kib", type=int, default=256)
    args = parser.parse_args()
    args.concurrency = args.concurrency or args.devices
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
