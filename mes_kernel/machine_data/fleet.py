"""One connector per machine: the protocol-neutral lifecycle every connector plugin needs.

A connector plugin (OPC UA, Modbus, MQTT …) reads the machines configured on the lines that enable
it. :class:`ConnectorFleet` keeps one connector per such device, started, restarted when its driver
or configuration changes, stopped when it goes or its line stops enabling the plugin, and looks
again every ``poll_seconds`` (a line change reaches every worker within about a second; the fleet
follows at its next look). A plugin subclasses it and says how to build one device's connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ..devices import devices_for
from .mapping import MappingError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Installation:
    """The principal of work done for the whole installation (no station, no line): every device of
    the enabled lines is in its reach through :func:`mes_kernel.devices.devices_for`."""

    kind: str = "installation"
    station_id: int | None = None
    line_id: int | None = None


#: the principal a plugin's background work passes to the device helper
INSTALLATION = _Installation()


class Connector(Protocol):
    """What a fleet needs of one device's connector."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


def fingerprint(driver: str, config: dict[str, Any]) -> str:
    """A digest of a device's driver and effective configuration: a change restarts its connector."""
    return hashlib.sha256(json.dumps([driver, config], sort_keys=True, default=str).encode()).hexdigest()


async def stop_task(task: asyncio.Task | None, *, what: str, timeout: float = 5.0) -> bool:
    """Cancel ``task`` and wait at most ``timeout`` seconds for it to end; True when it ended.

    A protocol library that swallows a cancellation while it reconnects must not hang the kernel's
    shutdown (or a line change): past the timeout the task is left behind, cancelled once more, and
    a warning names ``what``."""
    if task is None or task.done():
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if done:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
        return True
    task.cancel()
    log.warning("connector_stop_timeout", what=what, seconds=timeout)
    return False


class ConnectorFleet:
    """Keeps one connector per enabled device of kind ``kind`` on the lines that enable ``plugin``.

    Subclasses implement :meth:`build`. A device whose configuration does not parse (``build``
    raises :class:`MappingError`) is marked failed in the machine-data hub, so ``/health`` shows it
    DOWN with the field at fault, and the other devices keep running.
    """

    def __init__(self, kernel: Any, *, plugin: str, kind: str, poll_seconds: float = 2.0) -> None:
        self.kernel = kernel
        self.plugin = plugin
        self.kind = kind
        self.poll_seconds = poll_seconds
        self.connectors: dict[str, tuple[str, Any]] = {}
        self.task: asyncio.Task | None = None

    def build(self, code: str, driver: str, config: dict[str, Any]) -> Connector:
        """The (not yet started) connector of device ``code``. Raises MappingError for a bad configuration."""
        raise NotImplementedError

    async def devices(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """``code -> (driver, effective config)`` of every enabled device of the fleet's kind on a line
        that enables the plugin, found through the kernel's device helper."""
        lines = set(self.kernel.enabled_lines(self.plugin))
        if not lines:
            return {}
        async with self.kernel.sessionmaker() as session:
            devices = await devices_for(session=session, principal=INSTALLATION, kind=self.kind)
        return {d.code: (d.driver, d.config) for d in devices if d.line_code in lines}

    def connector(self, code: str) -> Any | None:
        entry = self.connectors.get(code)
        return entry[1] if entry else None

    async def sync(self) -> None:
        """Start, restart and stop connectors to match the configuration now."""
        wanted = await self.devices()
        for code in list(self.connectors):
            if code not in wanted or self.connectors[code][0] != fingerprint(*wanted[code]):
                _, connector = self.connectors.pop(code)
                await connector.stop()
        for code, (driver, config) in wanted.items():
            if code in self.connectors:
                continue
            try:
                connector = self.build(code, driver, config)
            except MappingError as exc:
                self.kernel.machine_data.mark_failed(code, f"{exc.field}: {exc}")
                continue
            connector.start()
            self.connectors[code] = (fingerprint(driver, config), connector)

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: keep the connectors, look again later
                log.warning("connector_sync_failed", plugin=self.plugin, error=str(exc))
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        """Start following the configuration; a no-op in a command-line kernel (``mes line apply``
        and the like), which must not connect to machines nor take the server's sessions."""
        if not self.kernel.state.get("serving", True):
            return
        self.task = asyncio.create_task(self.run(), name=f"{self.plugin}-connectors")

    async def close(self) -> None:
        await stop_task(self.task, what=f"{self.plugin} connectors")
        for _, connector in list(self.connectors.values()):
            await connector.stop()
        self.connectors.clear()
