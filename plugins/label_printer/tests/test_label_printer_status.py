"""~HS host status: every flag parsed from Zebra's three framed strings."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from mes_label_printer.status import (
    PrinterStatus,
    StatusParseError,
    format_host_status,
    parse_host_status,
    reply_complete,
)

# As a printer sends it: paper out, head up, ribbon out, 2 formats waiting, peel-off mode.
RAW = b"\x02030,1,0,1245,002,0,0,0,000,0,0,0\x03\r\n\x02001,0,1,1,1,1,6,0,00000007,1,003\x03\r\n\x021234,0\x03\r\n"


def test_parses_a_printer_reply_field_by_field():
    s = parse_host_status(RAW)
    assert s.paper_out and s.head_open and s.ribbon_out and s.thermal_transfer
    assert not s.paused and not s.buffer_full
    assert s.label_length_dots == 1245
    assert s.formats_in_buffer == 2
    assert s.labels_remaining == 7
    assert s.graphics_stored == 3
    assert s.print_mode == "peel_off"
    assert s.problems == ["paper out", "ribbon out", "head open"]
    assert not s.ready


BOOL_FLAGS = [f.name for f in fields(PrinterStatus) if f.type in ("bool", bool)]


@pytest.mark.parametrize("flag", BOOL_FLAGS)
def test_every_flag_round_trips_alone(flag):
    status = replace(PrinterStatus(), **{flag: True})
    parsed = parse_host_status(format_host_status(status))
    assert parsed == status
    assert [f for f in BOOL_FLAGS if getattr(parsed, f)] == [flag]


def test_a_healthy_printer_is_ready():
    s = parse_host_status(format_host_status(PrinterStatus()))
    assert s.ready and s.problems == []


@pytest.mark.parametrize(
    ("flag", "blocking"),
    [("paper_out", True), ("ribbon_out", True), ("head_open", True), ("paused", False), ("buffer_full", False)],
)
def test_blocking_and_holding_problems_are_told_apart(flag, blocking):
    s = replace(PrinterStatus(thermal_transfer=True), **{flag: True})
    assert bool(s.blocking_problems) is blocking
    assert bool(s.holding_problems) is not blocking


def test_the_ribbon_flag_is_read_against_the_print_mode():
    """Direct thermal (``^MTD``) uses no ribbon; printers in that mode often report the flag set."""
    thermal_transfer = parse_host_status(format_host_status(PrinterStatus(ribbon_out=True, thermal_transfer=True)))
    assert thermal_transfer.problems == ["ribbon out"] and not thermal_transfer.ready
    direct_thermal = parse_host_status(format_host_status(PrinterStatus(ribbon_out=True, thermal_transfer=False)))
    assert direct_thermal.ribbon_out and direct_thermal.ready and direct_thermal.problems == []


def test_reply_is_complete_only_with_three_frames():
    assert not reply_complete(RAW[:40])
    assert not reply_complete(RAW[:-10])
    assert reply_complete(RAW)
    assert reply_complete(b"noise" + RAW)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        RAW[:60],
        RAW.replace(b"030,1,0", b"030,X,0"),
        b"\x02030,1\x03\r\n\x02001\x03\r\n\x021234,0\x03\r\n",
        RAW.replace(b"1245", b"12a5"),
    ],
)
def test_malformed_replies_are_refused(bad):
    with pytest.raises(StatusParseError):
        parse_host_status(bad)
