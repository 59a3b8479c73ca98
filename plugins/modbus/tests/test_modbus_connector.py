"""A Modbus machine on a line, end to end against the pymodbus simulator (TCP, and RTU over a pty):
states become intervals, counters become counts, values land in the unit's history; an unreachable
device, a register out of range and a device that stops answering each end in the device's health
node, not in a crash, and the rest keeps running."""

from __future__ import annotations

import socket

import pytest
from mes_modbus.simulator import IDLE, JAM, RUNNING, MachineSimulator, PtyLink
from modbus_helpers import (
    API,
    health_node,
    node_of,
    rtu_device,
    states,
    status_is,
    tcp_device,
)

from mes_kernel import lines
from mes_kernel.testing.helpers import eventually, put_line
from mes_kernel.testing.helpers import machine_counts as counted


async def test_states_counts_and_values_flow_from_the_machine(client, kernel, admin_headers, machine, make_lot):
    lot = await make_lot(units=2)
    first, second = lot["serial_numbers"]
    await machine.set_counters(100, 7)  # the first reading is a baseline: parts made before count nothing
    await put_line(client, admin_headers, "LINE-M", [tcp_device("MB-1", machine.port)])
    await eventually(lambda: status_is(client, admin_headers, "MB-1", "UP"))
    assert await eventually(lambda: states(kernel, "MB-1")) == [("running", "", True)]

    await machine.set_state(JAM)
    await eventually(lambda: _has_state(kernel, "MB-1", "down"))
    await machine.set_state(RUNNING)
    await machine.set_serial(first)
    await machine.set_temperature(59.3)  # int16 593 at scale 0.1: 59.300000000000004 unrounded
    await machine.set_pressure(6.2)  # float32: 6.199999809265137 read as it is
    await eventually(lambda: _serial_on(client, admin_headers, first))
    await eventually(lambda: _node_detail(client, admin_headers, "samples", 6))
    # values are taken when they change: wait until the first unit's visit holds both, and until
    # the machine shows the second unit before its temperature changes (a poll may fall between
    # two register writes of the simulator)
    await eventually(lambda: _visit_holds(kernel, first, {"spindle_temp", "pressure"}))
    await machine.complete_part(good=True)
    await machine.set_serial(second)
    await eventually(lambda: _serial_on(client, admin_headers, second))
    await machine.set_temperature(62.5)
    await machine.complete_part(good=False)
    await machine.set_serial("")

    assert await eventually(lambda: _counted_at_least(kernel, (1, 1))) == (1, 1)
    assert await eventually(lambda: _states_if(kernel, 3)) == [
        ("running", "", False),
        ("down", "jam", False),
        ("running", "", True),
    ]

    async def visit():
        r = await client.get(f"{API}/units/{first}/history", headers=admin_headers)
        events = r.json()["events"]
        return [e for e in events if e["type"] == "device_action" and e["data"]["action"] == "machine_data"]

    (event,) = await eventually(visit)
    assert event["data"]["plugin"] == "modbus" and event["data"]["device"] == "MB-1"
    values = event["data"]["detail"]["values"]
    assert values["spindle_temp"]["last"] == 59.3 and values["spindle_temp"]["unit"] == "degC"
    assert values["pressure"]["last"] == 6.2 and values["pressure"]["unit"] == "bar"
    node = await eventually(lambda: _polling(client, admin_headers, "MB-1"))
    assert node["details"]["last_value_age_seconds"] is not None


async def test_an_rtu_machine_on_a_serial_line_is_read_the_same_way(client, kernel, admin_headers, rtu_machine):
    sim, link = rtu_machine
    await put_line(client, admin_headers, "LINE-R", [rtu_device("MB-RTU", link.host_side)])
    await eventually(lambda: status_is(client, admin_headers, "MB-RTU", "UP"))
    await sim.set_state(IDLE)
    await eventually(lambda: _has_state(kernel, "MB-RTU", "idle"))
    await eventually(lambda: _node_detail(client, admin_headers, "samples", 1, code="MB-RTU"))
    for _ in range(3):
        await sim.complete_part(good=True)
    assert await eventually(lambda: _counted_at_least(kernel, (3, 0), device="MB-RTU")) == (3, 0)
    # a write shares the poll loop's link: one master on the serial line
    r = await client.post(
        f"{API}/modbus/devices/MB-RTU/write", json={"name": "recipe", "value": 7}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert await sim.peek("holding", 30) == [7]
    assert (await node_of(client, admin_headers, "MB-RTU"))["status"] == "UP"


async def test_an_unreachable_device_is_down_with_the_reason_and_the_others_keep_running(
    client, kernel, admin_headers, machine
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    await put_line(
        client, admin_headers, "LINE-U", [tcp_device("MB-DEAD", dead_port), tcp_device("MB-OK", machine.port)]
    )
    await eventually(lambda: status_is(client, admin_headers, "MB-OK", "UP"))
    dead = await eventually(lambda: _reconnects_at_least(client, admin_headers, "MB-DEAD", 2))
    assert dead["status"] == "DOWN" and "ModbusLinkError" in dead["reason"] and str(dead_port) in dead["reason"]

    async def both_in_health():  # a check that timed out on a busy machine has no nodes: ask again
        tree = (await client.get(f"{API}/health", headers=admin_headers)).json()
        nodes = health_node(tree, "MB-DEAD"), health_node(tree, "MB-OK")
        return nodes if all(nodes) else None

    dead_node, ok_node = await eventually(both_in_health)
    assert dead_node["status"] == "DOWN" and ok_node["status"] == "UP"


async def test_a_register_out_of_range_degrades_the_device_and_the_other_signals_still_arrive(
    client, kernel, admin_headers, machine
):
    device = tcp_device("MB-2", machine.port)
    device["config"]["registers"]["oil_level"] = "holding:5000"
    await put_line(client, admin_headers, "LINE-X", [device])
    node = await eventually(lambda: status_is(client, admin_headers, "MB-2", "DEGRADED", "oil_level"))
    assert "oil_level (holding 5000)" in node["reason"] and "illegal data address" in node["reason"]
    assert await eventually(lambda: _polling(client, admin_headers, "MB-2", "DEGRADED"))  # the others still read
    await machine.set_state(JAM)
    assert await eventually(lambda: _has_state(kernel, "MB-2", "down"))
    metrics = (await client.get("/metrics", headers=admin_headers)).text
    assert 'mes_modbus_requests_total{device="MB-2",outcome="exception"}' in metrics
    assert 'mes_modbus_requests_total{device="MB-2",outcome="ok"}' in metrics


async def test_a_device_that_stops_answering_goes_down_and_comes_back(client, kernel, admin_headers, machine):
    await put_line(client, admin_headers, "LINE-S", [tcp_device("MB-3", machine.port)])
    await eventually(lambda: status_is(client, admin_headers, "MB-3", "UP"))
    machine.silent = True
    node = await eventually(lambda: status_is(client, admin_headers, "MB-3", "DOWN", "ModbusLinkError"))
    assert node["details"]["connected"] is False
    machine.silent = False
    node = await eventually(lambda: status_is(client, admin_headers, "MB-3", "UP"))
    assert node["details"]["reconnects"] >= 1
    await machine.set_state(IDLE)
    assert await eventually(lambda: _has_state(kernel, "MB-3", "idle"))


async def test_a_configuration_that_does_not_parse_is_down_with_the_key_at_fault(
    client, admin_headers, machine, monkeypatch
):
    # The line apply refuses such a mapping now (test_opcua_line_validation); one stored before that
    # check (an older version, a restored database) must still be DOWN with the key, not crash.
    monkeypatch.setattr(lines, "_config_errors", lambda *args: [])
    device = tcp_device("MB-BAD", machine.port)
    device["config"]["registers"]["good"] = "holding:1:int64"
    await put_line(client, admin_headers, "LINE-B", [device])
    node = await eventually(lambda: status_is(client, admin_headers, "MB-BAD", "DOWN", "registers.good.data_type:"))
    assert "int64" in node["reason"] and node["details"]["connected"] is False

    async def in_health():
        tree = (await client.get(f"{API}/health", headers=admin_headers)).json()
        return health_node(tree, "MB-BAD")

    assert (await eventually(in_health))["status"] == "DOWN"


async def _has_state(kernel, device, state):
    return any(s[0] == state for s in await states(kernel, device))


async def _states_if(kernel, n, device="MB-1"):
    rows = await states(kernel, device)
    return rows if len(rows) >= n else None


async def _counted_at_least(kernel, want, device="MB-1"):
    got = await counted(kernel, device)
    return got if got[0] >= want[0] and got[1] >= want[1] else None


async def _serial_on(client, headers, serial, code="MB-1"):
    node = await node_of(client, headers, code)
    return node["details"]["serial_number"] == serial


async def _visit_holds(kernel, serial, names, code="MB-1"):
    """Whether the unit ``serial`` is on the machine and its visit has a value of every name."""
    sink = kernel.machine_data.sinks.get(code)
    visit = sink.visit if sink is not None else None
    return visit is not None and visit.serial_number == serial and names <= visit.values.keys()


async def _polling(client, headers, code: str, status: str = "UP") -> dict | None:
    """The device's node once it is connected and its poll loop reads (a snapshot may fall in a
    reconnect: on a busy machine a lease renewal or an answer can come late)."""
    node = await node_of(client, headers, code)
    live = node["details"]["connected"] and node["details"]["subscription_alive"] and node["status"] == status
    return node if live else None


async def _node_detail(client, headers, key, at_least, code="MB-1"):
    node = await node_of(client, headers, code)
    return node["details"][key] >= at_least


async def _reconnects_at_least(client, headers, code, n):
    node = await node_of(client, headers, code)
    return node if node["details"]["reconnects"] >= n else None


async def test_several_machines_on_one_rs485_port_share_one_client_and_take_turns(client, kernel, admin_headers):
    """Units 1 and 2 on one serial line (a pty), unit 3 configured but absent: one client for the port,
    each machine read as itself, the absent one DOWN while the others stay UP."""
    from mes_modbus.drivers import BUSES

    link = PtyLink().start()
    first, second = await MachineSimulator.start_serial_bus(
        link.device_side, [MachineSimulator(unit=1), MachineSimulator(unit=2)]
    )
    try:
        await first.set_serial("SN-ON-UNIT-1")
        await second.set_serial("SN-ON-UNIT-2")
        await second.set_state(JAM)
        devices = [
            rtu_device("MB-U1", link.host_side, unit=1),
            rtu_device("MB-U2", link.host_side, unit=2),
            rtu_device("MB-U3", link.host_side, unit=3),
        ]
        await put_line(client, admin_headers, "LINE-485", devices)
        one = await eventually(lambda: _serial_node(client, admin_headers, "MB-U1", "SN-ON-UNIT-1"))
        two = await eventually(lambda: _serial_node(client, admin_headers, "MB-U2", "SN-ON-UNIT-2"))
        assert one["details"]["state"] == "running" and two["details"]["state"] == "down"
        await eventually(lambda: status_is(client, admin_headers, "MB-U3", "DOWN"))
        bus = BUSES[link.host_side]
        assert bus.client is not None and 2 <= bus.users <= 3  # one client for the port, whoever reconnects

        await first.complete_part(good=True)  # counted for unit 1 only
        await first.complete_part(good=True)
        assert await eventually(lambda: _counted_at_least_of(kernel, "MB-U1", (2, 0))) == (2, 0)
        assert await counted(kernel, "MB-U2") == (0, 0)
        for code in ("MB-U1", "MB-U2"):  # the absent slave's timeouts cost the others nothing
            assert (await node_of(client, admin_headers, code))["status"] == "UP"
    finally:
        await first.stop()
        link.close()


async def test_a_device_asking_another_speed_of_a_shared_port_is_refused_with_the_reason():
    from mes_modbus.drivers import BUSES, ModbusLinkError, ModbusRtuDriver

    link = PtyLink().start()
    try:
        one = ModbusRtuDriver(serial_port=link.host_side, unit=1, baudrate=19200)
        other = ModbusRtuDriver(serial_port=link.host_side, unit=2, baudrate=9600)
        await one.connect()
        with pytest.raises(ModbusLinkError, match="19200 baud"):
            await other.connect()
        assert BUSES[link.host_side].users == 1
        await one.close()
        assert link.host_side not in BUSES  # the last user closed the port
    finally:
        link.close()


async def _serial_node(client, headers, code: str, serial: str) -> dict | None:
    node = await node_of(client, headers, code)
    return node if node["status"] == "UP" and node["details"].get("serial_number") == serial else None


async def _counted_at_least_of(kernel, device: str, at_least: tuple[int, int]) -> tuple[int, int] | None:
    got = await counted(kernel, device)
    return got if got[0] >= at_least[0] and got[1] >= at_least[1] else None
