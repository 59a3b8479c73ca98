"""A connector's mapping that does not parse is refused when the line is applied (PUT and the dry
run), with the key at fault, instead of being stored and found DOWN later."""

from __future__ import annotations

from opcua_helpers import API


async def test_a_malformed_mapping_is_refused_by_put_and_names_the_key(client, admin_headers):
    bad_opcua = {
        "code": "MC-BAD",
        "kind": "opcua",
        "driver": "opcua",
        "config": {
            "endpoint": "opc.tcp://127.0.0.1:4840/x",
            "nodes": {"state": "ns=2;s=S"},
            "states": {"running": [1], "down": [1]},
        },
    }
    bad_modbus = {
        "code": "PRESS-BAD",
        "kind": "modbus",
        "driver": "tcp",
        "config": {"host": "127.0.0.1", "registers": {"state": "holding:0:int128"}, "states": {"running": [1]}},
    }
    bad_mqtt = {
        "code": "MQ-BAD",
        "kind": "mqtt",
        "driver": "mqtt",
        "config": {"host": "127.0.0.1", "topics": {"state": {"topic": "a/#/b"}}, "states": {"running": [1]}},
    }
    r = await client.put(
        f"{API}/lines/LINE-V", json={"name": "v", "devices": [bad_opcua, bad_modbus, bad_mqtt]}, headers=admin_headers
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "INVALID_LINE_CONFIG"
    locs = {tuple(e["loc"]): e["msg"] for e in detail["errors"]}
    assert "mapped twice" in locs[("devices", 0, "config", "states", "down")]
    assert "int128" in locs[("devices", 1, "config", "registers", "state", "data_type")]
    assert "a/#/b" in locs[("devices", 2, "config", "topics", "state", "topic")]
    r = await client.get(f"{API}/lines/LINE-V", headers=admin_headers)
    assert r.status_code == 404  # nothing was written


async def test_line_defaults_complete_a_mapping_before_it_is_checked(client, admin_headers):
    device = {"code": "MC-D", "kind": "opcua", "driver": "opcua", "config": {"nodes": {"state": "ns=2;s=S"}}}
    r = await client.put(
        f"{API}/lines/LINE-D",
        json={
            "name": "d",
            "device_defaults": {"opcua": {"endpoint": "opc.tcp://127.0.0.1:4840/x", "states": {"running": [1]}}},
            "devices": [device],
        },
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
