"""The simulated printer's stream parsing and faults, without any transport."""

from __future__ import annotations

import pytest
from mes_label_printer.simulator.core import PrinterCore, ResetConnection
from mes_label_printer.status import parse_host_status

LABEL = b"^XA^FO10,10^A0N,30,30^FDHello^FS^XZ"


def test_labels_split_anywhere_are_reassembled():
    core = PrinterCore()
    stream = core.new_stream()
    data = LABEL + b"\n" + LABEL.replace(b"Hello", b"World")
    for i in range(len(data)):
        assert stream.feed(data[i : i + 1]) == []
    assert core.printed == [LABEL, LABEL.replace(b"Hello", b"World")]


def test_several_labels_in_one_send_all_print():
    core = PrinterCore()
    core.new_stream().feed(LABEL * 5)
    assert core.label_count == 5


def test_host_status_split_across_segments_is_answered_once():
    core = PrinterCore()
    stream = core.new_stream()
    assert stream.feed(b"~H") == []
    (reply,) = stream.feed(b"S")
    assert parse_host_status(reply.data).ready
    assert core.label_count == 0


def test_status_wrapped_in_an_empty_format_prints_nothing():
    core = PrinterCore()
    replies = core.new_stream().feed(b"^XA~HS^XZ")
    assert len(replies) == 1 and core.label_count == 0


def test_labels_are_held_while_paper_is_out_and_print_when_it_is_back():
    core = PrinterCore()
    core.set_fault("paper_out")
    (reply,) = core.new_stream().feed(LABEL + b"~HS")
    status = parse_host_status(reply.data)
    assert status.paper_out and status.formats_in_buffer == 1
    assert core.label_count == 0
    core.set_fault("paper_out", False)
    assert core.label_count == 1


def test_no_reply_fault_swallows_status_requests_but_takes_labels():
    core = PrinterCore()
    core.set_fault("no_reply")
    assert core.new_stream().feed(b"~HS" + LABEL) == []
    assert core.label_count == 1 and core.status_requests == 1


def test_reset_fault_drops_the_label():
    core = PrinterCore()
    core.set_fault("reset")
    with pytest.raises(ResetConnection):
        core.new_stream().feed(LABEL)
    assert core.label_count == 0


def test_unknown_fault_is_refused():
    with pytest.raises(ValueError, match="unknown fault"):
        PrinterCore().set_fault("on_fire")


# ------------------------------------------------------------ ZPL as a printer reads it


def test_lower_case_commands_are_commands():
    core = PrinterCore()
    (reply,) = core.new_stream().feed(b"^xa^fo10,10^a0n,30,30^fdHello^fs^xz~hs")
    assert core.label_count == 1
    assert parse_host_status(reply.data).ready


def test_pq_prints_that_many_labels():
    core = PrinterCore()
    core.new_stream().feed(b"^XA^FO10,10^A0N,30,30^FDThree^FS^PQ3,0,1,Y^XZ^XA^FDOne^FS^pq1^XZ")
    assert core.label_count == 4
    assert sum(b"Three" in label for label in core.printed) == 3


def test_a_stored_format_is_not_printed_and_xf_prints_it_with_the_field_data():
    core = PrinterCore()
    stream = core.new_stream()
    stream.feed(b"^XA^DFR:UNIT.ZPL^FS^FO20,20^A0N,30,30^FN1^FDdefault^FS^FO20,60^A0N,30,30^FN2^FS^XZ")
    assert core.label_count == 0 and "R:UNIT.ZPL" in core.stored_formats
    stream.feed(b"^xa^xfunit^fs^fn1^fdSN-0042^fs^fn2^fdLOT-7^fs^pq2^xz")
    assert core.label_count == 2
    printed = core.printed[0]
    assert b"SN-0042" in printed and b"LOT-7" in printed and b"default" not in printed
    assert b"^DF" not in printed.upper()


def test_xf_of_a_format_the_printer_does_not_hold_prints_nothing():
    core = PrinterCore()
    core.new_stream().feed(b"^XA^XFR:NOPE.ZPL^FS^FN1^FDx^FS^XZ")
    assert core.label_count == 0


def test_ribbon_flag_stops_thermal_transfer_but_not_direct_thermal():
    core = PrinterCore()
    core.set_fault("ribbon_out")
    stream = core.new_stream()
    (reply,) = stream.feed(LABEL + b"~HS")
    status = parse_host_status(reply.data)
    assert status.thermal_transfer and status.ribbon_out and not status.ready
    assert core.label_count == 0 and len(core.held) == 1

    core.clear_faults()  # the held label prints once the ribbon is back
    assert core.label_count == 1
    (reply,) = stream.feed(b"^XA^MTD^FO10,10^FDdirect thermal^FS^XZ~HS")
    status = parse_host_status(reply.data)
    # a direct-thermal printer's ribbon sensor sees no ribbon: the flag is set and means nothing
    assert not status.thermal_transfer and status.ribbon_out
    assert status.ready and "ribbon out" not in status.problems
    assert core.label_count == 2
