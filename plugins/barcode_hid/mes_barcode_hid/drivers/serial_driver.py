"""Scanner on a USB-CDC virtual COM port (``/dev/ttyACM0``) read with pyserial.

Bytes arrive in whatever pieces the USB stack delivers: a code split over several reads, or several
codes in one. :class:`TerminatedReader` cuts the stream at the configured terminator. When the port
vanishes (the scanner is unplugged) the driver keeps trying to reopen the same path; configure a
``/dev/serial/by-id/…`` path, which follows the scanner to whatever ttyACM number it gets next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import serial

from ..parsing import split_symbology
from .base import DeviceReaderDriver, Scan, ScannerError, ScannerNotFound, utcnow

TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t", "ETX": b"\x03"}


def terminator_bytes(value: str | int | bytes) -> bytes:
    """``"CR"``, ``"LF"``, ``"CRLF"``, ``"TAB"``, ``"ETX"``, one character (``"#"``), a hex byte
    (``"0x03"``) or an int (3) → the bytes that end a code."""
    if isinstance(value, bytes):
        if not value:
            raise ValueError("terminator must not be empty")
        return value
    if isinstance(value, int):
        return bytes([value])
    upper = value.upper()
    if upper in TERMINATORS:
        return TERMINATORS[upper]
    if upper.startswith("0X") and len(value) in (3, 4):
        return bytes([int(value, 16)])
    if len(value) == 1:
        return value.encode("latin-1")
    raise ValueError(f"terminator {value!r}: use CR, LF, CRLF, TAB, ETX, one character or a hex byte like 0x03")


class TerminatedReader:
    """Cuts a byte stream into codes at a terminator, across any split of the reads.

    :param terminator: the bytes ending each code.
    :param encoding: how the scanner encodes text (``latin-1`` maps every byte, keeping GS).
    :param max_length: bytes kept without a terminator before they are discarded as garbage.
    """

    def __init__(self, terminator: bytes, *, encoding: str = "utf-8", max_length: int = 4096) -> None:
        self.terminator = terminator
        self.encoding = encoding
        self.max_length = max_length
        self._buffer = b""
        self.discarded = 0

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the codes they complete (empty codes between terminators skipped)."""
        self._buffer += data
        *complete, self._buffer = self._buffer.split(self.terminator)
        if len(self._buffer) > self.max_length:
            self._buffer = b""
            self.discarded += 1
        return [part.decode(self.encoding, errors="replace") for part in complete if part]


class SerialScanner(DeviceReaderDriver):
    """A scanner on a serial port (USB-CDC or RS-232).

    :param port: device path, e.g. ``/dev/serial/by-id/usb-Datalogic_…-if00`` or ``/dev/ttyACM0``.
    :param baudrate: line speed (USB-CDC ignores it; RS-232 scanners need the right one).
    :param terminator: ``CR`` (default), ``LF``, ``CRLF``, ``TAB``, ``ETX``, one character or ``0xNN``.
    :param encoding: text encoding of the codes (``utf-8`` default; ``latin-1`` for 8-bit data).
    :param reconnect_interval: seconds between attempts to reopen a vanished port.
    """

    name = "serial"

    def __init__(
        self,
        *,
        port: str,
        baudrate: int = 9600,
        terminator: str | int = "CR",
        encoding: str = "utf-8",
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        reconnect_interval: float = 2.0,
        max_length: int = 4096,
        **_ignored: Any,
    ) -> None:
        super().__init__(source=f"serial:{port}")
        self.port = port
        self.baudrate = int(baudrate)
        self.terminator = terminator_bytes(terminator)
        self.encoding = encoding
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.reconnect_interval = reconnect_interval
        self.max_length = max_length
        self.reconnects = 0
        self._serial: serial.Serial | None = None

    @property
    def connected(self) -> bool:
        return self._serial is not None

    def _connect(self) -> None:
        if not os.path.exists(self.port):
            raise ScannerNotFound(f"serial scanner port {self.port!r} not found (is the scanner plugged in?)")
        try:
            self._serial = serial.Serial(
                self.port,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=0,
                exclusive=True,
            )
        except serial.SerialException as exc:
            raise ScannerError(f"serial scanner port {self.port!r} cannot be opened: {exc}") from exc

    def _disconnect(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                self._serial.close()
            self._serial = None

    async def _read_forever(self) -> None:
        while True:
            if self._serial is None:
                try:
                    self._connect()
                    self.reconnects += 1
                    self.last_error = None
                except ScannerError as exc:
                    self.last_error = str(exc)
                    await asyncio.sleep(self.reconnect_interval)
                    continue
            try:
                await self._read_until_gone()
            except (serial.SerialException, OSError) as exc:
                self.last_error = f"port lost: {exc}"
            self._disconnect()
            await asyncio.sleep(self.reconnect_interval)

    async def _read_until_gone(self) -> None:
        """Read until the port fails; a partial code does not survive a lost port."""
        assert self._serial is not None
        port = self._serial
        reader = TerminatedReader(self.terminator, encoding=self.encoding, max_length=self.max_length)
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(port.fileno(), readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                # pyserial raises SerialException when a readable port gives no data: unplugged
                data = port.read(port.in_waiting or 1)
                for text in reader.feed(data):
                    symbology, code = split_symbology(text)
                    self._publish(Scan(code=code, symbology=symbology, received_at=utcnow(), source=self.source))
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(port.fileno())
