"""The connector run loop of the contract (MachineConnector): a tiny line-protocol connector over a
real TCP socket is claimed, reconnected with backoff after the peer drops it, refused while another
process holds its machine, marked DOWN for a device on no line, and stopped with its lease released."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest

from mes_kernel.contracts import ConnectorFleet, LeaseLost, MachineConnector, MachineMapping, Status, backoff
from mes_kernel.db.models import Device, Line, Station
from mes_kernel.testing.helpers import eventually

MAPPING_CONFIG = {
    "points": {"state": "S", "good": "G", "temp": "T"},
    "states": {"running": [1], "down": [3]},
    "record_values": "always",
}


class LineMachine:
    """A machine speaking one ``name value`` line per sample on a real TCP socket (port 0). Each
    connection gets what is queued for it; :meth:`drop` closes the connections open now."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def drop(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        try:
            while True:
                line = await self.lines.get()
                if writer.is_closing():  # dropped meanwhile: the line is for the next connection
                    self.lines.put_nowait(line)
                    return
                writer.write(line.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass


class LineConnector(MachineConnector):
    """The whole of a connector plugin's device side on the contract: connect, feed, raise at the end."""

    source = "lineproto"

    def __init__(self, kernel, code: str, port: int) -> None:
        mapping = MachineMapping.from_config(MAPPING_CONFIG, addresses="points")
        settings = SimpleNamespace(mapping=mapping, reconnect_min=0.05, reconnect_max=0.2)
        super().__init__(kernel, code, settings, rng=lambda: 0.5)
        self.port = port

    async def session(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.connected()
        try:
            hub = self.kernel.machine_data
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readline(), timeout=0.2)
                except TimeoutError:
                    raw = None
                if not hub.holds(self.code):
                    raise LeaseLost(self.code)
                if raw is None:
                    continue
                if not raw:
                    raise ConnectionError("the machine closed the connection")
                name, value = raw.decode().split()
                self.subscribed()
                self.sink.subscription(True)
                self.sink.submit(name, float(value))
        finally:
            writer.close()


@pytest.fixture
async def line_machine():
    machine = LineMachine()
    await machine.start()
    yield machine
    await machine.stop()


async def _add_device(kernel, code: str, *, on_line: bool = True) -> None:
    async with kernel.sessionmaker() as session:
        line_id = station_id = None
        if on_line:
            line = Line(code=f"LINE-{code}", name="Line", config={})
            session.add(line)
            await session.flush()
            station = Station(code=f"ST-{code}", line_id=line.id, heartbeat={})
            session.add(station)
            await session.flush()
            line_id, station_id = line.id, station.id
        session.add(
            Device(
                code=code, kind="lineproto", driver="tcp", line_id=line_id, station_id=station_id, config=MAPPING_CONFIG
            )
        )
        await session.commit()


def test_backoff_doubles_up_to_its_ceiling_with_jitter():
    waits = [backoff(n, low=1.0, high=30.0, rng=lambda: 0.5) for n in range(1, 8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(1, low=1.0, high=30.0, rng=lambda: 0.0) == pytest.approx(0.8)
    assert backoff(1, low=1.0, high=30.0, rng=lambda: 1.0) == pytest.approx(1.2)


async def test_a_dropped_connection_is_down_with_its_reason_then_reconnected_with_the_same_sink(kernel, line_machine):
    hub = kernel.machine_data
    async with _running(kernel, "MC-L1", line_machine) as connector:
        sink = connector.sink
        assert sink.state[0] == "running" and connector.sessions == 1 and hub.holds("MC-L1")

        line_machine.drop()
        health = await eventually(lambda: _async(_down(hub, "MC-L1")))
        assert "ConnectionError: the machine closed the connection" in health.reason

        await eventually(lambda: _async(line_machine.accepted == 2))
        await line_machine.lines.put("temp 21.5")
        await eventually(lambda: _async(hub.device_health("MC-L1").status == Status.UP))
        assert connector.sink is sink, "a short loss of the link keeps the machine's sink (its state, its unit)"
        assert connector.sessions == 2 and connector.attempt == 0
        assert hub.device_health("MC-L1").details["reconnects"] >= 1
    assert "MC-L1" not in hub.sinks and not hub.holds("MC-L1")


async def test_a_refused_connection_backs_off_longer_each_attempt(kernel, line_machine):
    await _add_device(kernel, "MC-L2")
    port = line_machine.port
    await line_machine.stop()  # nobody listens on the port now
    hub = kernel.machine_data
    connector = LineConnector(kernel, "MC-L2", port)
    connector.start()
    try:
        await eventually(lambda: _async(connector.attempt >= 3))
        health = hub.device_health("MC-L2")
        assert health.status == Status.DOWN and "Error" in health.reason
        assert connector.sessions == 0
    finally:
        await connector.stop()


async def test_a_device_on_no_line_is_down_with_the_field_at_fault(kernel, line_machine):
    await _add_device(kernel, "MC-L3", on_line=False)
    connector = LineConnector(kernel, "MC-L3", line_machine.port)
    connector.start()
    try:
        health = await eventually(lambda: _async(kernel.machine_data.failed.get("MC-L3")))
        assert health.code == "MACHINE_CONFIG_INVALID" and health.params["field"] == "line"
        assert health.text.startswith("line: ") and "no line" in health.text
        node = kernel.machine_data.device_health("MC-L3")
        assert node.status == Status.DOWN and node.reason == health.text and line_machine.accepted == 0
        assert (node.reason_code, node.reason_params) == ("MACHINE_CONFIG_INVALID", health.params)
    finally:
        await connector.stop()


@pytest.mark.postgres_only
async def test_a_lost_lease_hands_the_machine_over_and_claims_it_again_once_free(kernel, line_machine):
    if kernel.redis is None:
        pytest.skip("leases between processes need Redis")
    hub = kernel.machine_data
    async with _running(kernel, "MC-L4", line_machine) as connector:
        key = hub._lease_key("MC-L4")
        await kernel.redis.set(key, "another-process")  # its lease lapsed and another process took it
        await eventually(lambda: _async("MC-L4" not in hub.sinks and connector.sink is None), timeout=60)
        assert not hub.holds("MC-L4")
        await kernel.redis.delete(key)  # that process stopped: the machine is free again
        await eventually(lambda: _async(connector.sink is not None and line_machine.accepted == 2), timeout=60)
        assert await kernel.redis.get(key) not in (None, b"another-process")


@contextlib.asynccontextmanager
async def _running(kernel, code: str, machine: LineMachine):
    """Device ``code`` on a line, its connector started and UP on ``machine`` (state running);
    stopped at the end."""
    await _add_device(kernel, code)
    connector = LineConnector(kernel, code, machine.port)
    connector.start()
    try:
        await machine.lines.put("state 1")
        await eventually(lambda: _async(kernel.machine_data.device_health(code).status == Status.UP))
        yield connector
    finally:
        await connector.stop()


def _down(hub, code):
    health = hub.device_health(code)
    return health if health.status == Status.DOWN and health.reason else None


async def _async(value):
    return value


class LineFleet(ConnectorFleet):
    plugin = "lineproto"
    kind = "lineproto"

    def build(self, code, driver, config):
        return LineConnector(self.kernel, code, int(config.get("port", 0)))


async def test_a_fleet_is_launched_into_the_kernel_state_and_shut_down_from_it(kernel):
    first = await LineFleet.launch(kernel, poll_seconds=0.05)
    assert kernel.state["lineproto_connectors"] is first and LineFleet.running(kernel) is first
    assert first.task is not None and not first.task.done(), "a serving kernel's fleet follows the lines"
    second = await LineFleet.launch(kernel)  # started again without a stop: the first must not keep running
    assert first.task.done() and LineFleet.running(kernel) is second
    assert LineFleet.running_connector(kernel, "MC-NONE") is None
    await LineFleet.shutdown(kernel)
    assert second.task.done() and LineFleet.running(kernel) is None
    assert LineFleet.running_connector(kernel, "MC-NONE") is None
    await LineFleet.shutdown(kernel)  # nothing running: a no-op


def test_a_fleet_without_its_plugin_name_is_refused():
    class Nameless(ConnectorFleet):
        kind = "lineproto"

    with pytest.raises(TypeError, match="plugin"):
        Nameless(SimpleNamespace())
    with pytest.raises(TypeError, match="plugin"):
        Nameless.running(SimpleNamespace(state={}))
