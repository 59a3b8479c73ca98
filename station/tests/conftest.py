"""Fixtures for the station tests: a real contract server on 127.0.0.1 and a station config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from mes_station.config import StationConfig, load_config
from mes_station.testing.contract_server import TOKEN, ContractState, ServerThread, create_contract_app


@pytest.fixture
def contract() -> Iterator[tuple[ContractState, ServerThread]]:
    """A running contract server and the state it serves."""
    state = ContractState()
    server = ServerThread(create_contract_app(state)).start()
    try:
        yield state, server
    finally:
        server.stop()


def write_station_toml(path: Path, *, server_url: str, work_dir: Path, **overrides: Any) -> Path:
    """A station.toml with test-sized intervals (small backoff, fast heartbeat and settling)."""
    doc: dict[str, Any] = {
        "server": {"url": server_url, "token": TOKEN, "timeout": 2.0},
        "station": {"code": "ST-01", "work_dir": str(work_dir)},
        "outbox": {"backoff_initial": 0.05, "backoff_max": 0.2, "batch_size": 50},
        "heartbeat": {"interval": 0.3},
        "watcher": {"settle_seconds": 0.3, "malformed_after_seconds": 0.8, "rescan_seconds": 0.2},
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(doc.get(section), dict):
            doc[section].update(values)
        else:
            doc[section] = values
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def station_toml(tmp_path: Path, contract: tuple[ContractState, ServerThread]) -> Path:
    _, server = contract
    return write_station_toml(tmp_path / "station.toml", server_url=server.base_url, work_dir=tmp_path / "work")


@pytest.fixture
def station_config(station_toml: Path) -> StationConfig:
    return load_config(station_toml)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
