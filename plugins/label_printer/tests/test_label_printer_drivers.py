"""The four drivers are registered in their stevedore namespace and load by name."""

from __future__ import annotations

import pytest
from mes_label_printer import DRIVER_NAMESPACE
from mes_label_printer.drivers.base import LabelPrinterDriver, PrinterNotReady, PrinterTimeout
from mes_label_printer.drivers.simulator import SimulatorDriver, simulated_printer

from mes_kernel.drivers import DriverLoadError, list_drivers, load_driver


def test_all_four_drivers_are_registered_by_the_distribution():
    drivers = {d.name: d for d in list_drivers(DRIVER_NAMESPACE)}
    assert {"zpl_tcp", "zpl_serial", "http_service", "simulator"} <= set(drivers)
    assert {drivers[n].package for n in ("zpl_tcp", "simulator")} == {"mes-label-printer"}


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("zpl_tcp", {"host": "127.0.0.1", "port": 9100}),
        ("zpl_serial", {"port": "/dev/null"}),
        ("http_service", {"base_url": "http://127.0.0.1:1", "printer_id": "P1"}),
        ("simulator", {"printer_id": "x"}),
    ],
)
def test_each_driver_loads_by_name_and_implements_the_base(name, settings):
    driver = load_driver(DRIVER_NAMESPACE, name, **settings)
    assert isinstance(driver, LabelPrinterDriver) and driver.name == name and driver.version


def test_bad_settings_name_the_driver():
    with pytest.raises(DriverLoadError, match="zpl_tcp"):
        load_driver(DRIVER_NAMESPACE, "zpl_tcp", hostname="x")


def test_secrets_are_redacted_from_descriptions():
    driver = load_driver(DRIVER_NAMESPACE, "http_service", base_url="http://h", printer_id="P", token="s3cret")
    assert driver.describe()["token"] == "***"


async def test_in_process_simulator_driver_prints_and_has_faults():
    driver = SimulatorDriver(printer_id="drivers-test", timeout=0.2)
    await driver.send(b"^XA^FDx^FS^XZ")
    printer = simulated_printer("drivers-test")
    assert printer.label_count == 1
    printer.set_fault("head_open")
    with pytest.raises(PrinterNotReady):
        await driver.send(b"^XA^FDx^FS^XZ")
    printer.clear_faults()
    printer.set_fault("no_reply")
    with pytest.raises(PrinterTimeout):
        await driver.status()
