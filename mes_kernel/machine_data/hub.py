"""The kernel's machine-data hub: opens a sink per connector device, writes every sink's pending
data in one transaction per flush, keeps metrics, answers each device's health, and hands out
leases so that one process of the installation reads each machine.

Plugins reach it as ``kernel.machine_data`` (see ``docs/machine-data.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import select

from ..contracts import CheckResult, Reason, Status
from ..db.models import Device
from .mapping import MachineMapping, MappingError
from .sink import MachineSink, Pending
from .store import counter_readings, open_state, write_batches

if TYPE_CHECKING:
    from ..kernel import Kernel

log = structlog.get_logger(__name__)

SAMPLES = Counter("mes_machine_samples_total", "Samples connectors received from machines", ["source", "device"])
STORED = Counter("mes_machine_values_stored_total", "Machine process values stored", ["source", "device"])
DROPPED = Counter(
    "mes_machine_values_dropped_total", "Machine values dropped (queue full or store down)", ["source", "device"]
)
RECONNECTS = Counter("mes_machine_reconnects_total", "Connector reconnection attempts", ["source", "device"])
LAG = Histogram(
    "mes_machine_lag_seconds",
    "Delay from a value's source timestamp to its commit in the database",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
FLUSH = Histogram(
    "mes_machine_flush_seconds",
    "Duration of one machine-data write (all devices, one transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
STORE_FAILURES = Counter("mes_machine_store_failures_total", "Machine-data writes that failed and will be retried")
PENDING = Gauge("mes_machine_pending_values", "Machine values waiting to be written", multiprocess_mode="livesum")
CONNECTED = Gauge(
    "mes_machine_connected",
    "1 while the connector is connected to the device",
    ["source", "device"],
    multiprocess_mode="livemax",
)


class MachineDataHub:
    """Machine data of every connector device in this process.

    ``flush_interval`` (seconds) bounds the delay from a sample to the database; a flush also
    starts early once a sink holds half of ``max_pending_values`` values. Values beyond
    ``max_pending_values`` per device (the database slower than the machines, or down) are dropped and
    counted; states, counts and unit visits are never dropped (they are small by nature).
    """

    def __init__(
        self,
        kernel: Kernel,
        *,
        flush_interval: float = 0.25,
        max_pending_values: int = 50_000,
        lease_seconds: float = 15.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.kernel = kernel
        self.flush_interval = flush_interval
        self.max_pending_values = max_pending_values
        self.lease_seconds = lease_seconds
        # the kernel's clock unless a test gives its own: source times are judged against it
        self.clock = clock or (lambda: getattr(self.kernel, "clock", lambda: datetime.now(UTC))())
        self.sinks: dict[str, MachineSink] = {}
        self.failed: dict[str, Reason | str] = {}
        self._retry: dict[str, Pending] = {}
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leases: set[str] = set()
        self._local_leases: dict[str, str] = {}
        self._last_renewal = 0.0
        self._last_published = 0.0
        self.flushes = 0

    # ------------------------------------------------------------ sinks
    async def open(self, device: Any, *, source: str, mapping: MachineMapping, driver_version: str = "") -> MachineSink:
        """The sink of ``device`` (a ``ResolvedDevice`` or a device code) for connector ``source``
        (the plugin's name). Reads the device's line and station, its open state interval and its
        last counter readings, so a restart neither repeats a state nor loses the parts counted
        meanwhile. Raises :class:`MappingError` (``field="line"``) for a device on no line or unknown.
        A sink already open for the device is finished (its data written) and replaced."""
        code = device if isinstance(device, str) else device.code
        async with self.kernel.sessionmaker() as session:
            row = (
                await session.execute(
                    select(Device.line_id, Device.station_id, Device.driver).where(Device.code == code)
                )
            ).first()
            if row is None:
                raise MappingError(f"device {code} not found", field="device")
            if row.line_id is None:
                raise MappingError(f"device {code} is on no line; machine data belongs to a line", field="line")
            state = await open_state(session, code)
            readings = await counter_readings(session, code)
        if code in self.sinks:
            await self.close(code)
        sink = MachineSink(
            device=code,
            driver=row.driver,
            source=source,
            line_id=row.line_id,
            station_id=row.station_id,
            mapping=mapping,
            max_pending_values=self.max_pending_values,
            wake=lambda: self._maybe_wake(sink),
            clock=self.clock,
            max_lead=timedelta(seconds=self.kernel.settings.station_time_max_lead_seconds),
            max_age=timedelta(days=self.kernel.settings.station_time_max_age_days),
        )
        sink.driver_version = driver_version
        sink.state = state
        sink.last_raw = readings
        self.failed.pop(code, None)
        self.sinks[code] = sink
        return sink

    async def close(self, code: str) -> None:
        """Finish the device's sink (its open visit is written as interrupted) and write what it holds."""
        sink = self.sinks.get(code)
        if sink is None:
            return
        sink.finish()
        await self.flush()
        if self.sinks.get(code) is sink:
            del self.sinks[code]
            CONNECTED.labels(sink.source, code).set(0)

    def mark_failed(self, code: str, reason: Reason | str) -> None:
        """Report a device the connector cannot serve at all (its mapping does not parse, its
        driver is missing): its health node is DOWN with ``reason`` (a :class:`Reason`, so a
        dashboard can word it; plain text is shown as it is)."""
        if isinstance(reason, Reason):
            reason = Reason(reason.code, reason.text[:300], reason.params)
        self.failed[code] = reason if isinstance(reason, Reason) else reason[:300]

    def _maybe_wake(self, sink: MachineSink) -> None:
        if len(sink.pending.values) * 2 >= self.max_pending_values:
            self._wakeup.set()

    # ------------------------------------------------------------ writing
    async def flush(self) -> int:
        """Write everything pending now, in one transaction; returns the values written. On a
        database failure the data is kept for the next flush (values beyond the bound dropped)."""
        async with self._lock:
            batches: dict[str, tuple[MachineSink, Pending]] = {}
            for code, sink in list(self.sinks.items()):
                fresh = sink.take() if sink.pending else Pending()
                older = self._retry.pop(code, None)
                if older is not None:
                    older.merge_newer(fresh)
                    fresh = older
                if fresh:
                    batches[code] = (sink, fresh)
            self._observe_counters()
            if not batches:
                PENDING.set(0)
                return 0
            started = time.perf_counter()
            stored_at = self.clock()
            try:
                async with self.kernel.sessionmaker() as session, session.begin():
                    written = await write_batches(session, list(batches.values()), stored_at=stored_at)
            except Exception as exc:  # the database is away: keep it all for the next round
                STORE_FAILURES.inc()
                reason = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("machine_data_store_failed", error=reason, devices=len(batches))
                for code, (sink, batch) in batches.items():
                    sink.store_error = reason
                    excess = len(batch.values) - self.max_pending_values
                    if excess > 0:
                        del batch.values[:excess]
                        sink.dropped += excess
                    self._retry[code] = batch
                PENDING.set(sum(len(b.values) for b in self._retry.values()))
                return 0
            committed = self.clock()
            FLUSH.observe(time.perf_counter() - started)
            self.flushes += 1
            for code, (sink, batch) in batches.items():
                sink.store_error = None
                if batch.values:
                    STORED.labels(sink.source, code).inc(len(batch.values))
                    histogram = LAG.labels(sink.source)
                    for value in batch.values:
                        histogram.observe(max((committed - value[5]).total_seconds(), 0.0))
            PENDING.set(sum(len(s.pending.values) for s in self.sinks.values()))
            return written

    def _observe_counters(self) -> None:
        for code, sink in self.sinks.items():
            samples, dropped, reconnects = self._seen.get(code, (0, 0, 0))
            if sink.samples > samples:
                SAMPLES.labels(sink.source, code).inc(sink.samples - samples)
            if sink.dropped > dropped:
                DROPPED.labels(sink.source, code).inc(sink.dropped - dropped)
            if sink.reconnects > reconnects:
                RECONNECTS.labels(sink.source, code).inc(sink.reconnects - reconnects)
            self._seen[code] = (sink.samples, sink.dropped, sink.reconnects)
            CONNECTED.labels(sink.source, code).set(1 if sink.is_connected else 0)

    async def start(self) -> None:
        """Start the writer loop (the kernel does, at start-up)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="machine-data-writer")

    async def aclose(self) -> None:
        """Stop the loop, finish every sink and write what remains (the kernel does, at shutdown,
        after the plugins' ``mes_shutdown``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sink in self.sinks.values():
            sink.finish()
        with contextlib.suppress(Exception):
            await self.flush()
        for code in list(self._leases):
            await self.release(code)
        self.sinks.clear()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.flush_interval)
            self._wakeup.clear()
            try:
                await self.flush()
                if time.monotonic() - self._last_renewal > self.lease_seconds / 3:
                    await self._renew()
                if time.monotonic() - self._last_published >= 1.0:
                    await self._publish_health()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("machine_data_loop_failed", error=str(exc))

    # ------------------------------------------------------------ leases
    def _lease_key(self, code: str) -> str:
        return f"{self.kernel.settings.redis_namespace}:machine-lease:{code}"

    async def claim(self, code: str) -> bool:
        """Whether this process may read machine ``code`` now: at most one process of the
        installation holds each device's lease (in Redis, renewed by the writer loop, expiring
        ``lease_seconds`` after its holder stops). Without Redis (one process) every claim succeeds
        once. Connectors claim before connecting and retry later when refused."""
        redis = self.kernel.redis
        if redis is None:
            holder = self._local_leases.setdefault(code, self._owner)
            ok = holder == self._owner
        else:
            key = self._lease_key(code)
            ok = bool(await redis.set(key, self._owner, nx=True, px=int(self.lease_seconds * 1000)))
            if not ok:
                current = await redis.get(key)
                ok = (current.decode() if isinstance(current, bytes) else current) == self._owner
        if ok:
            self._leases.add(code)
        return ok

    async def release(self, code: str) -> None:
        """Give the lease of ``code`` back (a connector stopping)."""
        self._leases.discard(code)
        redis = self.kernel.redis
        if redis is None:
            if self._local_leases.get(code) == self._owner:
                del self._local_leases[code]
            return
        with contextlib.suppress(Exception):
            await redis.eval(_RELEASE, 1, self._lease_key(code), self._owner)

    def holds(self, code: str) -> bool:
        """Whether this process holds the lease of ``code`` (a connector checks it between reconnects)."""
        return code in self._leases

    async def _renew(self) -> None:
        self._last_renewal = time.monotonic()
        redis = self.kernel.redis
        if redis is None:
            return
        for code in list(self._leases):
            kept = await redis.eval(_RENEW, 1, self._lease_key(code), self._owner, int(self.lease_seconds * 1000))
            if not kept:
                self._leases.discard(code)
                log.warning("machine_lease_lost", device=code)

    # ------------------------------------------------------------ health
    def device_health(self, code: str) -> CheckResult:
        """The health node of one device (see :meth:`MachineSink.health`)."""
        sink = self.sinks.get(code)
        if sink is not None:
            return sink.health()
        if code in self.failed:
            return CheckResult(Status.DOWN, self.failed[code], {"connected": False})
        return CheckResult(
            Status.DOWN,
            Reason("MACHINE_NOT_READ", "no connector is reading this device in this process"),
            {"connected": False},
        )

    def check(self, codes: Iterable[str], *, name: str = "machines") -> CheckResult:
        """One health result with a node per device code (``CheckResult.components``), as this
        process sees them; the worst node decides. No devices: UP with ``devices: 0``."""
        return self._summary({code: self.device_health(code) for code in sorted(set(codes))}, name)

    async def health(self, codes: Iterable[str], *, name: str = "machines") -> CheckResult:
        """As :meth:`check`, for the whole installation: a device read by another process (it
        holds the lease) is shown as that process last published it (every second, through Redis);
        a publication older than ``lease_seconds`` is DOWN. Use this in a plugin's health check."""
        parts = {code: self.device_health(code) for code in sorted(set(codes))}
        redis = self.kernel.redis
        remote = [c for c in parts if c not in self._leases and c not in self.failed]
        if redis is not None and remote:
            try:
                raw = await redis.hmget(self._health_key(), remote)
            except Exception as exc:
                raw = [None] * len(remote)
                log.warning("machine_health_read_failed", error=str(exc))
            now = time.time()
            for code, blob in zip(remote, raw, strict=True):
                if not blob:
                    continue
                item = json.loads(blob)
                age = now - item["at"]
                if age > self.lease_seconds:
                    stale = Reason(
                        "MACHINE_REPORT_STALE",
                        f"the process reading this device last reported {age:.0f} s ago",
                        {"seconds": round(age)},
                    )
                    parts[code] = CheckResult(Status.DOWN, stale, item["details"])
                else:
                    parts[code] = CheckResult(
                        Status(item["status"]),
                        item["reason"],
                        item["details"],
                        reason_code=item.get("reason_code"),
                        reason_params=item.get("reason_params") or {},
                    )
        return self._summary(parts, name)

    def _health_key(self) -> str:
        return f"{self.kernel.settings.redis_namespace}:machine-health"

    async def _publish_health(self) -> None:
        self._last_published = time.monotonic()
        redis = self.kernel.redis
        if redis is None or not self.sinks:
            return
        now = time.time()
        blobs = {}
        for code, sink in self.sinks.items():
            if code in self._leases:
                node = sink.health()
                blobs[code] = json.dumps(
                    {"at": now, "status": node.status.value, **node.why(), "details": node.details},
                    default=str,
                )
        if blobs:
            await redis.hset(self._health_key(), mapping=blobs)

    @staticmethod
    def _summary(parts: dict[str, CheckResult], name: str) -> CheckResult:
        worst = Status.worst([p.status for p in parts.values()])
        down = [code for code, p in parts.items() if p.status != Status.UP]
        reason = (
            Reason(
                "MACHINES_NOT_UP",
                f"{len(down)} of {len(parts)} {name} not UP: {', '.join(down[:5])}",
                {"count": len(down), "total": len(parts), "devices": down[:5]},
            )
            if down
            else None
        )
        return CheckResult(worst, reason, {"devices": len(parts)}, components=parts)


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
