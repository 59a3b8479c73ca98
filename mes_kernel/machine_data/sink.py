"""One device's machine-data sink: turns source-timestamped samples into pending state intervals,
hourly counts, stored values and unit visits, in memory, until the hub writes them in a batch.

A connector calls :meth:`MachineSink.submit` for every sample it receives (cheap, never blocks, never
raises) and reports its link with :meth:`connected`, :meth:`disconnected` and :meth:`subscription`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..contracts import CheckResult, Reason, Status
from .mapping import COUNTERS, MachineMapping, counter_increment, decimal_places

#: at most this many unit-visit samples kept per value name in a visit's summary
VISIT_SAMPLES = 20
#: decimal places a visit's mean keeps beyond those of its samples
MEAN_EXTRA_PLACES = 4
#: state changes kept pending per device between flushes (a machine flapping faster is coalesced)
MAX_TRANSITIONS = 10_000


def utc(moment: datetime | None, *, default: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive ones are taken as UTC); ``default`` when None."""
    if moment is None:
        return default
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass
class Visit:
    """A serial number's stay on the machine and a summary of the values seen meanwhile: those in
    effect when it entered (sampled at ``entered_at``) and every change until it left."""

    serial_number: str
    entered_at: datetime
    left_at: datetime | None = None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    interrupted: bool = False

    def add(self, name: str, unit: str, value: float | str, at: datetime) -> None:
        entry = self.values.get(name)
        if entry is None:
            entry = self.values[name] = {"unit": unit, "count": 0, "samples": []}
        entry["count"] += 1
        entry["last"] = value
        if isinstance(value, float):
            entry["min"] = value if "min" not in entry else min(entry["min"], value)
            entry["max"] = value if "max" not in entry else max(entry["max"], value)
            entry["sum"] = entry.get("sum", 0.0) + value
            entry["places"] = max(entry.get("places", 0), decimal_places(value))
        if len(entry["samples"]) < VISIT_SAMPLES:
            entry["samples"].append([at.isoformat(), value])

    def summary(self) -> dict[str, Any]:
        values = {}
        for name, entry in self.values.items():
            out = {k: entry[k] for k in ("unit", "count", "last", "min", "max") if k in entry}
            if "sum" in entry:
                # four places beyond the samples' own: a mean, without the sum's binary float noise
                out["mean"] = round(entry["sum"] / entry["count"], entry["places"] + MEAN_EXTRA_PLACES)
            out["first_samples"] = entry["samples"]
            values[name] = out
        return {
            "entered_at": self.entered_at.isoformat(),
            "left_at": self.left_at.isoformat() if self.left_at else None,
            "interrupted": self.interrupted,
            "values": values,
        }


@dataclass
class Pending:
    """What a sink has to write: the unit of one batch."""

    transitions: list[tuple[datetime, str, str]] = field(default_factory=list)
    counts: dict[datetime, list[int]] = field(default_factory=dict)  # hour -> [good, bad]
    counters: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    values: list[tuple[str, float | None, str | None, str, str | None, datetime]] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.transitions or self.counts or self.counters or self.values or self.visits)

    def merge_newer(self, newer: Pending) -> None:
        """Append ``newer`` (taken after this one) to this one."""
        self.transitions += newer.transitions
        for hour, (good, bad) in newer.counts.items():
            row = self.counts.setdefault(hour, [0, 0])
            row[0] += good
            row[1] += bad
        self.counters.update(newer.counters)
        self.values += newer.values
        self.visits += newer.visits


class MachineSink:
    """Machine data of one device. Made by :meth:`MachineDataHub.open`, never directly.

    Attributes a connector may read: ``device`` (its code), ``mapping``, ``state`` (``(state,
    reason)`` last seen), ``serial_number`` (the unit on the machine, or None), ``last_value_at``.
    """

    def __init__(
        self,
        *,
        device: str,
        driver: str,
        source: str,
        line_id: int,
        station_id: int | None,
        mapping: MachineMapping,
        max_pending_values: int,
        wake: Callable[[], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_sample: Callable[[str], None] | None = None,
        max_lead: timedelta = timedelta(minutes=5),
        max_age: timedelta = timedelta(days=30),
    ) -> None:
        self.device = device
        self.driver = driver
        self.driver_version = ""
        self.source = source
        self.line_id = line_id
        self.station_id = station_id
        self.mapping = mapping
        self.max_pending_values = max_pending_values
        self.clock = clock
        #: the station-time window (mes_kernel.station_times): a source time outside it is replaced
        self.max_lead, self.max_age = max_lead, max_age
        self.implausible_times = 0
        self._wake = wake
        self._on_sample = on_sample
        self.pending = Pending()
        self.state: tuple[str, str] | None = None
        self._state_since: datetime | None = None
        self.serial_number: str | None = None
        self.visit: Visit | None = None
        #: each process value's last reading, ``name -> (unit, value)``: what a unit that enters the
        #: machine finds there (sample and hold); forgotten when the link is lost
        self.in_effect: dict[str, tuple[str, float | str]] = {}
        self.last_raw: dict[str, int] = {}
        self.last_value_at: datetime | None = None
        self.last_value_monotonic: float | None = None
        self.samples = 0
        self.dropped = 0
        self.reconnects = 0
        self.is_connected = False
        self.subscription_alive = False
        self.link: Reason | str | None = Reason("MACHINE_NOT_CONNECTED_YET", "not connected yet")
        #: standing problems' English texts (shown in the health details), and their reasons by key
        self.problems: dict[str, str] = {}
        self._reasons: dict[str, Reason | str] = {}
        self.store_error: str | None = None
        self.closed = False
        self._room = asyncio.Event()
        self._room.set()

    # ------------------------------------------------------------ link status
    def connected(self) -> None:
        """The connector reached the machine (a session is open)."""
        self.is_connected = True
        self.link = None

    @property
    def link_reason(self) -> str | None:
        """Why the link is down or no data flows, in English (None while it is fine)."""
        return _text(self.link)

    def disconnected(self, reason: str) -> None:
        """The connection is lost (or could not be made): the device's health turns DOWN with
        ``reason`` (``"<ExceptionType>: <message>"``, coded ``MACHINE_DISCONNECTED``: a dashboard
        words the kind of failure by its type). With ``disconnected_state`` in the mapping that
        state starts now."""
        was = self.is_connected
        self.is_connected = False
        self.subscription_alive = False
        self.in_effect.clear()  # unknown until the next session reads them again
        self.link = Reason("MACHINE_DISCONNECTED", reason[:300], {"error": reason[:300]})
        if was and self.mapping.disconnected_state:
            self._transition(self.clock(), (self.mapping.disconnected_state, f"connection lost: {reason}"[:200]))

    def reconnecting(self) -> None:
        """The connector starts another attempt after a loss (counted in ``mes_machine_reconnects_total``)."""
        self.reconnects += 1

    def subscription(self, alive: bool, reason: Reason | str | None = None) -> None:
        """Whether data changes arrive (a subscription, or a poll loop, is running); ``reason``: why
        not (a :class:`Reason`, so a dashboard can word it; plain text is shown as it is)."""
        self.subscription_alive = alive
        if not alive and reason:
            self.link = _clipped(reason)
        elif alive and self.is_connected:
            self.link = None

    def problem(self, key: str, reason: Reason | str) -> None:
        """A standing problem (an unknown node, a value that does not fit the mapping): DEGRADED
        with ``reason`` until :meth:`resolve` with the same ``key``. A :class:`Reason` lets a
        dashboard word it in its reader's language; plain text is shown as it is."""
        reason = _clipped(reason)
        self.problems[key] = _text(reason) or ""
        self._reasons[key] = reason

    def resolve(self, key: str) -> None:
        self.problems.pop(key, None)
        self._reasons.pop(key, None)

    # ------------------------------------------------------------ samples
    def submit(self, signal: str, raw: Any, source_time: datetime | None = None) -> bool:
        """Take one sample of ``signal`` (a name of the mapping) as read at ``source_time`` (the
        machine's timestamp; the kernel's clock when None). Never raises: a value that does not fit
        the mapping becomes a health problem of the device. A source time outside the station-time
        window (older than ``max_age`` or more than ``max_lead`` ahead of the kernel's clock: a PLC
        whose clock was never set, or runs wrong) is replaced by the kernel's clock, counted in
        ``implausible_times`` and shown as the problem ``clock`` (DEGRADED) until a plausible one
        arrives: a sample has no sender to refuse, and an hour decades away would hide it. Returns
        False when the sample was not taken (unknown signal, bad value, or a full queue of values —
        counted as dropped)."""
        now = self.clock()
        at = utc(source_time, default=now)
        if not now - self.max_age <= at <= now + self.max_lead:
            self.implausible_times += 1
            earliest, latest = (now - self.max_age).isoformat(), (now + self.max_lead).isoformat()
            self.problem(
                "clock",
                Reason(
                    "MACHINE_CLOCK_IMPLAUSIBLE",
                    f"{signal}: source time {at.isoformat()} is outside {earliest} to {latest}; stored at the "
                    f"kernel's time — check the machine's clock ({self.implausible_times} so far)",
                    {"signal": signal, "at": at.isoformat(), "count": self.implausible_times},
                ),
            )
            at = now
        elif source_time is not None:
            self.resolve("clock")
        self.samples += 1
        self.last_value_at = now
        self.last_value_monotonic = time.monotonic()
        if self._on_sample is not None:
            self._on_sample(self.device)
        spec = self.mapping.signals.get(signal)
        if spec is None:
            self.problem(
                f"signal:{signal}",
                Reason(
                    "MACHINE_UNKNOWN_SIGNAL",
                    f"sample of {signal!r}, a signal the mapping does not have",
                    {"signal": signal},
                ),
            )
            return False
        try:
            if spec.role == "state":
                state = self.mapping.state_of(raw)
                if state is None:
                    self.problem(
                        "state",
                        Reason(
                            "MACHINE_UNKNOWN_STATE",
                            f"state value {raw!r} is in no state of the mapping",
                            {"value": str(raw)[:64]},
                        ),
                    )
                    return False
                self.resolve("state")
                self._transition(at, state)
            elif spec.role in COUNTERS:
                self._count(spec.role, self.mapping.counter_of(raw), at)
            elif spec.role == "serial":
                self._serial(None if raw is None else str(raw).strip()[:64] or None, at)
            else:
                return self._value(spec.name, spec.unit, self.mapping.value_of(spec.name, raw), at)
        except ValueError as exc:
            self.problem(f"value:{signal}", value_problem(signal, exc))
            return False
        self.resolve(f"value:{signal}")
        self._wake()
        return True

    async def put(self, signal: str, raw: Any, source_time: datetime | None = None) -> bool:
        """As :meth:`submit`, but waits (back-pressure) while the queue of values is full instead
        of dropping — for protocols that can hold the peer back (MQTT QoS 1, a poll loop)."""
        while len(self.pending.values) >= self.max_pending_values and not self.closed:
            self._room.clear()
            self._wake()
            await self._room.wait()
        return self.submit(signal, raw, source_time)

    def _transition(self, at: datetime, state: tuple[str, str]) -> None:
        if state == self.state:
            return
        if self._state_since is not None and at < self._state_since:
            at = self._state_since  # out-of-order source times: an interval never ends before it starts
        self.state, self._state_since = state, at
        if len(self.pending.transitions) >= MAX_TRANSITIONS:
            self.pending.transitions.pop()  # flapping: keep the first changes and this, the latest
        self.pending.transitions.append((at, *state))

    def _count(self, counter: str, reading: int, at: datetime) -> None:
        increment = counter_increment(self.last_raw.get(counter), reading, wrap=self.mapping.counter_wrap)
        self.last_raw[counter] = reading
        self.pending.counters[counter] = (reading, at)
        if increment:
            row = self.pending.counts.setdefault(hour_of(at), [0, 0])
            row[0 if counter == "good" else 1] += increment

    def _serial(self, serial: str | None, at: datetime) -> None:
        if serial == self.serial_number:
            return
        if self.visit is not None:
            self.visit.left_at = at
            self.pending.visits.append(self.visit)
            self.visit = None
        self.serial_number = serial
        if serial is not None:
            self.visit = Visit(serial_number=serial, entered_at=at)
            # a value read before the unit came and unchanged since is still the machine's value:
            # the visit holds it (as of its entry), or a steady temperature would be missing from
            # every unit's history — samples arrive only when a value changes
            for name, (unit, value) in self.in_effect.items():
                self.visit.add(name, unit, value, at)

    def _value(self, name: str, unit: str, value: float | str, at: datetime) -> bool:
        self.in_effect[name] = (unit, value)
        if self.visit is not None:
            self.visit.add(name, unit, value, at)
        elif self.mapping.record_values == "unit":
            return True
        if len(self.pending.values) >= self.max_pending_values:
            self.dropped += 1
            self.problem(
                "queue",
                Reason(
                    "MACHINE_VALUES_DROPPED",
                    f"{self.dropped} values dropped: more than {self.max_pending_values} waiting",
                    {"dropped": self.dropped, "limit": self.max_pending_values},
                ),
            )
            return False
        number, text = (value, None) if isinstance(value, float) else (None, value)
        self.pending.values.append((name, number, text, unit, self.serial_number, at))
        return True

    # ------------------------------------------------------------ for the hub
    def take(self) -> Pending:
        """Hand the pending batch to the writer and start a new one."""
        batch, self.pending = self.pending, Pending()
        self._room.set()
        return batch

    def finish(self) -> None:
        """Close the open visit (interrupted) so it is written with the last batch."""
        if self.visit is not None:
            self.visit.left_at = self.last_value_at or self.clock()
            self.visit.interrupted = True
            self.pending.visits.append(self.visit)
            self.visit = None
        self.closed = True
        self._room.set()

    def health(self, *, now: float | None = None) -> CheckResult:
        """This device's node in ``/health``: DOWN while not connected, DEGRADED while the
        subscription is not alive or a problem stands, else UP. Details: ``connected``,
        ``subscription_alive``, ``last_value_age_seconds``, ``state``, ``serial_number``,
        ``samples``, ``dropped``, ``reconnects``, ``implausible_times`` (source times replaced by the
        kernel's, see :meth:`submit`), ``pending_values``, ``problems``."""
        now = time.monotonic() if now is None else now
        age = None if self.last_value_monotonic is None else round(now - self.last_value_monotonic, 3)
        details = {
            "source": self.source,
            "connected": self.is_connected,
            "subscription_alive": self.subscription_alive,
            "last_value_age_seconds": age,
            "state": self.state[0] if self.state else None,
            "state_reason": self.state[1] if self.state else None,
            "serial_number": self.serial_number,
            "samples": self.samples,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "implausible_times": self.implausible_times,
            "pending_values": len(self.pending.values),
            "problems": dict(self.problems),
        }
        if not self.is_connected:
            return CheckResult(Status.DOWN, self.link or Reason("MACHINE_NOT_CONNECTED", "not connected"), details)
        reasons: list[Reason | str] = []
        if not self.subscription_alive:
            reasons.append(self.link or Reason("MACHINE_NO_SUBSCRIPTION", "no subscription"))
        if self.store_error:
            reasons.append(
                Reason(
                    "MACHINE_DATA_NOT_STORED",
                    f"machine data not stored: {self.store_error}",
                    {"error": self.store_error},
                )
            )
        reasons += list(self._reasons.values())
        if len(reasons) == 1:
            return CheckResult(Status.DEGRADED, reasons[0], details)
        if reasons:
            text = "; ".join(_text(r) or "" for r in reasons)[:500]
            problems = [_fields(r) for r in reasons]
            return CheckResult(Status.DEGRADED, Reason("MACHINE_PROBLEMS", text, {"problems": problems}), details)
        return CheckResult(Status.UP, None, details)


def value_problem(signal: str, exc: Exception) -> Reason:
    """A value of ``signal`` that does not fit the mapping (``exc`` says why, in English)."""
    return Reason("MACHINE_VALUE_INVALID", str(exc)[:300], {"signal": signal, "error": str(exc)[:300]})


def _text(reason: Reason | str | None) -> str | None:
    return reason.text if isinstance(reason, Reason) else reason


def _clipped(reason: Reason | str) -> Reason | str:
    if isinstance(reason, Reason):
        return Reason(reason.code, reason.text[:300], reason.params)
    return reason[:300]


def _fields(reason: Reason | str) -> dict[str, Any]:
    if isinstance(reason, Reason):
        return reason.fields()
    return {"reason": reason, "reason_code": None, "reason_params": {}}
