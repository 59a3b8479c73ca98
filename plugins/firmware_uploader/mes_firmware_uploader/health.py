"""Health of the uploader devices: each device's service asked directly, with its breaker state."""

from __future__ import annotations

import asyncio
from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck, Reason, Status
from mes_kernel.kernel import Kernel

from . import BREAKER_NAME, PLUGIN_NAME
from .uploaders import UploaderDevice, driver_pool, list_uploaders

DEVICE_TIMEOUT = 2.5
WHY = ("reason", "reason_code", "reason_params")


async def device_health(kernel: Kernel, device: UploaderDevice) -> dict[str, Any]:
    """One device: UP when its uploader answers; DOWN with the reason when not (never raises).
    ``reason`` in English, ``reason_code`` and ``reason_params`` for the dashboard (:class:`Reason`;
    a third-party driver's plain text has no code)."""
    try:
        driver = await driver_pool(kernel).get(device)
        result = await asyncio.wait_for(driver.health(), DEVICE_TIMEOUT)
    except TimeoutError:
        why = Reason("DEVICE_NO_ANSWER", f"no answer within {DEVICE_TIMEOUT:g} s", {"seconds": DEVICE_TIMEOUT})
        result = CheckResult(Status.DOWN, why)
    except Exception as exc:  # a driver that cannot even load is a DOWN device, with the reason
        error = f"{type(exc).__name__}: {exc}"
        result = CheckResult(Status.DOWN, Reason("DEVICE_CHECK_FAILED", error, {"error": error}))
    breaker = await kernel.breakers.state(BREAKER_NAME, device.code)
    status = result.status
    if status is Status.UP and breaker.state != "closed":
        status = Status.DEGRADED
    why = result.why()
    if not result.reason and status is Status.DEGRADED:
        why = (
            Reason("DEVICE_BREAKER_HALF_OPEN", f"breaker {breaker.state}")
            if breaker.state == "half_open"
            else Reason("DEVICE_BREAKER_OPEN", f"breaker {breaker.state}")
        ).fields()
    return {
        "device": device.code,
        "driver": device.driver,
        "line": device.line_code,
        "station": device.station_code,
        "status": status.value,
        **why,
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
            return CheckResult(Status.UP, Reason("UPLOADERS_NONE", "no uploader devices configured"), {"devices": {}})
        worst = Status.worst([Status(d["status"]) for d in devices])
        bad = [d for d in devices if d["status"] != Status.UP.value]
        reason = (
            Reason(
                "DEVICES_NOT_UP",
                "; ".join(f"{d['device']}: {d['reason']}" for d in bad),
                {"problems": [{"device": d["device"], **{k: d.get(k) for k in WHY}} for d in bad]},
            )
            if bad
            else None
        )
        components = {
            d["device"]: CheckResult(
                Status(d["status"]),
                d.get("reason"),
                {k: v for k, v in d.items() if k not in WHY},
                reason_code=d.get("reason_code"),
                reason_params=d.get("reason_params") or {},
            )
            for d in devices
        }
        return CheckResult(worst, reason, {"devices": {d["device"]: d for d in devices}}, components=components)

    return [HealthCheck(name="firmware_uploader.devices", check=uploaders, critical=False, timeout=3.0)]
