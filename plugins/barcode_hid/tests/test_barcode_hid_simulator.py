"""The simulator and the common driver behaviour: loading by name, queueing, listeners, status."""

from __future__ import annotations

import asyncio

import pytest
from mes_barcode_hid import NAMESPACE
from mes_barcode_hid.drivers.base import ScannerDriver
from mes_barcode_hid.drivers.simulator import SimulatorScanner

from mes_kernel.drivers import DriverLoadError, list_drivers, load_driver


def test_all_four_drivers_are_registered_and_load_by_name(tmp_path):
    assert {d.name for d in list_drivers(NAMESPACE)} >= {"evdev", "serial", "wedge", "simulator"}
    settings = {
        "evdev": {"device": "/dev/input/event0"},
        "serial": {"port": str(tmp_path / "ttyACM0"), "terminator": "CRLF"},
        "wedge": {"max_gap_ms": 25},
        "simulator": {"codes": ["LOT-1"]},
    }
    for name, kwargs in settings.items():
        driver = load_driver(NAMESPACE, name, **kwargs)
        assert isinstance(driver, ScannerDriver)
        assert driver.name == name and driver.version
        assert not driver.connected  # constructing never touches the device


def test_bad_settings_name_the_driver():
    with pytest.raises(DriverLoadError, match="serial"):
        load_driver(NAMESPACE, "serial", port="/dev/x", terminator="nonsense")


async def test_trigger_emits_configured_codes_in_order_with_aim_split():
    scanner = SimulatorScanner(codes=["LOT-A", "]Q1SN-B"], repeat=False)
    async with scanner:
        first, second = scanner.trigger(), scanner.trigger()
        assert scanner.trigger() is None
        assert scanner.trigger("SN-EXTRA").code == "SN-EXTRA"
    assert (first.code, first.symbology) == ("LOT-A", None)
    assert (second.code, second.symbology) == ("SN-B", "]Q1")
    assert [s.code async for s in scanner.scans()] == ["LOT-A", "SN-B", "SN-EXTRA"]


async def test_interval_emits_by_itself():
    scanner = SimulatorScanner(codes=["LOT-T1", "LOT-T2"], interval=0.01)
    await scanner.open()
    scans = scanner.scans()
    got = [await asyncio.wait_for(anext(scans), 20) for _ in range(3)]
    await scanner.close()
    assert [s.code for s in got] == ["LOT-T1", "LOT-T2", "LOT-T1"]


async def test_unplugged_simulator_emits_nothing_and_reports_it():
    scanner = SimulatorScanner(codes=["LOT-1"], connected=False)
    await scanner.open()
    assert scanner.trigger() is None
    assert scanner.status()["connected"] is False
    scanner.set_connected(True)
    assert scanner.trigger().code == "LOT-1"
    assert scanner.status()["last_scan_at"] is not None
    await scanner.close()


async def test_listeners_plain_and_async_and_a_failing_one_does_not_stop_scans():
    scanner = SimulatorScanner(codes=["LOT-L"])
    seen: list[str] = []
    seen_async: list[str] = []

    async def async_listener(scan):
        seen_async.append(scan.code)

    def broken(_scan):
        raise RuntimeError("listener bug")

    scanner.add_listener(seen.append)
    scanner.add_listener(async_listener)
    remove = scanner.add_listener(broken)
    await scanner.open()
    scanner.trigger()
    remove()
    scanner.trigger()
    await asyncio.sleep(0)
    await scanner.close()
    assert [s.code for s in seen] == ["LOT-L", "LOT-L"]
    assert seen_async == ["LOT-L", "LOT-L"]


async def test_a_full_queue_drops_the_oldest_and_counts_it():
    class Small(SimulatorScanner):
        queue_size = 2

    scanner = Small(codes=["A-1", "A-2", "A-3"], repeat=False)
    await scanner.open()
    for _ in range(3):
        scanner.trigger()
    await scanner.close()
    assert [s.code async for s in scanner.scans()] == ["A-2", "A-3"]
    assert scanner.dropped == 1 and scanner.status()["dropped"] == 1


async def test_reopen_after_close_gives_a_fresh_stream():
    scanner = SimulatorScanner(codes=["LOT-R"])
    await scanner.open()
    scanner.trigger()
    await scanner.close()
    assert [s.code async for s in scanner.scans()] == ["LOT-R"]
    await scanner.open()
    scanner.trigger("LOT-S")
    assert (await asyncio.wait_for(anext(scanner.scans()), 20)).code == "LOT-S"
    await scanner.close()
