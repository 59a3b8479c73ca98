"""The device configuration an integrator writes, the reconnect schedule, and the simulator as a command."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest
from mes_opcua.config import parse_settings
from mes_opcua.drivers import AsyncuaDriver
from mes_opcua.simulator import device_config

from mes_kernel.contracts import MappingError, backoff


def test_the_issue_configuration_parses():
    config = {
        "endpoint": "opc.tcp://host:4840",
        "nodes": {
            "state": "ns=2;s=Machine.State",
            "good": "ns=2;s=Machine.Good",
            "bad": "ns=2;s=Machine.Bad",
            "serial": "ns=2;s=Machine.Serial",
        },
        "states": {"running": [1], "idle": [2], "down": [3, 4]},
    }
    settings = parse_settings(config)
    assert settings.nodes["serial"] == "ns=2;s=Machine.Serial"
    assert settings.mapping.state_of(4) == ("down", "raw state 4")
    assert settings.security.policy == "None"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "http://host"}, "endpoint"),
        ({"nodes": {"state": "not a node id ;;"}, "values": {}}, "nodes.state"),
        ({"security": {"policy": "Basic128Rsa15"}}, "security.policy"),
        ({"security": {"policy": "Basic256Sha256"}}, "security.certificate"),
        ({"writable": {"recipe": 5}}, "writable.recipe"),
        ({"publishing_interval_ms": 0}, "publishing_interval_ms"),
        ({"states": {"running": [1], "broken": [2]}}, "states.broken"),
    ],
)
def test_a_configuration_that_cannot_work_names_its_key(change, field):
    config = {**device_config("opc.tcp://127.0.0.1:4840"), **change}
    with pytest.raises(MappingError) as caught:
        parse_settings(config)
    assert caught.value.field == field


def test_reconnects_back_off_doubling_to_the_cap_with_jitter():
    waits = [backoff(n, low=1.0, high=30.0, rng=lambda: 0.5) for n in range(1, 8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(1, low=1.0, high=30.0, rng=lambda: 0.0) == pytest.approx(0.8)
    assert backoff(1, low=1.0, high=30.0, rng=lambda: 1.0) == pytest.approx(1.2)


async def test_the_simulator_runs_as_a_command():
    proc = subprocess.Popen(
        [sys.executable, "-m", "mes_opcua.simulator", "--port", "0", "--cycle", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        endpoint = re.search(r"opc\.tcp://\S+", line).group(0)
        config = json.loads((await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)).split(":", 1)[1])
        settings = parse_settings(config)
        driver = AsyncuaDriver(**settings.driver_settings())
        await driver.connect(lambda exc: None)
        try:
            assert await driver.missing_nodes(settings.nodes) == {}
            seen: set[str] = set()

            async def watch():
                async for change in driver.changes(settings.nodes, publishing_interval_ms=50, queue_size=10):
                    if change.name == "good" and change.value:
                        return change
                    seen.add(change.name)

            change = await asyncio.wait_for(watch(), 30)  # the machine finishes parts by itself
            assert change.source_time is not None
            assert {"state", "serial"} <= seen and endpoint.startswith("opc.tcp://127.0.0.1:")
        finally:
            await driver.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)
