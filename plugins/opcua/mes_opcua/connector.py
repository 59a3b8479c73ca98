"""The running side: one connector task per OPC UA device (claim, connect, check nodes, subscribe,
feed the kernel's sink, reconnect with backoff) and the manager that follows the lines' devices."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import structlog

from mes_kernel.contracts import ConnectorFleet, MappingError, stop_task

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN
from .config import OpcUaSettings, parse_settings
from .drivers import OpcUaDriver

log = structlog.get_logger(__name__)


def backoff(attempt: int, *, low: float, high: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before reconnect attempt ``attempt`` (1, 2, …): ``low`` doubling up to ``high``,
    with ±20 % jitter so that many machines lost at once do not come back in step."""
    base = min(low * 2 ** (attempt - 1), high)
    return base * (0.8 + 0.4 * rng())


class DeviceConnector:
    """Reads one device until stopped. Nothing it meets (a refused connection, an unknown node, a
    value that does not fit) escapes: each ends in the device's health node."""

    def __init__(self, kernel, code: str, driver_name: str, settings: OpcUaSettings) -> None:
        self.kernel = kernel
        self.code = code
        self.driver_name = driver_name
        self.settings = settings
        self.task: asyncio.Task | None = None
        self.sink = None
        self.attempt = 0
        self.sessions = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"opcua:{self.code}")

    async def stop(self) -> None:
        await stop_task(self.task, what=f"connector {self.code}")
        hub = self.kernel.machine_data
        await hub.close(self.code)
        await hub.release(self.code)

    async def _run(self) -> None:
        hub = self.kernel.machine_data
        while True:
            try:
                if not await hub.claim(self.code):
                    await asyncio.sleep(hub.lease_seconds / 2)  # another process reads this machine
                    continue
                if self.sink is None:
                    self.sink = await hub.open(self.code, source=PLUGIN, mapping=self.settings.mapping)
                await self._session()
            except asyncio.CancelledError:
                raise
            except MappingError as exc:
                hub.mark_failed(self.code, f"{exc.field}: {exc}")
                await asyncio.sleep(self.settings.reconnect_max)
                continue
            except Exception as exc:  # connect refused, timeout, server gone: try again later
                reason = f"{type(exc).__name__}: {exc}".strip(": ")[:300] or type(exc).__name__
                if self.sink is not None:
                    self.sink.disconnected(reason)
                    if not hub.holds(self.code):  # hand the machine over: its data is written, the sink closed
                        await hub.close(self.code)
                        self.sink = None
                log.info("opcua_disconnected", device=self.code, reason=reason)
            self.attempt += 1
            if self.sink is not None:
                self.sink.reconnecting()
            settings = self.settings
            await asyncio.sleep(backoff(self.attempt, low=settings.reconnect_min, high=settings.reconnect_max))

    async def _session(self) -> None:
        sink = self.sink
        driver: OpcUaDriver = self.kernel.load_driver(
            DRIVER_NAMESPACE, self.driver_name, **self.settings.driver_settings()
        )
        sink.driver_version = getattr(driver, "version", "")
        lost = asyncio.Event()
        reason: list[str] = []

        def on_lost(exc: Exception) -> None:
            reason.append(f"connection lost: {type(exc).__name__}: {exc}"[:300])
            lost.set()

        try:
            await driver.connect(on_lost)
            sink.connected()
            self.sessions += 1
            missing = await driver.missing_nodes(self.settings.nodes)
            for name in self.settings.nodes:
                if name in missing:
                    sink.problem(f"node:{name}", f"node {self.settings.nodes[name]} ({name}): {missing[name]}")
                else:
                    sink.resolve(f"node:{name}")
            readable = {n: i for n, i in self.settings.nodes.items() if n not in missing}
            if not readable:
                sink.subscription(False, "none of the mapped nodes exists on the server")
                await lost.wait()
                raise ConnectionError(reason[0] if reason else "connection lost")
            feed = asyncio.create_task(self._feed(driver, readable))
            waiter = asyncio.create_task(lost.wait())
            hub = self.kernel.machine_data
            try:
                while True:
                    done, _ = await asyncio.wait(
                        {feed, waiter}, timeout=hub.lease_seconds / 3, return_when=asyncio.FIRST_COMPLETED
                    )
                    if done:
                        break
                    if not hub.holds(self.code):  # Redis lost our lease: another process may read it now
                        raise ConnectionError("lease lost: another process may read this machine")
            finally:
                for task in (feed, waiter):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if feed in done and feed.exception() is not None:
                raise feed.exception()
            raise ConnectionError(reason[0] if reason else "subscription ended")
        finally:
            sink.subscription(False)
            await driver.disconnect()

    async def _feed(self, driver: OpcUaDriver, nodes: dict[str, str]) -> None:
        sink = self.sink
        subscribed = False
        async for change in driver.changes(
            nodes, publishing_interval_ms=self.settings.publishing_interval_ms, queue_size=self.settings.queue_size
        ):
            if not subscribed:
                subscribed = True
                self.attempt = 0
                sink.subscription(True)
            if not change.good:
                sink.problem(f"quality:{change.name}", f"{change.name}: {change.status}")
                continue
            sink.resolve(f"quality:{change.name}")
            sink.submit(change.name, change.value, change.source_time)


class ConnectorManager(ConnectorFleet):
    """Keeps one :class:`DeviceConnector` per enabled OPC UA device of the lines that enable the
    plugin (the kernel's :class:`~mes_kernel.contracts.ConnectorFleet` does the bookkeeping)."""

    def __init__(self, kernel: Any, *, poll_seconds: float = 2.0) -> None:
        super().__init__(kernel, plugin=PLUGIN, kind=DEVICE_KIND, poll_seconds=poll_seconds)

    def build(self, code: str, driver: str, config: dict[str, Any]) -> DeviceConnector:
        return DeviceConnector(self.kernel, code, driver, parse_settings(config))
