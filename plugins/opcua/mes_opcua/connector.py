"""The running side: one connector task per OPC UA device (claim, connect, check nodes, subscribe,
feed the kernel's sink, reconnect with backoff) and the manager that follows the lines' devices."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from mes_kernel.contracts import ConnectorFleet, LeaseLost, MachineConnector, Reason

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN
from .config import OpcUaSettings, parse_settings
from .drivers import OpcUaDriver

log = structlog.get_logger(__name__)


class DeviceConnector(MachineConnector):
    """Reads one device until stopped. Nothing it meets (a refused connection, an unknown node, a
    value that does not fit) escapes: each ends in the device's health node (the kernel's
    :class:`~mes_kernel.contracts.MachineConnector` runs the claim / reconnect loop)."""

    source = PLUGIN
    namespace = DRIVER_NAMESPACE

    def __init__(self, kernel, code: str, driver_name: str, settings: OpcUaSettings) -> None:
        super().__init__(kernel, code, settings, driver_name=driver_name)

    async def session(self) -> None:
        sink = self.sink
        driver: OpcUaDriver = self.load_driver()
        lost = asyncio.Event()
        reason: list[str] = []

        def on_lost(exc: Exception) -> None:
            reason.append(f"connection lost: {type(exc).__name__}: {exc}"[:300])
            lost.set()

        try:
            await driver.connect(on_lost)
            self.connected()
            missing = await driver.missing_nodes(self.settings.nodes)
            for name in self.settings.nodes:
                if name in missing:
                    node = self.settings.nodes[name]
                    sink.problem(
                        f"node:{name}",
                        Reason(
                            "OPCUA_NODE_MISSING",
                            f"node {node} ({name}): {missing[name]}",
                            {"node": str(node), "signal": name, "status": str(missing[name])},
                        ),
                    )
                else:
                    sink.resolve(f"node:{name}")
            readable = {n: i for n, i in self.settings.nodes.items() if n not in missing}
            if not readable:
                sink.subscription(False, Reason("OPCUA_NO_NODES", "none of the mapped nodes exists on the server"))
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
                        raise LeaseLost(self.code)
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
                self.subscribed()
                sink.subscription(True)
            if not change.good:
                sink.problem(
                    f"quality:{change.name}",
                    Reason(
                        "OPCUA_BAD_QUALITY",
                        f"{change.name}: {change.status}",
                        {"signal": change.name, "status": str(change.status)},
                    ),
                )
                continue
            sink.resolve(f"quality:{change.name}")
            sink.submit(change.name, change.value, change.source_time)


class ConnectorManager(ConnectorFleet):
    """Keeps one :class:`DeviceConnector` per enabled OPC UA device of the lines that enable the
    plugin (the kernel's :class:`~mes_kernel.contracts.ConnectorFleet` does the bookkeeping)."""

    plugin = PLUGIN
    kind = DEVICE_KIND

    def build(self, code: str, driver: str, config: dict[str, Any]) -> DeviceConnector:
        return DeviceConnector(self.kernel, code, driver, parse_settings(config))
