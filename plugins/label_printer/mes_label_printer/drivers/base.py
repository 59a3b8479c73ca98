"""The one base class every label-printer driver implements, and the errors drivers raise."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from ..status import PrinterStatus


class PrinterError(Exception):
    """A print or status request failed.

    ``label_sent`` tells whether the label may have reached the printer: False means it surely
    did not (safe to try again), True means it may have printed (never retried on its own).
    """

    def __init__(self, message: str, *, label_sent: bool = False) -> None:
        super().__init__(message)
        self.label_sent = label_sent


class PrinterTimeout(PrinterError):
    """The printer did not answer within the timeout (a silent printer is an unhealthy one)."""


class PrinterConnectionError(PrinterError):
    """The connection could not be opened, or broke (refused, reset, closed)."""


class PrinterNotReady(PrinterError):
    """The printer answered, but reports a condition that stops printing (paper out, …)."""

    def __init__(self, status: PrinterStatus) -> None:
        super().__init__(f"printer not ready: {', '.join(status.problems)}", label_sent=False)
        self.status = status


class LabelPrinterDriver(abc.ABC):
    """A label printer as the plugin drives it.

    Drivers are registered as entry points in ``mes.drivers.label_printer`` and built with the
    device's ``config`` as keyword arguments, so every constructor argument is a setting an
    integrator writes in configuration. A third-party printer package subclasses this and
    registers one more name; nothing else in the plugin needs to know about it.
    """

    #: the short name this driver is registered under (appears in device configuration)
    name: ClassVar[str] = ""
    #: written into every traceability record with the driver name
    version: str = "1.0"
    #: settings that must never appear in health output or job records
    secret_settings: ClassVar[frozenset[str]] = frozenset({"password", "token", "api_key"})

    @abc.abstractmethod
    async def send(self, zpl: bytes) -> None:
        """Send one or more complete ZPL formats (``^XA ... ^XZ``) to the printer.

        Returns once the printer has taken the data. Printers send no acknowledgement for a
        label, so a driver that can ask for status confirms delivery with it. Raises
        :class:`PrinterNotReady` when the printer reports it cannot print (nothing was sent),
        :class:`PrinterTimeout` or :class:`PrinterConnectionError` otherwise, with
        ``label_sent`` telling whether the label may have printed.
        """

    @abc.abstractmethod
    async def status(self) -> PrinterStatus:
        """Ask the printer for its state (``~HS`` on ZPL printers).

        Raises :class:`PrinterTimeout` when no reply arrives within the driver's timeout — a
        Zebra printer stays silent while its head is open or media is out on some models — and
        :class:`PrinterConnectionError` when it cannot be reached.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads. The driver may be used again afterwards."""

    def describe(self) -> dict[str, Any]:
        """The driver's settings for health output and job records, secrets redacted."""
        settings = {k.lstrip("_"): v for k, v in vars(self).items() if not k.startswith("__")}
        out: dict[str, Any] = {"driver": self.name, "version": self.version}
        for key, value in settings.items():
            if isinstance(value, str | int | float | bool) or value is None:
                out[key] = "***" if key in self.secret_settings else value
        return out


def ensure_ready(status: PrinterStatus) -> PrinterStatus:
    """Return ``status`` when the printer can print; raise :class:`PrinterNotReady` otherwise."""
    if not status.ready:
        raise PrinterNotReady(status)
    return status
