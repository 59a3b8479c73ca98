"""Modbus drivers: the base class every Modbus link implements, and the pymodbus ones — ``tcp``
(Modbus TCP), ``rtu`` (RTU framing on a serial port) and ``rtu_over_tcp`` (RTU frames through a
serial-to-Ethernet gateway)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
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


class ModbusRtuDriver(_PymodbusDriver):
    """Modbus RTU on a serial port (RS-485/RS-232 adapter, or a pty in tests)."""

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
