"""Labels per second through the API (POST /api/v1/labels/print) to the TCP printer simulator.

Builds the kernel app on a throw-away SQLite database, starts a Zebra simulator on a free port
in its own thread, configures it as printer BENCH-PRN, creates a LOT with one unit per label and
prints one unit label each, ``--concurrency`` requests at a time. Prints the figures; asserts
nothing. Run: ``.venv/bin/python bench/bench_labels.py --labels 200 --concurrency 4``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from mes_label_printer.simulator import ThreadedTcpPrinter

from mes_kernel.app import create_app
from mes_kernel.db.models import Device
from mes_kernel.migrate import upgrade
from mes_kernel.security import create_access_token
from mes_kernel.settings import Settings

API = "/api/v1"


async def run(labels: int, concurrency: int, confirm: bool, workdir: Path) -> None:
    settings = Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
        files_dir=str(workdir / "files"),
        log_json=False,
        log_level="WARNING",
        rate_limit_per_minute=10_000_000,
        station_rate_limit_per_minute=10_000_000,
        audit_seal_interval_seconds=3600,
        _env_file=None,
    )
    upgrade(settings)
    app = create_app(settings)
    with ThreadedTcpPrinter() as printer:
        async with app.router.lifespan_context(app):
            kernel = app.state.kernel
            token = create_access_token(subject="bench", role="admin", uid=0, secret=settings.secret_key, minutes=60)
            headers = {"Authorization": f"Bearer {token}"}
            async with kernel.sessionmaker() as session:
                session.add(
                    Device(
                        code="BENCH-PRN",
                        kind="label_printer",
                        driver="zpl_tcp",
                        config={"host": "127.0.0.1", "port": printer.port, "timeout": 5, "confirm": confirm},
                    )
                )
                await session.commit()
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
                lot = "LOT-BENCH"
                r = await client.post(f"{API}/lots", json={"lot_number": lot, "product": "PRD-100"}, headers=headers)
                r.raise_for_status()
                serials = [f"{lot}-{i:05d}" for i in range(labels)]
                for i in range(0, labels, 500):
                    r = await client.post(
                        f"{API}/lots/{lot}/units", json={"serial_numbers": serials[i : i + 500]}, headers=headers
                    )
                    r.raise_for_status()

                latencies: list[float] = []
                failures = 0
                queue: asyncio.Queue[str] = asyncio.Queue()
                for serial in serials:
                    queue.put_nowait(serial)

                async def worker() -> None:
                    nonlocal failures
                    while not queue.empty():
                        serial = queue.get_nowait()
                        body = {
                            "printer": "BENCH-PRN",
                            "template": "unit_label",
                            "fields": {"product": "PRD-100", "gtin": "09506000134352"},
                            "lot_number": lot,
                            "serial_number": serial,
                            "idempotency_key": f"bench-{serial}",
                        }
                        started = time.perf_counter()
                        r = await client.post(f"{API}/labels/print", json=body, headers=headers)
                        latencies.append(time.perf_counter() - started)
                        if r.status_code != 201:
                            failures += 1

                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                elapsed = time.perf_counter() - started

    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(f"labels requested : {labels} (concurrency {concurrency}, ~HS confirmation {'on' if confirm else 'off'})")
    print(f"labels printed   : {printer.core.label_count}  failures: {failures}")
    print(f"elapsed          : {elapsed:.2f} s")
    print(f"throughput       : {labels / elapsed:.1f} labels/s")
    print(f"latency          : median {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--no-confirm", action="store_true", help="skip the ~HS before/after each label")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as workdir:
        asyncio.run(run(args.labels, args.concurrency, not args.no_confirm, Path(workdir)))


if __name__ == "__main__":
    main()
