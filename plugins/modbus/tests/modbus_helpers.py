"""Helpers of the Modbus plugin's tests: waiting for a condition, a line with Modbus machines, what
the kernel stored."""

from __future__ import annotations

from mes_modbus.simulator import device_config
from sqlalchemy import select

from mes_kernel.db.models import MachineState

API = "/api/v1"
#: poll and reconnect fast in tests; answers get the product's default time (3 s): on a busy CI machine the
#: simulator, in the test's own event loop, answered a poll later than 1 s and the link went down mid-test
FAST = {"poll_seconds": 0.05, "reconnect_min": 0.05, "reconnect_max": 0.3, "timeout": 3.0}


def tcp_device(code: str, port: int, **config) -> dict:
    return {
        "code": code,
        "kind": "modbus",
        "driver": "tcp",
        "config": {**device_config(host="127.0.0.1", port=port), **FAST, **config},
    }


def rtu_device(code: str, serial_port: str, **config) -> dict:
    return {
        "code": code,
        "kind": "modbus",
        "driver": "rtu",
        "config": {**device_config(serial_port=serial_port), **FAST, **config},
    }


async def node_of(client, headers, code: str) -> dict:
    r = await client.get(f"{API}/modbus/devices/{code}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def status_is(client, headers, code: str, status: str, reason: str = "") -> dict | None:
    """The device's node once it has ``status`` with ``reason`` in its reason, else None."""
    node = await node_of(client, headers, code)
    return node if node["status"] == status and reason in (node["reason"] or "") else None


async def states(kernel, device: str) -> list[tuple]:
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(MachineState.state, MachineState.reason, MachineState.ended_at.is_(None))
            .where(MachineState.device == device)
            .order_by(MachineState.started_at, MachineState.id)
        )
        return [tuple(r) for r in rows]




def health_node(tree, code: str) -> dict | None:
    """The node named ``code`` anywhere in a ``/health`` answer."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == code and isinstance(value, dict) and "status" in value:
                return value
            found = health_node(value, code)
            if found is not None:
                return found
    elif isinstance(tree, list):
        for value in tree:
            found = health_node(value, code)
            if found is not None:
                return found
    return None
