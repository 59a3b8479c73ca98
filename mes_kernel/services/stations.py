"""Station watchdog: alerts for a station gone silent or a backlog that keeps growing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from ..db.models import Station
from .silence import raise_silence, silent_key


def backlog_growing(depths: list[int], beats: int) -> bool:
    """True when the last ``beats`` heartbeats each reported a larger outbox than the one before."""
    recent = depths[-beats:]
    return len(recent) == beats and all(b > a for a, b in zip(recent, recent[1:], strict=False))


async def watch_stations(kernel, notifier, *, beats: int = 5, watching_since: datetime | None = None) -> None:
    """One round: raise or resolve each station's silence and backlog alerts.

    A silence alert is raised at the station's last heartbeat (``mes_kernel.services.silence``);
    the heartbeat that ends it resolves it. ``watching_since``: when the watchdog resumed after a
    pause (the kernel started, or the database answers again): a station heard last before then
    could not report while nobody listened, so it gets ``STATION_SILENT_AFTER_SECONDS`` from then
    to report before an alert goes out. Its silence counts all the same (the OEE reads the
    station's row, and its next heartbeat records the gap)."""
    silent_after = kernel.settings.station_silent_after_seconds
    now = kernel.clock()
    async with kernel.sessionmaker() as session:
        stations = (await session.execute(select(Station))).scalars().all()
    for station in stations:
        key = silent_key(station.code)
        # never heard: silent since its registration, as the OEE counts it (a line whose station
        # never started cannot work; the alert says why its availability is what it is)
        since = station.last_heartbeat_at or station.created_at
        age = (now - since).total_seconds()
        just_back = (
            watching_since is not None
            and since < watching_since
            and (now - watching_since).total_seconds() <= silent_after
        )
        if age <= silent_after:
            if station.last_heartbeat_at is not None:  # (registered just now: nothing to resolve)
                # the heartbeat resolved it already; this closes one raised before it did so
                await notifier.resolve(key, f"Station {station.code} reports again")
        elif not just_back:
            async with kernel.sessionmaker() as session:
                if message := await raise_silence(session=session, station=station, age=age):
                    notifier.announce(message)
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
