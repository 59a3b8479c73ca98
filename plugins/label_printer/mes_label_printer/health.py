"""Printer health from the printers themselves: each one's ``~HS`` answer, or its silence."""

from __future__ import annotations

import asyncio
from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck, Reason, ResolvedDevice, Status

from . import PLUGIN_NAME
from .drivers.base import PrinterError, PrinterTimeout
from .jobs import list_printers, printer_pool

PROBE_TIMEOUT = 4.0  # bounds one printer's probe, whatever its driver's own timeout
WHY = ("reason", "reason_code", "reason_params")


def _why(probe: dict[str, Any]) -> dict[str, Any]:
    return {k: probe.get(k) for k in WHY}


async def probe_printer(kernel: Any, device: ResolvedDevice) -> dict[str, Any]:
    """One printer's health: UP, DEGRADED (held back: paused, buffer full) or DOWN (with why).
    ``reason`` in English, ``reason_code`` and ``reason_params`` for the dashboard (:class:`Reason`)."""
    try:
        driver = printer_pool(kernel).driver_for(device)
    except Exception as exc:
        why = Reason("PRINTER_DRIVER_FAILED", f"driver does not load: {exc}", {"error": _error(exc)})
        return {"status": Status.DOWN.value, **why.fields(), "driver": device.driver}
    base = {"driver": device.driver}
    try:
        status = await asyncio.wait_for(driver.status(), PROBE_TIMEOUT)
    except (PrinterTimeout, TimeoutError):
        why = Reason("PRINTER_SILENT", "no reply to ~HS (printer silent)")
        return {**base, "status": Status.DOWN.value, **why.fields()}
    except (PrinterError, ValueError, OSError) as exc:
        why = Reason("PRINTER_ERROR", str(exc) or type(exc).__name__, {"error": _error(exc)})
        return {**base, "status": Status.DOWN.value, **why.fields()}
    problems = [why.fields() for why in status.blocking_reasons + status.holding_reasons]
    text = ", ".join(status.problems)
    if status.blocking_reasons:
        state, reason = Status.DOWN, Reason("PRINTER_NOT_READY", text, {"problems": problems})
    elif status.holding_reasons:
        state, reason = Status.DEGRADED, Reason("PRINTER_HELD", text, {"problems": problems})
    else:
        state, reason = Status.UP, None
    why = reason.fields() if reason else {"reason": None, "reason_code": None, "reason_params": {}}
    return {**base, "status": state.value, **why, "host_status": status.to_dict()}


def _error(exc: BaseException) -> str:
    """An exception as ``"<Class>: <message>"``: the dashboard words the kind of failure by its class."""
    return f"{type(exc).__name__}: {exc}".strip(": ") or type(exc).__name__


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
            none = Reason("PRINTERS_NONE", "no label printers configured")
            return CheckResult(Status.UP, reason=none, details={"printers": {}})
        probes = await asyncio.gather(*(probe_printer(kernel, d) for d in devices))
        by_code = {d.code: p for d, p in zip(devices, probes, strict=True)}
        worst = Status.worst([Status(p["status"]) for p in probes])
        bad = {code: p for code, p in by_code.items() if p["status"] != Status.UP.value}
        reason = (
            Reason(
                "DEVICES_NOT_UP",
                "; ".join(f"{code}: {p['reason']}" for code, p in bad.items()),
                {"problems": [{"device": code, **_why(p)} for code, p in bad.items()]},
            )
            if bad
            else None
        )
        components = {
            code: CheckResult(
                Status(p["status"]),
                p.get("reason"),
                {k: v for k, v in p.items() if k not in WHY},
                reason_code=p.get("reason_code"),
                reason_params=p.get("reason_params") or {},
            )
            for code, p in by_code.items()
        }
        return CheckResult(worst, reason=reason, details={"printers": by_code}, components=components)

    return [HealthCheck(name="printers", check=printers, critical=False, timeout=PROBE_TIMEOUT + 1.0)]
