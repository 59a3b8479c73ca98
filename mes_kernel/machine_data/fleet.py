"""One connector per machine: the protocol-neutral lifecycle every connector plugin needs.

A connector plugin (OPC UA, Modbus, MQTT …) reads the machines configured on the lines that enable
it. :class:`ConnectorFleet` keeps one connector per such device, started, restarted when its driver
or configuration changes, stopped when it goes or its line stops enabling the plugin, and looks
again every ``poll_seconds`` (a line change reaches every worker within about a second; the fleet
follows at its next look). A plugin subclasses it and says how to build one device's connector.

:class:`MachineConnector` is that one device's run loop (claim the machine's lease, open its sink,
run a protocol session, reconnect with backoff, hand the machine over when the lease is lost); a
plugin subclasses it and writes only :meth:`MachineConnector.session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from ..contracts import Reason
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


class ConnectorSettings(Protocol):
    """What :class:`MachineConnector` reads of a plugin's parsed device settings."""

    #: the device's machine-data mapping (:class:`~mes_kernel.contracts.MachineMapping`)
    mapping: Any
    #: seconds before the first reconnect attempt, and the most between two
    reconnect_min: float
    reconnect_max: float

    def driver_settings(self) -> dict[str, Any]:
        """The driver's constructor arguments (only :meth:`MachineConnector.load_driver` asks)."""
        ...


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


class LeaseLost(Exception):
    """Another process of the installation may read this machine now (its lease lapsed in Redis).

    Raised by a :meth:`MachineConnector.session` that sees ``hub.holds(code)`` turn false; the run
    loop then closes the machine's sink (its data written) and tries to claim the machine again."""


def backoff(attempt: int, *, low: float, high: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before reconnect attempt ``attempt`` (1, 2, …): ``low`` doubling up to ``high``, with
    ±20 % jitter (``rng`` gives a number in [0, 1)) so that many machines lost at once do not come
    back in step."""
    base = min(low * 2 ** (attempt - 1), high)
    return base * (0.8 + 0.4 * rng())


class MachineConnector:
    """Reads one machine until stopped: the run loop every connector plugin needs.

    The loop claims the machine's lease (``hub.claim``; while another process holds it, it looks
    again every ``lease_seconds / 2``), opens the machine's sink once (``self.sink``, kept across
    reconnections so that a state or a unit's stay is not cut by a short loss of the link), then
    awaits :meth:`session`. When the session ends:

    - :class:`LeaseLost`: the sink is closed (its data written) and the machine claimed again at once;
    - :class:`~mes_kernel.contracts.MappingError` (the device is on no line, a mapping the device
      refuses): the device's health node is DOWN with the field at fault, tried again after
      ``reconnect_max`` seconds;
    - any other exception (a refused connection, a timeout, the peer gone): ``sink.disconnected``
      with ``"<ExceptionType>: <message>"`` (at most 300 characters) as the reason, then
      ``sink.reconnecting()`` and a wait of :func:`backoff` seconds, ``reconnect_min`` doubling up
      to ``reconnect_max``. A session resets the backoff by calling :meth:`subscribed` once data
      flows. If the lease was lost meanwhile, the sink is closed too (the machine handed over).

    Nothing escapes the loop but a cancellation; :meth:`stop` cancels it (bounded by
    :func:`stop_task`), closes the sink and releases the lease.

    ``settings`` is the plugin's parsed device settings: anything with ``mapping``,
    ``reconnect_min`` and ``reconnect_max`` (:class:`ConnectorSettings`). ``driver_name`` is the
    device's configured driver, which :meth:`load_driver` loads from the class's ``namespace``.
    ``clock`` is the source time of a sample whose protocol carries none (aware UTC; a test injects
    its own). ``rng`` gives the backoff's jitter (a number in [0, 1)).

    Attributes: ``kernel``, ``code`` (the device code), ``settings``, ``driver_name``, ``driver``
    (the open session's driver, if the session sets it; see :attr:`online`), ``sink``
    (``MachineSink`` or None), ``attempt`` (reconnect attempts since data last flowed),
    ``sessions`` (sessions begun; a session increments it through :meth:`connected`), ``task``.
    """

    #: the plugin's name: the ``source`` of the machine's data, and the prefix of task and log names
    source: str = "connector"
    #: the stevedore namespace of the plugin's drivers (``mes.drivers.<kind>``), for :meth:`load_driver`
    namespace: str = ""

    def __init__(
        self,
        kernel: Any,
        code: str,
        settings: ConnectorSettings,
        *,
        driver_name: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.kernel = kernel
        self.code = code
        self.settings = settings
        self.driver_name = driver_name
        self.clock = clock
        self.rng = rng
        self.task: asyncio.Task | None = None
        self.sink: Any = None
        self.driver: Any = None
        self.attempt = 0
        self.sessions = 0

    @property
    def online(self) -> bool:
        """Whether a session is open: it set ``self.driver`` and the sink is connected. A write route
        then uses that link (one master on a serial line, one client id per MQTT session)."""
        return self.driver is not None and self.sink is not None and self.sink.is_connected

    def load_driver(self) -> Any:
        """The device's driver for a new session: ``driver_name`` from ``namespace``, built with the
        settings' ``driver_settings()``; its ``version`` goes to the sink (the traceability of what
        the machine reported through it)."""
        driver = self.kernel.load_driver(self.namespace, self.driver_name, **self.settings.driver_settings())
        self.sink.driver_version = getattr(driver, "version", "")
        return driver

    async def session(self) -> None:
        """Connect to the machine and feed ``self.sink`` until the link ends; never return normally
        without a reason (raise the exception that ended it, :class:`LeaseLost` when
        ``hub.holds(code)`` turned false). Call :meth:`connected` once the link is open and
        :meth:`subscribed` once data flows."""
        raise NotImplementedError

    def connected(self) -> None:
        """The session's link is open: the sink is told, the session counted."""
        self.sink.connected()
        self.sessions += 1

    def subscribed(self) -> None:
        """Data flows again: the next loss of the link starts its backoff from ``reconnect_min``."""
        self.attempt = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"{self.source}:{self.code}")

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
                    self.sink = await hub.open(self.code, source=self.source, mapping=self.settings.mapping)
                await self.session()
            except asyncio.CancelledError:
                raise
            except LeaseLost:  # hand the machine over: its data written, its sink closed
                log.warning("connector_lease_lost", source=self.source, device=self.code)
                self.sink = None
                await hub.close(self.code)
                continue
            except MappingError as exc:
                hub.mark_failed(self.code, config_problem(exc))
                await asyncio.sleep(self.settings.reconnect_max)
                continue
            except Exception as exc:  # refused, timed out, peer gone: try again later
                reason = f"{type(exc).__name__}: {exc}".strip(": ")[:300] or type(exc).__name__
                if self.sink is not None:
                    self.sink.disconnected(reason)
                    if not hub.holds(self.code):  # the lease lapsed meanwhile: hand the machine over
                        await hub.close(self.code)
                        self.sink = None
                log.info("connector_disconnected", source=self.source, device=self.code, reason=reason)
            self.attempt += 1
            if self.sink is not None:
                self.sink.reconnecting()
            low, high = self.settings.reconnect_min, self.settings.reconnect_max
            await asyncio.sleep(backoff(self.attempt, low=low, high=high, rng=self.rng))


class ConnectorFleet:
    """Keeps one connector per enabled device of kind ``kind`` on the lines that enable ``plugin``.

    Subclasses set ``plugin`` and ``kind`` and implement :meth:`build`. A device whose configuration
    does not parse (``build`` raises :class:`MappingError`) is marked failed in the machine-data
    hub, so ``/health`` shows it DOWN with the field at fault, and the other devices keep running.

    The plugin's lifecycle hooks are one line each: ``await Fleet.launch(kernel)`` in
    ``mes_startup``, ``await Fleet.shutdown(kernel)`` in ``mes_shutdown``; the running fleet is
    ``kernel.state["<plugin>_connectors"]``, found by :meth:`running` and :meth:`running_connector`.
    """

    #: the plugin's entry-point name (the lines enable it by this name)
    plugin: str = ""
    #: the device kind its connectors read
    kind: str = ""

    def __init__(
        self, kernel: Any, *, plugin: str | None = None, kind: str | None = None, poll_seconds: float = 2.0
    ) -> None:
        self.kernel = kernel
        self.plugin = plugin or type(self).plugin
        self.kind = kind or type(self).kind
        if not self.plugin or not self.kind:
            raise TypeError(f"{type(self).__name__} needs a plugin and a device kind")
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
                self.kernel.machine_data.mark_failed(code, config_problem(exc))
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

    # ------------------------------------------------------------ the plugin's lifecycle hooks

    @classmethod
    def state_key(cls) -> str:
        """Where the running fleet is kept in ``kernel.state``: ``"<plugin>_connectors"``."""
        if not cls.plugin:
            raise TypeError(f"{cls.__name__} must set the class attribute plugin to use the lifecycle helpers")
        return f"{cls.plugin}_connectors"

    @classmethod
    async def launch(cls, kernel: Any, **options: Any) -> ConnectorFleet:
        """``mes_startup``'s work: build the fleet (``options`` go to the constructor), keep it in
        ``kernel.state`` and :meth:`start` it. A fleet left there by an earlier start is closed
        first, so its machines are never read twice by one process."""
        await cls.shutdown(kernel)
        fleet = cls(kernel, **options)
        kernel.state[cls.state_key()] = fleet
        fleet.start()
        return fleet

    @classmethod
    async def shutdown(cls, kernel: Any) -> None:
        """``mes_shutdown``'s work: take the running fleet out of ``kernel.state`` and close it
        (every connector stopped, its sink written, its lease released). Nothing running: a no-op."""
        fleet = kernel.state.pop(cls.state_key(), None)
        if fleet is not None:
            await fleet.close()

    @classmethod
    def running(cls, kernel: Any) -> ConnectorFleet | None:
        """The fleet this process runs, or None (the plugin not started, or stopped)."""
        return kernel.state.get(cls.state_key())

    @classmethod
    def running_connector(cls, kernel: Any, code: str) -> Any | None:
        """Device ``code``'s connector in this process, or None: a write route uses its open link
        when there is one, and opens its own otherwise."""
        fleet = cls.running(kernel)
        return fleet.connector(code) if fleet is not None else None


def config_problem(exc: MappingError) -> Reason:
    """A device configuration that does not parse: the field at fault, and why (in English)."""
    return Reason("MACHINE_CONFIG_INVALID", f"{exc.field}: {exc}", {"field": exc.field, "error": str(exc)})
