"""The serial driver reads codes from a real pty pair, in any split, and survives a vanished port."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest
from mes_barcode_hid.drivers.base import ScannerNotFound
from mes_barcode_hid.drivers.serial_driver import SerialScanner, TerminatedReader, terminator_bytes


class Pty:
    """A pty pair: the test writes the scanner's bytes to the master, the driver opens the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty_pair():
    pair = Pty()
    yield pair
    pair.close()


async def next_scan(scans, timeout: float = 20.0):
    return await asyncio.wait_for(anext(scans), timeout)


async def wait_until(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("CR", b"\r"),
        ("lf", b"\n"),
        ("CRLF", b"\r\n"),
        ("0x03", b"\x03"),
        ("#", b"#"),
        (4, b"\x04"),
        ("TAB", b"\t"),
    ],
)
def test_terminator_settings(setting, expected):
    assert terminator_bytes(setting) == expected


def test_terminator_setting_rejects_nonsense():
    with pytest.raises(ValueError, match="terminator"):
        terminator_bytes("CRLFX")


def test_crlf_split_between_reads_is_one_terminator():
    reader = TerminatedReader(b"\r\n")
    assert reader.feed(b"LOT-1\r") == []
    assert reader.feed(b"\nSN-2\r\nSN-") == ["LOT-1", "SN-2"]
    assert reader.feed(b"3\r\n") == ["SN-3"]


def test_garbage_without_terminator_is_bounded():
    reader = TerminatedReader(b"\r", max_length=10)
    assert reader.feed(b"x" * 11) == []
    assert reader.discarded == 1
    assert reader.feed(b"LOT-9\r") == ["LOT-9"]


async def test_reads_codes_in_pieces_and_several_in_one_read(pty_pair):
    scanner = SerialScanner(port=pty_pair.path, baudrate=115200, terminator="CR")
    await scanner.open()
    try:
        scans = scanner.scans()
        pty_pair.write(b"LOT-20")
        await asyncio.sleep(0.05)
        pty_pair.write(b"25-0001\r")
        first = await next_scan(scans)
        assert first.code == "LOT-2025-0001"
        assert first.source == f"serial:{pty_pair.path}"
        assert first.received_at.tzinfo is not None
        pty_pair.write(b"SN-1\rSN-2\r]C1010950110153000317250101\x1d10AB\r")
        got = [await next_scan(scans) for _ in range(3)]
        assert [s.code for s in got] == ["SN-1", "SN-2", "010950110153000317250101\x1d10AB"]
        assert got[2].symbology == "]C1"
        assert scanner.status()["scans"] == 4
    finally:
        await scanner.close()
    assert not scanner.connected


async def test_crlf_and_custom_byte_terminators_over_the_pty(pty_pair):
    scanner = SerialScanner(port=pty_pair.path, terminator="CRLF")
    await scanner.open()
    try:
        scans = scanner.scans()
        pty_pair.write(b"A-1\r")
        await asyncio.sleep(0.05)
        pty_pair.write(b"\nB-2\r\n")
        assert [(await next_scan(scans)).code for _ in range(2)] == ["A-1", "B-2"]
    finally:
        await scanner.close()
    scanner = SerialScanner(port=pty_pair.path, terminator="0x03")
    await scanner.open()
    try:
        pty_pair.write(b"\x02LOT-X\x03")
        assert (await next_scan(scanner.scans())).code == "\x02LOT-X"
    finally:
        await scanner.close()


async def test_scans_end_after_close(pty_pair):
    scanner = SerialScanner(port=pty_pair.path)
    await scanner.open()
    pty_pair.write(b"LOT-Q\r")
    await wait_until(lambda: scanner.scan_count == 1)
    await scanner.close()
    assert [s.code async for s in scanner.scans()] == ["LOT-Q"]


async def test_missing_port_fails_with_a_clear_error(tmp_path):
    scanner = SerialScanner(port=str(tmp_path / "ttyACM9"))
    with pytest.raises(ScannerNotFound, match="ttyACM9.*not found"):
        await scanner.open()


async def test_reconnects_when_the_port_vanishes_and_comes_back(tmp_path):
    # /dev/serial/by-id/... is a symlink that follows the scanner; the test plays udev
    link = tmp_path / "usb-Scanner-if00"
    first = Pty()
    os.symlink(first.path, link)
    scanner = SerialScanner(port=str(link), reconnect_interval=0.05)
    await scanner.open()
    second = None
    try:
        scans = scanner.scans()
        first.write(b"LOT-BEFORE\r")
        assert (await next_scan(scans)).code == "LOT-BEFORE"

        first.write(b"LOT-HAL")  # unplugged half-way through a code
        await asyncio.sleep(0.05)
        first.close()
        os.unlink(link)
        await wait_until(lambda: not scanner.connected)
        assert scanner.status()["error"]

        second = Pty()
        os.symlink(second.path, link)
        await wait_until(lambda: scanner.connected)
        second.write(b"LOT-AFTER\r")
        after = await next_scan(scans)
        assert after.code == "LOT-AFTER"  # the half code from before did not leak into it
        assert scanner.reconnects == 1
    finally:
        await scanner.close()
        first.close()
        if second:
            second.close()


async def test_opening_twice_keeps_one_reader_and_close_releases_the_port(pty_pair):
    scanner = SerialScanner(port=pty_pair.path)
    await scanner.open()
    await scanner.open()  # a second exclusive open of the same port would fail
    pty_pair.write(b"LOT-ONCE\r")
    assert (await next_scan(scanner.scans())).code == "LOT-ONCE"
    await scanner.close()
    again = SerialScanner(port=pty_pair.path)
    await again.open()  # the exclusive lock was released
    await again.close()
