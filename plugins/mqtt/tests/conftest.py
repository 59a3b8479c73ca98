"""Fixtures of the MQTT plugin's tests: the Mosquitto broker on 127.0.0.1:1883 (the tests skip with
the reason when none answers), a unique topic prefix per test, and a publisher standing in for the
machine."""

from __future__ import annotations

import socket
import uuid

import aiomqtt
import pytest
from mes_mqtt.simulator import MachinePublisher

BROKER = ("127.0.0.1", 1883)


@pytest.fixture(scope="session")
def broker() -> tuple[str, int]:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker answers on {BROKER[0]}:{BROKER[1]} ({exc}); .ci/run starts mosquitto")
    return BROKER


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test (or engineer) publishes under."""
    return f"mes-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def publisher(broker, prefix):
    """A machine publishing under ``prefix`` (QoS 1; state and serial retained, cleared at the end so
    the shared broker keeps nothing of the test)."""
    async with aiomqtt.Client(broker[0], broker[1], identifier=f"pub-{uuid.uuid4().hex[:12]}") as client:
        machine = MachinePublisher(client, prefix)
        yield machine
        await machine.forget()
