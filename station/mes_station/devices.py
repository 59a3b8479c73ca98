"""The station's devices: drivers loaded by name, each inside its own error boundary, reloadable live.

Devices are keyed by the server's device code (or, for a device only ``station.toml`` declares, by its
role word). ``get("printer")`` finds a device by key or by the role its plugin's station extension
gives its kind, so the agent's actions work whatever the devices are called.
"""

from __future__ import annotations

import asyncio
import inspect
import json
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

    @property
    def fingerprint(self) -> str:
        cfg = self.config
        return json.dumps([cfg.namespace, cfg.driver, cfg.settings], sort_keys=True, default=str)

    def driver_report(self) -> dict[str, Any]:
        """The heartbeat's ``drivers[key]`` entry."""
        report: dict[str, Any] = {"name": self.config.driver, "loaded": self.loaded, "role": self.config.role}
        if self.config.shared:
            report["shared"] = True
        if self.config.kind:
            report["kind"] = self.config.kind
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
        for key, device in self.devices.items():
            if device.driver is None:
                _load_one(key, device)

    async def open_all(self, timeout: float = 5.0) -> None:
        """Open the loaded drivers that need opening (scanners); a failure is that device's error."""
        for key, device in self.devices.items():
            await _open_one(key, device, timeout)

    async def apply(self, configs: dict[str, DeviceConfig], timeout: float = 5.0) -> dict[str, list[str]]:
        """Make the set match ``configs`` without a restart: load new devices, reload those whose driver
        or settings changed, close and drop removed ones. Returns ``{"loaded", "reloaded", "unloaded"}`` keys."""
        changes: dict[str, list[str]] = {"loaded": [], "reloaded": [], "unloaded": []}
        for key in [k for k in self.devices if k not in configs]:
            await _close_one(self.devices.pop(key))
            changes["unloaded"].append(key)
        for key, cfg in configs.items():
            current = self.devices.get(key)
            fresh = Device(cfg)
            if current is not None and current.driver is not None and current.fingerprint == fresh.fingerprint:
                if current.config != cfg:  # same driver and settings, new code/kind/role: keep the driver
                    current.config = cfg
                continue
            if current is not None:
                await _close_one(current)
            _load_one(key, fresh)
            await _open_one(key, fresh, timeout)
            self.devices[key] = fresh
            changes["reloaded" if current is not None else "loaded"].append(key)
        return changes

    def device(self, role: str) -> Device:
        """The device keyed ``role``, else the first (by key) whose role word is ``role`` — the station's
        own devices before its line's shared ones; DeviceUnavailableError when there is none."""
        found = self.devices.get(role)
        if found is None:
            ordered = sorted(self.devices, key=lambda k: (self.devices[k].config.shared, k))
            found = next((self.devices[k] for k in ordered if self.devices[k].config.role == role), None)
        if found is None:
            raise DeviceUnavailableError(f"no {role} is configured for this station")
        return found

    def key_of(self, role: str) -> str | None:
        """The key (device code) of ``device(role)``, or None when there is none."""
        try:
            found = self.device(role)
        except DeviceUnavailableError:
            return None
        return next(k for k, d in self.devices.items() if d is found)

    def get(self, role: str) -> Any:
        """The loaded driver for ``role`` (a key or role word); raises DeviceUnavailableError naming why
        it is not there."""
        device = self.device(role)
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
            await _close_one(device)


def _load_one(key: str, device: Device) -> None:
    cfg = device.config
    try:
        device.driver = load_driver(cfg.namespace, cfg.driver, **cfg.settings)
    except DriverLoadError as exc:
        device.error = str(exc)
        log.error("device %s: %s", key, exc)
        return
    except Exception as exc:  # a driver raising something unexpected is still just one device
        device.error = f"{type(exc).__name__}: {exc}"
        log.exception("device %s: driver %s failed", key, cfg.driver)
        return
    device.error = None
    try:
        device.version = driver_version(device.driver)
    except Exception:
        device.version = "unknown"


async def _open_one(key: str, device: Device, timeout: float) -> None:
    opener = getattr(device.driver, "open", None)
    if device.driver is None or not inspect.iscoroutinefunction(opener):
        return
    try:
        await asyncio.wait_for(opener(), timeout)
    except Exception as exc:
        device.error = f"open failed: {type(exc).__name__}: {exc}"
        log.error("device %s: %s", key, device.error)


async def _close_one(device: Device) -> None:
    close = getattr(device.driver, "close", None) or getattr(device.driver, "aclose", None)
    if not callable(close):
        return
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
