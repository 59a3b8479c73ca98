"""The unit on the machine survives a restart of the kernel's connector: the machine publishes its
state and serial number retained (as the simulator does), so a connector that subscribes afresh is
told both by the broker at once, and the values that follow land in that unit's history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from mes_mqtt.connector import ConnectorManager
from mes_mqtt.simulator import RUNNING
from mqtt_helpers import mqtt_device, node_of, values

from mes_kernel.testing.helpers import eventually, put_line


async def test_after_a_restart_the_unit_on_the_machine_is_known_from_the_retained_message(
    client, kernel, admin_headers, broker, prefix, publisher, make_lot
):
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    # The machine loaded the unit while no kernel listened (published once, long before).
    await publisher.state(RUNNING, at=datetime(2026, 11, 30, 7, 0, tzinfo=UTC))
    await publisher.unit(serial, at=datetime(2026, 11, 30, 7, 1, tzinfo=UTC))

    async def on_machine():
        details = (await node_of(client, admin_headers, "MQ-R"))["details"]
        return details if details.get("serial_number") == serial and details.get("state") == "running" else None

    # a new client id, as a freshly installed kernel has: the broker holds no session for it
    await put_line(client, admin_headers, "LINE-R", [mqtt_device("MQ-R", broker, prefix)])
    await eventually(on_machine)

    # The kernel's connectors restart (a new process: nothing of the machine kept in memory) …
    manager = kernel.state.pop("mqtt_connectors")
    await manager.close()
    assert "MQ-R" not in kernel.machine_data.sinks
    restarted = ConnectorManager(kernel, poll_seconds=0.2)
    kernel.state["mqtt_connectors"] = restarted
    restarted.start()
    # … and learn the unit on the machine from the broker, before the machine says anything new:
    # in the restarted connector's own memory (the device's node is installation-wide, as the lease
    # holder last reported it, and may still show the first connector's report for a moment).

    async def learned():
        connector = restarted.connector("MQ-R")
        sink = getattr(connector, "sink", None)
        return sink is not None and connector.sessions == 1 and sink.serial_number == serial

    await eventually(learned)
    await eventually(on_machine)

    await publisher.temperature(58.25)
    rows = await eventually(lambda: values(kernel, "MQ-R"))
    assert [(name, value, on) for name, value, on, _ in rows] == [("spindle_temp", 58.25, serial)]


async def test_a_serial_published_without_retain_is_unknown_to_a_late_subscriber(
    client, admin_headers, broker, prefix, publisher
):
    """The counter-case the README warns of: a machine that does not retain its serial leaves a kernel
    that (re)subscribes after it blind to the unit on it until the next part."""
    await publisher.state(RUNNING)
    await publisher.publish("unit", {"serial": f"SN-{uuid.uuid4().hex[:8]}"})  # not retained
    await put_line(client, admin_headers, "LINE-N", [mqtt_device("MQ-N", broker, prefix)])

    async def running():
        details = (await node_of(client, admin_headers, "MQ-N"))["details"]
        return details if details.get("state") == "running" else None

    details = await eventually(running)  # the retained state arrived …
    assert details["serial_number"] is None  # … the serial published without retain did not
