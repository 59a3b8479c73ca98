"""Uploader devices: the kernel's ``Device`` rows of kind "firmware_uploader" and one driver for each."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.contracts import ResolvedDevice, devices_for, resolve_device
from mes_kernel.errors import Unprocessable
from mes_kernel.kernel import Kernel

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN_NAME
from .drivers.base import FirmwareUploaderDriver

#: what a flash needs to know about its device, detached from the session (the kernel's resolved device)
UploaderDevice = ResolvedDevice


@dataclass(frozen=True)
class _Everyone:
    """The kernel's own callers (health checks, listings): not bound to a station."""

    kind: str = "user"
    station_id: int | None = None
    line_id: int | None = None


KERNEL = _Everyone()


async def get_uploader(session: AsyncSession, code: str, principal: Any = KERNEL) -> UploaderDevice:
    """The enabled uploader ``code`` as ``principal`` may use it; the kernel's device authority answers
    404 ``DEVICE_NOT_FOUND``, 403 ``DEVICE_NOT_ON_STATION``, 422 ``DEVICE_KIND_MISMATCH`` or 409 ``DEVICE_DISABLED``."""
    return await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)


async def list_uploaders(session: AsyncSession, principal: Any = KERNEL) -> list[UploaderDevice]:
    """Every enabled uploader device ``principal`` may use."""
    return await devices_for(session=session, principal=principal, kind=DEVICE_KIND)


class DriverPool:
    """One driver instance per device, rebuilt when the device's driver name or config changes.

    Kept so that connection pools (and a simulator's injected faults) live across flashes.
    """

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self._drivers: dict[str, tuple[str, FirmwareUploaderDriver]] = {}
        self._lock = asyncio.Lock()

    async def get(self, device: UploaderDevice) -> FirmwareUploaderDriver:
        fingerprint = json.dumps([device.driver, device.config], sort_keys=True, default=str)
        async with self._lock:
            cached = self._drivers.get(device.code)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            driver = self.kernel.load_driver(DRIVER_NAMESPACE, device.driver, **device.config)
            self._drivers[device.code] = (fingerprint, driver)
        if cached is not None:
            await cached[1].aclose()
        return driver

    async def close(self) -> None:
        async with self._lock:
            drivers, self._drivers = list(self._drivers.values()), {}
        for _fingerprint, driver in drivers:
            await driver.aclose()


def driver_pool(kernel: Kernel) -> DriverPool:
    """The plugin's driver pool, kept in ``kernel.state`` (created on first use)."""
    pool = kernel.state.get(f"{PLUGIN_NAME}.drivers")
    if pool is None:
        pool = kernel.state[f"{PLUGIN_NAME}.drivers"] = DriverPool(kernel)
    return pool


async def uploader_of_station(
    session: AsyncSession, station_code: str | None, principal: Any = KERNEL
) -> UploaderDevice:
    """The one enabled uploader device of a station, for orders that name no device."""
    if not station_code:
        raise Unprocessable(
            "give the uploader device (or flash from a station that has one)", code="VALIDATION_ERROR", field="device"
        )
    rows = [d for d in await list_uploaders(session, principal) if d.station_code == station_code]
    if not rows:
        raise Unprocessable(
            f"station {station_code} has no uploader device; name one in 'device'",
            code="NO_UPLOADER",
            station=station_code,
        )
    if len(rows) > 1:
        raise Unprocessable(
            f"station {station_code} has several uploaders ({', '.join(d.code for d in rows)}); name one",
            code="AMBIGUOUS_UPLOADER",
            station=station_code,
            devices=[d.code for d in rows],
        )
    return rows[0]
