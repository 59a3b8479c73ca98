"""The heartbeat a station sends, and the clock offset its reply reveals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mes_station import __version__
from mes_station.devices import DeviceSet


async def heartbeat_body(
    devices: DeviceSet,
    *,
    outbox_depth: int,
    oldest_queued_age: float | None,
    config_version: int | None = None,
    driver_problems: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``POST /stations/heartbeat``: agent version, drivers, device health, outbox backlog, local clock,
    the configuration version it runs and the drivers missing or of the wrong version."""
    return {
        "agent_version": __version__,
        "config_version": config_version,
        "driver_problems": driver_problems or [],
        "drivers": devices.drivers_report(),
        "devices": await devices.devices_report(),
        "outbox_depth": outbox_depth,
        "oldest_queued_age_seconds": oldest_queued_age,
        "clock": datetime.now(UTC).isoformat(),
    }


def clock_offset(server_time: str, sent: float, received: float) -> float:
    """Server time minus local time (seconds), taking the request's midpoint as "now" locally."""
    server = datetime.fromisoformat(str(server_time).replace("Z", "+00:00"))
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    return server.timestamp() - (sent + received) / 2
