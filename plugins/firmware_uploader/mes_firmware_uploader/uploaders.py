"""Uploader devices: the kernel's ``Device`` rows of kind "firmware_uploader" and one driver for each."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.models import Device, Line, Station
from mes_kernel.errors import Conflict, NotFound, Unprocessable
from mes_kernel.kernel import Kernel

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN_NAME
from .drivers.base import FirmwareUploaderDriver


@dataclass(frozen=True)
class UploaderDevice:
    """What a flash needs to know about its device, detached from the session."""

    code: str
    driver: str
    config: dict[str, Any]
    line_code: str | None
    station_code: str | None


async def get_uploader(session: AsyncSession, code: str) -> UploaderDevice:
    """The enabled uploader device with this code; NotFound / 422 / 409 otherwise."""
    row = (
        await session.execute(
            select(Device, Line.code, Station.code)
            .outerjoin(Line, Line.id == Device.line_id)
            .outerjoin(Station, Station.id == Device.station_id)
            .where(Device.code == code)
        )
    ).first()
    if row is None:
        raise NotFound(f"device {code} not found", code="DEVICE_NOT_FOUND", device=code)
    device, line_code, station_code = row
    if device.kind != DEVICE_KIND:
        raise Unprocessable(
            f"device {code} is a {device.kind}, not a {DEVICE_KIND}", code="DEVICE_KIND_MISMATCH", device=code
        )
    if not device.enabled:
        raise Conflict(f"device {code} is disabled", code="DEVICE_DISABLED", device=code)
    return UploaderDevice(device.code, device.driver, dict(device.config or {}), line_code, station_code)


async def list_uploaders(session: AsyncSession) -> list[UploaderDevice]:
    """Every enabled uploader device."""
    rows = (
        await session.execute(
            select(Device, Line.code, Station.code)
            .outerjoin(Line, Line.id == Device.line_id)
            .outerjoin(Station, Station.id == Device.station_id)
            .where(Device.kind == DEVICE_KIND, Device.enabled.is_(True))
            .order_by(Device.code)
        )
    ).all()
    return [UploaderDevice(d.code, d.driver, dict(d.config or {}), line, st) for d, line, st in rows]


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


async def uploader_of_station(session: AsyncSession, station_code: str | None) -> UploaderDevice:
    """The one enabled uploader device of a station, for orders that name no device."""
    if not station_code:
        raise Unprocessable(
            "give the uploader device (or flash from a station that has one)", code="VALIDATION_ERROR", field="device"
        )
    rows = [d for d in await list_uploaders(session) if d.station_code == station_code]
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
