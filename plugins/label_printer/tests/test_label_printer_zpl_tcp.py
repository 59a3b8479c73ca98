"""zpl_tcp against the TCP simulator: real sockets on 127.0.0.1, faults injected at run time."""

from __future__ import annotations

import asyncio
import socket

import pytest
from mes_label_printer.drivers.base import PrinterConnectionError, PrinterNotReady, PrinterTimeout
from mes_label_printer.drivers.zpl_tcp import ZplTcpDriver
from mes_label_printer.simulator import ThreadedTcpPrinter
from mes_label_printer.templates import LOT_LABEL

LABEL = LOT_LABEL.render_zpl({"lot_number": "LOT-7", "product": "ACME", "quantity": 3})


def driver_for(printer, timeout: float = 2.0) -> ZplTcpDriver:
    return ZplTcpDriver(host="127.0.0.1", port=printer.port, timeout=timeout)


async def test_a_label_prints_end_to_end(tcp_printer):
    await driver_for(tcp_printer).send(LABEL)
    assert tcp_printer.core.printed == [LABEL.strip()]
    assert tcp_printer.core.status_requests == 2  # before (ready?) and after (received?)


async def test_status_reports_a_ready_printer(tcp_printer):
    status = await driver_for(tcp_printer).status()
    assert status.ready and status.thermal_transfer


async def test_labels_split_over_tcp_segments_and_batched_in_one_send(tcp_printer):
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_printer.port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(LABEL), 7):
        writer.write(LABEL[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0)
    writer.write(LABEL * 3)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    deadline = loop.time() + 30  # generous: only a broken stream waits this long
    while tcp_printer.core.label_count < 4 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert tcp_printer.core.label_count == 4


@pytest.mark.parametrize("fault", ["paper_out", "head_open", "ribbon_out", "paused"])
async def test_a_printer_that_cannot_print_refuses_before_anything_is_sent(tcp_printer, fault):
    tcp_printer.core.set_fault(fault)
    with pytest.raises(PrinterNotReady) as info:
        await driver_for(tcp_printer).send(LABEL)
    assert info.value.label_sent is False
    assert getattr(info.value.status, fault)
    assert tcp_printer.core.label_count == 0 and tcp_printer.core.held == []


async def test_paper_out_shows_in_status(tcp_printer):
    tcp_printer.core.set_fault("paper_out")
    status = await driver_for(tcp_printer).status()
    assert status.paper_out and status.problems == ["paper out"]


async def test_a_silent_printer_times_out(tcp_printer):
    tcp_printer.core.set_fault("no_reply")
    with pytest.raises(PrinterTimeout):
        await driver_for(tcp_printer, timeout=0.3).status()
    with pytest.raises(PrinterTimeout) as info:
        await driver_for(tcp_printer, timeout=0.3).send(LABEL)
    assert info.value.label_sent is False
    assert tcp_printer.core.label_count == 0


async def test_a_slow_printer_is_waited_for_within_the_timeout(tcp_printer):
    tcp_printer.core.set_fault("slow", 0.1)
    assert (await driver_for(tcp_printer, timeout=1.0).status()).ready
    tcp_printer.core.set_fault("slow", 1.0)
    with pytest.raises(PrinterTimeout):
        await driver_for(tcp_printer, timeout=0.3).status()


async def test_a_reset_mid_job_fails_and_says_the_label_may_have_printed(tcp_printer):
    tcp_printer.core.set_fault("reset")
    with pytest.raises(PrinterConnectionError) as info:
        await driver_for(tcp_printer).send(LABEL)
    assert info.value.label_sent is True
    assert tcp_printer.core.label_count == 0


async def test_nobody_listening_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(PrinterConnectionError) as info:
            await ZplTcpDriver("127.0.0.1", port, timeout=1).send(LABEL)
    assert info.value.label_sent is False


def test_threaded_simulator_serves_sync_callers():
    with ThreadedTcpPrinter() as printer:
        with socket.create_connection(("127.0.0.1", printer.port), timeout=2) as s:
            s.sendall(LABEL + b"~HS")
            data = b""
            while data.count(b"\x03") < 3:
                chunk = s.recv(1024)
                assert chunk
                data += chunk
        assert printer.core.label_count == 1
