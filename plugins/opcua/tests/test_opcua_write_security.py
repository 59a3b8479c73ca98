"""Writing a machine's node: its own permission, only the configured nodes, the node's own type,
audited, behind the device's breaker, the device's authority; Basic256Sha256 with certificates."""

from __future__ import annotations

import socket

from mes_opcua.certs import CLIENT_URI, SERVER_URI, make_certificate
from mes_opcua.simulator import MachineSimulator, Security
from opcua_helpers import API, node_of, opcua_device
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry
from mes_kernel.testing.helpers import eventually, put_line


async def test_a_write_reaches_the_machine_and_is_audited(client, kernel, admin_headers, manager_headers, machine):
    await put_line(client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint)])
    r = await client.post(
        f"{API}/opcua/devices/MC-1/write", json={"name": "recipe", "value": 42}, headers=manager_headers
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "device": "MC-1",
        "name": "recipe",
        "node_id": "ns=2;s=Machine.Recipe",
        "value": 42,
        "data_type": "Int32",
    }
    assert machine.read("Machine.Recipe") == 42
    async with kernel.sessionmaker() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "opcua_node"))).scalar_one()
    assert (entry.action, entry.entity_id, entry.after["value"], entry.after["outcome"]) == (
        "update",
        "MC-1:recipe",
        42,
        "ok",
    )

    # A command written to the machine takes effect there: 3 = jam.
    r = await client.post(
        f"{API}/opcua/devices/MC-1/write", json={"name": "command", "value": 3}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert await eventually(lambda: _state_is(machine, 3))


async def _state_is(machine, state):
    return machine.state == state


async def test_writes_are_refused_with_a_stable_code(client, kernel, admin_headers, worker_headers, machine):
    await put_line(client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint)])
    url = f"{API}/opcua/devices/MC-1/write"
    r = await client.post(url, json={"name": "recipe", "value": 1}, headers=worker_headers)
    assert r.status_code == 403  # writing needs opcua:write, which workers do not hold
    r = await client.post(url, json={"name": "state", "value": 1}, headers=admin_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (422, "OPCUA_NODE_NOT_WRITABLE")
    r = await client.post(url, json={"name": "recipe", "value": "fast"}, headers=admin_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (422, "OPCUA_VALUE_INVALID")
    assert "Int32" in r.json()["detail"]["message"]
    r = await client.post(url, json={"name": "recipe", "value": 2**40}, headers=admin_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (422, "OPCUA_VALUE_INVALID")
    r = await client.post(url, json={"name": "recipe", "value": 1.5}, headers=admin_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (422, "OPCUA_VALUE_INVALID")
    # A value the machine was never sent is the caller's mistake, not the machine's: three of them
    # do not open the device's write breaker, and a right value still goes through.
    breaker = await kernel.breakers.state("opcua_write", "MC-1")
    assert (breaker.state, breaker.failures) == ("closed", 0)
    async with kernel.sessionmaker() as session:
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "opcua_node"))).scalars().all()
    assert [e.after["outcome"] for e in entries] == ["failed"] * 3
    r = await client.post(url, json={"name": "recipe", "value": 7}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert machine.read("Machine.Recipe") == 7
    r = await client.post(f"{API}/opcua/devices/NOPE/write", json={"name": "recipe", "value": 1}, headers=admin_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (404, "DEVICE_NOT_FOUND")


async def test_a_value_json_cannot_carry_is_refused_before_the_machine_is_reached(
    client, kernel, admin_headers, machine
):
    # Python's JSON parser takes NaN and Infinity; a Double node would take them too, and the audit
    # trail (PostgreSQL JSON) would not: the write is refused before anything is sent or audited.
    device = opcua_device("MC-1", machine.endpoint)
    device["config"]["writable"]["temp"] = "ns=2;s=Machine.SpindleTemp"
    await put_line(client, admin_headers, "LINE-O", [device])
    url = f"{API}/opcua/devices/MC-1/write"
    # The kernel's input guard refuses such a body for every route before it is parsed (not JSON: 400;
    # a number no float holds: 422), so the plugin's own check of the value is never reached by HTTP.
    for raw, answer in ((b'{"name": "temp", "value": NaN}', (400, "MALFORMED_JSON")),
                        (b'{"name": "temp", "value": -Infinity}', (400, "MALFORMED_JSON")),
                        (b'{"name": "temp", "value": 1e400}', (422, "VALIDATION_ERROR"))):
        r = await client.post(url, content=raw, headers={**admin_headers, "Content-Type": "application/json"})
        assert (r.status_code, r.json()["detail"]["code"]) == answer, r.text
    async with kernel.sessionmaker() as session:
        assert (await session.execute(select(AuditEntry).where(AuditEntry.entity == "opcua_node"))).first() is None
    assert machine.read("Machine.SpindleTemp") == 20.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_machine_that_does_not_answer_opens_its_write_breaker(client, admin_headers):
    gone = opcua_device("MC-GONE", f"opc.tcp://127.0.0.1:{_closed_port()}/x")
    await put_line(client, admin_headers, "LINE-O", [gone])
    url = f"{API}/opcua/devices/MC-GONE/write"
    for _ in range(3):
        r = await client.post(url, json={"name": "recipe", "value": 1}, headers=admin_headers)
        assert (r.status_code, r.json()["detail"]["code"]) == (502, "OPCUA_WRITE_FAILED")
    r = await client.post(url, json={"name": "recipe", "value": 1}, headers=admin_headers)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"


async def test_basic256sha256_with_certificates(client, admin_headers, tmp_path):
    server_cert, server_key = make_certificate(tmp_path, "server", uri=SERVER_URI, server=True)
    client_cert, client_key = make_certificate(tmp_path, "client", uri=CLIENT_URI, server=False)
    sim = MachineSimulator(cycle_seconds=None, security=Security("basic256sha256", server_cert, server_key))
    await sim.start()
    try:
        secure = opcua_device(
            "MC-SECURE",
            sim.endpoint,
            security={
                "policy": "Basic256Sha256",
                "certificate": str(client_cert),
                "private_key": str(client_key),
                "server_certificate": str(server_cert),
            },
        )
        plain = opcua_device("MC-PLAIN", sim.endpoint)  # policy None against a server that refuses it
        await put_line(client, admin_headers, "LINE-O", [secure, plain])

        async def settled():
            a = await node_of(client, admin_headers, "MC-SECURE")
            b = await node_of(client, admin_headers, "MC-PLAIN")
            return (a, b) if a["status"] == "UP" and b["status"] == "DOWN" and b["reason"] else None

        secure_node, plain_node = await eventually(settled)
        assert secure_node["details"]["subscription_alive"]
        r = await client.post(
            f"{API}/opcua/devices/MC-SECURE/write", json={"name": "recipe", "value": 7}, headers=admin_headers
        )
        assert r.status_code == 200, r.text
        assert sim.read("Machine.Recipe") == 7
    finally:
        await sim.stop()
