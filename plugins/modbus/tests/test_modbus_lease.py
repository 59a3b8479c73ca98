"""One poller per machine across the installation: when this process loses the machine's lease (in
Redis) to another, its connector hands the machine over (data written, sink closed) and takes it back
once the lease is free again."""

from __future__ import annotations

import pytest
from modbus_helpers import status_is, tcp_device

from mes_kernel.testing.helpers import eventually, put_line


async def test_a_lost_lease_hands_the_machine_over_and_a_free_one_takes_it_back(client, kernel, admin_headers, machine):
    if kernel.redis is None:
        pytest.skip("leases live in Redis: set MES_TEST_REDIS_URL")
    hub = kernel.machine_data
    await put_line(client, admin_headers, "LINE-L", [tcp_device("MB-L", machine.port)])
    await eventually(lambda: status_is(client, admin_headers, "MB-L", "UP"))
    key = hub._lease_key("MB-L")  # the lease's Redis key, as another kernel process would hold it
    await kernel.redis.set(key, "another-process", px=60_000)

    async def handed_over():
        return "MB-L" not in hub.sinks and not hub.holds("MB-L")

    await eventually(handed_over)
    connector = kernel.state["modbus_connectors"].connector("MB-L")
    assert connector.sink is None
    await kernel.redis.delete(key)

    async def taken_back():
        # the health node may still show the last publication: the lease itself says who polls
        return hub.holds("MB-L") and await status_is(client, admin_headers, "MB-L", "UP")

    await eventually(taken_back)
