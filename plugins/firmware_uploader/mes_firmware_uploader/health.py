"""Health of the uploader devices: each device's service asked directly, with its breaker state."""

from __future__ import annotations

import asyncio
from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck, Status
from mes_kernel.kernel import Kernel

from . import BREAKER_NAME, PLUGIN_NAME
from .uploaders import UploaderDevice, driver_pool, list_uploaders

DEVICE_TIMEOUT = 2.5


async def device_health(kernel: Kernel, device: UploaderDevice) -> dict[str, Any]:
    """One device: UP when its uploader answers; DOWN with the reason when not (never raises)."""
    try:
        driver = await driver_pool(kernel).get(device)
        result = await asyncio.wait_for(driver.health(), DEVICE_TIMEOUT)
    except TimeoutError:
        result = CheckResult(Status.DOWN, f"no answer within {DEVICE_TIMEOUT:g} s")
    except Exception as exc:  # a driver that cannot even load is a DOWN device, with the reason
        result = CheckResult(Status.DOWN, f"{type(exc).__name__}: {exc}")
    breaker = await kernel.breakers.state(BREAKER_NAME, device.code)
    status = result.status
    if status is Status.UP and breaker.state != "closed":
        status = Status.DEGRADED
    return {
        "device": device.code,
        "driver": device.driver,
        "line": device.line_code,
        "station": device.station_code,
        "status": status.value,
        "reason": result.reason or (f"breaker {breaker.state}" if status is Status.DEGRADED else None),
        "breaker": breaker.state,
        "details": result.details,
    }


def in_scope(kernel: Kernel, devices: list[UploaderDevice]) -> list[UploaderDevice]:
    """The uploaders of the lines that enable this plugin (``kernel.enabled_lines``). With no line
    configured at all there is no scope yet and every uploader counts (as every plugin is enabled)."""
    if kernel.runtime is None or not kernel.runtime.lines:
        return devices
    lines = set(kernel.enabled_lines(PLUGIN_NAME))
    return [d for d in devices if d.line_code in lines]


async def devices_health(kernel: Kernel) -> list[dict[str, Any]]:
    """Every enabled uploader device of the lines enabling the plugin, checked concurrently."""
    async with kernel.sessionmaker() as session:
        devices = in_scope(kernel, await list_uploaders(session))
    return list(await asyncio.gather(*(device_health(kernel, d) for d in devices)))


def health_checks(kernel: Kernel) -> list[HealthCheck]:
    async def uploaders() -> CheckResult:
        devices = await devices_health(kernel)
        if not devices:
            return CheckResult(Status.UP, "no uploader devices configured", {"devices": {}})
        worst = Status.worst([Status(d["status"]) for d in devices])
        bad = [f"{d['device']}: {d['reason']}" for d in devices if d["status"] != Status.UP.value]
        components = {
            d["device"]: CheckResult(
                Status(d["status"]), d.get("reason"), {k: v for k, v in d.items() if k != "reason"}
            )
            for d in devices
        }
        return CheckResult(
            worst, "; ".join(bad) or None, {"devices": {d["device"]: d for d in devices}}, components=components
        )

    return [HealthCheck(name="firmware_uploader.devices", check=uploaders, critical=False, timeout=3.0)]
