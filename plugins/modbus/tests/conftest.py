"""Fixtures of the Modbus plugin's tests: a simulated machine on a free TCP port, and one behind a
pty serial line (RTU)."""

from __future__ import annotations

import pytest
from mes_modbus.simulator import MachineSimulator, PtyLink


@pytest.fixture
async def machine():
    """The simulated machine serving Modbus TCP on 127.0.0.1 (``.port``); it makes no parts by
    itself: the test drives it."""
    sim = await MachineSimulator().start_tcp()
    yield sim
    await sim.stop()


@pytest.fixture
async def rtu_machine():
    """The simulated machine as an RTU device on a pty line; ``.host_side`` of the returned link
    is the serial port a connector opens."""
    link = PtyLink().start()
    sim = await MachineSimulator().start_serial(link.device_side)
    yield sim, link
    await sim.stop()
    link.close()
