"""Helpers of the OPC UA plugin's tests: waiting for a condition, a line with OPC UA machines."""

from __future__ import annotations

from mes_opcua.simulator import device_config

API = "/api/v1"
#: reconnect fast in tests; deadlines stay generous (a busy machine may take seconds)
FAST = {
    "reconnect_min": 0.1,
    "reconnect_max": 0.5,
    "publishing_interval_ms": 50,
    "timeout": 3.0,
    "watchdog_seconds": 3.0,
}






def opcua_device(code: str, endpoint: str, **config) -> dict:
    return {"code": code, "kind": "opcua", "driver": "opcua", "config": {**device_config(endpoint), **FAST, **config}}


async def node_of(client, headers, code: str) -> dict:
    r = await client.get(f"{API}/opcua/devices/{code}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()
