"""A Modbus device's settings from its line configuration: the link (TCP host or serial port), the
register of each signal with its data type, and the poll plan that reads them in few requests.

A register is written as a table or as a string ``"<table>:<address>[:<data_type>]"``::

    registers = {state = "holding:0", good = "holding:1:uint32",
                 spindle_temp = {type = "input", address = 0, data_type = "int16"},
                 serial = {type = "holding", address = 10, data_type = "string", count = 8},
                 door_open = "discrete:0"}

Tables (Modbus data model, Modbus Application Protocol v1.1b3 §4.3): ``coil`` (read/write bits),
``discrete`` (discrete inputs, read-only bits), ``holding`` (read/write 16-bit registers), ``input``
(input registers, read-only). Addresses are the 0-based protocol addresses (``40001`` in a PLC's
manual is holding address 0). Data types: ``int16``, ``uint16`` (default), ``int32``, ``uint32``,
``float32`` (IEEE 754 over 2 registers), ``string`` (``count`` registers, 2 characters each, NULs and
spaces trimmed) and, for coils and discrete inputs, ``bool``. 32-bit values are big-endian inside a
register; ``word_order`` (``big``: high word first, the Modbus convention; ``little``: low word first)
is set per device and may be overridden per register.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mes_kernel.contracts import MachineMapping, MappingError

TABLES = ("coil", "discrete", "holding", "input")
BIT_TABLES = ("coil", "discrete")
#: registers per data type (``string`` takes ``count``)
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "bool": 1}
REGISTER_TYPES = ("int16", "uint16", "int32", "uint32", "float32", "string")
WORD_ORDERS = ("big", "little")
#: the protocol's bounds for one read request (MODBUS Application Protocol v1.1b3 §6.1-6.4)
MAX_READ = {"coil": 2000, "discrete": 2000, "holding": 125, "input": 125}
#: the longest stretch of unused addresses a poll request reads through to save a request
MAX_GAP = 16
MAX_STRING_REGISTERS = 64
SERIAL_PARITIES = ("N", "E", "O")


@dataclass(frozen=True)
class Register:
    """Where a signal lives: ``table``, 0-based ``address``, ``data_type``, ``count`` registers (or
    1 bit), ``word_order`` for 32-bit types."""

    table: str
    address: int
    data_type: str
    count: int
    word_order: str = "big"

    @property
    def end(self) -> int:
        return self.address + self.count

    def describe(self) -> str:
        return f"{self.table} {self.address}" + ("" if self.count == 1 else f"-{self.end - 1}")


@dataclass(frozen=True)
class Block:
    """One read request of the poll plan: ``count`` items of ``table`` from ``start``, and the
    signals (name -> register) decoded from its answer."""

    table: str
    start: int
    count: int
    signals: tuple[tuple[str, Register], ...]


@dataclass(frozen=True)
class ModbusSettings:
    """Everything the connector needs of one device. Times in seconds."""

    registers: dict[str, Register]
    mapping: MachineMapping
    host: str | None = None
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 19200
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1
    unit: int = 1
    timeout: float = 3.0
    poll_seconds: float = 1.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    word_order: str = "big"
    writable: dict[str, Register] = field(default_factory=dict)

    def driver_settings(self) -> dict[str, Any]:
        """The keyword arguments of a driver's constructor (see :class:`mes_modbus.drivers.ModbusDriver`)."""
        return {
            "host": self.host,
            "port": self.port,
            "serial_port": self.serial_port,
            "baudrate": self.baudrate,
            "parity": self.parity,
            "bytesize": self.bytesize,
            "stopbits": self.stopbits,
            "unit": self.unit,
            "timeout": self.timeout,
        }


def parse_register(value: Any, *, field: str, word_order: str = "big") -> Register:
    """A register from its configured form (a table or ``"table:address[:data_type]"``); raises
    :class:`MappingError` naming ``field``."""
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) not in (2, 3):
            raise MappingError(f"{field}: {value!r} is not 'table:address[:data_type]'", field=field)
        spec: dict[str, Any] = {"type": parts[0].strip(), "address": parts[1].strip()}
        if len(parts) == 3:
            spec["data_type"] = parts[2].strip()
        try:
            spec["address"] = int(spec["address"])
        except ValueError:
            raise MappingError(f"{field}: address {parts[1]!r} is not an integer", field=field) from None
    elif isinstance(value, Mapping):
        spec = dict(value)
    else:
        raise MappingError(f"{field} must be 'table:address' or a table {{type, address}}", field=field)
    table = spec.get("type")
    if table not in TABLES:
        raise MappingError(f"{field}: type {table!r} is not one of {', '.join(TABLES)}", field=f"{field}.type")
    address = spec.get("address")
    if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 65535:
        raise MappingError(f"{field}: address must be an integer 0-65535", field=f"{field}.address")
    bits = table in BIT_TABLES
    data_type = spec.get("data_type", "bool" if bits else "uint16")
    if bits and data_type != "bool":
        raise MappingError(f"{field}: a {table} holds one bit (data_type bool)", field=f"{field}.data_type")
    if not bits and data_type not in REGISTER_TYPES:
        raise MappingError(
            f"{field}: data_type {data_type!r} is not one of {', '.join(REGISTER_TYPES)}", field=f"{field}.data_type"
        )
    if data_type == "string":
        count = spec.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_STRING_REGISTERS:
            raise MappingError(
                f"{field}: a string needs count = registers (1-{MAX_STRING_REGISTERS})", field=f"{field}.count"
            )
    else:
        count = WIDTH[data_type]
    order = spec.get("word_order", word_order)
    if order not in WORD_ORDERS:
        raise MappingError(f"{field}: word_order must be one of {WORD_ORDERS}", field=f"{field}.word_order")
    if address + count > 65536:
        raise MappingError(f"{field}: {count} registers from {address} pass address 65535", field=f"{field}.address")
    return Register(table=table, address=address, data_type=data_type, count=count, word_order=order)


def plan_reads(registers: Mapping[str, Register]) -> list[Block]:
    """The poll's read requests: per table, neighbouring signals share one request while it stays
    within the protocol's size limit and reads through at most ``MAX_GAP`` unused addresses."""
    blocks: list[Block] = []
    for table in TABLES:
        items = sorted(((n, r) for n, r in registers.items() if r.table == table), key=lambda x: x[1].address)
        current: list[tuple[str, Register]] = []
        start = end = 0
        for name, reg in items:
            if current and reg.address - end <= MAX_GAP and max(end, reg.end) - start <= MAX_READ[table]:
                current.append((name, reg))
                end = max(end, reg.end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [(name, reg)], reg.address, reg.end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


def _number(config: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise MappingError(f"{key} must be a number from {low} to {high}", field=key)
    return value


def parse_settings(config: Mapping[str, Any], *, driver: str | None = None) -> ModbusSettings:
    """Read a Modbus device's effective configuration (``driver`` is the device's driver name:
    ``tcp`` and ``rtu_over_tcp`` need ``host``, ``rtu`` needs ``serial_port``). Raises
    :class:`MappingError` naming the key at fault (``registers.good.data_type``, ``host``, ``unit`` …)."""
    mapping = MachineMapping.from_config(config, addresses="registers")
    word_order = config.get("word_order", "big")
    if word_order not in WORD_ORDERS:
        raise MappingError(f"word_order must be one of {WORD_ORDERS}", field="word_order")
    registers = {
        name: parse_register(s.address, field=f"registers.{name}", word_order=word_order)
        for name, s in mapping.signals.items()
    }
    for name, reg in registers.items():
        if name == "serial" and reg.table in BIT_TABLES:
            raise MappingError("registers.serial must be a register (a string or a number)", field="registers.serial")
    writable_cfg = config.get("writable") or {}
    if not isinstance(writable_cfg, Mapping):
        raise MappingError("writable must be a table of name -> register", field="writable")
    writable = {}
    for name, value in writable_cfg.items():
        reg = parse_register(value, field=f"writable.{name}", word_order=word_order)
        if reg.table not in ("coil", "holding"):
            raise MappingError(
                f"writable.{name}: only coils and holding registers can be written", field=f"writable.{name}"
            )
        writable[str(name)] = reg
    host = config.get("host")
    serial_port = config.get("serial_port")
    if host is not None and (not isinstance(host, str) or not host or len(host) > 253):
        raise MappingError("host must be a host name or address", field="host")
    if serial_port is not None and (not isinstance(serial_port, str) or not serial_port or len(serial_port) > 300):
        raise MappingError("serial_port must be a device path such as /dev/ttyUSB0", field="serial_port")
    if driver in ("tcp", "rtu_over_tcp") and not host:
        raise MappingError(f"driver {driver} needs host", field="host")
    if driver == "rtu" and not serial_port:
        raise MappingError("driver rtu needs serial_port", field="serial_port")
    parity = config.get("parity", "N")
    if parity not in SERIAL_PARITIES:
        raise MappingError(f"parity must be one of {SERIAL_PARITIES}", field="parity")
    reconnect_min = float(_number(config, "reconnect_min", 1.0, 0.05, 60))
    reconnect_max = float(_number(config, "reconnect_max", 30.0, 0.1, 3600))
    if reconnect_max < reconnect_min:
        raise MappingError("reconnect_max must not be below reconnect_min", field="reconnect_max")
    return ModbusSettings(
        registers=registers,
        mapping=mapping,
        host=host,
        port=int(_number(config, "port", 502, 1, 65535)),
        serial_port=serial_port,
        baudrate=int(_number(config, "baudrate", 19200, 300, 921600)),
        parity=parity,
        bytesize=int(_number(config, "bytesize", 8, 7, 8)),
        stopbits=int(_number(config, "stopbits", 1, 1, 2)),
        unit=int(_number(config, "unit", 1, 0, 247)),
        timeout=float(_number(config, "timeout", 3.0, 0.05, 120)),
        poll_seconds=float(_number(config, "poll_seconds", 1.0, 0.01, 3600)),
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        word_order=word_order,
        writable=writable,
    )
