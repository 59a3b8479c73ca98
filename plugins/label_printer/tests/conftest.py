"""Fixtures for the label-printer tests: simulated printers on real sockets and ptys."""

from __future__ import annotations

import pytest
from mes_label_printer.simulator import HttpPrintService, PrinterCore, PtyPrinter, TcpPrinter


@pytest.fixture
async def tcp_printer():
    """A Zebra-like printer listening on 127.0.0.1, an ephemeral port."""
    printer = await TcpPrinter(PrinterCore()).start()
    yield printer
    await printer.stop()


@pytest.fixture
async def pty_printer():
    """The same printer behind a pty pair; ``.path`` is the serial port to open."""
    printer = await PtyPrinter(PrinterCore()).start()
    yield printer
    await printer.stop()


@pytest.fixture
def print_service():
    """An HTTP print service on 127.0.0.1 fronting simulated printers."""
    with HttpPrintService() as service:
        yield service
