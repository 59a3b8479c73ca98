"""zpl_serial through a real pty pair served by the simulated printer."""

from __future__ import annotations

import pytest
from mes_label_printer.drivers.base import PrinterConnectionError, PrinterNotReady, PrinterTimeout
from mes_label_printer.drivers.zpl_serial import ZplSerialDriver
from mes_label_printer.templates import LOT_LABEL

LABEL = LOT_LABEL.render_zpl({"lot_number": "LOT-9", "product": "ACME", "quantity": 1})


@pytest.fixture
async def serial_driver(pty_printer):
    driver = ZplSerialDriver(port=pty_printer.path, baudrate=115200, timeout=2.0)
    yield driver
    await driver.close()


async def test_a_label_prints_over_the_serial_line(pty_printer, serial_driver):
    await serial_driver.send(LABEL)
    await serial_driver.send(LABEL)
    assert pty_printer.core.printed == [LABEL.strip(), LABEL.strip()]


async def test_status_over_the_serial_line(pty_printer, serial_driver):
    pty_printer.core.set_fault("ribbon_out")
    status = await serial_driver.status()
    assert status.ribbon_out and not status.paper_out


async def test_head_open_refuses_the_label(pty_printer, serial_driver):
    pty_printer.core.set_fault("head_open")
    with pytest.raises(PrinterNotReady):
        await serial_driver.send(LABEL)
    assert pty_printer.core.label_count == 0


async def test_a_silent_printer_times_out_and_a_late_reply_is_not_mistaken(pty_printer, serial_driver):
    pty_printer.core.set_fault("no_reply")
    serial_driver.timeout = 0.3
    with pytest.raises(PrinterTimeout):
        await serial_driver.status()
    pty_printer.core.set_fault("no_reply", False)
    pty_printer.core.set_fault("paper_out")
    assert (await serial_driver.status()).paper_out


async def test_a_missing_port_is_a_connection_error(tmp_path):
    driver = ZplSerialDriver(port=str(tmp_path / "ttyNOPE"), timeout=0.5)
    with pytest.raises(PrinterConnectionError):
        await driver.status()
