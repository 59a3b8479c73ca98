"""Replay of a station backlog after an outage: 10,000 queued events drained into a real server.

    .venv/bin/python bench/bench_outbox.py                 # the real kernel (embedded SQLite)
    .venv/bin/python bench/bench_outbox.py --server contract --events 10000 --batch-size 200

The events are committed to the station's outbox while the server is unreachable (the commit rate
is measured too: every commit is fsynced, ``synchronous=FULL``), then the server comes up and the
real agent drains the backlog. Prints events/s and time to drain, and checks every event arrived
exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

from mes_station.agent import Agent
from mes_station.testing.contract_server import ContractState, ServerThread, create_contract_app
from mes_station.testing.helpers import write_station_toml


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(kind: str, work: Path, port: int):
    """``(base_url, token, count_records)`` for a started server of ``kind``."""
    if kind == "contract":
        state = ContractState()
        server = ServerThread(create_contract_app(state), port=port).start()
        return server, state.token, lambda: list(state.records)
    from mes_station.testing.kernel_server import embedded_kernel_settings, start_kernel

    kernel = start_kernel(embedded_kernel_settings(work), port=port)
    kernel.make_lot("LOT-BENCH")
    return kernel, kernel.station_token, kernel.record_keys


async def bench(events: int, batch_size: int, kind: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        work = Path(tmp)
        port = _free_port()
        # the server's token is needed in the config; start it, note it, stop it: the outage
        server, token, stored = _start_server(kind, work, port)
        toml = write_station_toml(
            work / "station.toml",
            server_url=f"http://127.0.0.1:{port}",
            work_dir=work / "station",
            server={"url": f"http://127.0.0.1:{port}", "token": token, "timeout": 30.0},
            outbox={"batch_size": batch_size, "backoff_initial": 0.2, "backoff_max": 1.0},
            heartbeat={"interval": 30.0},
        )
        server.stop()
        agent = Agent.from_config(toml)
        started = time.perf_counter()
        keys = [
            agent.record_result(
                lot_number="LOT-BENCH", process_id="ASSY-10", worker_id="w1", result="pass", data={"i": i}
            )
            for i in range(events)
        ]
        enqueue_s = time.perf_counter() - started
        print(f"server           {kind} (127.0.0.1:{port})")
        print(
            f"queued           {events} events in {enqueue_s:.2f} s "
            f"({events / enqueue_s:,.0f} commits/s, WAL + synchronous=FULL)"
        )

        if kind == "contract":
            server.start()
        else:
            server.restart()
        await agent.start()
        started = time.perf_counter()
        deadline = started + 600
        while agent.outbox_depth() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        drain_s = time.perf_counter() - started
        await agent.stop()
        held = stored()
        server.stop()
        print(f"batch size       {batch_size}")
        print(f"drained          {events} events in {drain_s:.2f} s ({events / drain_s:,.0f} events/s)")
        exact = sorted(held) == sorted(keys)
        print(f"server holds     {len(held)} records; every event exactly once: {exact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--server", choices=("kernel", "contract"), default="kernel")
    args = parser.parse_args()
    asyncio.run(bench(args.events, args.batch_size, args.server))


if __name__ == "__main__":
    main()
