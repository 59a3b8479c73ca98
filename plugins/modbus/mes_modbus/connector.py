"""The running side: one poll loop per Modbus device (claim, connect, read the poll plan every
``poll_seconds``, feed the kernel's sink, reconnect with backoff) and the manager that follows the
lines' devices."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from mes_kernel.contracts import ConnectorFleet, LeaseLost, MachineConnector, Reason

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN
from .codec import decode
from .config import Block, ModbusSettings, parse_settings, plan_reads
from .drivers import ModbusDriver, ModbusExceptionResponse, ModbusLinkError

log = structlog.get_logger(__name__)

REQUESTS = Counter(
    "mes_modbus_requests_total",
    "Modbus read requests by outcome (ok, exception = an exception response, no_answer)",
    ["device", "outcome"],
)
POLL = Histogram(
    "mes_modbus_poll_seconds",
    "Duration of one poll of a device (every request of its plan); compare with poll_seconds",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class DeviceConnector(MachineConnector):
    """Polls one device until stopped. Nothing it meets (a refused connection, a silent device, an
    exception response, a value that does not fit) escapes: each ends in the device's health node.

    Modbus carries no timestamps: a sample's source time is the moment its answer arrived. Only
    changes are handed to the sink (the first poll of a session hands everything), as a data-change
    subscription would.
    """

    source = PLUGIN
    namespace = DRIVER_NAMESPACE

    def __init__(self, kernel: Any, code: str, driver_name: str, settings: ModbusSettings, **options: Any) -> None:
        super().__init__(kernel, code, settings, driver_name=driver_name, **options)  # clock, rng
        #: serializes the poll loop's requests and the write route's (one master on the link)
        self.lock = asyncio.Lock()
        self.polls = 0
        self._last: dict[str, Any] = {}

    async def session(self) -> None:
        sink = self.sink
        driver: ModbusDriver = self.load_driver()
        try:
            async with self.lock:
                await driver.connect()
            self.driver = driver
            self.connected()
            self._last.clear()
            plan = plan_reads(self.settings.registers)
            while True:
                started = time.monotonic()
                async with self.lock:
                    plan = await self._poll(driver, plan)
                self.polls += 1
                POLL.observe(time.monotonic() - started)
                if not self.kernel.machine_data.holds(self.code):
                    raise LeaseLost(self.code)
                await asyncio.sleep(max(0.0, self.settings.poll_seconds - (time.monotonic() - started)))
        finally:
            self.driver = None
            sink.subscription(False)
            await driver.close()

    async def _poll(self, driver: ModbusDriver, plan: list[Block]) -> list[Block]:
        """Read every block once; a block the device refuses is split into one request per signal,
        so one register out of range costs only its own signal. Returns the plan for the next poll."""
        sink = self.sink
        next_plan: list[Block] = []
        read: list[str] = []
        refused: list[str] = []
        pending = list(plan)
        while pending:
            block = pending.pop(0)
            try:
                items = await driver.read(block.table, block.start, block.count)
            except ModbusLinkError:
                REQUESTS.labels(self.code, "no_answer").inc()
                raise
            except ModbusExceptionResponse as exc:
                REQUESTS.labels(self.code, "exception").inc()
                if len(block.signals) > 1:
                    pending[:0] = [Block(block.table, r.address, r.count, ((n, r),)) for n, r in block.signals]
                    continue
                name, reg = block.signals[0]
                sink.problem(
                    f"register:{name}",
                    Reason(
                        "MODBUS_REGISTER_REFUSED",
                        f"{name} ({reg.describe()}): {exc}",
                        {"signal": name, "register": reg.describe(), "error": f"{type(exc).__name__}: {exc}"},
                    ),
                )
                refused.append(name)
                next_plan.append(block)
                continue
            REQUESTS.labels(self.code, "ok").inc()
            next_plan.append(block)
            at = self.clock()
            for name, reg in block.signals:
                read.append(name)
                sink.resolve(f"register:{name}")
                offset = reg.address - block.start
                self._feed(name, reg, items[offset : offset + reg.count], at)
        if read:
            if not sink.subscription_alive:
                self.subscribed()
            sink.subscription(True)
        else:
            sink.subscription(False, Reason("MODBUS_ALL_REGISTERS_REFUSED", "the device refuses every mapped register"))
        return next_plan

    def _feed(self, name: str, reg, items, at: datetime) -> None:
        try:
            value = decode(reg, items)
        except ValueError as exc:
            self.sink.problem(
                f"value:{name}", Reason("MACHINE_VALUE_INVALID", str(exc), {"signal": name, "error": str(exc)})
            )
            return
        if name in self._last and self._last[name] == value:
            return
        self._last[name] = value
        if name == "serial" and isinstance(value, str) and not value:
            value = None  # an empty serial register: no unit on the machine
        self.sink.submit(name, value, at)


class ConnectorManager(ConnectorFleet):
    """Keeps one :class:`DeviceConnector` per enabled Modbus device of the lines that enable the
    plugin (the kernel's :class:`~mes_kernel.contracts.ConnectorFleet` does the bookkeeping)."""

    plugin = PLUGIN
    kind = DEVICE_KIND

    def build(self, code: str, driver: str, config: dict[str, Any]) -> DeviceConnector:
        return DeviceConnector(self.kernel, code, driver, parse_settings(config, driver=driver))
