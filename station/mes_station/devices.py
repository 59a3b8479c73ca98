"""The station's devices: drivers loaded by name per role, each inside its own error boundary."""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any

from mes_kernel.drivers import DriverLoadError, driver_version, load_driver
from mes_station.config import DeviceConfig
from mes_station.errors import DeviceUnavailableError

log = logging.getLogger(__name__)

#: methods a driver may offer to report its health, tried in this order
_HEALTH_METHODS = ("health", "status", "check")


@dataclass
class Device:
    """One configured device: its driver instance, or the reason it is missing."""

    config: DeviceConfig
    driver: Any = None
    error: str | None = None
    version: str | None = None

    @property
    def loaded(self) -> bool:
        return self.driver is not None

    def driver_report(self) -> dict[str, Any]:
        """The heartbeat's ``drivers[role]`` entry."""
        report: dict[str, Any] = {"name": self.config.driver, "loaded": self.loaded}
        if self.version:
            report["version"] = self.version
        if self.error:
            report["error"] = self.error
        return report


class DeviceSet:
    """Loads every configured device; one broken driver never stops the others or the agent."""

    def __init__(self, configs: dict[str, DeviceConfig]):
        self.devices: dict[str, Device] = {role: Device(cfg) for role, cfg in configs.items()}

    def load(self) -> None:
        for role, device in self.devices.items():
            cfg = device.config
            try:
                device.driver = load_driver(cfg.namespace, cfg.driver, **cfg.settings)
            except DriverLoadError as exc:
                device.error = str(exc)
                log.error("device %s: %s", role, exc)
                continue
            except Exception as exc:  # a driver raising something unexpected is still just one device
                device.error = f"{type(exc).__name__}: {exc}"
                log.exception("device %s: driver %s failed", role, cfg.driver)
                continue
            device.error = None
            try:
                device.version = driver_version(device.driver)
            except Exception:
                device.version = "unknown"

    async def open_all(self, timeout: float = 5.0) -> None:
        """Open the loaded drivers that need opening (scanners); a failure is that device's error."""
        for role, device in self.devices.items():
            opener = getattr(device.driver, "open", None)
            if device.driver is None or not inspect.iscoroutinefunction(opener):
                continue
            try:
                await asyncio.wait_for(opener(), timeout)
            except Exception as exc:
                device.error = f"open failed: {type(exc).__name__}: {exc}"
                log.error("device %s: %s", role, device.error)

    def get(self, role: str) -> Any:
        """The loaded driver for ``role``; raises DeviceUnavailableError naming why it is not there."""
        device = self.devices.get(role)
        if device is None:
            raise DeviceUnavailableError(f"no {role} is configured for this station")
        if device.driver is None:
            raise DeviceUnavailableError(f"the {role} driver {device.config.driver!r} is not loaded: {device.error}")
        return device.driver

    def drivers_report(self) -> dict[str, dict[str, Any]]:
        return {role: d.driver_report() for role, d in self.devices.items()}

    async def devices_report(self, timeout: float = 2.0) -> dict[str, dict[str, Any]]:
        """The heartbeat's ``devices``: ``{role: {status, detail}}``, probed concurrently with a timeout."""
        roles = list(self.devices)
        results = await asyncio.gather(*(self._probe(self.devices[r], timeout) for r in roles))
        return dict(zip(roles, results, strict=True))

    async def _probe(self, device: Device, timeout: float) -> dict[str, Any]:
        if device.driver is None:
            return {"status": "down", "detail": device.error or "driver not loaded"}
        for name in _HEALTH_METHODS:
            method = getattr(device.driver, name, None)
            if not callable(method):
                continue
            try:
                answer = method()
                if inspect.isawaitable(answer):
                    answer = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                return {"status": "down", "detail": f"{name}() timed out after {timeout:g} s"}
            except Exception as exc:
                return {"status": "down", "detail": f"{name}() failed: {type(exc).__name__}: {exc}"}
            return _interpret(answer)
        return {"status": "up", "detail": "driver loaded (reports no health)"}

    async def close(self) -> None:
        for device in self.devices.values():
            close = getattr(device.driver, "close", None) or getattr(device.driver, "aclose", None)
            if not callable(close):
                continue
            try:
                answer = close()
                if inspect.isawaitable(answer):
                    await asyncio.wait_for(answer, 2.0)
            except Exception as exc:
                log.warning("closing %s failed: %s", device.config.role, exc)


def _interpret(answer: Any) -> dict[str, Any]:
    """Turn whatever a driver's health method returned into ``{status, detail}``."""
    if isinstance(answer, bool):
        return {"status": "up" if answer else "down", "detail": ""}
    if isinstance(answer, dict):
        status = answer.get("status")
        if status is None and "connected" in answer:  # a scanner's status()
            status = "up" if answer["connected"] else "down"
        if status is None and "ok" in answer:
            status = "up" if answer["ok"] else "down"
        detail = answer.get("detail") or answer.get("reason") or answer.get("error") or answer.get("message") or ""
        # Keep the driver's own plain facts (e.g. a scanner's last_scan_at) for the server's health.
        extra = {k: v for k, v in answer.items() if isinstance(v, str | int | float | bool) or v is None}
        return {**extra, "status": str(getattr(status, "value", status) or "unknown").lower(), "detail": str(detail)}
    if hasattr(answer, "ready") and hasattr(answer, "problems"):  # a printer's PrinterStatus
        return {"status": "up" if answer.ready else "down", "detail": ", ".join(answer.problems)}
    status = getattr(answer, "status", None)
    if status is not None:
        detail = getattr(answer, "reason", None) or getattr(answer, "detail", None) or ""
        return {"status": str(getattr(status, "value", status)).lower(), "detail": str(detail)}
    if answer is None:
        return {"status": "up", "detail": ""}
    return {"status": str(answer).lower(), "detail": ""}
