"""The evdev driver decodes recorded ``struct input_event`` records from pipes, FIFOs and files."""

from __future__ import annotations

import asyncio
import os
import struct
from datetime import UTC, datetime

import pytest
from mes_barcode_hid import keymap
from mes_barcode_hid.drivers.base import ScannerNotFound
from mes_barcode_hid.drivers.evdev_driver import (
    INPUT_EVENT,
    EvdevScanner,
    InputEvent,
    InputEventDecoder,
    read_available,
)

EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
MSC_SCAN = 4
T0 = 1_764_133_200  # 2025-11-26T05:00:00Z

# reverse US map for building recordings: char -> (key code, needs shift)
CHAR_KEYS: dict[str, tuple[int, bool]] = {}
for _code, (_plain, _shifted) in keymap.US_KEYMAP.items():
    if _code in (55, 74, 78, 83, 98):  # keypad duplicates
        continue
    CHAR_KEYS.setdefault(_plain, (_code, False))
    CHAR_KEYS.setdefault(_shifted, (_code, True))


class Recorder:
    """Builds the records a HID keyboard produces: MSC_SCAN + EV_KEY + SYN_REPORT per key event,
    timestamps advancing 4 ms per event like a fast scanner."""

    def __init__(self, start: int = T0) -> None:
        self.usec = 0
        self.sec = start
        self.records: list[bytes] = []

    def _event(self, type_: int, code: int, value: int) -> None:
        self.records.append(InputEvent(self.sec, self.usec, type_, code, value).pack())

    def key(self, code: int, value: int) -> Recorder:
        self._event(EV_MSC, MSC_SCAN, 0x70000 + code)
        self._event(EV_KEY, code, value)
        self._event(EV_SYN, 0, 0)
        self.usec += 4000
        if self.usec >= 1_000_000:
            self.sec, self.usec = self.sec + 1, self.usec - 1_000_000
        return self

    def tap(self, code: int) -> Recorder:
        return self.key(code, 1).key(code, 0)

    def type(self, text: str, shift_key: int = keymap.KEY_LEFTSHIFT) -> Recorder:
        for char in text:
            code, shifted = CHAR_KEYS[char]
            if shifted:
                self.key(shift_key, 1)
            self.tap(code)
            if shifted:
                self.key(shift_key, 0)
        return self

    def enter(self) -> Recorder:
        return self.tap(keymap.KEY_ENTER)

    def syn_dropped(self) -> Recorder:
        self._event(EV_SYN, 3, 0)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.records)


def test_input_event_is_24_bytes_on_x86_64():
    if struct.calcsize("l") == 8:
        assert INPUT_EVENT.size == 24
    event = InputEvent(T0, 250_000, EV_KEY, 30, 1)
    assert INPUT_EVENT.unpack(event.pack()) == (T0, 250_000, EV_KEY, 30, 1)


def test_keymap_codes_match_the_kernel_header():
    evdev = pytest.importorskip("evdev")
    e = evdev.ecodes
    assert keymap.KEY_ENTER == e.KEY_ENTER and keymap.KEY_KPENTER == e.KEY_KPENTER
    assert keymap.KEY_LEFTSHIFT == e.KEY_LEFTSHIFT and keymap.KEY_RIGHTSHIFT == e.KEY_RIGHTSHIFT
    assert keymap.KEY_LEFTCTRL == e.KEY_LEFTCTRL and keymap.KEY_LEFTALT == e.KEY_LEFTALT
    for name, char in [
        ("KEY_A", "a"),
        ("KEY_Z", "z"),
        ("KEY_0", "0"),
        ("KEY_1", "1"),
        ("KEY_MINUS", "-"),
        ("KEY_SLASH", "/"),
        ("KEY_RIGHTBRACE", "]"),
        ("KEY_APOSTROPHE", "'"),
        ("KEY_SPACE", " "),
    ]:
        assert keymap.US_KEYMAP[getattr(e, name)][0] == char, name
    assert keymap.KEYPAD_DIGITS[e.KEY_KP0] == "0" and keymap.KEYPAD_DIGITS[e.KEY_KP9] == "9"


def test_decodes_a_code_with_shifted_characters_and_enter():
    recording = Recorder().type("LOT-2025/a_B!").enter()
    decoder = InputEventDecoder()
    codes = decoder.feed(recording.bytes())
    assert [code for code, _ in codes] == ["LOT-2025/a_B!"]


def test_right_shift_and_overlapping_shift_keys_are_tracked_separately():
    r = Recorder()
    r.key(keymap.KEY_LEFTSHIFT, 1).key(keymap.KEY_RIGHTSHIFT, 1).tap(30)  # A
    r.key(keymap.KEY_LEFTSHIFT, 0).tap(48)  # still shifted by the right shift: B
    r.key(keymap.KEY_RIGHTSHIFT, 0).tap(46)  # no shift: c
    r.type("X", shift_key=keymap.KEY_RIGHTSHIFT).enter()
    assert InputEventDecoder().feed(r.bytes())[0][0] == "ABcX"


def test_key_repeats_type_nothing_and_modifier_repeats_keep_shift():
    r = Recorder()
    r.key(keymap.KEY_LEFTSHIFT, 1).key(keymap.KEY_LEFTSHIFT, 2).key(keymap.KEY_LEFTSHIFT, 2)
    r.key(30, 1).key(30, 2).key(30, 2).key(30, 0)  # one A, held long enough to auto-repeat
    r.key(keymap.KEY_LEFTSHIFT, 0).tap(2).enter()
    assert InputEventDecoder().feed(r.bytes())[0][0] == "A1"


def test_scan_time_is_the_enter_events_timestamp():
    r = Recorder().type("SN123")
    enter_at = (r.sec, r.usec)
    r.enter()
    [(code, at)] = InputEventDecoder().feed(r.bytes())
    assert code == "SN123"
    assert at == datetime.fromtimestamp(enter_at[0] + enter_at[1] / 1e6, tz=UTC)


def test_records_split_at_any_byte_boundary_decode_the_same():
    data = Recorder().type("LOT-A1").enter().type("SN-9").enter().bytes()
    for step in (1, 5, 23, 24, 25, 100):
        decoder = InputEventDecoder()
        codes = []
        for i in range(0, len(data), step):
            codes += [code for code, _ in decoder.feed(data[i : i + step])]
        assert codes == ["LOT-A1", "SN-9"], step


def test_ctrl_bracket_and_alt_keypad_type_the_gs1_separator():
    r = Recorder().type("0109501101530003")
    r.key(keymap.KEY_LEFTCTRL, 1).tap(27).key(keymap.KEY_LEFTCTRL, 0)  # Ctrl+] = GS
    r.type("10AB")
    r.key(keymap.KEY_LEFTALT, 1).tap(82).tap(80).tap(73).key(keymap.KEY_LEFTALT, 0)  # Alt+0,2,9 = GS
    r.type("21X1").enter()
    assert InputEventDecoder().feed(r.bytes())[0][0] == "0109501101530003\x1d10AB\x1d21X1"


def test_caps_lock_inverts_letters_only():
    r = Recorder().tap(keymap.KEY_CAPSLOCK).type("ab1").type("C").enter()
    assert InputEventDecoder().feed(r.bytes())[0][0] == "AB1c"


def test_syn_dropped_discards_the_half_typed_code():
    r = Recorder().type("LOT-BROK").syn_dropped().type("EN").tap(keymap.KEY_ENTER)
    r.type("SN-OK").enter()
    decoder = InputEventDecoder()
    codes = [code for code, _ in decoder.feed(r.bytes())]
    # the rest of the damaged code is discarded up to its Enter; the next code decodes cleanly
    assert codes == ["SN-OK"]
    assert decoder.discarded == 1


def test_tab_terminator():
    r = Recorder().type("LOT-7").tap(keymap.KEY_TAB).type("x").enter()
    assert [c for c, _ in InputEventDecoder(terminator="tab").feed(r.bytes())] == ["LOT-7"]


async def test_decoder_reads_records_written_to_a_pipe():
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    try:
        decoder = InputEventDecoder()
        data = Recorder().type("LOT-PIPE-1").enter().bytes()
        os.write(write_fd, data[:50])
        got = await asyncio.wait_for(read_available(read_fd), 20)
        assert decoder.feed(got) == []
        os.write(write_fd, data[50:])
        codes = []
        while not codes:
            codes = decoder.feed(await asyncio.wait_for(read_available(read_fd), 20))
        assert codes[0][0] == "LOT-PIPE-1"
        os.close(write_fd)
        write_fd = -1
        assert await asyncio.wait_for(read_available(read_fd), 20) == b""
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


async def test_driver_replays_a_fifo_and_ends_with_the_recording(tmp_path):
    fifo = tmp_path / "scanner.events"
    os.mkfifo(fifo)
    keep_open = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)
    scanner = EvdevScanner(device=str(fifo), replay=True)
    await scanner.open()
    os.close(keep_open)
    assert scanner.connected
    os.write(writer, Recorder().type("]C1LOT-FIFO").enter().bytes())
    scans = scanner.scans()
    first = await asyncio.wait_for(anext(scans), 20)
    assert (first.code, first.symbology, first.source) == ("LOT-FIFO", "]C1", f"evdev:{fifo}")
    os.write(writer, Recorder().type("SN-2").enter().bytes())
    os.close(writer)
    rest = [scan.code async for scan in scans]
    assert rest == ["SN-2"]
    assert not scanner.connected
    assert scanner.status()["scans"] == 2
    await scanner.close()


async def test_driver_replays_a_recorded_file(tmp_path):
    recording = tmp_path / "capture.bin"
    recording.write_bytes(Recorder().type("LOT-1").enter().type("LOT-2").enter().bytes())
    async with EvdevScanner(device=str(recording), replay=True) as scanner:
        codes = [scan.code async for scan in scanner.scans()]
    assert codes == ["LOT-1", "LOT-2"]


async def test_missing_device_fails_with_a_clear_error():
    scanner = EvdevScanner(device="/dev/input/event99")
    with pytest.raises(ScannerNotFound, match=r"/dev/input/event99.*not found"):
        await scanner.open()
    assert not scanner.connected


async def test_missing_device_name_lists_what_exists():
    pytest.importorskip("evdev")
    scanner = EvdevScanner(device_name="Honeywell Xenon")
    with pytest.raises(ScannerNotFound, match="Honeywell Xenon.*available"):
        await scanner.open()


def test_driver_needs_a_device():
    with pytest.raises(ValueError, match="device"):
        EvdevScanner()
