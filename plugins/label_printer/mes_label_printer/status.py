"""Zebra ``~HS`` host status: parse the printer's three-string reply and build it (for simulators).

The printer answers ``~HS`` with three strings, each framed ``STX ... ETX CR LF`` (ZPL II
Programming Guide, "~HS Host Status Return"):

* string 1 ``aaa,b,c,dddd,eee,f,g,h,iii,j,k,l`` — interface settings, paper out, pause,
  label length (dots), formats in the receive buffer, buffer full, communications diagnostic
  mode, partial format in progress, unused, corrupt RAM, under temperature, over temperature;
* string 2 ``mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www`` — function settings, unused, head up, ribbon
  out, thermal transfer mode, print mode, print width mode, label waiting, labels remaining in
  batch, format while printing, graphics stored;
* string 3 ``xxxx,y`` — password, static RAM installed.

A real printer sends no reply at all while the head is open or media is out on some models,
which is why every status read has a timeout and a timeout means unhealthy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mes_kernel.contracts import Reason

STX, ETX = b"\x02", b"\x03"
HOST_STATUS_REQUEST = b"~HS"

PRINT_MODES = {
    "0": "rewind",
    "1": "peel_off",
    "2": "tear_off",
    "3": "cutter",
    "4": "applicator",
    "5": "delayed_cut",
    "6": "linerless_peel",
    "7": "linerless_rewind",
    "8": "partial_cutter",
    "9": "rfid",
    "K": "kiosk",
}


class StatusParseError(ValueError):
    """The bytes are not a well-formed ``~HS`` reply."""


@dataclass(frozen=True)
class PrinterStatus:
    """A printer's state as its ``~HS`` reply tells it."""

    paper_out: bool = False
    paused: bool = False
    label_length_dots: int = 0
    formats_in_buffer: int = 0
    buffer_full: bool = False
    diagnostic_mode: bool = False
    partial_format: bool = False
    corrupt_ram: bool = False
    under_temperature: bool = False
    over_temperature: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    thermal_transfer: bool = False
    print_mode: str = "tear_off"
    label_waiting: bool = False
    labels_remaining: int = 0
    graphics_stored: int = 0

    # Conditions that stop printing, and the words an operator reads for each (coded, so the
    # dashboard words them in its reader's language).
    BLOCKING = (
        ("paper_out", Reason("PRINTER_PAPER_OUT", "paper out")),
        ("ribbon_out", Reason("PRINTER_RIBBON_OUT", "ribbon out")),
        ("head_open", Reason("PRINTER_HEAD_OPEN", "head open")),
        ("corrupt_ram", Reason("PRINTER_CORRUPT_RAM", "corrupt RAM")),
        ("over_temperature", Reason("PRINTER_HEAD_OVER_TEMPERATURE", "head over temperature")),
    )
    # Conditions that hold labels back but clear without a repair.
    HOLDING = (
        ("paused", Reason("PRINTER_PAUSED", "paused")),
        ("buffer_full", Reason("PRINTER_BUFFER_FULL", "receive buffer full")),
        ("under_temperature", Reason("PRINTER_HEAD_UNDER_TEMPERATURE", "head under temperature")),
        ("diagnostic_mode", Reason("PRINTER_DIAGNOSTIC_MODE", "communications diagnostic mode")),
    )

    @property
    def ribbon_needed(self) -> bool:
        """Only thermal-transfer printing uses a ribbon. In direct-thermal mode (``^MTD``) many
        printers report the ribbon flag set, since their ribbon sensor sees none; it means nothing."""
        return self.thermal_transfer

    @property
    def blocking_reasons(self) -> list[Reason]:
        """Why the printer cannot print until someone fixes it (the ribbon flag only counts in
        thermal-transfer mode)."""
        return [
            why for name, why in self.BLOCKING if getattr(self, name) and (name != "ribbon_out" or self.ribbon_needed)
        ]

    @property
    def holding_reasons(self) -> list[Reason]:
        """Why the printer is holding labels back for now."""
        return [why for name, why in self.HOLDING if getattr(self, name)]

    @property
    def blocking_problems(self) -> list[str]:
        """:attr:`blocking_reasons` in English."""
        return [why.text for why in self.blocking_reasons]

    @property
    def holding_problems(self) -> list[str]:
        """:attr:`holding_reasons` in English."""
        return [why.text for why in self.holding_reasons]

    @property
    def problems(self) -> list[str]:
        """Every reason the printer is not ready, blocking ones first."""
        return self.blocking_problems + self.holding_problems

    @property
    def ready(self) -> bool:
        """True when nothing stops or holds printing."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-ready data, with ``ready`` and ``problems``."""
        return {**asdict(self), "ready": self.ready, "problems": self.problems}


def _flag(value: str, field: str) -> bool:
    if value not in ("0", "1"):
        raise StatusParseError(f"~HS field {field} should be 0 or 1, got {value!r}")
    return value == "1"


def _int(value: str, field: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise StatusParseError(f"~HS field {field} should be a number, got {value!r}")
    return int(value)


def split_frames(data: bytes) -> list[bytes]:
    """The bodies of the complete ``STX ... ETX`` frames in ``data``, in order."""
    frames = []
    pos = 0
    while True:
        start = data.find(STX, pos)
        if start < 0:
            return frames
        end = data.find(ETX, start + 1)
        if end < 0:
            return frames
        frames.append(data[start + 1 : end])
        pos = end + 1


def reply_complete(data: bytes) -> bool:
    """True once ``data`` holds all three framed strings of a ``~HS`` reply."""
    return len(split_frames(data)) >= 3


def parse_host_status(data: bytes) -> PrinterStatus:
    """Parse a ``~HS`` reply (three framed strings) into a :class:`PrinterStatus`.

    Raises :class:`StatusParseError` naming what is missing or malformed.
    """
    frames = split_frames(data)
    if len(frames) < 3:
        raise StatusParseError(f"~HS reply has {len(frames)} of 3 framed strings")
    try:
        one, two = (frame.decode("ascii").split(",") for frame in frames[:2])
    except UnicodeDecodeError as exc:
        raise StatusParseError("~HS reply is not ASCII") from exc
    if len(one) < 12:
        raise StatusParseError(f"~HS string 1 has {len(one)} fields, expected 12")
    if len(two) < 11:
        raise StatusParseError(f"~HS string 2 has {len(two)} fields, expected 11")
    return PrinterStatus(
        paper_out=_flag(one[1], "paper out"),
        paused=_flag(one[2], "pause"),
        label_length_dots=_int(one[3], "label length"),
        formats_in_buffer=_int(one[4], "formats in buffer"),
        buffer_full=_flag(one[5], "buffer full"),
        diagnostic_mode=_flag(one[6], "diagnostic mode"),
        partial_format=_flag(one[7], "partial format"),
        corrupt_ram=_flag(one[9], "corrupt RAM"),
        under_temperature=_flag(one[10], "under temperature"),
        over_temperature=_flag(one[11], "over temperature"),
        head_open=_flag(two[2], "head up"),
        ribbon_out=_flag(two[3], "ribbon out"),
        thermal_transfer=_flag(two[4], "thermal transfer"),
        print_mode=PRINT_MODES.get(two[5], f"unknown:{two[5]}"),
        label_waiting=_flag(two[7], "label waiting"),
        labels_remaining=_int(two[8], "labels remaining"),
        graphics_stored=_int(two[10], "graphics stored"),
    )


def format_host_status(status: PrinterStatus) -> bytes:
    """Build the three-string ``~HS`` reply a printer in ``status`` sends (used by simulators)."""

    def b(flag: bool) -> str:
        return "1" if flag else "0"

    mode = next((k for k, v in PRINT_MODES.items() if v == status.print_mode), "2")
    one = ",".join(
        [
            "030",
            b(status.paper_out),
            b(status.paused),
            f"{status.label_length_dots:04d}",
            f"{status.formats_in_buffer:03d}",
            b(status.buffer_full),
            b(status.diagnostic_mode),
            b(status.partial_format),
            "000",
            b(status.corrupt_ram),
            b(status.under_temperature),
            b(status.over_temperature),
        ]
    )
    two = ",".join(
        [
            "001",
            "0",
            b(status.head_open),
            b(status.ribbon_out),
            b(status.thermal_transfer),
            mode,
            "6",
            b(status.label_waiting),
            f"{status.labels_remaining:08d}",
            "1",
            f"{status.graphics_stored:03d}",
        ]
    )
    three = "1234,0"
    return b"".join(STX + s.encode("ascii") + ETX + b"\r\n" for s in (one, two, three))
