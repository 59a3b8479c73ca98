"""The keyboard wedge tells a scanner's burst from a person's typing by the gaps between keys."""

from __future__ import annotations

import asyncio

import pytest
from mes_barcode_hid.drivers.wedge import WedgeDecoder, WedgeOutput, WedgeScanner


def keys(text: str, start: float, gap: float) -> list[tuple[str, float]]:
    return [(char, start + i * gap) for i, char in enumerate(text)]


def run(decoder: WedgeDecoder, events: list[tuple[str, float]]) -> list[WedgeOutput]:
    out: list[WedgeOutput] = []
    for char, at in events:
        out += decoder.feed(char, at)
    return out


def test_fast_burst_with_enter_is_a_scan():
    out = run(WedgeDecoder(), keys("LOT-2025-7\n", 10.0, 0.004))
    assert out == [WedgeOutput("scan", "LOT-2025-7")]


def test_slow_typing_is_passed_through_in_order_not_scanned():
    decoder = WedgeDecoder()
    out = run(decoder, keys("LOT-1\n", 10.0, 0.120))
    assert all(o.kind == "typed" for o in out)
    assert "".join(o.text for o in out) == "LOT-1\n"


def test_gap_at_exactly_the_threshold_still_counts_as_scanner():
    out = run(WedgeDecoder(max_gap=0.030), keys("SN-001\n", 0.0, 0.030))
    assert out == [WedgeOutput("scan", "SN-001")]


def test_one_slow_gap_inside_a_burst_makes_it_typing():
    events = keys("SN-0", 0.0, 0.005) + keys("01\n", 0.015 + 0.200, 0.005)
    out = run(WedgeDecoder(), events)
    assert WedgeOutput("typed", "SN-0") == out[0]
    # the fast tail after the pause is a complete burst of its own but shorter than min_length
    assert "".join(o.text for o in out) == "SN-001\n"
    assert all(o.kind == "typed" for o in out)


def test_slow_terminator_after_fast_keys_is_typing():
    events = keys("LOT-9", 0.0, 0.004) + [("\n", 0.016 + 0.5)]
    out = run(WedgeDecoder(), events)
    assert out == [WedgeOutput("typed", "LOT-9"), WedgeOutput("typed", "\n")]


def test_two_fast_keys_and_enter_are_shorter_than_a_code():
    out = run(WedgeDecoder(min_length=3), keys("ab\n", 0.0, 0.003))
    assert out == [WedgeOutput("typed", "ab"), WedgeOutput("typed", "\n")]


def test_person_typing_then_scanner_burst_then_person():
    events = keys("ok", 0.0, 0.150) + keys("SN-778899\n", 1.0, 0.006) + keys("x", 2.0, 0.1)
    decoder = WedgeDecoder()
    out = run(decoder, events) + decoder.expire(3.0)
    assert out == [
        WedgeOutput("typed", "o"),
        WedgeOutput("typed", "k"),
        WedgeOutput("scan", "SN-778899"),
        WedgeOutput("typed", "x"),
    ]


def test_held_keys_become_typing_after_the_deadline():
    decoder = WedgeDecoder(max_gap=0.030)
    assert decoder.feed("a", 5.0) == []
    assert decoder.pending == "a" and decoder.deadline == pytest.approx(5.030)
    assert decoder.expire(5.020) == []
    assert decoder.expire(5.031) == [WedgeOutput("typed", "a")]
    assert decoder.pending == ""


@pytest.mark.parametrize("gap_ms", [1, 5, 10, 20, 29])
def test_any_scanner_speed_under_the_threshold_scans(gap_ms):
    code = "0109501101530003\x1d10ABC"
    assert run(WedgeDecoder(), keys(code + "\r", 0.0, gap_ms / 1000)) == [WedgeOutput("scan", code)]


@pytest.mark.parametrize("gap_ms", [31, 60, 150, 400])
def test_any_human_speed_over_the_threshold_never_scans(gap_ms):
    out = run(WedgeDecoder(), keys("SN-12345\r", 0.0, gap_ms / 1000))
    assert not [o for o in out if o.kind == "scan"]


def test_configurable_threshold_and_tab_terminator():
    out = run(WedgeDecoder(max_gap=0.080, terminator="tab"), keys("LOT-5\t", 0.0, 0.060))
    assert out == [WedgeOutput("scan", "LOT-5")]


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_driver_scans_and_passes_typing_through_with_its_timer():
    clock = ManualClock()
    scanner = WedgeScanner(max_gap_ms=30, clock=clock)
    typed = asyncio.Queue()
    scanner.on_typed(typed.put_nowait)
    await scanner.open()
    for char in "]C1SN-42\n":
        clock.now += 0.005
        scanner.feed(char)
    scan = await asyncio.wait_for(anext(scanner.scans()), 10)
    assert (scan.code, scan.symbology, scan.source) == ("SN-42", "]C1", "wedge")

    scanner.feed("h")  # a person; released by the timer once the clock passes 30 ms without a key
    clock.now += 0.020
    await asyncio.sleep(0.1)  # the timer fires and re-arms, but on this clock the key is still young
    assert typed.empty() and scanner.decoder.pending == "h"
    clock.now += 0.011
    assert await asyncio.wait_for(typed.get(), 10) == "h"
    await scanner.close()
    assert scanner.status()["scans"] == 1 and not scanner.connected


async def test_a_late_timer_does_not_break_a_burst_the_clock_says_is_fast():
    """On a loaded machine the event loop may run the timer late; the keys' own times decide."""
    clock = ManualClock()
    scanner = WedgeScanner(max_gap_ms=30, clock=clock)
    typed: list[str] = []
    scanner.on_typed(typed.append)
    await scanner.open()
    for char in "SN-0001":
        clock.now += 0.004
        scanner.feed(char)
        await asyncio.sleep(0.05)  # far longer than max_gap in real time, between every key
    clock.now += 0.004
    scanner.feed("\r")
    scan = await asyncio.wait_for(anext(scanner.scans()), 10)
    assert scan.code == "SN-0001" and typed == []
    await scanner.close()
