"""USB HID scanner in keyboard mode, read exclusively through Linux evdev (``InputDevice.grab()``).

Decoding is kept apart from the device: :class:`InputEventDecoder` takes the raw bytes of
``struct input_event`` records from any file descriptor, so recorded events (a file, a pipe) decode
exactly as a live ``/dev/input/eventN`` does. The grab keeps the scanner's keystrokes out of every
other window on the station.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..keymap import KEY_NAMES, TERMINATOR, KeyTranslator
from ..parsing import split_symbology
from .base import DeviceReaderDriver, Scan, ScannerError, ScannerNotFound

EV_SYN = 0x00
EV_KEY = 0x01
SYN_REPORT = 0
SYN_DROPPED = 3

# struct input_event { struct timeval time; __u16 type; __u16 code; __s32 value; }
# native layout: 24 bytes on x86_64 (two 8-byte longs), 16 on 32-bit platforms.
INPUT_EVENT = struct.Struct("llHHi")


@dataclass(frozen=True)
class InputEvent:
    """One ``struct input_event``."""

    sec: int
    usec: int
    type: int
    code: int
    value: int

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.sec + self.usec / 1_000_000, tz=UTC)

    def pack(self) -> bytes:
        """The record's bytes, as the kernel writes them (for recordings and tests)."""
        return INPUT_EVENT.pack(self.sec, self.usec, self.type, self.code, self.value)


class InputEventDecoder:
    """Bytes of ``input_event`` records in, complete codes out.

    Keeps partial records between reads, modifier state between events, and the code being typed
    until its terminator key. After ``SYN_DROPPED`` (the kernel's buffer overflowed and events were
    lost) events are ignored up to the next ``SYN_REPORT``, as the evdev protocol asks, and the code
    being typed is discarded up to its terminator: a code with lost characters must not be reported.

    :param terminator: ``"enter"`` (Enter or keypad Enter) or ``"tab"``.
    :param max_length: a code longer than this without terminator is discarded (a scanner
        configured without suffix would otherwise grow the buffer for ever).
    """

    def __init__(self, *, terminator: str = "enter", max_length: int = 4096) -> None:
        if terminator not in KEY_NAMES:
            raise ValueError(f"terminator must be one of {sorted(KEY_NAMES)}, not {terminator!r}")
        self.keys = KeyTranslator(terminator_keys=KEY_NAMES[terminator])
        self.max_length = max_length
        self._pending = b""
        self._chars: list[str] = []
        self._dropping = False
        self._corrupt = False
        self.discarded = 0

    def events(self, data: bytes) -> Iterator[InputEvent]:
        """Split bytes into records, keeping an incomplete trailing record for the next call."""
        data = self._pending + data
        usable = len(data) - len(data) % INPUT_EVENT.size
        self._pending = data[usable:]
        for fields in INPUT_EVENT.iter_unpack(data[:usable]):
            yield InputEvent(*fields)

    def feed(self, data: bytes) -> list[tuple[str, datetime]]:
        """Decode ``data``; return every code completed in it with its terminator's timestamp."""
        codes: list[tuple[str, datetime]] = []
        for event in self.events(data):
            if event.type == EV_SYN:
                if event.code == SYN_DROPPED:
                    self._dropping = True
                    self._corrupt = True
                    self._chars.clear()
                    self.keys.reset()
                elif event.code == SYN_REPORT:
                    self._dropping = False
                continue
            if self._dropping or event.type != EV_KEY:
                continue
            char = self.keys.key(event.code, event.value)
            if char is None:
                continue
            if char == TERMINATOR:
                if self._corrupt:
                    self._corrupt = False
                    self.discarded += 1
                elif self._chars:
                    codes.append(("".join(self._chars), event.timestamp))
                self._chars.clear()
                continue
            self._chars.append(char)
            if len(self._chars) > self.max_length:
                self._chars.clear()
                self.discarded += 1
        return codes


def find_device_path(name: str) -> str:
    """The ``/dev/input/eventN`` of the input device whose name contains ``name`` (any case).

    :raises ScannerNotFound: no such device; the message lists the devices that do exist.
    """
    import evdev

    seen = []
    for path in evdev.list_devices():
        try:
            device = evdev.InputDevice(path)
        except OSError:
            continue
        with contextlib.closing(device):
            seen.append(f"{device.name} ({path})")
            if name.lower() in device.name.lower():
                return path
    available = ", ".join(seen) if seen else "no readable input devices"
    raise ScannerNotFound(f"evdev scanner named {name!r} not found; available: {available}")


class EvdevScanner(DeviceReaderDriver):
    """A HID keyboard-mode scanner at ``/dev/input/eventN``, grabbed so no other program sees it.

    :param device: the event device path (``/dev/input/by-id/usb-…-event-kbd`` stays stable across
        replugging), or
    :param device_name: part of the device's name (``"Honeywell"``) to find it by.
    :param grab: take the device exclusively (default). Without it every keystroke also reaches
        the desktop.
    :param replay: read ``device`` as a plain file or FIFO of recorded ``input_event`` records (no
        ioctl, no grab) — for demos and tests; the end of the recording closes the stream.
    :param terminator: ``"enter"`` (default) or ``"tab"``, the suffix the scanner is set to send.
    :param reconnect_interval: seconds between attempts to reopen a device that vanished.
    """

    name = "evdev"

    def __init__(
        self,
        *,
        device: str | None = None,
        device_name: str | None = None,
        grab: bool = True,
        replay: bool = False,
        terminator: str = "enter",
        reconnect_interval: float = 2.0,
        max_length: int = 4096,
        **_ignored: Any,
    ) -> None:
        if not device and not device_name:
            raise ValueError("evdev scanner needs 'device' (a path) or 'device_name'")
        if replay and not device:
            raise ValueError("replay needs 'device', the path of the recording")
        super().__init__(source=f"evdev:{device or device_name}")
        self.device = device
        self.device_name = device_name
        self.grab = grab
        self.replay = replay
        self.terminator = terminator
        self.reconnect_interval = reconnect_interval
        self.max_length = max_length
        self._fd: int | None = None
        self._input_device: Any = None
        self.decoder = InputEventDecoder(terminator=terminator, max_length=max_length)

    @property
    def connected(self) -> bool:
        return self._fd is not None

    # ------------------------------------------------------------ device

    def _connect(self) -> None:
        """Open (and grab) the device, or raise a :class:`ScannerError` saying why not."""
        if self.replay:
            try:
                self._fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
            except FileNotFoundError as exc:
                raise ScannerNotFound(f"evdev recording {self.device!r} not found") from exc
            return
        try:
            import evdev
        except ImportError as exc:  # pragma: no cover - evdev is a dependency on Linux
            raise ScannerError("the evdev driver needs the 'evdev' package (Linux only)") from exc
        path = self.device or find_device_path(self.device_name or "")
        try:
            device = evdev.InputDevice(path)
        except FileNotFoundError as exc:
            raise ScannerNotFound(
                f"evdev scanner {path!r} not found: no such device (is it plugged in? "
                f"{'/dev/input does not exist' if not os.path.isdir('/dev/input') else 'check the path'})"
            ) from exc
        except PermissionError as exc:
            raise ScannerError(
                f"evdev scanner {path!r}: permission denied (add the station user to the 'input' group)"
            ) from exc
        except OSError as exc:
            raise ScannerError(f"evdev scanner {path!r} cannot be opened: {exc}") from exc
        if self.grab:
            try:
                device.grab()
            except OSError as exc:
                device.close()
                raise ScannerError(f"evdev scanner {path!r} is grabbed by another program: {exc}") from exc
        self._input_device = device
        self._fd = device.fd
        os.set_blocking(self._fd, False)

    def _disconnect(self) -> None:
        if self._input_device is not None:
            with contextlib.suppress(OSError):
                if self.grab:
                    self._input_device.ungrab()
            with contextlib.suppress(OSError):
                self._input_device.close()
            self._input_device = None
        elif self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    # ------------------------------------------------------------ reading

    async def _read_forever(self) -> None:
        while True:
            if self._fd is None:
                try:
                    self._connect()
                    self.decoder = InputEventDecoder(terminator=self.terminator, max_length=self.max_length)
                    self.last_error = None
                except ScannerError as exc:
                    self.last_error = str(exc)
                    await asyncio.sleep(self.reconnect_interval)
                    continue
            try:
                await self._read_until_gone(self._fd)
            except OSError as exc:
                self.last_error = f"read failed: {exc}"
            self._disconnect()
            if self.replay:
                self._closing()
                return
            await asyncio.sleep(self.reconnect_interval)

    async def _read_until_gone(self, fd: int) -> None:
        """Read records until end of file or the device disappears (``ENODEV``)."""
        pollable = is_pollable(fd)
        while True:
            data = await read_available(fd) if pollable else await asyncio.to_thread(os.read, fd, CHUNK)
            if not data:
                self.last_error = None if self.replay else "device disconnected"
                return
            for code, at in self.decoder.feed(data):
                symbology, code = split_symbology(code)
                self._publish(Scan(code=code, symbology=symbology, received_at=at, source=self.source))


CHUNK = INPUT_EVENT.size * 64


def is_pollable(fd: int) -> bool:
    """Whether the event loop can watch ``fd`` (devices, pipes, ttys; not regular files)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_reader(fd, lambda: None)
    except (PermissionError, OSError):
        return False
    loop.remove_reader(fd)
    return True


async def read_available(fd: int, size: int = CHUNK) -> bytes:
    """Wait until ``fd`` is readable and read what is there; b"" at end of file or when the
    device has gone (``ENODEV``/``EIO``)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()

    def on_readable() -> None:
        if future.done():
            return
        try:
            future.set_result(os.read(fd, size))
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.EIO):
                future.set_result(b"")
            else:
                future.set_exception(exc)

    loop.add_reader(fd, on_readable)
    try:
        return await future
    finally:
        loop.remove_reader(fd)
