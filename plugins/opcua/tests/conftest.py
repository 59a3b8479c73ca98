"""Fixtures of the OPC UA plugin's tests: a simulated machine on a free port."""

from __future__ import annotations

import pytest
from mes_opcua.simulator import MachineSimulator


@pytest.fixture
async def machine():
    """A simulated machine that runs no cycles by itself: the test drives it."""
    sim = MachineSimulator(cycle_seconds=None)
    await sim.start()
    yield sim
    await sim.stop()
