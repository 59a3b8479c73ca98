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
