"""A simulated machine behind a pymodbus server (Modbus TCP, or RTU on a serial port or pty): a state
register, good/bad part counters, a spindle temperature, a pressure, the serial number of the part on
the machine, a recipe register and a start coil — controllable for faults (stop answering, states).

Register map (0-based protocol addresses)::

    holding 0        state (1 running, 2 idle, 3 jam, 4 emergency stop)
    holding 1-2      good parts, uint32 (high word first)
    holding 3-4      bad parts, uint32
    holding 10-25    serial number of the part on the machine, 32 ASCII characters
    holding 30       recipe number (writable)
    input 0          spindle temperature, int16, 0.1 degC
    input 1-2        pressure, float32, bar
    coil 0           start command (writable);  discrete 0: door open
    anything else    exception 2 (illegal data address)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import tty
from collections.abc import Sequence
from typing import Any

from pymodbus import FramerType
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

RUNNING, IDLE, JAM, ESTOP = 1, 2, 3, 4
HOLDING_SIZE, INPUT_SIZE, BITS = 40, 8, 16
SERIAL_CHARS = 32
UNIT = 1
# pymodbus function codes used to write the simulator's own memory (any table, read-only or not)
_FC = {"coil": 5, "discrete": 2, "holding": 16, "input": 4}
_U32 = ModbusClientMixin.DATATYPE.UINT32
_F32 = ModbusClientMixin.DATATYPE.FLOAT32
_I16 = ModbusClientMixin.DATATYPE.INT16


def device_config(**link: Any) -> dict[str, Any]:
    """The line configuration of a device reading this simulator (``link``: ``host``/``port`` or
    ``serial_port``, plus any other setting)."""
    return {
        "unit": UNIT,
        **link,
        "registers": {
            "state": "holding:0",
            "good": "holding:1:uint32",
            "bad": "holding:3:uint32",
            "serial": {"type": "holding", "address": 10, "data_type": "string", "count": 16},
            "spindle_temp": "input:0:int16",
            "pressure": "input:1:float32",
            "door_open": "discrete:0",
        },
        "states": {"running": [RUNNING], "idle": [IDLE], "down": [JAM, ESTOP]},
        "reasons": {str(JAM): "jam", str(ESTOP): "emergency stop"},
        "counts": {"wrap": 2**32},
        "values": {"spindle_temp": {"unit": "degC", "scale": 0.1}, "pressure": {"unit": "bar"}},
        "writable": {"recipe": "holding:30", "start": "coil:0"},
    }


class MachineSimulator:
    """The machine model and its Modbus server. ``await start_tcp()`` (127.0.0.1, a free port unless
    given; ``.port`` tells it) or ``await start_serial(path)``; ``await stop()``. Tests drive it with
    :meth:`set_state`, :meth:`complete_part`, :meth:`set_serial`, :meth:`set_temperature`; ``silent``
    makes it drop requests (a device that stopped answering). ``unit`` is its device id;
    :meth:`start_serial_bus` puts several machines (unit ids) on one serial line, as on RS-485."""

    def __init__(self, *, unit: int = UNIT) -> None:
        self.unit = unit
        self.server: Any = None
        self.port: int | None = None
        self.serial_port: str | None = None
        self.good = 0
        self.bad = 0
        self.silent = False
        self._task: asyncio.Task | None = None

    def _device(self) -> SimDevice:
        return SimDevice(
            id=self.unit,
            simdata=(
                [SimData(0, count=BITS, values=False, datatype=DataType.BITS)],
                [SimData(0, count=BITS, values=False, datatype=DataType.BITS)],
                [SimData(0, count=HOLDING_SIZE, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=INPUT_SIZE, values=0, datatype=DataType.REGISTERS)],
            ),
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # a silent device drops its answers: requests arrive, nothing goes back
        return b"" if self.silent and sending else data

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> MachineSimulator:
        self.server = ModbusTcpServer(self._device(), address=(host, port), trace_packet=self._trace)
        await self._start()
        self.port = self.server.transport.sockets[0].getsockname()[1]
        return self

    async def start_serial(self, path: str, *, baudrate: int = 19200) -> MachineSimulator:
        self.server = ModbusSerialServer(
            self._device(), port=path, framer=FramerType.RTU, baudrate=baudrate, trace_packet=self._trace
        )
        self.serial_port = path
        await self._start()
        return self

    @staticmethod
    async def start_serial_bus(
        path: str, machines: list[MachineSimulator], *, baudrate: int = 19200
    ) -> list[MachineSimulator]:
        """Serve ``machines`` (each its own ``unit``) on one serial line: one RTU server answering for
        every unit id, silent for any other (an absent slave does not answer). Stop the first to stop
        the line."""
        first = machines[0]
        units = {m.unit for m in machines}

        def trace(sending: bool, data: bytes) -> bytes:
            # pymodbus answers an unknown unit id with an exception; on a real line nobody answers
            if sending and data and data[0] not in units:
                return b""
            return first._trace(sending, data)

        first.server = ModbusSerialServer(
            [m._device() for m in machines],
            port=path,
            framer=FramerType.RTU,
            baudrate=baudrate,
            ignore_missing_devices=True,
            trace_packet=trace,
        )
        first.serial_port = path
        await first._start()
        for machine in machines[1:]:
            machine.server, machine.serial_port = first.server, path
            await machine.set_state(RUNNING)
        return machines

    async def _start(self) -> None:
        self._task = asyncio.create_task(self.server.serve_forever(), name="modbus-simulator")
        for _ in range(200):
            if self.server.transport is not None:
                break
            await asyncio.sleep(0.01)
        if self.server.transport is None:
            raise RuntimeError("the Modbus simulator did not start listening")
        await self.set_state(RUNNING)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.server = self._task = None

    async def poke(self, table: str, address: int, values: list[int] | list[bool]) -> None:
        """Write the simulator's memory directly (any table)."""
        result = await self.server.context.async_setValues(self.unit, _FC[table], address, values)
        if result is not None:
            raise ValueError(f"simulator: {table} {address}: {result!r}")

    async def peek(self, table: str, address: int, count: int = 1) -> list[int] | list[bool]:
        codes = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
        return await self.server.context.async_getValues(self.unit, codes[table], address, count)

    async def set_state(self, state: int) -> None:
        await self.poke("holding", 0, [state])

    async def complete_part(self, *, good: bool = True) -> None:
        if good:
            self.good = (self.good + 1) % 2**32
            await self.poke("holding", 1, ModbusClientMixin.convert_to_registers(self.good, _U32))
        else:
            self.bad = (self.bad + 1) % 2**32
            await self.poke("holding", 3, ModbusClientMixin.convert_to_registers(self.bad, _U32))

    async def set_counters(self, good: int, bad: int) -> None:
        self.good, self.bad = good, bad
        await self.poke("holding", 1, ModbusClientMixin.convert_to_registers(good, _U32))
        await self.poke("holding", 3, ModbusClientMixin.convert_to_registers(bad, _U32))

    async def set_serial(self, serial: str) -> None:
        raw = serial.encode("ascii")[:SERIAL_CHARS].ljust(SERIAL_CHARS, b"\x00")
        await self.poke("holding", 10, [int.from_bytes(raw[i : i + 2], "big") for i in range(0, SERIAL_CHARS, 2)])

    async def set_temperature(self, celsius: float) -> None:
        await self.poke("input", 0, ModbusClientMixin.convert_to_registers(round(celsius * 10), _I16))

    async def set_pressure(self, bar: float) -> None:
        await self.poke("input", 1, ModbusClientMixin.convert_to_registers(float(bar), _F32))

    async def set_door(self, open_: bool) -> None:
        await self.poke("discrete", 0, [bool(open_)])


async def run_machine(
    sim: MachineSimulator, *, cycle: float, jam_every: int, rng: random.Random, serials: Sequence[str] = ()
) -> None:
    """Make parts forever: a serial number per part (``SIM-`` + the part number, or ``serials`` in
    turn, round and round), a temperature drifting around 60 degC, one bad part in ten, a jam of two
    cycles every ``jam_every`` parts (0: never)."""
    part = 0
    while True:
        part += 1
        await sim.set_serial(serials[(part - 1) % len(serials)] if serials else f"SIM-{part:06d}")
        await sim.set_temperature(60 + rng.uniform(-2, 2))
        await sim.set_pressure(6 + rng.uniform(-0.3, 0.3))
        await asyncio.sleep(cycle)
        await sim.complete_part(good=rng.random() > 0.1)
        if jam_every and part % jam_every == 0:
            await sim.set_state(JAM)
            await asyncio.sleep(2 * cycle)
            await sim.set_state(RUNNING)


def start_in_thread(
    *, cycle: float = 3.0, jam_every: int = 20, serials: Sequence[str] = (), timeout: float = 10.0
) -> int:
    """Run a simulated machine making parts (:func:`run_machine`, the serial numbers ``serials``)
    in a daemon thread with its own event loop, serving Modbus TCP on 127.0.0.1; returns its port
    (``mes serve --demo``)."""
    ready = threading.Event()
    box: dict[str, int] = {}

    async def serve() -> None:
        sim = await MachineSimulator().start_tcp()
        box["port"] = sim.port
        ready.set()
        await run_machine(sim, cycle=cycle, jam_every=jam_every, rng=random.Random(), serials=tuple(serials))

    threading.Thread(target=lambda: asyncio.run(serve()), name="modbus-demo-machine", daemon=True).start()
    if not ready.wait(timeout):
        raise RuntimeError("the Modbus demo machine did not start")
    return box["port"]


class PtyLink:
    """A serial line made of two pty pairs joined back to back (a null-modem cable): the simulator
    opens ``device_side``, the connector opens ``host_side``; bytes written on one arrive on the other.
    Both ends are real ttys, configured by pyserial as a real port would be."""

    def __init__(self) -> None:
        self._a_master, a_slave = os.openpty()
        self._b_master, b_slave = os.openpty()
        for fd in (a_slave, b_slave):
            tty.setraw(fd)
        self.device_side = os.ttyname(a_slave)
        self.host_side = os.ttyname(b_slave)
        # keep the slave ends open so that a side closing its port does not hang up the line
        self._slaves = (a_slave, b_slave)
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> PtyLink:
        self._loop = asyncio.get_running_loop()
        for src, dst in ((self._a_master, self._b_master), (self._b_master, self._a_master)):
            os.set_blocking(src, False)
            self._loop.add_reader(src, self._pump, src, dst)
        return self

    def _pump(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            with contextlib.suppress(OSError):
                os.write(dst, data)

    def close(self) -> None:
        if self._loop is not None:
            for fd in (self._a_master, self._b_master):
                self._loop.remove_reader(fd)
        for fd in (self._a_master, self._b_master, *self._slaves):
            with contextlib.suppress(OSError):
                os.close(fd)
