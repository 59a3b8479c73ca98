"""A station's silence kept as ``station:<code>:silent`` alerts, whether or not a watchdog saw it.

A station is silent from its last sign of life (the server's receipt of its heartbeat) until the
next one, once that gap is over ``STATION_SILENT_AFTER_SECONDS``. The watchdog raises the alert
while the kernel runs; the heartbeat that ends a silence closes it — resolving the watchdog's alert
at that heartbeat, or recording the silence nobody watched (the kernel was down or restarting) as an
alert raised and resolved at once. Either way one alert per silence, raised at its start: the OEE's
downtime (docs/kpi.md, *Station silence*) and the alert history read the same intervals.

Both writers take the station's row first (PostgreSQL: a row lock; SQLite: its one writer at a
time) and check that its last heartbeat is still the one they read, so two heartbeats at once
(several workers) end one silence once, and the watchdog never raises for a silence a heartbeat
has just ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import Alert, Station
from ..errors import ServiceUnavailable

#: heartbeats of one station racing for its row before one gives up (503, the station retries)
ATTEMPTS = 5


def silent_key(code: str) -> str:
    """The key of a station's silence alerts."""
    return f"station:{code}:silent"


@dataclass(frozen=True)
class Heard:
    """What a heartbeat received at ``at`` ended: the silence since ``since`` (its previous
    heartbeat, or its registration when ``never_heard``) when ``alerts`` resolved or recorded one."""

    code: str
    since: datetime
    at: datetime
    never_heard: bool
    alerts: int

    @property
    def seconds(self) -> float:
        return (self.at - self.since).total_seconds()


async def record_heartbeat(
    *,
    session: AsyncSession,
    station_id: int,
    at: datetime,
    report: dict[str, Any],
    silent_after: float,
    beats: int,
) -> tuple[Station, Heard]:
    """Store a station's heartbeat received at ``at`` (``report``: the body as JSON; the last
    ``beats`` outbox depths are kept in ``recent_outbox_depths``) and end the silence it ends
    (:func:`end_silence`), in the session's transaction; the caller commits. A heartbeat that keeps
    losing its station's row to others is refused: 503 ``NOT_RECORDED``, retry."""
    for _ in range(ATTEMPTS):
        # FOR UPDATE on PostgreSQL (SQLite has no row locks: the conditional update below decides)
        query = select(Station).where(Station.id == station_id).with_for_update()
        station = (await session.execute(query.execution_options(populate_existing=True))).scalar_one()
        previous = station.last_heartbeat_at
        depths = [*(station.heartbeat or {}).get("recent_outbox_depths", []), report.get("outbox_depth", 0)]
        stored = await session.execute(
            update(Station)
            .where(Station.id == station_id, Station.last_heartbeat_at.is_not_distinct_from(previous))
            .values(
                last_heartbeat_at=max(at, previous) if previous else at,
                heartbeat={**report, "recent_outbox_depths": depths[-beats:]},
            )
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount:
            break
    else:
        raise ServiceUnavailable("heartbeat was not stored; retry", retry_after=1, code="NOT_RECORDED")
    since = previous or station.created_at
    ended = await end_silence(
        session=session, code=station.code, since=since, at=at, silent_after=silent_after, never_heard=not previous
    )
    return station, ended


async def end_silence(
    *, session: AsyncSession, code: str, since: datetime, at: datetime, silent_after: float, never_heard: bool
) -> Heard:
    """A sign of life at ``at`` after none since ``since``: resolve the station's open silence
    alerts — at ``at`` one raised in this silence (raised at ``since`` or later), at ``since`` one
    left open from an earlier silence (the station reported by then) — and, when the gap is over
    ``silent_after`` seconds and no alert covered it, record it as a resolved alert from ``since``
    to ``at``. The caller holds the station's row (see :func:`record_heartbeat`)."""
    key = silent_key(code)
    gap = (at - since).total_seconds()
    opened = (await session.execute(select(Alert).where(Alert.key == key, Alert.resolved_at.is_(None)))).scalars().all()
    covered = False
    for alert in opened:
        if alert.raised_at >= since:
            covered = True
            alert.resolved_at = max(at, alert.raised_at)
            # the history reads the whole silence, not its length when the alert was raised
            alert.detail = {**(alert.detail or {}), "silent_seconds": int(gap)}
            alert.message = f"Station {code} silent for {int(gap)} s"
        else:
            alert.resolved_at = max(since, alert.raised_at)
    recorded = 0
    if gap > silent_after and not covered:
        session.add(
            Alert(
                key=key,
                severity="warning",
                source="station",
                message=f"Station {code} silent for {int(gap)} s, "
                + (
                    "from its registration to its first heartbeat" if never_heard else "recorded when it reported again"
                ),
                detail={
                    "code": "STATION_SILENT",
                    "station": code,
                    "silent_seconds": int(gap),
                    "last_heartbeat_at": None if never_heard else since.isoformat(),
                    "never_heard": never_heard,
                    # recorded by the heartbeat that ended it: the kernel was down, or its watchdog
                    # had not raised the alert yet
                    "recorded_at_heartbeat": True,
                },
                raised_at=since,
                resolved_at=at,
            )
        )
        recorded = 1
    return Heard(code=code, since=since, at=at, never_heard=never_heard, alerts=len(opened) + recorded)


async def raise_silence(*, session: AsyncSession, station: Station, age: float) -> str | None:
    """The watchdog's alert for ``station``, silent for ``age`` seconds since its last heartbeat (a
    station never heard: since its registration, ``detail.never_heard``): raised at that moment
    (the silence's start, as the OEE counts it), unless an alert is open
    already or the station reported since it was read. Commits; answers the alert's message when it
    raised one, for the notifier."""
    key = silent_key(station.code)
    heard = station.last_heartbeat_at  # None: never heard, silent since its registration
    open_alert = select(Alert.id).where(Alert.key == key, Alert.resolved_at.is_(None))
    if (await session.execute(open_alert)).first():  # the usual case while silent: nothing written
        return None
    # Take the station's row while it still shows that heartbeat: a heartbeat racing this one either
    # committed first (no row matches: not silent any more) or waits and then resolves this alert.
    held = await session.execute(
        update(Station)
        .where(Station.id == station.id, Station.last_heartbeat_at.is_not_distinct_from(heard))
        .values(last_heartbeat_at=Station.last_heartbeat_at, updated_at=Station.updated_at)
        .execution_options(synchronize_session=False)
    )
    if not held.rowcount:
        await session.rollback()
        return None
    if (await session.execute(open_alert)).first():  # another worker's watchdog was first
        await session.rollback()
        return None
    message = f"Station {station.code} silent for {int(age)} s"
    if heard is None:
        message += ", never heard since its registration"
    session.add(
        Alert(
            key=key,
            severity="warning",
            source="station",
            message=message,
            detail={
                "code": "STATION_SILENT",
                "station": station.code,
                "silent_seconds": int(age),
                "last_heartbeat_at": heard.isoformat() if heard else None,
                "never_heard": heard is None,
            },
            raised_at=heard or station.created_at,
        )
    )
    await session.commit()
    return message
