"""The simulator as integrators run it: the demo's machine making parts in its own thread, and the
``mes-modbus-sim`` command printing the configuration of the device that reads it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from mes_modbus.demo import demo_devices
from mes_modbus.drivers import ModbusTcpDriver
from mes_modbus.simulator.machine import RUNNING, start_in_thread


async def _good_parts(port: int) -> int:
    driver = ModbusTcpDriver(host="127.0.0.1", port=port, timeout=5.0)
    await driver.connect()
    try:
        high, low = await driver.read("holding", 1, 2)
        return high << 16 | low
    finally:
        await driver.close()


async def test_the_demo_machine_makes_parts_in_its_own_thread():
    port = start_in_thread(cycle=0.02, jam_every=0)
    deadline = time.monotonic() + 30
    while await _good_parts(port) < 2:  # one part in ten is bad: two good ones come soon
        assert time.monotonic() < deadline, "the demo machine made no parts"
        await asyncio.sleep(0.05)


def test_the_demo_line_gets_a_tcp_machine():
    (device,) = demo_devices()
    assert device["kind"] == "modbus" and device["driver"] == "tcp" and device["station"] is None
    assert device["config"]["registers"]["state"] == "holding:0" and device["config"]["port"] > 0


async def test_the_simulator_command_prints_its_device_config_and_serves():
    proc = subprocess.Popen(
        [sys.executable, "-m", "mes_modbus.simulator", "--tcp", "127.0.0.1:0", "--cycle", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        device = json.loads(line)
        assert device["driver"] == "tcp" and device["config"]["host"] == "127.0.0.1"
        driver = ModbusTcpDriver(host="127.0.0.1", port=device["config"]["port"], timeout=5.0)
        await driver.connect()
        try:
            assert await driver.read("holding", 0, 1) == [RUNNING]
        finally:
            await driver.close()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
