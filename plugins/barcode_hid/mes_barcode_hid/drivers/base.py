"""The one base class every barcode-scanner driver implements, and the ``Scan`` it produces.

A station loads a driver by its short name and reads scans from it::

    from mes_kernel.drivers import load_driver

    scanner = load_driver("mes.drivers.barcode_scanner", "serial", port="/dev/ttyACM0")
    await scanner.open()              # raises ScannerNotFound / ScannerError at once
    try:
        async for scan in scanner.scans():   # ends after close()
            handle(scan.code, scan.symbology, scan.received_at, scan.source)
    finally:
        await scanner.close()

``scanner.status()`` is the JSON-ready dict a station puts under ``heartbeat["devices"]``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from .. import __version__

log = logging.getLogger(__name__)

ScanListener = Callable[["Scan"], Awaitable[None] | None]


class ScannerError(Exception):
    """A scanner could not be opened or used; the message says which device and why."""


class ScannerNotFound(ScannerError):
    """The configured scanner device is absent (unplugged, wrong path or name)."""


@dataclass(frozen=True)
class Scan:
    """One code read by a scanner.

    :ivar code: the data as the scanner sent it, without terminator and without AIM symbology
        identifier; GS1 group separators (``"\\x1d"``) are kept for the parser.
    :ivar symbology: the AIM symbology identifier that preceded the data (``"]C1"``, ``"]d2"``),
        or ``None`` when the scanner sent none.
    :ivar received_at: when the code was complete (its terminator arrived), timezone-aware UTC.
    :ivar source: which device read it, e.g. ``"serial:/dev/ttyACM0"``, ``"evdev:/dev/input/event5"``.
    """

    code: str
    symbology: str | None
    received_at: datetime
    source: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for an outbox event or the lookup request)."""
        return {
            "code": self.code,
            "symbology": self.symbology,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
        }


_CLOSED = object()


class ScannerDriver(abc.ABC):
    """A barcode scanner as the station sees it. Subclass it and register the class as an entry
    point in ``mes.drivers.barcode_scanner``; the constructor takes the device's settings as keyword
    arguments (from the station's configuration) and must not touch the device.

    Life cycle: ``open()`` → ``scans()`` / listeners → ``close()``. Between ``open()`` and
    ``close()`` a driver keeps reading on its own: when the device vanishes it reports
    ``connected == False`` and reconnects when the device comes back, without ending ``scans()``.

    Subclasses implement :meth:`open`, :meth:`close` and :attr:`connected`, and hand every complete
    code to :meth:`_publish`; the queueing, listeners and status come from this class.
    """

    name: ClassVar[str] = "scanner"
    """The entry-point name of the driver (``"serial"``); shown in status and traceability."""

    version: ClassVar[str] = __version__
    """The driver's version, recorded with every device action for traceability."""

    queue_size: ClassVar[int] = 1000
    """Scans kept for a slow consumer; beyond it the oldest is dropped and counted in ``dropped``."""

    def __init__(self, *, source: str) -> None:
        self.source = source
        self.last_scan_at: datetime | None = None
        self.scan_count = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.queue_size)
        self._listeners: list[ScanListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = True

    # ------------------------------------------------------------ the contract

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect to the device and start reading in the background.

        :raises ScannerNotFound: the device is absent (the message names what was looked for).
        :raises ScannerError: the device exists but cannot be used (permissions, busy).

        Subclasses call ``self._opened()`` once connected, before any ``_publish``.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop reading and release the device. Idempotent. Ends every ``scans()`` iterator after
        the scans already queued have been yielded. Subclasses call ``self._closing()``."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether the device is present and being read right now (False before ``open()``,
        after ``close()`` and while a vanished device is being reconnected)."""

    # ------------------------------------------------------------ consuming scans

    async def scans(self) -> AsyncIterator[Scan]:
        """Yield every scan in the order read, until ``close()``. Meant for one consumer; other
        parties use :meth:`add_listener`. Scans read before anyone iterates are queued."""
        while True:
            if self._closed and self._queue.empty():
                return
            item = await self._queue.get()
            if item is _CLOSED:
                return
            yield item

    def add_listener(self, callback: ScanListener) -> Callable[[], None]:
        """Call ``callback(scan)`` (plain or ``async``) for every scan, besides ``scans()``.

        :return: a function that removes the listener. An exception in a listener is logged and
            does not stop the driver.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def status(self) -> dict[str, Any]:
        """The driver's health, JSON-ready: what a station reports in ``heartbeat["devices"]``."""
        return {
            "kind": "barcode_scanner",
            "driver": self.name,
            "version": self.version,
            "source": self.source,
            "connected": self.connected,
            "last_scan_at": self.last_scan_at.isoformat() if self.last_scan_at else None,
            "scans": self.scan_count,
            "dropped": self.dropped,
            "error": self.last_error,
        }

    async def __aenter__(self) -> ScannerDriver:
        """``async with driver:`` opens it, and closes it on the way out."""
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close the driver (see :meth:`close`)."""
        await self.close()

    # ------------------------------------------------------------ for subclasses

    def _opened(self) -> None:
        """Mark the driver open (a fresh queue if it had been closed before)."""
        if self._closed:
            self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._closed = False
        self.last_error = None

    def _closing(self) -> None:
        """Mark the driver closed and wake the ``scans()`` consumer."""
        if self._closed:
            return
        self._closed = True
        # only an idle consumer waits on an empty queue; a full one must not lose a scan to the marker
        if not self._queue.full():
            self._queue.put_nowait(_CLOSED)

    def _publish(self, scan: Scan) -> None:
        """Hand a complete scan to the consumer and the listeners."""
        self.scan_count += 1
        self.last_scan_at = scan.received_at
        self._put(scan)
        for listener in list(self._listeners):
            try:
                result = listener(scan)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._listener_done)
            except Exception:
                log.exception("scan listener failed", extra={"source": self.source})

    def _listener_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scan listener failed: %r", task.exception(), extra={"source": self.source})

    def _put(self, item: Any) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class DeviceReaderDriver(ScannerDriver):
    """A scanner read by a background task from a device the subclass connects to (evdev, serial).

    Subclasses implement :meth:`_connect` (open the device or raise :class:`ScannerError`),
    :meth:`_disconnect` and :meth:`_read_forever` (read, reconnect, publish scans until cancelled).
    """

    _reader_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._reader_task is not None:
            return  # already open
        self._connect()
        self._opened()
        self._reader_task = asyncio.create_task(self._read_forever(), name=f"scanner {self.source}")

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        self._disconnect()
        self._closing()

    @abc.abstractmethod
    def _connect(self) -> None:
        """Open the device, or raise a :class:`ScannerError` saying why not."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Release the device; safe to call when it is not open."""

    @abc.abstractmethod
    async def _read_forever(self) -> None:
        """Read codes and publish them until cancelled, reconnecting when the device comes back."""

