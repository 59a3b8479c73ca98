"""The protocol-neutral mapping of a machine's signals to states, counts, values and the serial on it.

A connector device's line configuration carries the mapping beside its protocol settings; only the
*addresses* (OPC UA node ids, Modbus registers, MQTT topics) are the protocol's own. For example an
OPC UA device (the issue's form)::

    [devices.config]
    endpoint = "opc.tcp://10.0.0.7:4840"
    nodes = {state = "ns=2;s=Machine.State", good = "ns=2;s=Machine.Good",
             bad = "ns=2;s=Machine.Bad", serial = "ns=2;s=Machine.Serial",
             spindle_temp = "ns=2;s=Machine.SpindleTemp"}
    states = {running = [1], idle = [2], down = [3, 4]}
    reasons = {"3" = "jam", "4" = "emergency stop"}          # optional, raw value -> reason
    counts = {wrap = 65536}                                   # optional: modulus of the counters
    values = {spindle_temp = {unit = "degC", scale = 0.1}}    # optional: unit, scale, offset
    ideal_cycle_seconds = 12.0                                # optional: OEE performance

Signal names ``state``, ``good``, ``bad`` and ``serial`` have those roles; every other address is a
named process value. Nothing here imports the server's stack, so a station may use it too.
"""

from __future__ import annotations

import decimal
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: machine states of ``machine_states.state`` (every state but ``running`` is downtime for OEE)
MACHINE_STATES = ("running", "idle", "down", "setup")
#: signal names with a role; any other signal is a process value
ROLES = ("state", "good", "bad", "serial")
COUNTERS = ("good", "bad")
RECORD_MODES = ("unit", "always")
MAX_NAME = 64


class MappingError(ValueError):
    """A device's mapping cannot be used: ``field`` names the configuration key, ``str()`` says why."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Signal:
    """One mapped signal: ``name`` (``state``, ``good``, ``bad``, ``serial`` or a value's name), its
    ``role`` (the same words, or ``value``), the protocol's ``address`` as configured, and for values
    the ``unit`` and the linear scaling ``value = raw * scale + offset``."""

    name: str
    role: str
    address: Any
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0


def decimal_places(number: float) -> int:
    """Decimal places of ``number`` as written in its shortest form (``repr``): ``0.1`` → 1,
    ``2.5e-3`` → 4, ``600`` and ``1e20`` → 0."""
    exponent = decimal.Decimal(repr(number)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def from_float32(value: float) -> float:
    """A 32-bit float read from a machine (a Modbus float32 register pair, an OPC UA ``Float``) as the
    shortest decimal that is the same float32: ``6.2``, not ``6.199999809265137`` (the float32 nearest
    to 6.2, widened to Python's 64-bit float). NaN and infinities come back unchanged."""
    if not math.isfinite(value):
        return value
    try:
        packed = struct.pack(">f", value)
    except OverflowError:  # not a float32 at all: leave it
        return value
    for digits in range(1, 10):  # nine significant digits always round-trip a float32
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return value


def raw_key(raw: Any) -> int | str | None:
    """The comparable form of a raw state value: integers (also ``3.0``, ``True`` and ``"3"``) as
    ``int``, other text stripped; ``None`` for what can be neither (NaN, lists …)."""
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and raw.is_integer() else None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return int(text)
        except ValueError:
            return text
    return None


def counter_increment(last: int | None, new: int, *, wrap: int | None) -> int:
    """Parts counted between two readings of an absolute counter.

    ``last`` None (no earlier reading) counts nothing. A counter that went down either wrapped
    (with ``wrap``, the counter's modulus such as 65536, when the forward distance ``new + wrap -
    last`` is under half the modulus) or was reset to zero by the machine (then ``new`` parts since
    the reset). Source: the usual PLC counter semantics (IEC 61131-3 CTU counters reset to 0; 16/32-bit
    registers wrap at 2^16 / 2^32).
    """
    if last is None:
        return 0
    if new >= last:
        return new - last
    if wrap and (new + wrap - last) < wrap // 2:
        return new + wrap - last
    return new


@dataclass(frozen=True)
class MachineMapping:
    """A parsed mapping; build it with :meth:`from_config`."""

    signals: dict[str, Signal]
    #: raw state value (see :func:`raw_key`) -> (state, reason)
    states: dict[int | str, tuple[str, str]] = field(default_factory=dict)
    counter_wrap: int | None = None
    #: ``unit``: values are stored only while a serial is on the machine; ``always``: also without
    record_values: str = "unit"
    #: state recorded while the connection to the machine is lost (None: keep the last known one)
    disconnected_state: str | None = None
    ideal_cycle_seconds: float | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, addresses: str = "nodes") -> MachineMapping:
        """Parse a device's effective configuration. ``addresses`` is the key of the protocol's
        signal -> address table (``nodes`` for OPC UA, ``registers`` for Modbus, ``topics`` for MQTT).

        Raises :class:`MappingError` naming the key at fault: no addresses, a ``states`` entry that
        is not a machine state or not a list of integers/strings, a raw value in two states, a
        ``values`` entry without an address, a scale that is not a number, ``state`` mapped without
        ``states``.
        """
        table = config.get(addresses)
        if not isinstance(table, Mapping) or not table:
            raise MappingError(f"{addresses} must be a table of signal -> address", field=addresses)
        values_cfg = config.get("values") or {}
        if not isinstance(values_cfg, Mapping):
            raise MappingError("values must be a table of name -> {unit, scale, offset}", field="values")
        signals: dict[str, Signal] = {}
        for name, address in table.items():
            if not isinstance(name, str) or not name or len(name) > MAX_NAME:
                raise MappingError(f"signal name {name!r} must be 1-{MAX_NAME} characters", field=addresses)
            if address is None or address == "":
                raise MappingError(f"signal {name} has no address", field=f"{addresses}.{name}")
            role = name if name in ROLES else "value"
            spec = values_cfg.get(name) or {}
            if not isinstance(spec, Mapping):
                raise MappingError(f"values.{name} must be a table", field=f"values.{name}")
            signals[name] = Signal(
                name=name,
                role=role,
                address=address,
                unit=str(spec.get("unit", ""))[:16],
                scale=_number(spec.get("scale", 1.0), f"values.{name}.scale"),
                offset=_number(spec.get("offset", 0.0), f"values.{name}.offset"),
            )
        for name in values_cfg:
            if name not in signals:
                raise MappingError(f"values.{name} has no address in {addresses}", field=f"values.{name}")
        states = _states(config.get("states"), config.get("reasons"))
        if "state" in signals and not states:
            raise MappingError("a state signal needs states = {running = [...], ...}", field="states")
        counts = config.get("counts") or {}
        if not isinstance(counts, Mapping):
            raise MappingError("counts must be a table", field="counts")
        wrap = counts.get("wrap")
        if wrap is not None and (isinstance(wrap, bool) or not isinstance(wrap, int) or wrap < 2):
            raise MappingError("counts.wrap must be an integer modulus >= 2 (e.g. 65536)", field="counts.wrap")
        record = config.get("record_values", "unit")
        if record not in RECORD_MODES:
            raise MappingError(f"record_values must be one of {RECORD_MODES}", field="record_values")
        disconnected = config.get("disconnected_state")
        if disconnected is not None and disconnected not in MACHINE_STATES:
            raise MappingError(f"disconnected_state must be one of {MACHINE_STATES}", field="disconnected_state")
        ideal = config.get("ideal_cycle_seconds")
        if ideal is not None:
            ideal = _number(ideal, "ideal_cycle_seconds")
            if ideal <= 0:
                raise MappingError("ideal_cycle_seconds must be positive", field="ideal_cycle_seconds")
        return cls(
            signals=signals,
            states=states,
            counter_wrap=wrap,
            record_values=record,
            disconnected_state=disconnected,
            ideal_cycle_seconds=ideal,
        )

    def state_of(self, raw: Any) -> tuple[str, str] | None:
        """``(state, reason)`` for a raw state value, None when the mapping has no such value."""
        key = raw_key(raw)
        return None if key is None else self.states.get(key)

    def value_of(self, name: str, raw: Any) -> float | str | None:
        """A process value as stored: numbers scaled (``raw * scale + offset``), text as text (at most
        256 characters). Raises ``ValueError`` for what is neither, or text where scaling is declared.

        A scaled number is rounded to the precision the scaling implies, so binary floating point
        adds no noise (593 × 0.1 is 59.3, not 59.300000000000004): to the decimal places of ``raw``
        plus those of ``scale``, or those of ``offset`` when more (``values.t = {scale = 0.1,
        offset = -40.25}``: 593 → 19.05)."""
        signal = self.signals[name]
        if isinstance(raw, bool):
            raw = int(raw)
        if isinstance(raw, int | float):
            number = float(raw) * signal.scale + signal.offset
            if not math.isfinite(number):
                raise ValueError(f"{name}: {raw!r} is not a finite number")
            if signal.scale != 1.0 or signal.offset != 0.0:
                places = max(decimal_places(raw) + decimal_places(signal.scale), decimal_places(signal.offset))
                number = round(number, places)
            return number
        if isinstance(raw, str) and signal.scale == 1.0 and signal.offset == 0.0:
            return raw[:256]
        raise ValueError(f"{name}: {type(raw).__name__} {raw!r} does not fit the mapping (a number is expected)")

    def counter_of(self, raw: Any) -> int:
        """An absolute counter reading as an integer; ``ValueError`` for a negative, fractional or
        non-numeric reading."""
        key = raw_key(raw)
        if not isinstance(key, int) or key < 0:
            raise ValueError(f"counter reading {raw!r} is not a non-negative integer")
        return key


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MappingError(f"{field} must be a number", field=field)
    return float(value)


def _states(states: Any, reasons: Any) -> dict[int | str, tuple[str, str]]:
    if states is None:
        return {}
    if not isinstance(states, Mapping):
        raise MappingError("states must be a table of state -> [raw values]", field="states")
    reasons = reasons or {}
    if not isinstance(reasons, Mapping):
        raise MappingError("reasons must be a table of raw value -> reason", field="reasons")
    reason_of = {raw_key(k): str(v)[:200] for k, v in reasons.items()}
    out: dict[int | str, tuple[str, str]] = {}
    for state, raws in states.items():
        if state not in MACHINE_STATES:
            raise MappingError(f"states.{state}: not a machine state {MACHINE_STATES}", field=f"states.{state}")
        if not isinstance(raws, list | tuple) or not raws:
            raise MappingError(f"states.{state} must be a list of raw values", field=f"states.{state}")
        for raw in raws:
            key = raw_key(raw)
            if key is None or isinstance(raw, float) and not raw.is_integer():
                raise MappingError(f"states.{state}: {raw!r} is not an integer or text", field=f"states.{state}")
            if key in out:
                raise MappingError(f"raw state {raw!r} is mapped twice", field=f"states.{state}")
            default = "" if state == "running" else f"raw state {key}"
            out[key] = (state, reason_of.get(key, default))
    return out
