"""An OPC UA machine on a line, end to end against the simulator: states become intervals, counters
become counts, values land in the unit's history; a server restart, an unreachable endpoint, an
unknown node and a mapping that does not fit each end in the device's health node, not in a crash."""

from __future__ import annotations

import socket

from mes_opcua.simulator import JAM, RUNNING, MachineSimulator
from opcua_helpers import API, node_of, opcua_device
from sqlalchemy import func, select

from mes_kernel import lines
from mes_kernel.db.models import MachineCount, MachineState
from mes_kernel.testing.helpers import eventually, put_line


async def _states(kernel, device="MC-1"):
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(MachineState.state, MachineState.reason, MachineState.ended_at.is_(None))
            .where(MachineState.device == device)
            .order_by(MachineState.started_at, MachineState.id)
        )
        return [tuple(r) for r in rows]


async def _counted(kernel, device="MC-1"):
    async with kernel.sessionmaker() as session:
        good, bad = (
            await session.execute(
                select(
                    func.coalesce(func.sum(MachineCount.good), 0), func.coalesce(func.sum(MachineCount.bad), 0)
                ).where(MachineCount.device == device)
            )
        ).one()
        return int(good), int(bad)


async def _up(client, headers, code="MC-1"):
    node = await node_of(client, headers, code)
    return node if node["status"] == "UP" else None


async def test_states_counts_and_values_flow_from_the_machine(client, kernel, admin_headers, machine, make_lot):
    lot = await make_lot(units=2)
    first, second = lot["serial_numbers"]
    await put_line(client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint)])
    await eventually(lambda: _up(client, admin_headers))
    assert await eventually(lambda: _states(kernel)) == [("running", "", True)]

    await machine.set_state(JAM)
    await eventually(lambda: _has_state(kernel, "down"))
    await machine.set_state(RUNNING)
    await machine.set_serial(first)
    await machine.set_temperature(61.5)
    await machine.complete_part(good=True)  # loads the next serial, the generated one
    await machine.set_serial(second)
    await machine.set_temperature(62.5)
    await machine.complete_part(good=False)
    await machine.set_serial("")

    assert await eventually(lambda: _at_least(kernel, (1, 1))) == (1, 1)
    states = await eventually(lambda: _states_if(kernel, 3))
    assert states == [("running", "", False), ("down", "jam", False), ("running", "", True)]

    async def visit():
        r = await client.get(f"{API}/units/{first}/history", headers=admin_headers)
        return [e for e in r.json()["events"] if e["type"] == "device_action" and e["data"]["action"] == "machine_data"]

    (event,) = await eventually(visit)
    assert event["data"]["plugin"] == "opcua" and event["data"]["device"] == "MC-1"
    assert event["data"]["detail"]["values"]["spindle_temp"]["last"] == 61.5
    assert event["data"]["detail"]["values"]["spindle_temp"]["unit"] == "degC"
    node = await node_of(client, admin_headers, "MC-1")
    assert node["details"]["connected"] and node["details"]["subscription_alive"]
    assert node["details"]["last_value_age_seconds"] is not None


async def _has_state(kernel, state):
    return any(s[0] == state for s in await _states(kernel))


async def _states_if(kernel, n):
    states = await _states(kernel)
    return states if len(states) >= n else None


async def _at_least(kernel, expected):
    counted = await _counted(kernel)
    return counted if counted >= expected else None


async def test_a_server_restart_is_followed_by_a_new_subscription(client, kernel, admin_headers, machine):
    await put_line(client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint)])
    await eventually(lambda: _up(client, admin_headers))
    port = machine.port
    await machine.stop()

    async def down():
        node = await node_of(client, admin_headers, "MC-1")
        return node if node["status"] == "DOWN" else None

    node = await eventually(down)
    assert node["reason"]
    restarted = MachineSimulator(cycle_seconds=None, port=port)
    await restarted.start()
    try:
        await eventually(lambda: _up(client, admin_headers))
        await restarted.set_state(JAM)  # a change after the restart arrives: the subscription is new
        assert await eventually(lambda: _has_state(kernel, "down"))
        node = await node_of(client, admin_headers, "MC-1")
        assert node["details"]["reconnects"] >= 1
    finally:
        await restarted.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_bad_devices_are_down_or_degraded_with_the_reason_and_the_rest_runs(
    client, kernel, admin_headers, machine, monkeypatch
):
    # The line apply refuses such a mapping now (test_opcua_line_validation); one stored before that
    # check (an older version, a restored database) must still be DOWN with the key, not crash.
    monkeypatch.setattr(lines, "_config_errors", lambda *args: [])
    unreachable = opcua_device("MC-GONE", f"opc.tcp://127.0.0.1:{_closed_port()}/x")
    unknown_node = opcua_device("MC-ODD", machine.endpoint)
    unknown_node["config"]["nodes"]["pressure"] = "ns=2;s=Machine.DoesNotExist"
    broken = opcua_device("MC-BROKEN", machine.endpoint)
    broken["config"]["states"] = {"running": [1], "down": [1]}
    await put_line(
        client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint), unreachable, unknown_node, broken]
    )
    await eventually(lambda: _up(client, admin_headers))

    async def health():
        tree = (await client.get(f"{API}/health", headers=admin_headers)).json()
        nodes = tree["components"]["plugins"]["checks"]["opcua"]["checks"]["machines"]["checks"]
        # MC-ODD is DEGRADED ("no subscription") from its connect until its subscribe names the node
        odd = nodes.get("MC-ODD", {})
        ready = odd.get("status") == "DEGRADED" and odd.get("details", {}).get("problems")
        return nodes if ready and nodes.get("MC-GONE", {}).get("reason") else None

    nodes = await eventually(health)
    assert nodes["MC-1"]["status"] == "UP"
    assert nodes["MC-GONE"]["status"] == "DOWN"
    assert "refused" in nodes["MC-GONE"]["reason"].lower() or "Error" in nodes["MC-GONE"]["reason"]
    assert "BadNodeIdUnknown" in nodes["MC-ODD"]["reason"]
    # PostgreSQL's JSONB keeps keys in its own order: either state may be named as the second one
    assert nodes["MC-BROKEN"]["status"] == "DOWN" and "raw state 1 is mapped twice" in nodes["MC-BROKEN"]["reason"]

    # A state value the mapping does not know: DEGRADED with the value, the state left as it was.
    await machine.set_state(7)

    async def unmapped():
        node = await node_of(client, admin_headers, "MC-1")
        return node if node["status"] == "DEGRADED" and "state value" in (node["reason"] or "") else None

    node = await eventually(unmapped)
    assert "state value 7" in node["reason"]
    await machine.set_state(RUNNING)
    await eventually(lambda: _up(client, admin_headers))
