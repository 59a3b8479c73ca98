"""An in-process simulated printer (no sockets): for the demo, and a fake for plugin authors' tests."""

from __future__ import annotations

import asyncio

from ..simulator.core import PrinterCore, ResetConnection
from ..status import PrinterStatus, parse_host_status
from .base import LabelPrinterDriver, PrinterConnectionError, PrinterTimeout, ensure_ready

_PRINTERS: dict[str, PrinterCore] = {}


def simulated_printer(printer_id: str) -> PrinterCore:
    """The in-process printer named ``printer_id``, shared by every driver built for it.

    Tests and the demo reach it here to read labels and set faults.
    """
    return _PRINTERS.setdefault(printer_id, PrinterCore())


class SimulatorDriver(LabelPrinterDriver):
    """Drives the in-process :class:`PrinterCore` ``printer_id`` with the same faults as the servers."""

    name = "simulator"
    version = "1.0"

    def __init__(self, printer_id: str = "default", timeout: float = 2.0) -> None:
        self.printer_id = printer_id
        self.timeout = float(timeout)

    @property
    def printer(self) -> PrinterCore:
        return simulated_printer(self.printer_id)

    async def status(self) -> PrinterStatus:
        reply = self.printer.answer_status()
        if reply is None:
            await asyncio.sleep(self.timeout)
            raise PrinterTimeout(f"simulated printer {self.printer_id} did not answer ~HS")
        if reply.delay > self.timeout:
            await asyncio.sleep(self.timeout)
            raise PrinterTimeout(f"simulated printer {self.printer_id} answered too slowly")
        await asyncio.sleep(reply.delay)
        return parse_host_status(reply.data)

    async def send(self, zpl: bytes) -> None:
        ensure_ready(await self.status())
        try:
            self.printer.new_stream().feed(zpl)
        except ResetConnection as exc:
            raise PrinterConnectionError(str(exc), label_sent=True) from exc

    async def close(self) -> None:
        return None
