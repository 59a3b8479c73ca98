"""Modbus drivers: the base class every Modbus link implements, and the pymodbus ones — ``tcp``
(Modbus TCP), ``rtu`` (RTU framing on a serial port) and ``rtu_over_tcp`` (RTU frames through a
serial-to-Ethernet gateway)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pymodbus
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

#: Modbus exception codes (MODBUS Application Protocol v1.1b3 §7) by number, for reasons people read
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusLinkError(ConnectionError):
    """The device cannot be reached or stopped answering (connect refused, timeout, port gone)."""


class ModbusExceptionResponse(Exception):
    """The device answered a request with a Modbus exception (``code``, e.g. 2 = illegal data address)."""

    def __init__(self, code: int, request: str) -> None:
        self.code = code
        self.request = request
        super().__init__(f"{request}: exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")


class ModbusDriver(abc.ABC):
    """One link to one Modbus device (its unit id). Built by the kernel's ``load_driver`` with the
    device's settings as keyword arguments: ``host``, ``port``, ``serial_port``, ``baudrate``,
    ``parity``, ``bytesize``, ``stopbits``, ``unit`` (device id 0-247), ``timeout`` (seconds); a
    driver ignores what it does not use. Requests on one driver are never concurrent (the connector
    serializes them)."""

    #: driver version, recorded with the machine data it delivers
    version: str = ""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the link. Raises :class:`ModbusLinkError` when the device cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the link; never raises."""

    @abc.abstractmethod
    async def read(self, table: str, address: int, count: int) -> list[int] | list[bool]:
        """Read ``count`` items of ``table`` (``coil``, ``discrete``, ``holding``, ``input``) from
        ``address``: 16-bit register values, or bits. Raises :class:`ModbusExceptionResponse` when the
        device answers with an exception, :class:`ModbusLinkError` when it does not answer."""

    @abc.abstractmethod
    async def write(self, table: str, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        """Write ``values`` to ``table`` (``coil`` or ``holding``) from ``address`` (function codes
        5/15 for coils, 6/16 for registers). Raises as :meth:`read` does."""


class _PymodbusDriver(ModbusDriver):
    version = f"pymodbus {pymodbus.__version__}"

    def __init__(self, *, unit: int = 1, timeout: float = 3.0, **_: Any) -> None:
        self.unit = unit
        self.timeout = timeout
        self.client: Any = None

    @abc.abstractmethod
    def _client(self) -> Any: ...

    @abc.abstractmethod
    def _where(self) -> str: ...

    async def connect(self) -> None:
        await self.close()
        self.client = self._client()
        try:
            ok = await self.client.connect()
        except (OSError, ModbusException) as exc:
            raise ModbusLinkError(f"{self._where()}: {exc}") from exc
        if not ok:
            raise ModbusLinkError(f"{self._where()}: cannot connect")

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a half-open transport: nothing left to release
                pass

    async def _call(self, request: str, fn, *args, **kwargs):
        if self.client is None or not self.client.connected:
            raise ModbusLinkError(f"{self._where()}: not connected")
        try:
            answer = await fn(*args, device_id=self.unit, **kwargs)
        except ModbusException as exc:
            raise ModbusLinkError(f"{self._where()}: {request}: {exc}") from exc
        except OSError as exc:
            raise ModbusLinkError(f"{self._where()}: {request}: {exc}") from exc
        if answer.isError():
            code = getattr(answer, "exception_code", 0)
            raise ModbusExceptionResponse(int(code), request)
        return answer

    async def read(self, table: str, address: int, count: int) -> list[int] | list[bool]:
        client = self.client
        request = f"read {table} {address}+{count}"
        if table == "coil":
            answer = await self._call(request, client.read_coils if client else None, address, count=count)
            return list(answer.bits[:count])
        if table == "discrete":
            answer = await self._call(request, client.read_discrete_inputs if client else None, address, count=count)
            return list(answer.bits[:count])
        if table == "holding":
            answer = await self._call(request, client.read_holding_registers if client else None, address, count=count)
        elif table == "input":
            answer = await self._call(request, client.read_input_registers if client else None, address, count=count)
        else:
            raise ValueError(f"no Modbus table {table!r}")
        if len(answer.registers) < count:
            raise ModbusLinkError(f"{self._where()}: {request}: short answer ({len(answer.registers)} registers)")
        return list(answer.registers[:count])

    async def write(self, table: str, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        client = self.client
        request = f"write {table} {address}+{len(values)}"
        if table == "coil":
            if len(values) == 1:
                await self._call(request, client.write_coil if client else None, address, bool(values[0]))
            else:
                await self._call(request, client.write_coils if client else None, address, [bool(v) for v in values])
        elif table == "holding":
            if len(values) == 1:
                await self._call(request, client.write_register if client else None, address, int(values[0]))
            else:
                await self._call(request, client.write_registers if client else None, address, [int(v) for v in values])
        else:
            raise ValueError(f"{table} cannot be written (coil or holding only)")


class ModbusTcpDriver(_PymodbusDriver):
    """Modbus TCP (MBAP framing) to ``host``:``port``."""

    framer = FramerType.SOCKET

    def __init__(self, *, host: str | None = None, port: int = 502, **settings: Any) -> None:
        if not host:
            raise ValueError("a Modbus TCP device needs host")
        super().__init__(**settings)
        self.host = host
        self.port = port

    def _client(self) -> Any:
        # reconnect_delay 0: the connector owns reconnection (with its backoff and health reasons)
        return AsyncModbusTcpClient(
            self.host, port=self.port, framer=self.framer, timeout=self.timeout, retries=0, reconnect_delay=0
        )

    def _where(self) -> str:
        return f"{self.host}:{self.port}"


class ModbusRtuOverTcpDriver(ModbusTcpDriver):
    """RTU frames (with CRC) over TCP, as serial-to-Ethernet gateways pass them."""

    framer = FramerType.RTU


class SerialBus:
    """One serial port as every device on it shares it in this process: RS-485 carries several
    slaves (unit ids) on one pair of wires with one master, so the devices of one port use **one**
    pymodbus client and take turns (``lock``: one request on the line at a time). Two clients on one
    port would interleave their frames and read each other's answers.

    Kept in :data:`BUSES` by port while a driver uses it; the last driver to close closes the port.
    ``settings`` (baud rate, parity, byte size, stop bits, timeout) are the port's: a device that
    asks for others is refused, since one line has one speed."""

    def __init__(self, port: str, settings: tuple, make_client) -> None:
        self.port = port
        self.settings = settings
        self.make_client = make_client
        self.client: Any = None
        self.users = 0
        self.lock = asyncio.Lock()

    async def ensure_open(self) -> Any:
        """The port's client, (re)opened when it is not connected (a pymodbus client may close its
        port after a slave's timeout; the other slaves must not pay for it). Call under ``lock``."""
        if self.client is not None and self.client.connected:
            return self.client
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # a half-open port: nothing left to release
                pass
        self.client = self.make_client()
        try:
            ok = await self.client.connect()
        except (OSError, ModbusException) as exc:
            raise ModbusLinkError(f"{self.port}: {exc}") from exc
        if not ok:
            raise ModbusLinkError(f"{self.port}: cannot open the serial port")
        return self.client

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


#: the serial ports open in this process, by path (see :class:`SerialBus`)
BUSES: dict[str, SerialBus] = {}


class ModbusRtuDriver(_PymodbusDriver):
    """Modbus RTU on a serial port (RS-485/RS-232 adapter, or a pty in tests). Every device on one
    port (its own ``unit`` id) shares the port's :class:`SerialBus`: one client, one request at a time."""

    def __init__(
        self,
        *,
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "N",
        bytesize: int = 8,
        stopbits: int = 1,
        **settings: Any,
    ) -> None:
        if not serial_port:
            raise ValueError("a Modbus RTU device needs serial_port")
        super().__init__(**settings)
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity = parity
        self.bytesize = bytesize
        self.stopbits = stopbits
        self.bus: SerialBus | None = None

    def _settings(self) -> tuple:
        return (self.baudrate, self.parity, self.bytesize, self.stopbits, self.timeout)

    async def connect(self) -> None:
        await self.close()
        bus = BUSES.get(self.serial_port)
        if bus is None:
            bus = BUSES[self.serial_port] = SerialBus(self.serial_port, self._settings(), self._client)
        elif bus.settings != self._settings():
            baud, parity, bytesize, stopbits, timeout = bus.settings
            raise ModbusLinkError(
                f"{self.serial_port} is open at {baud} baud {bytesize}{parity}{stopbits} (timeout {timeout} s) "
                "for another device: every device on one port must use the port's settings"
            )
        bus.users += 1
        self.bus = bus
        try:
            async with bus.lock:
                self.client = await bus.ensure_open()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        bus, self.bus, self.client = getattr(self, "bus", None), None, None
        if bus is None:
            return
        bus.users -= 1
        if bus.users <= 0:
            bus.close()
            if BUSES.get(bus.port) is bus:
                del BUSES[bus.port]

    async def read(self, table: str, address: int, count: int) -> list[int] | list[bool]:
        async with self._turn():
            return await super().read(table, address, count)

    async def write(self, table: str, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        async with self._turn():
            await super().write(table, address, values)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This device's turn on the line: the bus lock held, the port (re)opened if need be."""
        bus = self.bus
        if bus is None:
            raise ModbusLinkError(f"{self.serial_port}: not connected")
        async with bus.lock:
            self.client = await bus.ensure_open()
            yield

    def _client(self) -> Any:
        return AsyncModbusSerialClient(
            self.serial_port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            parity=self.parity,
            bytesize=self.bytesize,
            stopbits=self.stopbits,
            timeout=self.timeout,
            retries=0,
            reconnect_delay=0,
        )

    def _where(self) -> str:
        return self.serial_port
