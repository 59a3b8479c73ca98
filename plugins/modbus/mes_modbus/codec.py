"""Registers <-> values: the data types of :mod:`mes_modbus.config` decoded from and encoded into
16-bit registers with pymodbus's own converters (``ModbusClientMixin.convert_from_registers``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pymodbus.client.mixin import ModbusClientMixin

from mes_kernel.contracts import from_float32

from .config import BIT_TABLES, Register

DATATYPE = ModbusClientMixin.DATATYPE
_TYPES = {
    "int16": DATATYPE.INT16,
    "uint16": DATATYPE.UINT16,
    "int32": DATATYPE.INT32,
    "uint32": DATATYPE.UINT32,
    "float32": DATATYPE.FLOAT32,
    "string": DATATYPE.STRING,
}
_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


def decode(register: Register, items: Sequence[int] | Sequence[bool]) -> bool | int | float | str:
    """The value of ``register`` from its ``items`` (exactly its registers, or one bit). Strings lose
    trailing NULs and surrounding spaces; a float32 is its shortest decimal (``from_float32``), and
    one that is NaN or infinite raises ``ValueError``."""
    if register.table in BIT_TABLES:
        return bool(items[0])
    if register.data_type == "string":
        raw = b"".join(int(r).to_bytes(2, "big") for r in items)
        return raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    value = ModbusClientMixin.convert_from_registers(
        list(items), _TYPES[register.data_type], word_order=register.word_order
    )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{register.describe()}: float32 is {value}")
        return from_float32(value)  # 6.2, not the float32's 6.199999809265137
    return value


def encode(register: Register, value: Any) -> list[int] | list[bool]:
    """The registers (or the bit) that write ``value`` into ``register``. Raises ``ValueError`` for a
    value the data type cannot hold (70000 in a uint16, 1.5 in an int16, text in a number, a string
    longer than ``count`` registers)."""
    if register.table in BIT_TABLES:
        if isinstance(value, bool) or value in (0, 1):
            return [bool(value)]
        raise ValueError(f"a {register.table} takes true/false (or 0/1), not {value!r}")
    kind = register.data_type
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"a string register takes text, not {value!r}")
        raw = value.encode("latin-1", errors="strict") if value.isascii() else None
        if raw is None or len(raw) > 2 * register.count:
            raise ValueError(f"text must be ASCII of at most {2 * register.count} characters")
        raw = raw.ljust(2 * register.count, b"\x00")
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a {kind} register takes a number, not {value!r}")
    if kind == "float32":
        if not math.isfinite(value) or abs(value) > 3.4028234e38:
            raise ValueError(f"{value!r} does not fit a float32")
        return ModbusClientMixin.convert_to_registers(float(value), DATATYPE.FLOAT32, word_order=register.word_order)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"a {kind} register takes a whole number, not {value!r}")
        value = int(value)
    low, high = _RANGES[kind]
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {kind} ({low}..{high})")
    return ModbusClientMixin.convert_to_registers(value, _TYPES[kind], word_order=register.word_order)
