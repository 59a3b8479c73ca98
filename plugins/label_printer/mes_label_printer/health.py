"""Printer health from the printers themselves: each one's ``~HS`` answer, or its silence."""

from __future__ import annotations

import asyncio
from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck, ResolvedDevice, Status

from . import PLUGIN_NAME
from .drivers.base import PrinterError, PrinterTimeout
from .jobs import list_printers, printer_pool

PROBE_TIMEOUT = 4.0  # bounds one printer's probe, whatever its driver's own timeout


async def probe_printer(kernel: Any, device: ResolvedDevice) -> dict[str, Any]:
    """One printer's health: UP, DEGRADED (held back: paused, buffer full) or DOWN (with why)."""
    try:
        driver = printer_pool(kernel).driver_for(device)
    except Exception as exc:
        return {
            "status": Status.DOWN.value,
            "reason": f"driver does not load: {exc}",
            "driver": device.driver,
        }
    base = {"driver": device.driver}
    try:
        status = await asyncio.wait_for(driver.status(), PROBE_TIMEOUT)
    except (PrinterTimeout, TimeoutError):
        return {**base, "status": Status.DOWN.value, "reason": "no reply to ~HS (printer silent)"}
    except (PrinterError, ValueError, OSError) as exc:
        return {**base, "status": Status.DOWN.value, "reason": str(exc) or type(exc).__name__}
    if status.blocking_problems:
        state, reason = Status.DOWN, ", ".join(status.problems)
    elif status.holding_problems:
        state, reason = Status.DEGRADED, ", ".join(status.problems)
    else:
        state, reason = Status.UP, None
    return {**base, "status": state.value, "reason": reason, "host_status": status.to_dict()}


def in_scope(kernel: Any, devices: list[ResolvedDevice]) -> list[ResolvedDevice]:
    """The printers of the lines that enable this plugin (``kernel.enabled_lines``). With no line
    configured at all there is no scope yet and every printer counts (as every plugin is enabled)."""
    runtime = getattr(kernel, "runtime", None)
    if runtime is None or not runtime.lines:
        return devices
    lines = set(kernel.enabled_lines(PLUGIN_NAME))
    return [d for d in devices if d.line_code in lines]


def printer_checks(kernel: Any) -> list[HealthCheck]:
    """One check over the printers of the lines enabling the plugin, probed concurrently, each
    printer in the details (and one component per printer).

    Printers are devices configured at run time, so the check reads them on every run rather
    than once at start-up. Not critical: a printer down stops labels, not the MES.
    """

    async def printers() -> CheckResult:
        async with kernel.sessionmaker() as session:
            devices = in_scope(kernel, await list_printers(session))
        if not devices:
            return CheckResult(Status.UP, reason="no label printers configured", details={"printers": {}})
        probes = await asyncio.gather(*(probe_printer(kernel, d) for d in devices))
        by_code = {d.code: p for d, p in zip(devices, probes, strict=True)}
        worst = Status.worst([Status(p["status"]) for p in probes])
        reasons = [f"{code}: {p['reason']}" for code, p in by_code.items() if p["status"] != Status.UP.value]
        components = {
            code: CheckResult(Status(p["status"]), p.get("reason"), {k: v for k, v in p.items() if k != "reason"})
            for code, p in by_code.items()
        }
        return CheckResult(
            worst, reason="; ".join(reasons) or None, details={"printers": by_code}, components=components
        )

    return [HealthCheck(name="printers", check=printers, critical=False, timeout=PROBE_TIMEOUT + 1.0)]
