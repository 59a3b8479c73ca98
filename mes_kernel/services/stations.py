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


async def move_station(*, session, code: str, line_code: str | None, actor: str, at: datetime) -> Station:
    """Put station ``code`` on line ``line_code`` (None: off every line) at ``at`` (aware UTC, the
    kernel's clock), in the caller's transaction (the caller commits, then announces the change).

    Its silence alert, if one is open, is split at the move (:func:`~.silence.move_silence`: the
    old line's downtime ends there, the new line's starts); both lines' ``config_version`` goes up
    (their stations follow); the change is audited. Moving a station to the line it is on changes
    nothing. Errors: 404 ``STATION_NOT_FOUND``; 422 ``LINE_NOT_FOUND`` (field ``line``); 409
    ``STATION_HAS_DEVICES`` while devices of its line are bound to it (take them out of that
    line's configuration first: they would be left on a line their station is not on)."""
    from sqlalchemy import update

    from ..audit import write_audit
    from ..db.models import Device, Line
    from ..errors import Conflict, NotFound, Unprocessable
    from ..lines import line_code_of
    from .silence import move_silence

    station = (await session.execute(select(Station).where(Station.code == code))).scalar_one_or_none()
    if station is None:
        raise NotFound(f"station {code} not found", code="STATION_NOT_FOUND")
    line_id = None
    if line_code is not None:
        line_id = (await session.execute(select(Line.id).where(Line.code == line_code))).scalar()
        if line_id is None:
            raise Unprocessable(f"line {line_code} not found", code="LINE_NOT_FOUND", field="line")
    if station.line_id == line_id:
        return station
    bound = select(Device.code).where(Device.station_id == station.id, Device.line_id == station.line_id)
    devices = list((await session.execute(bound.order_by(Device.code))).scalars())
    if devices and station.line_id is not None:
        raise Conflict(
            f"devices {', '.join(devices)} of the station's line are bound to it; take them out of that "
            "line's configuration first",
            code="STATION_HAS_DEVICES",
            devices=devices,
        )
    await move_silence(session=session, station=station, line_id=line_id, at=at)
    before = station.line_id
    before_code = await line_code_of(session, before)
    lines = [i for i in (before, line_id) if i is not None]
    await session.execute(update(Line).where(Line.id.in_(lines)).values(config_version=Line.config_version + 1))
    station.line_id = line_id
    await write_audit(session, actor=actor, action="update", entity="station", entity_id=code,
                      before={"line": before_code}, after={"line": line_code})
    await session.flush()
    return station
