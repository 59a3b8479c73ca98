"""The uploader drivers against the simulator service on a real 127.0.0.1 socket, and the in-process fake."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from mes_firmware_uploader.drivers import FirmwareImage, FirmwareUploaderDriver, FlashFailed
from mes_firmware_uploader.drivers.http_uploader import HttpUploaderDriver
from mes_firmware_uploader.drivers.simulator import SimulatorDriver
from mes_firmware_uploader.simulator import SimulatorServer

from mes_kernel.contracts import Status
from mes_kernel.drivers import list_drivers, load_driver


@pytest.fixture
def image(tmp_path: Path) -> FirmwareImage:
    data = bytes(range(256)) * 800
    path = tmp_path / "fw.bin"
    path.write_bytes(data)
    return FirmwareImage(path, hashlib.sha256(data).hexdigest(), len(data), "WIDGET", "1.2.0", "fw.bin")


@pytest.fixture
def service():
    with SimulatorServer(flash_seconds=0.1) as server:
        yield server


@pytest.fixture
async def http_driver(service):
    driver = HttpUploaderDriver(service.url, timeout=1.0, poll_interval=0.02, flash_timeout=5.0)
    yield driver
    await driver.aclose()


def test_both_drivers_are_registered_in_the_namespace():
    names = {d.name: d for d in list_drivers("mes.drivers.firmware_uploader")}
    assert {"http_uploader", "simulator"} <= set(names)
    assert names["simulator"].package == "mes-firmware-uploader"
    driver = load_driver("mes.drivers.firmware_uploader", "http_uploader", base_url="http://127.0.0.1:1")
    assert isinstance(driver, FirmwareUploaderDriver) and driver.version


def test_every_driver_method_is_documented():
    for name in ("flash", "health", "aclose", "describe"):
        assert getattr(FirmwareUploaderDriver, name).__doc__, name


async def test_http_driver_flashes_through_the_service_and_reports_progress(http_driver, service, image):
    seen: list[int] = []

    async def on_progress(percent: int, _stage: str) -> None:
        seen.append(percent)

    outcome = await http_driver.flash(serial_number="SN-1", image=image, on_progress=on_progress)
    assert outcome.sha256 == image.sha256
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(seen)
    flashes = httpx.get(f"{service.url}/flashes").json()["flashes"]
    assert [(f["serial"], f["sha256"], f["size"]) for f in flashes] == [("SN-1", image.sha256, image.size)]


async def test_http_driver_raises_http_error_on_5xx(http_driver, service, image):
    service.set_fault("http_5xx")
    with pytest.raises(httpx.HTTPStatusError):
        await http_driver.flash(serial_number="SN-1", image=image)
    assert (await http_driver.health()).status is Status.DOWN
    assert (await http_driver.health()).reason_params["status"] == 503


async def test_http_driver_times_out_when_service_never_answers(service, image):
    driver = HttpUploaderDriver(service.url, timeout=0.3)
    service.set_fault("timeout")
    try:
        with pytest.raises(httpx.TimeoutException):
            await driver.flash(serial_number="SN-1", image=image)
        health = await driver.health()
        assert health.status is Status.DOWN and "Timeout" in health.reason
    finally:
        await driver.aclose()


async def test_corrupted_transfer_is_a_flash_failure_not_an_http_error(http_driver, service, image):
    service.set_fault("corrupt", count=1)
    with pytest.raises(FlashFailed) as err:
        await http_driver.flash(serial_number="SN-1", image=image)
    assert err.value.reason == "TRANSFER_CORRUPTED"
    assert not isinstance(err.value, httpx.HTTPError)
    # the fault was for one upload only
    assert (await http_driver.flash(serial_number="SN-1", image=image)).sha256 == image.sha256


async def test_slow_flash_beyond_flash_timeout_fails(service, image):
    driver = HttpUploaderDriver(service.url, timeout=1.0, poll_interval=0.02, flash_timeout=0.2)
    service.set_fault("slow", seconds=3)
    try:
        with pytest.raises(FlashFailed) as err:
            await driver.flash(serial_number="SN-1", image=image)
        assert err.value.reason == "FLASH_TIMEOUT"
    finally:
        await driver.aclose()


async def test_http_driver_health_up_and_unreachable_down(http_driver, image):
    assert (await http_driver.health()).status is Status.UP
    dead = HttpUploaderDriver("http://127.0.0.1:9", timeout=0.5)
    try:
        result = await dead.health()
        assert result.status is Status.DOWN and "unreachable" in result.reason
    finally:
        await dead.aclose()


def test_simulator_service_rejects_unknown_fault(service):
    response = httpx.put(f"{service.url}/admin/faults", json={"fault": "meltdown"})
    assert response.status_code == 400 and "unknown fault" in response.json()["message"]


async def test_simulator_driver_faults(image):
    driver = SimulatorDriver(flash_seconds=0.01, timeout=0.05)
    assert (await driver.flash(serial_number="SN-1", image=image)).sha256 == image.sha256
    driver.inject("http_5xx", count=1)
    with pytest.raises(httpx.HTTPStatusError):
        await driver.flash(serial_number="SN-1", image=image)
    driver.inject("timeout")
    with pytest.raises(httpx.ReadTimeout):
        await driver.flash(serial_number="SN-1", image=image)
    assert (await driver.health()).status is Status.DOWN
    assert (await driver.health()).reason_code == "UPLOADER_SILENT"
    driver.inject("corrupt")
    with pytest.raises(FlashFailed):
        await driver.flash(serial_number="SN-1", image=image)
    driver.inject(None)
    assert (await driver.health()).status is Status.UP
    assert len(driver.flashed) == 1
