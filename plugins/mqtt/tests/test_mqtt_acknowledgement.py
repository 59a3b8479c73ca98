"""Nothing acknowledged, then lost: while the database refuses, the MQTT connector takes messages but
acknowledges none (the broker keeps them for the session) and the device is DEGRADED with the reason;
once the database answers, everything is stored and then acknowledged."""

from __future__ import annotations

from mes_mqtt.simulator import RUNNING
from mqtt_helpers import mqtt_device, status_is
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from mes_kernel.testing.helpers import eventually, put_line
from mes_kernel.testing.helpers import machine_counts as counted


async def test_messages_are_acknowledged_only_once_stored(client, kernel, admin_headers, broker, prefix, publisher):
    await put_line(client, admin_headers, "LINE-A", [mqtt_device("MQ-A", broker, prefix)])
    await eventually(lambda: status_is(client, admin_headers, "MQ-A", "UP"))
    connector = kernel.state["mqtt_connectors"].connector("MQ-A")
    await publisher.state(RUNNING)
    await publisher.part()  # the counters' baseline
    await eventually(lambda: _acked(connector, 2))

    real = kernel.sessionmaker
    dead = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_args={"timeout": 2})
    try:
        kernel.sessionmaker = async_sessionmaker(dead, expire_on_commit=False)
        for _ in range(3):
            await publisher.part()
        await eventually(lambda: _received(connector, 5))
        await eventually(lambda: _not_stored(connector))
        assert connector.acked == 2  # taken, not acknowledged: the broker still holds them
    finally:
        kernel.sessionmaker = real
        await dead.dispose()
    await eventually(lambda: _acked(connector, 5))
    assert await counted(kernel, "MQ-A") == (3, 0)
    assert connector.sink.health().status.value == "UP"


async def _acked(connector, n):
    return connector.acked >= n


async def _received(connector, n):
    return connector.received >= n


async def _not_stored(connector):
    node = connector.sink.health()
    return node.status.value == "DEGRADED" and "not stored" in node.reason
