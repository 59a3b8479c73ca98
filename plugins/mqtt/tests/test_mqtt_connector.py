"""An MQTT machine on a line, end to end through the Mosquitto broker: JSON payloads mapped by JSON
pointer become state intervals (at the payload's own timestamps), counts and values in the unit's
history; wildcards match; a payload that does not fit degrades only its device; messages published
while the kernel is away arrive when it comes back (QoS 1, persistent session); an unreachable
broker is DOWN with the reason."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from mes_mqtt.simulator import IDLE, JAM, RUNNING
from mqtt_helpers import API, mqtt_device, node_of, states, status_is, values

from mes_kernel import lines
from mes_kernel.testing.helpers import eventually, put_line
from mes_kernel.testing.helpers import machine_counts as counted


async def test_states_counts_and_values_flow_from_the_payloads(
    client, kernel, admin_headers, broker, prefix, publisher, make_lot
):
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    await put_line(client, admin_headers, "LINE-Q", [mqtt_device("MQ-1", broker, prefix)])
    await eventually(lambda: status_is(client, admin_headers, "MQ-1", "UP"))
    t0 = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
    kernel.clock = lambda: t0 + timedelta(hours=1)  # the payloads' times stay plausible on any test day
    await publisher.state(RUNNING, at=t0)
    await publisher.part(at=t0)  # the first reading is the counters' baseline
    await publisher.state(JAM, at=t0 + timedelta(minutes=5))
    await publisher.state(RUNNING, at=t0 + timedelta(minutes=7))
    await publisher.unit(serial, at=t0 + timedelta(minutes=8))
    await publisher.temperature(61.5, at=t0 + timedelta(minutes=9))
    await publisher.part(at=t0 + timedelta(minutes=10))
    await publisher.part(good=False, at=t0 + timedelta(minutes=10))
    await publisher.unit("", at=t0 + timedelta(minutes=11))

    rows = await eventually(lambda: _at_least(states(kernel, "MQ-1"), 3))
    assert [(s, r) for s, r, _ in rows] == [("running", ""), ("down", "jam"), ("running", "")]
    assert [at.replace(tzinfo=UTC) if at.tzinfo is None else at for _, _, at in rows] == [
        t0,
        t0 + timedelta(minutes=5),
        t0 + timedelta(minutes=7),
    ]
    assert await eventually(lambda: _counts(kernel, "MQ-1", (1, 1))) == (1, 1)
    ((name, value, on, at),) = await eventually(lambda: values(kernel, "MQ-1"))
    assert (name, value, on) == ("spindle_temp", 61.5, serial)
    assert (at.replace(tzinfo=UTC) if at.tzinfo is None else at) == t0 + timedelta(minutes=9)

    async def visit():
        r = await client.get(f"{API}/units/{serial}/history", headers=admin_headers)
        events = r.json()["events"]
        return [e for e in events if e["type"] == "device_action" and e["data"]["action"] == "machine_data"]

    (event,) = await eventually(visit)
    assert event["data"]["plugin"] == "mqtt" and event["data"]["detail"]["values"]["spindle_temp"]["last"] == 61.5
    node = await node_of(client, admin_headers, "MQ-1")
    assert node["details"]["connected"] and node["details"]["subscription_alive"]
    assert node["details"]["last_value_age_seconds"] is not None
    assert await eventually(lambda: _acked(client, admin_headers, "MQ-1", 9))
    metrics = (await client.get("/metrics", headers=admin_headers)).text
    assert 'mes_mqtt_messages_total{device="MQ-1",outcome="acknowledged"}' in metrics
    assert 'mes_machine_samples_total{device="MQ-1",source="mqtt"}' in metrics


async def test_a_machine_time_outside_the_window_is_stored_at_the_kernels_time_and_degrades_the_device(
    client, kernel, admin_headers, broker, prefix, publisher
):
    """A PLC whose clock was never set stamps its payloads 1900: the state is kept at the kernel's
    time (not in an hour 126 years back, where no dashboard looks) and the device says why."""
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    kernel.clock = lambda: now
    await put_line(client, admin_headers, "LINE-CLK", [mqtt_device("MQ-CLK", broker, prefix)])
    await eventually(lambda: status_is(client, admin_headers, "MQ-CLK", "UP"))
    await publisher.state(JAM, at=datetime(1900, 1, 1, tzinfo=UTC))
    rows = await eventually(lambda: states(kernel, "MQ-CLK"))
    assert [(s, at.replace(tzinfo=UTC) if at.tzinfo is None else at) for s, _, at in rows] == [("down", now)]
    node = await eventually(lambda: status_is(client, admin_headers, "MQ-CLK", "DEGRADED", "1900-01-01"))
    assert node["details"]["implausible_times"] == 1 and "clock" in node["reason"], node


async def test_a_payload_that_does_not_match_degrades_its_device_only(
    client, kernel, admin_headers, broker, prefix, publisher
):
    other = f"{prefix}-other"
    await put_line(
        client,
        admin_headers,
        "LINE-D",
        [mqtt_device("MQ-BAD", broker, prefix), mqtt_device("MQ-OK", broker, other)],
    )
    await eventually(lambda: status_is(client, admin_headers, "MQ-BAD", "UP"))
    await eventually(lambda: status_is(client, admin_headers, "MQ-OK", "UP"))
    mismatched = 'mes_mqtt_messages_total{device="MQ-BAD",outcome="mismatched"}'
    before = _metric(await client.get("/metrics", headers=admin_headers), mismatched)
    await publisher.client.publish(f"{prefix}/status", b"not json at all", qos=1)
    node = await eventually(lambda: status_is(client, admin_headers, "MQ-BAD", "DEGRADED", "not JSON"))
    assert node["details"]["connected"]
    await publisher.client.publish(f"{prefix}/status", b'{"status": 1, "ts": "2026-11-30T08:00:00Z"}', qos=1)
    await eventually(lambda: status_is(client, admin_headers, "MQ-BAD", "DEGRADED", "no /state in the payload"))
    await publisher.client.publish(f"{prefix}/status", b'{"state": 1, "ts": "yesterday"}', qos=1)
    await eventually(lambda: status_is(client, admin_headers, "MQ-BAD", "DEGRADED", "not ISO 8601"))
    await publisher.client.publish(f"{prefix}/status", b'{"state": 9, "ts": 1764489600}', qos=1)
    await eventually(lambda: status_is(client, admin_headers, "MQ-BAD", "DEGRADED", "state value 9"))
    # counters live as long as the process: an earlier test run (the other database) counted too
    assert _metric(await client.get("/metrics", headers=admin_headers), mismatched) - before == 4

    millis = int(kernel.clock().timestamp() * 1000)  # epoch milliseconds, within the accepted window
    await publisher.client.publish(f"{other}/status", b'{"state": 2, "ts": %d}' % millis, qos=1)
    rows = await eventually(lambda: states(kernel, "MQ-OK"))
    assert rows[0][:2] == ("idle", "raw state 2")
    assert (await node_of(client, admin_headers, "MQ-OK"))["status"] == "UP"

    await publisher.state(RUNNING)
    await eventually(lambda: status_is(client, admin_headers, "MQ-BAD", "UP"))


async def test_messages_published_while_the_kernel_is_away_are_not_lost(
    client, kernel, admin_headers, broker, prefix, publisher
):
    await put_line(client, admin_headers, "LINE-P", [mqtt_device("MQ-P", broker, prefix)])
    await eventually(lambda: status_is(client, admin_headers, "MQ-P", "UP"))
    await publisher.state(RUNNING)
    await publisher.part()  # baseline 1
    await eventually(lambda: _acked(client, admin_headers, "MQ-P", 2))
    await kernel.state["mqtt_connectors"].close()  # the kernel's connector goes away (a restart)

    for _ in range(5):
        await publisher.part()
    await publisher.state(IDLE)

    from mes_mqtt.connector import ConnectorManager

    manager = ConnectorManager(kernel)
    kernel.state["mqtt_connectors"] = manager
    manager.start()
    assert await eventually(lambda: _counts(kernel, "MQ-P", (5, 0))) == (5, 0)
    rows = await eventually(lambda: _at_least(states(kernel, "MQ-P"), 2))
    assert [s for s, _, _ in rows] == ["running", "idle"]


async def test_an_unreachable_broker_is_down_with_the_reason(client, admin_headers, prefix):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = ("127.0.0.1", probe.getsockname()[1])
    await put_line(client, admin_headers, "LINE-U", [mqtt_device("MQ-DEAD", dead, prefix)])
    node = await eventually(lambda: status_is(client, admin_headers, "MQ-DEAD", "DOWN", "MqttLinkError"))
    assert str(dead[1]) in node["reason"]
    node = await eventually(lambda: _reconnects(client, admin_headers, "MQ-DEAD", 2))
    assert node["details"]["connected"] is False


async def test_a_configuration_that_does_not_parse_is_down_with_the_key_at_fault(
    client, admin_headers, broker, prefix, monkeypatch
):
    # The line apply refuses such a mapping now (test_opcua_line_validation); one stored before that
    # check (an older version, a restored database) must still be DOWN with the key, not crash.
    monkeypatch.setattr(lines, "_config_errors", lambda *args: [])
    device = mqtt_device("MQ-CFG", broker, prefix)
    device["config"]["topics"]["good"] = {"topic": f"{prefix}/#/x", "path": "/good"}
    await put_line(client, admin_headers, "LINE-C", [device])
    node = await eventually(lambda: status_is(client, admin_headers, "MQ-CFG", "DOWN", "topics.good.topic:"))
    assert "#/x" in node["reason"]


def _metric(response, series: str) -> float:
    """The value of one series (name and labels as exposed) in a ``/metrics`` answer; 0 when absent."""
    for line in response.text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _at_least(rows_coro, n):
    rows = await rows_coro
    return rows if len(rows) >= n else None


async def _counts(kernel, device, want):
    got = await counted(kernel, device)
    return got if got[0] >= want[0] and got[1] >= want[1] else None


async def _acked(client, headers, code, n):
    node = await node_of(client, headers, code)
    return node["messages"] and node["messages"]["acknowledged"] >= n


async def _reconnects(client, headers, code, n):
    node = await node_of(client, headers, code)
    return node if node["details"]["reconnects"] >= n else None
