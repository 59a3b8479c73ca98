"""OEE end to end: an OPC UA machine on a planned line moves availability when it goes down and
comes back, and performance and quality come from the parts it counted."""

from __future__ import annotations

import asyncio

from mes_opcua.simulator import JAM, RUNNING
from opcua_helpers import API, node_of, opcua_device

from mes_kernel.testing.helpers import eventually, put_line

ALL_DAY = {
    "shifts": [
        {"name": "All day", "start": "00:00", "end": "00:00", "days": [0, 1, 2, 3, 4, 5, 6], "planned_output": 1}
    ]
}


async def test_availability_and_performance_follow_the_machine(client, admin_headers, manager_headers, machine):
    await put_line(client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint, ideal_cycle_seconds=5.0)])
    r = await client.put(f"{API}/lines/LINE-O/shifts", json=ALL_DAY, headers=manager_headers)
    assert r.status_code == 200, r.text

    async def up():
        return (await node_of(client, admin_headers, "MC-1"))["status"] == "UP"

    await eventually(up)
    for good in (True, True, True, False):
        await machine.complete_part(good=good)
    await machine.set_state(JAM)
    await asyncio.sleep(1.5)
    await machine.set_state(RUNNING)

    async def oee():
        r = await client.get(f"{API}/kpi/oee", params={"line": "LINE-O", "tz": "UTC"}, headers=manager_headers)
        assert r.status_code == 200, r.text
        body = r.json()
        counted = body["quality"]["total"] == 4 and body["availability"]["downtime_seconds"] >= 1.0
        closed = body["availability"]["downtime_seconds"] < 60  # the jam ended: it stops growing
        return body if counted and closed else None

    body = await eventually(oee)
    availability = body["availability"]
    assert 1.0 <= availability["downtime_seconds"] < 60
    # seconds are shown to the microsecond: run = planned - down exactly in those decimals (a float
    # subtraction of the two shown adds its own binary noise)
    run = round(availability["planned_seconds"] - availability["downtime_seconds"], 6)
    assert availability["run_seconds"] == run
    assert availability["value"] == round(availability["run_seconds"] / availability["planned_seconds"], 4)
    assert body["quality"] == {"value": 0.75, "good": 3, "total": 4}
    assert body["performance"]["ideal_cycle_seconds_total"] == 4 * 5.0
    assert body["performance"]["value"] > 0
    assert body["shifts"][-1]["counts_from"] == "machines"
