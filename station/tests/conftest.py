"""Fixtures for the station tests: a real contract server on 127.0.0.1 and a station config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mes_station.config import StationConfig, load_config
from mes_station.testing.contract_server import ContractState, ServerThread, create_contract_app
from mes_station.testing.helpers import write_station_toml


@pytest.fixture
def contract() -> Iterator[tuple[ContractState, ServerThread]]:
    """A running contract server and the state it serves."""
    state = ContractState()
    server = ServerThread(create_contract_app(state)).start()
    try:
        yield state, server
    finally:
        server.stop()


@pytest.fixture
def station_toml(tmp_path: Path, contract: tuple[ContractState, ServerThread]) -> Path:
    _, server = contract
    return write_station_toml(tmp_path / "station.toml", server_url=server.base_url, work_dir=tmp_path / "work")


@pytest.fixture
def station_config(station_toml: Path) -> StationConfig:
    return load_config(station_toml)
