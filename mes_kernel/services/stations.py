"""Station watchdog: alerts for a station gone silent or a backlog that keeps growing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from ..db.models import Station


def backlog_growing(depths: list[int], beats: int) -> bool:
    """True when the last ``beats`` heartbeats each reported a larger outbox than the one before."""
    recent = depths[-beats:]
    return len(recent) == beats and all(b > a for a, b in zip(recent, recent[1:], strict=False))


async def watch_stations(kernel, notifier, *, beats: int = 5) -> None:
    """One round: raise or resolve each station's silence and backlog alerts."""
    silent_after = kernel.settings.station_silent_after_seconds
    now = datetime.now(UTC)
    async with kernel.sessionmaker() as session:
        stations = (await session.execute(select(Station))).scalars().all()
    for station in stations:
        if station.last_heartbeat_at is None:
            continue  # registered, never started: not an outage
        key = f"station:{station.code}:silent"
        age = (now - station.last_heartbeat_at).total_seconds()
        if age > silent_after:
            await notifier.alert(
                key,
                severity="warning",
                source="station",
                message=f"Station {station.code} silent for {int(age)} s",
                detail={
                    "code": "STATION_SILENT",
                    "station": station.code,
                    "silent_seconds": int(age),
                    "last_heartbeat_at": station.last_heartbeat_at.isoformat(),
                },
            )
        else:
            await notifier.resolve(key, f"Station {station.code} reports again")
        depths = (station.heartbeat or {}).get("recent_outbox_depths", [])
        key = f"station:{station.code}:backlog"
        if backlog_growing(depths, beats):
            await notifier.alert(
                key,
                severity="warning",
                source="station",
                message=f"Station {station.code} outbox keeps growing ({depths[-1]} queued)",
                detail={
                    "code": "STATION_BACKLOG",
                    "station": station.code,
                    "queued": depths[-1],
                    "recent_outbox_depths": depths,
                },
            )
        elif depths and depths[-1] <= (depths[-2] if len(depths) > 1 else depths[-1]):
            await notifier.resolve(key, f"Station {station.code} outbox is draining")
