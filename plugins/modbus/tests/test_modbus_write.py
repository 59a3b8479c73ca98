"""Writing a machine's registers and coils: only configured names, values checked against their data
type before anything is sent, every attempt audited, refusals behind the device's breaker, and the
write route's own permission."""

from __future__ import annotations

from modbus_helpers import API, status_is, tcp_device
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry
from mes_kernel.testing.helpers import eventually, put_line


async def _audit(kernel, entity_id):
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.after).where(
                AuditEntry.entity == "modbus_register", AuditEntry.entity_id == entity_id
            )
        )
        return [tuple(r) for r in rows]


async def test_a_recipe_and_a_command_are_written_and_audited(client, kernel, admin_headers, machine):
    await put_line(client, admin_headers, "LINE-W", [tcp_device("MB-W", machine.port)])
    await eventually(lambda: status_is(client, admin_headers, "MB-W", "UP"))
    r = await client.post(
        f"{API}/modbus/devices/MB-W/write", json={"name": "recipe", "value": 42}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["registers"] == [42] and r.json()["table"] == "holding"
    assert await machine.peek("holding", 30) == [42]
    r = await client.post(
        f"{API}/modbus/devices/MB-W/write", json={"name": "start", "value": True}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert (await machine.peek("coil", 0))[0] is True
    (entry,) = await _audit(kernel, "MB-W:recipe")
    assert entry[0] == "update" and entry[1]["outcome"] == "written"
    assert entry[1]["value"] == 42 and entry[1]["address"] == 30


async def test_a_write_without_a_running_poll_opens_its_own_link(client, kernel, admin_headers, machine):
    # the line does not enable the plugin's polling for this device (disabled), yet a write reaches it
    device = tcp_device("MB-OFF", machine.port)
    await put_line(client, admin_headers, "LINE-O", [device])
    manager = kernel.state["modbus_connectors"]
    await manager.close()  # no poll loop in this process
    r = await client.post(
        f"{API}/modbus/devices/MB-OFF/write", json={"name": "recipe", "value": 9}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert await machine.peek("holding", 30) == [9]


async def test_names_and_values_are_checked_before_anything_is_sent(client, admin_headers, machine):
    await put_line(client, admin_headers, "LINE-V", [tcp_device("MB-V", machine.port)])
    url = f"{API}/modbus/devices/MB-V/write"
    r = await client.post(url, json={"name": "state", "value": 1}, headers=admin_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "MODBUS_NOT_WRITABLE"
    for value in (70000, -1, 2.5, "fast"):
        r = await client.post(url, json={"name": "recipe", "value": value}, headers=admin_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "MODBUS_VALUE_INVALID", (value, r.text)
    r = await client.post(url, json={"name": "start", "value": 5}, headers=admin_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "MODBUS_VALUE_INVALID"
    assert await machine.peek("holding", 30) == [0]
    r = await client.post(
        f"{API}/modbus/devices/NOPE/write", json={"name": "recipe", "value": 1}, headers=admin_headers
    )
    assert r.status_code == 404 and r.json()["detail"]["code"] == "DEVICE_NOT_FOUND"


async def test_refused_writes_fail_audited_and_open_the_breaker(client, kernel, admin_headers, machine):
    device = tcp_device("MB-E", machine.port)
    device["config"]["writable"] = {"setpoint": "holding:900"}  # beyond the simulator's registers
    await put_line(client, admin_headers, "LINE-E", [device])
    url = f"{API}/modbus/devices/MB-E/write"
    for _ in range(3):
        r = await client.post(url, json={"name": "setpoint", "value": 5}, headers=admin_headers)
        assert r.status_code == 502, r.text
        assert r.json()["detail"]["code"] == "MODBUS_WRITE_FAILED"
        assert "illegal data address" in r.json()["detail"]["message"]
    r = await client.post(url, json={"name": "setpoint", "value": 5}, headers=admin_headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
    assert int(r.headers["Retry-After"]) > 0
    audit = await _audit(kernel, "MB-E:setpoint")
    assert [after["outcome"] for _, after in audit] == ["failed"] * 3


async def test_writing_needs_its_own_permission(client, admin_headers, worker_headers, viewer_headers, machine):
    await put_line(client, admin_headers, "LINE-P", [tcp_device("MB-P", machine.port)])
    for headers in (worker_headers, viewer_headers):
        r = await client.post(f"{API}/modbus/devices/MB-P/write", json={"name": "recipe", "value": 1}, headers=headers)
        assert r.status_code == 403 and r.json()["detail"]["permission"] == "modbus:write"
    r = await client.get(f"{API}/modbus/devices/MB-P", headers=viewer_headers)
    assert r.status_code == 200
