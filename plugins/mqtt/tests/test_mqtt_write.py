"""Publishing commands to a machine through the Mosquitto broker: only configured names, values checked
against their declared type before anything is sent, QoS 1 (answered once the broker acknowledged),
every attempt audited, failures behind the device's breaker, and the write route's own permission."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid

import aiomqtt
import pytest
from mqtt_helpers import API, mqtt_device, status_is
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry
from mes_kernel.testing.helpers import eventually, put_line


async def _audit(kernel, entity_id):
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.after).where(
                AuditEntry.entity == "mqtt_command", AuditEntry.entity_id == entity_id
            )
        )
        return [tuple(r) for r in rows]


@pytest.fixture
async def machine_inbox(broker, prefix):
    """The machine's side: a client subscribed (QoS 1) to ``<prefix>/cmd/#`` and ``<prefix>/cmd``,
    collecting ``(topic, payload, qos)`` of every command it receives."""
    received: asyncio.Queue[tuple[str, bytes, int]] = asyncio.Queue()
    async with aiomqtt.Client(broker[0], broker[1], identifier=f"machine-{uuid.uuid4().hex[:12]}") as client:
        await client.subscribe(f"{prefix}/cmd/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                received.put_nowait((message.topic.value, bytes(message.payload), message.qos))

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def _next(inbox: asyncio.Queue) -> tuple[str, bytes, int]:
    return await asyncio.wait_for(inbox.get(), timeout=30)


async def test_a_recipe_and_a_command_are_published_with_qos_1_and_audited(
    client, kernel, admin_headers, broker, prefix, machine_inbox
):
    await put_line(client, admin_headers, "LINE-W", [mqtt_device("MQ-W", broker, prefix)])
    await eventually(lambda: status_is(client, admin_headers, "MQ-W", "UP"))
    url = f"{API}/mqtt/devices/MQ-W/write"
    r = await client.post(url, json={"name": "recipe", "value": 42}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "device": "MQ-W", "name": "recipe", "topic": f"{prefix}/cmd/recipe", "qos": 1, "retain": False,
        "value": 42, "payload": "42",
    }
    assert await _next(machine_inbox) == (f"{prefix}/cmd/recipe", b"42", 1)
    r = await client.post(url, json={"name": "command", "value": 3}, headers=admin_headers)
    assert r.status_code == 200, r.text
    topic, payload, qos = await _next(machine_inbox)
    assert (topic, json.loads(payload), qos) == (f"{prefix}/cmd", {"command": 3}, 1)
    (entry,) = await _audit(kernel, "MQ-W:recipe")
    assert entry[0] == "update" and entry[1]["outcome"] == "published"
    assert entry[1]["value"] == 42 and entry[1]["topic"] == f"{prefix}/cmd/recipe" and entry[1]["qos"] == 1
    connector = kernel.state["mqtt_connectors"].connector("MQ-W")
    assert connector.sessions == 1, "the write went through the reading session, which was not taken over"


async def test_a_write_without_a_reading_session_opens_its_own_link(
    client, kernel, admin_headers, broker, prefix, machine_inbox
):
    await put_line(client, admin_headers, "LINE-O", [mqtt_device("MQ-OFF", broker, prefix)])
    await kernel.state["mqtt_connectors"].close()  # no connector in this process
    r = await client.post(
        f"{API}/mqtt/devices/MQ-OFF/write", json={"name": "recipe", "value": 9}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert await _next(machine_inbox) == (f"{prefix}/cmd/recipe", b"9", 1)


async def test_names_and_values_are_checked_before_anything_is_published(
    client, kernel, admin_headers, broker, prefix, machine_inbox
):
    await put_line(client, admin_headers, "LINE-V", [mqtt_device("MQ-V", broker, prefix)])
    url = f"{API}/mqtt/devices/MQ-V/write"
    r = await client.post(url, json={"name": "state", "value": 1}, headers=admin_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "MQTT_NOT_WRITABLE"
    for value in (2.5, "fast", True):
        r = await client.post(url, json={"name": "recipe", "value": value}, headers=admin_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "MQTT_VALUE_INVALID", (value, r.text)
    r = await client.post(url, json={"name": "recipe", "value": None}, headers=admin_headers)
    assert r.status_code == 422
    r = await client.post(f"{API}/mqtt/devices/NOPE/write", json={"name": "recipe", "value": 1}, headers=admin_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "DEVICE_NOT_FOUND"
    # the next command the machine sees is a good one: nothing of the refused ones was published
    r = await client.post(url, json={"name": "recipe", "value": 7}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert await _next(machine_inbox) == (f"{prefix}/cmd/recipe", b"7", 1)
    assert [after["value"] for _, after in await _audit(kernel, "MQ-V:recipe")] == [7]


async def test_an_unreachable_broker_fails_audited_and_opens_the_breaker(client, kernel, admin_headers, prefix):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = ("127.0.0.1", probe.getsockname()[1])
    await put_line(client, admin_headers, "LINE-E", [mqtt_device("MQ-E", closed, prefix)])
    url = f"{API}/mqtt/devices/MQ-E/write"
    for _ in range(3):
        r = await client.post(url, json={"name": "recipe", "value": 5}, headers=admin_headers)
        assert r.status_code == 502, r.text
        assert r.json()["detail"]["code"] == "MQTT_WRITE_FAILED" and "MqttLinkError" in r.json()["detail"]["message"]
    r = await client.post(url, json={"name": "recipe", "value": 5}, headers=admin_headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
    assert int(r.headers["Retry-After"]) > 0
    audit = await _audit(kernel, "MQ-E:recipe")
    assert [after["outcome"] for _, after in audit] == ["failed"] * 3


async def test_writing_needs_its_own_permission(client, admin_headers, worker_headers, viewer_headers, broker, prefix):
    await put_line(client, admin_headers, "LINE-P", [mqtt_device("MQ-P", broker, prefix)])
    for headers in (worker_headers, viewer_headers):
        r = await client.post(f"{API}/mqtt/devices/MQ-P/write", json={"name": "recipe", "value": 1}, headers=headers)
        assert r.status_code == 403 and r.json()["detail"]["permission"] == "mqtt:write"
    r = await client.get(f"{API}/mqtt/devices/MQ-P", headers=viewer_headers)
    assert r.status_code == 200
