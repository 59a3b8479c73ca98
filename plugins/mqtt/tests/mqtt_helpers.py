"""Helpers of the MQTT plugin's tests: waiting for a condition, a line with MQTT machines, what the
kernel stored."""

from __future__ import annotations

import uuid

from mes_mqtt.simulator import device_config
from sqlalchemy import select

from mes_kernel.db.models import MachineState, MachineValue

API = "/api/v1"
FAST = {"reconnect_min": 0.05, "reconnect_max": 0.5, "timeout": 5.0}






def mqtt_device(code: str, broker, prefix: str, **config) -> dict:
    # a client id per test run: a persistent session must not carry over from an earlier run
    settings = {**FAST, "port": broker[1], "client_id": f"mes-test-{code}-{uuid.uuid4().hex[:8]}", **config}
    return {"code": code, "kind": "mqtt", "driver": "mqtt", "config": device_config(broker[0], prefix, **settings)}


async def node_of(client, headers, code: str) -> dict:
    r = await client.get(f"{API}/mqtt/devices/{code}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def status_is(client, headers, code: str, status: str, reason: str = "") -> dict | None:
    """The device's node once it has ``status`` with ``reason`` in its reason, else None."""
    node = await node_of(client, headers, code)
    return node if node["status"] == status and reason in (node["reason"] or "") else None


async def states(kernel, device: str) -> list[tuple]:
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(MachineState.state, MachineState.reason, MachineState.started_at)
            .where(MachineState.device == device)
            .order_by(MachineState.started_at, MachineState.id)
        )
        return [tuple(r) for r in rows]




async def values(kernel, device: str) -> list[tuple]:
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(MachineValue.name, MachineValue.value, MachineValue.serial_number, MachineValue.source_at)
            .where(MachineValue.device == device)
            .order_by(MachineValue.source_at)
        )
        return [tuple(r) for r in rows]
