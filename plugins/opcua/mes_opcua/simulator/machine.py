"""A simulated machine behind an asyncua OPC UA server: cycles that finish parts (good or bad), a
serial number per part on the machine, a state node (1 running, 2 idle, 3 jam, 4 emergency stop), a
spindle temperature, writable recipe and command nodes, and optionally N sensor nodes changing at a
fixed rate (the benchmark's load). Faults are controllable from Python or by writing ``Command``.

Node ids (namespace ``urn:neurohub:mes:machine``, index 2): ``ns=2;s=Machine.State``,
``Machine.Good``, ``Machine.Bad``, ``Machine.Serial``, ``Machine.SpindleTemp``, ``Machine.Recipe``,
``Machine.Command``, ``Sensors.0000`` … Every value carries its source timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from asyncua import Server, ua

from mes_kernel.deadlines import wait_at_most

from ..certs import SERVER_URI

RUNNING, IDLE, JAM, ESTOP = 1, 2, 3, 4
COMMANDS = {1: RUNNING, 2: IDLE, 3: JAM, 4: ESTOP}
NAMESPACE = "urn:neurohub:mes:machine"
STOP_SECONDS = 10.0

log = structlog.get_logger(__name__)


def node_id(name: str) -> str:
    return f"ns=2;s={name}"


#: the device configuration that maps this simulator (the issue's form), given its endpoint
def device_config(endpoint: str, *, sensors: int = 0, **extra: Any) -> dict[str, Any]:
    nodes = {
        "state": node_id("Machine.State"),
        "good": node_id("Machine.Good"),
        "bad": node_id("Machine.Bad"),
        "serial": node_id("Machine.Serial"),
        "spindle_temp": node_id("Machine.SpindleTemp"),
    }
    nodes.update({f"sensor_{i:04d}": node_id(f"Sensors.{i:04d}") for i in range(sensors)})
    return {
        "endpoint": endpoint,
        "nodes": nodes,
        "states": {"running": [RUNNING], "idle": [IDLE], "down": [JAM, ESTOP]},
        "reasons": {str(JAM): "jam", str(ESTOP): "emergency stop"},
        "values": {"spindle_temp": {"unit": "degC"}},
        "writable": {"recipe": node_id("Machine.Recipe"), "command": node_id("Machine.Command")},
        **extra,
    }


@dataclass
class Security:
    """``none``, or ``basic256sha256`` with the server's certificate and key files."""

    policy: str = "none"
    certificate: Path | None = None
    private_key: Path | None = None


class MachineSimulator:
    """The machine. ``cycle_seconds=None`` runs no cycles by itself (tests call
    :meth:`complete_part`); ``sensors`` nodes change every ``1 / sensor_hz`` s; with ``fault_every``
    the machine jams every so many seconds for ``fault_seconds``. The part on the machine has the
    serial number ``serial_prefix`` + its six-digit part number, or, with ``serials`` (the units of a
    LOT the MES knows), those in turn, round and round."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cycle_seconds: float | None = 2.0,
        bad_every: int = 10,
        serial_prefix: str = "SIM-",
        serials: Sequence[str] = (),
        sensors: int = 0,
        sensor_hz: float = 10.0,
        security: Security | None = None,
        fault_every: float | None = None,
        fault_seconds: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.cycle_seconds = cycle_seconds
        self.bad_every = bad_every
        self.serial_prefix = serial_prefix
        self.serials = tuple(serials)
        self.sensors = sensors
        self.sensor_hz = sensor_hz
        self.security = security or Security()
        self.fault_every = fault_every
        self.fault_seconds = fault_seconds
        self.server: Server | None = None
        self.nodes: dict[str, ua.NodeId] = {}
        self.state = RUNNING
        self.good = self.bad = self.parts = 0
        self.serial = ""
        self.published = 0  # sensor values written (the benchmark's publish rate)
        self.tasks: list[asyncio.Task] = []

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/mes/sim"

    async def start(self) -> str:
        """Start serving; returns the endpoint URL (the port chosen when ``port=0``)."""
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}/mes/sim")
        server.set_server_name("NeuroHub MES machine simulator")
        await server.set_application_uri(SERVER_URI)
        if self.security.policy == "basic256sha256":
            await server.load_certificate(str(self.security.certificate))
            await server.load_private_key(str(self.security.private_key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        machine = await server.nodes.objects.add_object(ua.NodeId("Machine", ns), "Machine")
        specs = {
            "Machine.State": (self.state, ua.VariantType.Int32, False),
            "Machine.Good": (0, ua.VariantType.UInt32, False),
            "Machine.Bad": (0, ua.VariantType.UInt32, False),
            "Machine.Serial": ("", ua.VariantType.String, False),
            "Machine.SpindleTemp": (20.0, ua.VariantType.Double, False),
            "Machine.Recipe": (0, ua.VariantType.Int32, True),
            "Machine.Command": (0, ua.VariantType.Int32, True),
        }
        for name, (value, vtype, writable) in specs.items():
            var = await machine.add_variable(ua.NodeId(name, ns), name.split(".")[1], ua.Variant(value, vtype))
            if writable:
                await var.set_writable()
            self.nodes[name] = var.nodeid
        if self.sensors:
            folder = await server.nodes.objects.add_object(ua.NodeId("Sensors", ns), "Sensors")
            for i in range(self.sensors):
                name = f"Sensors.{i:04d}"
                var = await folder.add_variable(ua.NodeId(name, ns), name, ua.Variant(0.0, ua.VariantType.Double))
                self.nodes[name] = var.nodeid
        await server.start()
        self.server = server
        self.port = server.bserver.port
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._commands())]
        if self.cycle_seconds:
            self.tasks.append(loop.create_task(self._cycles()))
        if self.sensors:
            self.tasks.append(loop.create_task(self._sensor_loop()))
        if self.fault_every:
            self.tasks.append(loop.create_task(self._faults()))
        return self.endpoint

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
        if self.server is not None:
            server, self.server = self.server, None
            try:  # a stop that never returned held a CI run's test teardown for 600 s: give up after a while
                await wait_at_most(server.stop(), STOP_SECONDS)
            except TimeoutError:
                log.warning("opcua_simulator_stop_timeout", seconds=STOP_SECONDS, endpoint=self.endpoint)

    # ------------------------------------------------------------ the machine model
    async def _write(self, name: str, value: Any, vtype: ua.VariantType, at: datetime | None = None) -> None:
        at = at or datetime.now(UTC)
        await self.server.write_attribute_value(
            self.nodes[name], ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=at, ServerTimestamp=at)
        )

    async def set_state(self, state: int) -> None:
        """1 running, 2 idle, 3 jam, 4 emergency stop (or any other number: an unmapped state)."""
        self.state = state
        await self._write("Machine.State", state, ua.VariantType.Int32)

    async def set_serial(self, serial: str) -> None:
        self.serial = serial
        await self._write("Machine.Serial", serial, ua.VariantType.String)

    async def set_temperature(self, value: float) -> None:
        await self._write("Machine.SpindleTemp", float(value), ua.VariantType.Double)

    async def reset_counters(self) -> None:
        """The operator resets the machine's counters to zero (the connector counts on from there)."""
        self.good = self.bad = 0
        await self._write("Machine.Good", 0, ua.VariantType.UInt32)
        await self._write("Machine.Bad", 0, ua.VariantType.UInt32)

    async def complete_part(self, *, good: bool | None = None) -> str:
        """Finish the part on the machine (good, or bad every ``bad_every``-th), count it, and load
        the next one; returns the next part's serial number."""
        self.parts += 1
        ok = good if good is not None else (not self.bad_every or self.parts % self.bad_every != 0)
        if ok:
            self.good += 1
            await self._write("Machine.Good", self.good, ua.VariantType.UInt32)
        else:
            self.bad += 1
            await self._write("Machine.Bad", self.bad, ua.VariantType.UInt32)
        serial = self.serial_of(self.parts + 1)
        await self.set_serial(serial)
        return serial

    def serial_of(self, part: int) -> str:
        """The serial number of part ``part`` (1, 2, …)."""
        if self.serials:
            return self.serials[(part - 1) % len(self.serials)]
        return f"{self.serial_prefix}{part:06d}"

    def read(self, name: str) -> Any:
        """The current value of node ``name`` (``Machine.Recipe`` …) as the server holds it."""
        return self.server.read_attribute_value(self.nodes[name]).Value.Value

    async def _cycles(self) -> None:
        await self.set_serial(self.serial_of(self.parts + 1))
        phase = 0.0
        while True:
            await asyncio.sleep(self.cycle_seconds / 5)
            if self.state != RUNNING:
                continue
            phase += 1
            await self.set_temperature(60.0 + 5.0 * math.sin(phase / 3))
            if phase % 5 == 0:
                await self.complete_part()

    async def _faults(self) -> None:
        """A jam every ``fault_every`` seconds, cleared after ``fault_seconds`` (the demo's downtime)."""
        while True:
            await asyncio.sleep(self.fault_every)
            if self.state == RUNNING:
                await self.set_state(JAM)
                await asyncio.sleep(self.fault_seconds)
                if self.state == JAM:
                    await self.set_state(RUNNING)

    async def _commands(self) -> None:
        """Apply a command written to ``Machine.Command`` (1 run, 2 idle, 3 jam, 4 e-stop), then clear it."""
        while True:
            await asyncio.sleep(0.1)
            command = self.read("Machine.Command")
            if command in COMMANDS:
                await self.set_state(COMMANDS[command])
            if command:
                await self._write("Machine.Command", 0, ua.VariantType.Int32)

    async def _sensor_loop(self) -> None:
        period = 1.0 / self.sensor_hz
        names = [f"Sensors.{i:04d}" for i in range(self.sensors)]
        tick = 0
        next_at = time.monotonic()
        while True:
            tick += 1
            at = datetime.now(UTC)
            for i, name in enumerate(names):
                await self.server.write_attribute_value(
                    self.nodes[name],
                    ua.DataValue(
                        ua.Variant(float(tick + i), ua.VariantType.Double), SourceTimestamp=at, ServerTimestamp=at
                    ),
                )
            self.published += len(names)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def run_in_thread(simulator: MachineSimulator, *, timeout: float = 30.0) -> str:
    """Run ``simulator`` in a daemon thread with its own event loop (``mes serve --demo``);
    returns its endpoint once it listens."""
    ready = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(simulator.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    threading.Thread(target=target, name="opcua-simulator", daemon=True).start()
    if not ready.wait(timeout) or failure:
        raise RuntimeError(f"the OPC UA simulator did not start: {failure[0] if failure else 'timeout'}")
    return simulator.endpoint
