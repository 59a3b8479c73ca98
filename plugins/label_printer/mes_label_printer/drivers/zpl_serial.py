"""ZPL over a serial line (RS-232 or USB-CDC) through pyserial, its blocking I/O in a thread."""

from __future__ import annotations

import asyncio
import threading
import time

import serial

from ..status import HOST_STATUS_REQUEST, PrinterStatus, parse_host_status, reply_complete
from .base import LabelPrinterDriver, PrinterConnectionError, PrinterTimeout, ensure_ready


class ZplSerialDriver(LabelPrinterDriver):
    """A printer on serial ``port`` (``/dev/ttyUSB0``, ``COM3``) at ``baudrate``.

    The port stays open between jobs; a lock keeps one exchange on the line at a time.
    Jobs follow the TCP driver: ``~HS`` before (refuse if not ready), the label, ``~HS`` after.
    """

    name = "zpl_serial"
    version = "1.0"

    def __init__(self, port: str, baudrate: int = 9600, timeout: float = 5.0, confirm: bool = True) -> None:
        self.port = port
        self.baudrate = int(baudrate)
        self.timeout = float(timeout)
        self.confirm = bool(confirm)
        self._serial: serial.Serial | None = None
        self._lock = threading.Lock()

    def _open(self) -> serial.Serial:
        if self._serial is None or not self._serial.is_open:
            try:
                self._serial = serial.Serial(self.port, self.baudrate, timeout=0.1, write_timeout=self.timeout)
            except (serial.SerialException, OSError) as exc:
                raise PrinterConnectionError(f"cannot open {self.port}: {exc}") from exc
        return self._serial

    def _drop(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None

    def _ask_status_blocking(self, port: serial.Serial, *, label_sent: bool) -> PrinterStatus:
        port.reset_input_buffer()  # a late reply to an earlier, timed-out request is stale
        port.write(HOST_STATUS_REQUEST)
        port.flush()
        data = b""
        deadline = time.monotonic() + self.timeout
        while not reply_complete(data):
            if time.monotonic() >= deadline:
                raise PrinterTimeout(
                    f"printer on {self.port} did not answer ~HS within {self.timeout:g} s",
                    label_sent=label_sent,
                )
            data += port.read(port.in_waiting or 1)
        return parse_host_status(data)

    def _send_blocking(self, zpl: bytes) -> None:
        with self._lock:
            port = self._open()
            try:
                if self.confirm:
                    ensure_ready(self._ask_status_blocking(port, label_sent=False))
                port.write(zpl)
                port.flush()
                if self.confirm:
                    self._ask_status_blocking(port, label_sent=True)
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise PrinterConnectionError(f"serial line {self.port} failed: {exc}", label_sent=True) from exc

    def _status_blocking(self) -> PrinterStatus:
        with self._lock:
            port = self._open()
            try:
                return self._ask_status_blocking(port, label_sent=False)
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise PrinterConnectionError(f"serial line {self.port} failed: {exc}") from exc

    async def send(self, zpl: bytes) -> None:
        await asyncio.to_thread(self._send_blocking, zpl)

    async def status(self) -> PrinterStatus:
        return await asyncio.to_thread(self._status_blocking)

    async def close(self) -> None:
        await asyncio.to_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        with self._lock:
            self._drop()
