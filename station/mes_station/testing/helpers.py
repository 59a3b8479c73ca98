"""Small helpers for station tests and benchmarks: bounded waiting, a test-sized station.toml."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from mes_station.testing.contract_server import TOKEN


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until true; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)


def write_station_toml(path: Path, *, server_url: str, work_dir: Path, **sections: Any) -> Path:
    """A station.toml with test-sized intervals; ``sections`` update or add TOML tables."""
    doc: dict[str, Any] = {
        "server": {"url": server_url, "token": TOKEN, "timeout": 2.0},
        "station": {"code": "ST-01", "work_dir": str(work_dir)},
        "outbox": {"backoff_initial": 0.05, "backoff_max": 0.2, "batch_size": 50},
        "heartbeat": {"interval": 0.3},
        "watcher": {"settle_seconds": 0.3, "malformed_after_seconds": 0.8, "rescan_seconds": 0.2},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(doc.get(section), dict):
            doc[section].update(values)
        else:
            doc[section] = values
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path
