"""http_service against a real HTTP print service on 127.0.0.1."""

from __future__ import annotations

import pytest
from mes_label_printer.drivers.base import PrinterError, PrinterNotReady, PrinterTimeout
from mes_label_printer.drivers.http_service import HttpServiceDriver
from mes_label_printer.templates import LOT_LABEL

LABEL = LOT_LABEL.render_zpl({"lot_number": "LOT-3", "product": "ACME", "quantity": 2})


async def test_prints_through_the_service(print_service):
    driver = HttpServiceDriver(print_service.base_url, "PRN-7", timeout=2)
    try:
        await driver.send(LABEL)
        assert print_service.printer("PRN-7").printed == [LABEL.strip()]
        assert (await driver.status()).ready
    finally:
        await driver.close()


async def test_not_ready_and_server_errors(print_service):
    driver = HttpServiceDriver(print_service.base_url, "PRN-8", timeout=2)
    try:
        print_service.printer("PRN-8").set_fault("paper_out")
        assert (await driver.status()).paper_out
        with pytest.raises(PrinterNotReady) as info:
            await driver.send(LABEL)
        assert info.value.status.paper_out
        print_service.error_status = 500
        with pytest.raises(PrinterError) as info:
            await driver.send(LABEL)
        assert "500" in str(info.value) and info.value.label_sent is True
    finally:
        await driver.close()


async def test_a_silent_printer_behind_the_service_times_out(print_service):
    print_service.printer("PRN-9").set_fault("no_reply")
    driver = HttpServiceDriver(print_service.base_url, "PRN-9", timeout=0.3)
    try:
        with pytest.raises(PrinterTimeout):
            await driver.status()
    finally:
        await driver.close()
