"""A broker restart: the device goes DOWN with the reason while the broker is away, reconnects with
its persistent session when it is back, and QoS 1 messages queued for it before the restart arrive
(on a Mosquitto of the test's own, with persistence on, started and stopped by its pid)."""

from __future__ import annotations

import asyncio
import getpass
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import aiomqtt
import pytest
from mes_mqtt.connector import ConnectorManager
from mes_mqtt.simulator import RUNNING, MachinePublisher
from mqtt_helpers import mqtt_device, states, status_is

from mes_kernel.testing.helpers import eventually, put_line
from mes_kernel.testing.helpers import machine_counts as counted

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """A private Mosquitto on 127.0.0.1 (a free port) that keeps sessions on disk across restarts."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\n"
            # started as root, mosquitto would switch to user "mosquitto", who cannot write tmp_path
            f"user {getpass.getuser()}\n"
        )
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("the test's mosquitto did not start")

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # mosquitto saves its sessions on the way out
            await asyncio.to_thread(self.process.wait, 30)
        self.process = None


@pytest.fixture
async def own_broker(tmp_path):
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    broker = Broker(tmp_path)
    await broker.start()
    yield broker
    await broker.stop()


async def _publish_parts(port: int, prefix: str, *, first: int, n: int) -> None:
    """The machine running and making ``n`` good parts, its counter going from ``first`` + 1 on."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{uuid.uuid4().hex[:8]}") as client:
        machine = MachinePublisher(client, prefix)
        machine.good = first
        await machine.state(RUNNING)
        for _ in range(n):
            await machine.part()


async def test_queued_messages_survive_a_broker_restart_and_the_device_comes_back(
    client, kernel, admin_headers, own_broker, prefix
):
    broker = ("127.0.0.1", own_broker.port)
    await put_line(client, admin_headers, "LINE-RB", [mqtt_device("MQ-RB", broker, prefix)])
    await eventually(lambda: status_is(client, admin_headers, "MQ-RB", "UP"))
    await _publish_parts(own_broker.port, prefix, first=0, n=1)  # the counters' baseline reading
    assert await eventually(lambda: states(kernel, "MQ-RB"))

    await own_broker.stop()
    await eventually(lambda: status_is(client, admin_headers, "MQ-RB", "DOWN", "MqttLinkError"))
    await own_broker.start()
    await eventually(lambda: status_is(client, admin_headers, "MQ-RB", "UP"))

    await kernel.state["mqtt_connectors"].close()  # the kernel goes away ...
    await _publish_parts(own_broker.port, prefix, first=1, n=4)  # ... the broker queues these for it ...
    await own_broker.stop()  # ... and restarts, keeping them on disk
    await own_broker.start()
    manager = ConnectorManager(kernel)
    kernel.state["mqtt_connectors"] = manager
    manager.start()
    assert await eventually(lambda: _counts(kernel, 4)) == (4, 0)


async def _counts(kernel, good):
    got = await counted(kernel, "MQ-RB")
    return got if got[0] >= good else None
