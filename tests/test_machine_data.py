"""The machine-data contract connector plugins build on: the mapping, state intervals, counts from
absolute counters, values in the unit's history, batching, a database outage, health, leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from mes_kernel.contracts import MachineMapping, MappingError, Status, counter_increment
from mes_kernel.db.models import Device, DeviceAction, Line, MachineCount, MachineState, MachineValue, Station
from mes_kernel.machine_data.hub import MachineDataHub

API = "/api/v1"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

CONFIG = {
    "endpoint": "opc.tcp://127.0.0.1:4840",
    "nodes": {
        "state": "ns=2;s=Machine.State",
        "good": "ns=2;s=Machine.Good",
        "bad": "ns=2;s=Machine.Bad",
        "serial": "ns=2;s=Machine.Serial",
        "spindle_temp": "ns=2;s=Machine.SpindleTemp",
    },
    "states": {"running": [1], "idle": [2], "down": [3, 4]},
    "reasons": {"3": "jam", "4": "emergency stop"},
    "counts": {"wrap": 65536},
    "values": {"spindle_temp": {"unit": "degC", "scale": 0.1}},
}


# ---------------------------------------------------------------- the mapping (no database)
def test_mapping_reads_the_issue_configuration():
    mapping = MachineMapping.from_config(CONFIG)
    assert {s.name: s.role for s in mapping.signals.values()} == {
        "state": "state",
        "good": "good",
        "bad": "bad",
        "serial": "serial",
        "spindle_temp": "value",
    }
    assert mapping.state_of(1) == ("running", "")
    assert mapping.state_of(3.0) == ("down", "jam")
    assert mapping.state_of("4") == ("down", "emergency stop")
    assert mapping.state_of(2) == ("idle", "raw state 2")
    assert mapping.state_of(9) is None
    assert mapping.value_of("spindle_temp", 425) == 42.5
    assert mapping.signals["spindle_temp"].unit == "degC"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "nodes"),
        ({"nodes": {"state": "x"}}, "states"),
        ({"nodes": {"state": "x"}, "states": {"broken": [1]}}, "states.broken"),
        ({"nodes": {"state": "x"}, "states": {"running": [1], "down": [1]}}, "states.down"),
        ({"nodes": {"state": "x"}, "states": {"running": 1}}, "states.running"),
        ({"nodes": {"t": "x"}, "values": {"p": {"unit": "bar"}}}, "values.p"),
        ({"nodes": {"t": "x"}, "values": {"t": {"scale": "ten"}}}, "values.t.scale"),
        ({"nodes": {"good": "x"}, "counts": {"wrap": 1}}, "counts.wrap"),
        ({"nodes": {"good": ""}}, "nodes.good"),
        ({"nodes": {"good": "x"}, "ideal_cycle_seconds": -1}, "ideal_cycle_seconds"),
    ],
)
def test_a_mapping_that_cannot_work_names_its_field(config, field):
    with pytest.raises(MappingError) as caught:
        MachineMapping.from_config(config)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("scaling", "raw", "stored"),
    [
        ({"scale": 0.1}, 593, 59.3),  # 593 * 0.1 is 59.300000000000004 in binary floating point
        ({"scale": 0.1}, 3, 0.3),
        ({"scale": 0.01}, 1234567, 12345.67),
        ({"scale": 0.001}, 12345, 12.345),
        ({"scale": 0.1, "offset": -40.25}, 593, 19.05),  # the offset's places count too
        ({"offset": 0.1}, 0.2, 0.3),  # a float raw value keeps its own places: 0.2 + 0.1
        ({"scale": 0.1}, 60.123, 6.0123),  # … so nothing the machine measured is rounded away
        ({"scale": 2}, 21, 42.0),
        ({"scale": 1e-6}, 1, 1e-06),
    ],
)
def test_a_scaled_value_keeps_the_precision_its_scaling_implies_and_no_float_noise(scaling, raw, stored):
    mapping = MachineMapping.from_config({"nodes": {"t": "x"}, "values": {"t": scaling}})
    value = mapping.value_of("t", raw)
    assert value == stored and repr(value) == repr(stored)


def test_an_unscaled_value_is_stored_as_the_machine_sent_it():
    mapping = MachineMapping.from_config({"nodes": {"t": "x"}})
    assert mapping.value_of("t", 0.30000000000000004) == 0.30000000000000004
    assert mapping.value_of("t", 7) == 7.0


def test_counters_count_forward_through_a_wrap_and_a_reset():
    assert counter_increment(None, 500, wrap=None) == 0  # the first reading is a baseline
    assert counter_increment(10, 13, wrap=None) == 3
    assert counter_increment(65534, 2, wrap=65536) == 4  # wrapped at 2^16
    assert counter_increment(20_000, 3, wrap=65536) == 3  # far from the top: the machine reset it
    assert counter_increment(7, 2, wrap=None) == 2  # no modulus declared: a decrease is a reset


# ---------------------------------------------------------------- through the kernel
@pytest.fixture
async def machine(kernel):
    """Device MC-1 (kind ``machine``) at station ST-M1 of LINE-M, with the issue's mapping. The
    kernel's clock stands a day after T0, so source times of T0 stay plausible on any test day."""
    kernel.clock = lambda: T0 + timedelta(days=1)
    async with kernel.sessionmaker() as session:
        line = Line(code="LINE-M", name="Line M", config={})
        session.add(line)
        await session.flush()
        station = Station(code="ST-M1", line_id=line.id, heartbeat={})
        session.add(station)
        await session.flush()
        session.add(
            Device(code="MC-1", kind="machine", driver="test", line_id=line.id, station_id=station.id, config=CONFIG)
        )
        await session.commit()
        return line.id


async def _states(kernel):
    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            select(MachineState.state, MachineState.reason, MachineState.started_at, MachineState.ended_at)
            .where(MachineState.device == "MC-1")
            .order_by(MachineState.started_at, MachineState.id)
        )
        return [tuple(r) for r in rows]


async def test_state_changes_become_intervals_each_closing_the_one_before(kernel, machine):
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("state", 1, T0)
    sink.submit("state", 1, T0 + timedelta(seconds=5))  # the same state again: no new interval
    sink.submit("state", 3, T0 + timedelta(minutes=10))
    await hub.flush()
    sink.submit("state", 1, T0 + timedelta(minutes=12))
    await hub.flush()
    assert await _states(kernel) == [
        ("running", "", T0, T0 + timedelta(minutes=10)),
        ("down", "jam", T0 + timedelta(minutes=10), T0 + timedelta(minutes=12)),
        ("running", "", T0 + timedelta(minutes=12), None),
    ]
    # A restart of the connector reads the open interval: the same state is not written twice.
    await hub.close("MC-1")
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("state", 1, T0 + timedelta(minutes=20))
    await hub.flush()
    assert len(await _states(kernel)) == 3


async def test_absolute_counters_become_hourly_counts_that_survive_a_restart(kernel, machine):
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("good", 65530, T0)  # baseline
    sink.submit("good", 65535, T0 + timedelta(minutes=1))  # +5
    sink.submit("good", 3, T0 + timedelta(minutes=2))  # wrapped: +4
    sink.submit("bad", 0, T0 + timedelta(minutes=2))
    sink.submit("bad", 2, T0 + timedelta(minutes=70))  # +2, in the next hour
    await hub.flush()
    await hub.close("MC-1")
    # Parts made while no connector ran are counted from the stored reading.
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("good", 10, T0 + timedelta(minutes=75))  # +7
    await hub.flush()
    async with kernel.sessionmaker() as session:
        rows = (
            await session.execute(
                select(MachineCount.hour_start, MachineCount.good, MachineCount.bad, MachineCount.line_id)
                .where(MachineCount.device == "MC-1")
                .order_by(MachineCount.hour_start)
            )
        ).all()
    assert [tuple(r) for r in rows] == [(T0, 9, 0, machine), (T0 + timedelta(hours=1), 7, 2, machine)]


async def test_values_go_into_the_history_of_the_unit_on_the_machine(client, kernel, machine, admin_headers, make_lot):
    lot = await make_lot(units=2)
    first, second = lot["serial_numbers"]
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("spindle_temp", 200, T0)  # no unit on the machine: no row, but the first finds it there
    sink.submit("serial", first, T0 + timedelta(seconds=1))
    sink.submit("spindle_temp", 400, T0 + timedelta(seconds=2))
    sink.submit("spindle_temp", 420, T0 + timedelta(seconds=3))
    sink.submit("serial", second, T0 + timedelta(seconds=10))
    sink.submit("spindle_temp", 410, T0 + timedelta(seconds=11))
    sink.submit("serial", "", T0 + timedelta(seconds=20))  # the machine is empty
    await hub.flush()

    r = await client.get(f"{API}/units/{first}/history", headers=admin_headers)
    assert r.status_code == 200, r.text
    visits = [e for e in r.json()["events"] if e["type"] == "device_action" and e["data"]["action"] == "machine_data"]
    assert len(visits) == 1
    detail = visits[0]["data"]["detail"]
    assert visits[0]["data"]["device"] == "MC-1"
    assert detail["entered_at"] == (T0 + timedelta(seconds=1)).isoformat()
    assert detail["left_at"] == (T0 + timedelta(seconds=10)).isoformat()
    temp = detail["values"]["spindle_temp"]
    assert (temp["unit"], temp["count"], temp["min"], temp["max"]) == ("degC", 3, 20.0, 42.0)
    assert temp["mean"] == pytest.approx(34.0)
    assert temp["first_samples"][0] == [(T0 + timedelta(seconds=1)).isoformat(), 20.0]  # in effect at entry
    r = await client.get(f"{API}/units/{second}/history", headers=admin_headers)
    (visit,) = [e for e in r.json()["events"] if e["type"] == "device_action" and e["data"]["action"] == "machine_data"]
    later = visit["data"]["detail"]["values"]["spindle_temp"]
    assert [v for _, v in later["first_samples"]] == [42.0, 41.0]  # the first unit's last, then its own
    async with kernel.sessionmaker() as session:
        rows = (
            await session.execute(
                select(MachineValue.serial_number, MachineValue.value, MachineValue.unit_id.is_not(None)).order_by(
                    MachineValue.source_at
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [(first, 40.0, True), (first, 42.0, True), (second, 41.0, True)]


async def test_a_value_steady_through_a_visit_is_in_it_and_a_lost_link_forgets_it(
    client, kernel, machine, admin_headers, make_lot
):
    """Samples arrive when a value changes: a temperature that held still while a unit was on the
    machine is still that unit's temperature. What was read before the link was lost is not."""
    first, second = (await make_lot(units=2))["serial_numbers"]
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("spindle_temp", 593, T0)
    sink.submit("serial", first, T0 + timedelta(seconds=5))
    sink.submit("serial", "", T0 + timedelta(seconds=9))
    sink.disconnected("ConnectionResetError: reset by peer")
    sink.submit("serial", second, T0 + timedelta(seconds=20))
    sink.submit("serial", "", T0 + timedelta(seconds=29))
    await hub.flush()

    async def visit_values(serial):
        r = await client.get(f"{API}/units/{serial}/history", headers=admin_headers)
        (visit,) = [
            e for e in r.json()["events"] if e["type"] == "device_action" and e["data"]["action"] == "machine_data"
        ]
        return visit["data"]["detail"]["values"]

    temp = (await visit_values(first))["spindle_temp"]
    assert (temp["count"], temp["min"], temp["max"], temp["last"]) == (1, 59.3, 59.3, 59.3)
    assert temp["first_samples"] == [[(T0 + timedelta(seconds=5)).isoformat(), 59.3]]
    assert await visit_values(second) == {}
    async with kernel.sessionmaker() as session:  # the stored series stays one row per change
        assert (await session.execute(select(func.count()).select_from(MachineValue))).scalar_one() == 0


async def test_scaled_values_are_stored_and_summed_up_without_float_noise(
    client, kernel, machine, admin_headers, make_lot
):
    (serial,) = (await make_lot(units=1))["serial_numbers"]
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))  # scale 0.1
    sink.submit("serial", serial, T0)
    for i, raw in enumerate((593, 594, 596), start=1):
        sink.submit("spindle_temp", raw, T0 + timedelta(seconds=i))
    sink.submit("serial", "", T0 + timedelta(seconds=10))
    await hub.flush()
    async with kernel.sessionmaker() as session:
        stored = (await session.execute(select(MachineValue.value).order_by(MachineValue.source_at))).scalars().all()
    assert stored == [59.3, 59.4, 59.6]
    r = await client.get(f"{API}/units/{serial}/history", headers=admin_headers)
    (visit,) = [e for e in r.json()["events"] if e["type"] == "device_action" and e["data"]["action"] == "machine_data"]
    temp = visit["data"]["detail"]["values"]["spindle_temp"]
    assert (temp["min"], temp["max"], temp["last"]) == (59.3, 59.6, 59.6)
    assert temp["mean"] == 59.43333  # four places beyond the samples' one, not 59.43333333333333
    assert [v for _, v in temp["first_samples"]] == [59.3, 59.4, 59.6]


async def test_ten_thousand_values_are_one_transaction(kernel, machine):
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("serial", "SN-UNKNOWN-TO-MES", T0)
    before = hub.flushes
    for i in range(10_000):
        sink.submit("spindle_temp", i, T0 + timedelta(milliseconds=i))
    assert await hub.flush() == 10_000
    assert hub.flushes == before + 1
    async with kernel.sessionmaker() as session:
        assert (await session.execute(select(func.count()).select_from(MachineValue))).scalar_one() == 10_000


async def test_a_database_outage_keeps_the_data_for_the_next_write(kernel, machine):
    """The writer's database is unreachable (a closed port): states and counts wait, values up to
    the bound; the device is DEGRADED with the reason; once the database answers, all is written."""
    hub = MachineDataHub(kernel, max_pending_values=3)
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.connected()
    sink.subscription(True)
    real = kernel.sessionmaker
    dead = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_args={"timeout": 2})
    try:
        kernel.sessionmaker = async_sessionmaker(dead, expire_on_commit=False)
        sink.submit("state", 1, T0)
        sink.submit("serial", "SN-X", T0)
        for i in range(5):
            sink.submit("spindle_temp", i, T0 + timedelta(seconds=i))
        assert await hub.flush() == 0
        health = sink.health()
        assert health.status == Status.DEGRADED
        assert "not stored" in health.reason
        # two problems at once (not stored, values dropped): each coded, listed under MACHINE_PROBLEMS
        assert health.reason_code == "MACHINE_PROBLEMS"
        assert [p["reason_code"] for p in health.reason_params["problems"]] == [
            "MACHINE_DATA_NOT_STORED",
            "MACHINE_VALUES_DROPPED",
        ]
    finally:
        kernel.sessionmaker = real
        await dead.dispose()
    assert await hub.flush() == 3  # two values were over the bound of 3
    assert sink.dropped == 2
    assert [s[0] for s in await _states(kernel)] == ["running"]
    assert sink.health().status == Status.DEGRADED  # the drops stand as a problem until resolved
    sink.resolve("queue")
    assert sink.health().status == Status.UP


async def test_each_device_is_one_health_node(kernel, machine):
    hub = kernel.machine_data
    hub.mark_failed("MC-BAD", "nodes: must be a table of signal -> address")
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    result = hub.check(["MC-1", "MC-BAD", "MC-NONE"])
    assert result.status == Status.DOWN
    assert result.components["MC-1"].status == Status.DOWN  # not connected yet
    assert result.components["MC-1"].reason_code == "MACHINE_NOT_CONNECTED_YET"
    assert result.components["MC-BAD"].reason.startswith("nodes:")
    assert result.components["MC-BAD"].reason_code is None  # plain text from a connector: shown as it is
    assert result.components["MC-NONE"].reason_code == "MACHINE_NOT_READ"
    assert (result.reason_code, result.reason_params) == (
        "MACHINES_NOT_UP",
        {"count": 3, "total": 3, "devices": ["MC-1", "MC-BAD", "MC-NONE"]},
    )
    sink.connected()
    assert sink.health().status == Status.DEGRADED  # connected, no subscription yet
    assert sink.health().reason_code == "MACHINE_NO_SUBSCRIPTION"
    sink.subscription(True)
    sink.submit("state", 7, T0)
    node = sink.health()
    assert node.status == Status.DEGRADED and "state value 7" in node.reason
    assert (node.reason_code, node.reason_params) == ("MACHINE_UNKNOWN_STATE", {"value": "7"})
    sink.submit("state", 2, T0)
    node = sink.health()
    assert node.status == Status.UP
    assert node.details["connected"] and node.details["subscription_alive"]
    assert node.details["last_value_age_seconds"] is not None
    sink.disconnected("connection refused")
    assert sink.health().status == Status.DOWN and sink.health().reason == "connection refused"
    assert sink.health().reason_code == "MACHINE_DISCONNECTED"


async def test_a_device_on_no_line_is_refused(kernel):
    async with kernel.sessionmaker() as session:
        session.add(Device(code="MC-LOOSE", kind="machine", driver="test", config=CONFIG))
        await session.commit()
    with pytest.raises(MappingError) as caught:
        await kernel.machine_data.open("MC-LOOSE", source="test", mapping=MachineMapping.from_config(CONFIG))
    assert caught.value.field == "line"


async def test_one_process_holds_a_machine_lease(kernel, machine):
    other = MachineDataHub(kernel)
    assert await kernel.machine_data.claim("MC-1")
    assert await kernel.machine_data.claim("MC-1")  # the holder again
    if kernel.redis is not None:  # several processes share the lease only through Redis
        assert not await other.claim("MC-1")
        await kernel.machine_data.release("MC-1")
        assert await other.claim("MC-1")
        await other.release("MC-1")
        # A holder that stops renewing (its process died) loses the machine when the lease lapses.
        import asyncio
        import time

        dying = MachineDataHub(kernel, lease_seconds=0.5)
        assert await dying.claim("MC-1")
        deadline = time.monotonic() + 30
        while not await other.claim("MC-1"):
            assert time.monotonic() < deadline, "the lapsed lease was never taken over"
            await asyncio.sleep(0.1)
        await other.release("MC-1")


async def test_the_visit_on_the_machine_at_shutdown_is_written_as_interrupted(kernel, machine):
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.submit("serial", "SN-OPEN", T0)
    sink.submit("spindle_temp", 100, T0 + timedelta(seconds=1))
    await hub.close("MC-1")
    async with kernel.sessionmaker() as session:
        action = (
            await session.execute(select(DeviceAction).where(DeviceAction.serial_number == "SN-OPEN"))
        ).scalar_one()
    assert action.detail["interrupted"] is True
    assert action.detail["values"]["spindle_temp"]["count"] == 1


async def test_health_shows_a_device_read_by_another_process(kernel, machine):
    """The process holding a machine's lease publishes its node through Redis every second; any
    other process answers /health with it (without Redis there is one process, nothing to share)."""
    import asyncio
    import time

    if kernel.redis is None:
        assert (await kernel.machine_data.health(["MC-1"])).components["MC-1"].status == Status.DOWN
        return
    holder = kernel.machine_data
    assert await holder.claim("MC-1")
    sink = await holder.open("MC-1", source="test", mapping=MachineMapping.from_config(CONFIG))
    sink.connected()
    sink.subscription(True)
    sink.submit("state", 3, T0)
    other = MachineDataHub(kernel)
    deadline = time.monotonic() + 30
    while True:
        node = (await other.health(["MC-1"])).components["MC-1"]
        if node.status == Status.UP or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert node.status == Status.UP
    assert node.details["state"] == "down" and node.details["state_reason"] == "jam"
    assert other.check(["MC-1"]).components["MC-1"].status == Status.DOWN  # this process alone: nobody reads it


async def test_metrics_count_samples_stored_values_and_lag(client, kernel, machine):
    import uuid

    source = f"metrics-{uuid.uuid4().hex[:8]}"  # the registry outlives one app: a label of this test's own
    hub = kernel.machine_data
    sink = await hub.open("MC-1", source=source, mapping=MachineMapping.from_config(CONFIG))
    sink.reconnecting()
    sink.submit("serial", "SN-M", T0)
    for i in range(5):
        sink.submit("spindle_temp", i, T0 + timedelta(seconds=i))
    await hub.flush()
    text = (await client.get("/metrics")).text
    labels = f'device="MC-1",source="{source}"'
    assert f"mes_machine_samples_total{{{labels}}} 6.0" in text
    assert f"mes_machine_values_stored_total{{{labels}}} 5.0" in text
    assert f"mes_machine_reconnects_total{{{labels}}} 1.0" in text
    assert f'mes_machine_lag_seconds_count{{source="{source}"}} 5.0' in text


async def test_stopping_a_connector_that_swallows_its_cancellation_does_not_hang():
    """A protocol library may swallow a cancellation while it reconnects: stop_task gives up after
    its timeout (and says so) instead of hanging the kernel's shutdown."""
    import asyncio

    from mes_kernel.contracts import stop_task

    release = asyncio.Event()

    async def stubborn():
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # swallowed, as a reconnect loop might

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await stop_task(task, what="stubborn", timeout=0.2) is False
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)

    polite = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    assert await stop_task(polite, what="polite", timeout=30) is True and polite.cancelled()


@pytest.mark.parametrize(
    ("stored_as_float32", "read"),
    [(6.2, 6.2), (0.1, 0.1), (59.3, 59.3), (123456.7, 123456.7), (1e-07, 1e-07), (1.5, 1.5), (16777217.0, 16777216.0)],
)
def test_a_float32_from_a_machine_reads_as_its_shortest_decimal(stored_as_float32, read):
    import struct

    from mes_kernel.contracts import from_float32

    widened = struct.unpack(">f", struct.pack(">f", stored_as_float32))[0]  # what a protocol library hands over
    assert from_float32(widened) == read and repr(from_float32(widened)) == repr(read)
    assert from_float32(float("inf")) == float("inf")
