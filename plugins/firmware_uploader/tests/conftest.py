"""Fixtures for the firmware-uploader tests: the simulator service on a real socket, images, devices."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mes_firmware_uploader.simulator import SimulatorServer
from sqlalchemy import select

from mes_kernel.db.models import Device, Station


@pytest.fixture
def uploader_service():
    """The uploader simulator service on 127.0.0.1, a free port, flashes taking 0.1 s."""
    with SimulatorServer(flash_seconds=0.1) as server:
        yield server


@pytest.fixture
def add_uploader(kernel) -> Callable[..., Awaitable[str]]:
    """``await add_uploader("UPL-01", base_url)`` registers an ``http_uploader`` device (or another driver)."""

    async def add(
        code: str,
        base_url: str | None = None,
        *,
        driver: str = "http_uploader",
        station: str | None = None,
        **config: Any,
    ) -> str:
        if base_url is not None:
            config = {"base_url": base_url, "timeout": 1.0, "poll_interval": 0.02, **config}
        async with kernel.sessionmaker() as session:
            station_id = line_id = None
            if station:
                row = (await session.execute(select(Station.id, Station.line_id).where(Station.code == station))).one()
                station_id, line_id = row.id, row.line_id
            session.add(
                Device(
                    code=code,
                    kind="firmware_uploader",
                    driver=driver,
                    config=config,
                    station_id=station_id,
                    line_id=line_id,
                )
            )
            await session.commit()
        return code

    return add


@pytest.fixture
def upload_image(client, manager_headers):
    """``await upload_image(product, version, data)`` posts an image as multipart; returns the response."""

    async def upload(product: str, version: str, data: bytes = b"", *, headers=None, name: str = "fw.bin"):
        data = data or hashlib.sha256(f"{product}{version}".encode()).digest() * 4096
        return await client.post(
            "/api/v1/firmware/images",
            data={"product": product, "version": version},
            files={"file": (name, data, "application/octet-stream")},
            headers=headers or manager_headers,
        )

    return upload
