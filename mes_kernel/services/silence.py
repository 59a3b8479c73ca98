"""A station's silence kept as ``station:<code>:silent`` alerts, whether or not a watchdog saw it.

A station is silent from its last sign of life (the server's receipt of its heartbeat) until the
next one, once that gap is over ``STATION_SILENT_AFTER_SECONDS``. The watchdog raises the alert
while the kernel runs; the heartbeat that ends a silence closes it — resolving the watchdog's alert
at that heartbeat, or recording the silence nobody watched (the kernel was down or restarting) as an
alert raised and resolved at once. Either way one alert per silence, raised at its start: the OEE's
downtime (docs/kpi.md, *Station silence*) and the alert history read the same intervals.

Each alert names the line the station was on (``detail.line_id``, null for none), so its silence
counts against that line however the station moves later. A line configuration that moves a silent
station (:func:`move_silence`, from ``mes_kernel.lines.apply`` and ``mes station move``) splits its
open alert at the move: the old line's ends there, the new line's starts there. A move while no alert
is open yet (the gap is still short, or no watchdog runs) is kept on the station
(``stations.line_moves``) until its next heartbeat: the alerts raised or recorded for that silence
are split at it the same way.

The writers take the station's row first (PostgreSQL: a row lock; SQLite: its one writer at a
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

from ..db.models import Alert, Line, Station
from ..errors import ServiceUnavailable

#: heartbeats of one station racing for its row before one gives up (503, the station retries)
ATTEMPTS = 5


def silent_key(code: str) -> str:
    """The key of a station's silence alerts."""
    return f"station:{code}:silent"


def line_spans(since: datetime, until: datetime | None, moves, line_id: int | None) -> list[tuple]:
    """A silence from ``since`` (to ``until``; None: still on) cut at the line moves made in it
    (``stations.line_moves``): ``[(start, end, line_id)]`` in order, the last on ``line_id``."""
    spans, start = [], since
    for move in moves:
        at = datetime.fromisoformat(move["at"])
        if start < at and (until is None or at < until):
            spans.append((start, at, move.get("from_line_id")))
            start = at
    return [*spans, (start, until, line_id)]


_LINE_KEYS = ("line_id", "moved_to_line_id", "moved_from_line_id")


async def _with_line_codes(session: AsyncSession, *details: dict) -> None:
    """Beside each line id of the ``details`` (``line_id``, ``moved_to_line_id``,
    ``moved_from_line_id``), the line's code (``line``, ``moved_to_line``, ``moved_from_line``;
    null for none): what people and ``GET /lines`` know a line by."""
    ids = {d[k] for d in details for k in _LINE_KEYS if d.get(k) is not None}
    codes = dict((await session.execute(select(Line.id, Line.code).where(Line.id.in_(ids)))).all()) if ids else {}
    for detail in details:
        for key in _LINE_KEYS:
            if key in detail:
                detail[key.removesuffix("_id")] = codes.get(detail[key])


async def _add_silence(
    session: AsyncSession, *, code: str, since: datetime, spans: list[tuple], last_seconds: int, words, **detail
) -> int:
    """Add a silence's alerts, one per span of :func:`line_spans`: raised at the span's start and
    resolved at its end (open for a last span still on), each naming its line, the line it came
    from and the line it moved to (ids and codes); ``silent_seconds`` up to the span's end (the last:
    ``last_seconds``); ``detail``: what they share; ``words(seconds, last)``: the message. Answers
    how many."""
    alerts = []
    for i, (start, end, on_line) in enumerate(spans):
        last = i == len(spans) - 1
        seconds = last_seconds if last else int((end - since).total_seconds())
        named = {"code": "STATION_SILENT", "station": code, "silent_seconds": seconds, **detail, "line_id": on_line}
        if i:
            named["moved_from_line_id"] = spans[i - 1][2]
        if not last:  # a line it was moved off during the silence: over there at the move
            named["moved_to_line_id"] = spans[i + 1][2]
        alerts.append(
            Alert(key=silent_key(code), severity="warning", source="station", message=words(seconds, last),
                  detail=named, raised_at=start, resolved_at=end)  # fmt: skip
        )
    await _with_line_codes(session, *(a.detail for a in alerts))
    session.add_all(alerts)
    return len(alerts)


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
        previous, moves = station.last_heartbeat_at, list(station.line_moves or ())
        depths = [*(station.heartbeat or {}).get("recent_outbox_depths", []), report.get("outbox_depth", 0)]
        stored = await session.execute(
            update(Station)
            .where(Station.id == station_id, Station.last_heartbeat_at.is_not_distinct_from(previous))
            .values(
                last_heartbeat_at=max(at, previous) if previous else at,
                heartbeat={**report, "recent_outbox_depths": depths[-beats:]},
                line_moves=[],  # this heartbeat ends the silence they were kept for
            )
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount:
            break
    else:
        raise ServiceUnavailable("heartbeat was not stored; retry", retry_after=1, code="NOT_RECORDED")
    since = previous or station.created_at
    ended = await end_silence(
        session=session,
        code=station.code,
        line_id=station.line_id,
        since=since,
        at=at,
        silent_after=silent_after,
        never_heard=not previous,
        moves=moves,
    )
    return station, ended


async def end_silence(
    *,
    session: AsyncSession,
    code: str,
    line_id: int | None,
    since: datetime,
    at: datetime,
    silent_after: float,
    never_heard: bool,
    moves=(),
) -> Heard:
    """A sign of life at ``at`` after none since ``since``: resolve the station's open silence
    alerts — at ``at`` one raised in this silence (raised at ``since`` or later, a line
    configuration's move included: :func:`move_silence`), at ``since`` one left open from an
    earlier silence (the station reported by then) — and, when the gap is over ``silent_after``
    seconds and no alert covered it, record it as a resolved alert from ``since`` to ``at`` on the
    station's line ``line_id`` (``detail.line_id``; None: on no line). The caller holds the
    station's row (see :func:`record_heartbeat`)."""
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
        how = "from its registration to its first heartbeat" if never_heard else "recorded when it reported again"
        recorded = await _add_silence(
            session,
            code=code,
            since=since,
            spans=line_spans(since, at, moves, line_id),
            last_seconds=int(gap),
            words=lambda seconds, last: f"Station {code} silent for {seconds} s, "
            + (how if last else "until a line configuration moved it"),
            last_heartbeat_at=None if never_heard else since.isoformat(),
            never_heard=never_heard,
            # recorded by the heartbeat that ended it: the kernel was down, or its watchdog had not
            # raised the alert yet
            recorded_at_heartbeat=True,
        )
    return Heard(code=code, since=since, at=at, never_heard=never_heard, alerts=len(opened) + recorded)


async def raise_silence(*, session: AsyncSession, station: Station, age: float) -> str | None:
    """The watchdog's alert for ``station``, silent for ``age`` seconds since its last heartbeat (a
    station never heard: since its registration, ``detail.never_heard``): raised at that moment
    (the silence's start, as the OEE counts it), on the line the station is on once its row is
    held (``detail.line_id``), unless an alert is open already or the station reported since it
    was read. A station moved to another line during the silence (``stations.line_moves``) gets a
    resolved alert for each line it was on, up to the move, and the open one from its last move.
    Commits; answers the alert's message when it raised one, for the notifier."""
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
    # read with the row held, not from the watchdog's earlier read: a line configuration may have
    # moved the station since (it takes the row too, so it moved it before or moves this alert after)
    line_id, moves = (
        await session.execute(select(Station.line_id, Station.line_moves).where(Station.id == station.id))
    ).one()
    message = f"Station {station.code} silent for {int(age)} s"
    if heard is None:
        message += ", never heard since its registration"
    since = heard or station.created_at
    await _add_silence(
        session,
        code=station.code,
        since=since,
        spans=line_spans(since, None, moves or (), line_id),
        last_seconds=int(age),
        words=lambda _seconds, last: message if last else f"{message}, until a line configuration moved it",
        last_heartbeat_at=heard.isoformat() if heard else None,
        never_heard=heard is None,
    )
    if moves:  # split now: a move from here on splits the open alert (move_silence)
        await session.execute(
            update(Station)
            .where(Station.id == station.id)
            .values(line_moves=[], updated_at=Station.updated_at)
            .execution_options(synchronize_session=False)
        )
    await session.commit()
    return message


async def move_silence(*, session: AsyncSession, station: Station, line_id: int | None, at: datetime) -> Alert | None:
    """A line configuration moves ``station`` to line ``line_id`` (None: off every line) at ``at``
    while it may be silent: its open silence alert, which counts against the line it names, is
    resolved at the move (``detail.moved_to_line_id``, ``silent_seconds`` up to the move) and a new
    one opened for the rest of the silence — same key and ``last_heartbeat_at``, raised at the move,
    ``detail.line_id`` the new line, ``detail.moved_from_line_id`` the line the resolved one names
    (the station's line before, unless its row was changed by hand during the silence) — so
    the old line's downtime ends at the move and the new line's starts there (docs/kpi.md,
    *Station silence*). The next heartbeat resolves the new alert as any other (:func:`end_silence`:
    it was raised after the last heartbeat). An open alert raised before alerts named their line
    (no ``detail.line_id``) is given the station's line before the move and raised at the last
    heartbeat its detail names — what the OEE counted it from. An alert raised before the last
    heartbeat, left open from an earlier silence, is resolved at that heartbeat (as
    :func:`end_silence` does) and not carried on: the station reported since. With no alert of the
    current silence open, the move is kept (``stations.line_moves``) for the alert that the
    watchdog or the next heartbeat writes later (:func:`raise_silence`, :func:`end_silence`).

    Call it before changing ``station.line_id``, in the transaction that changes it (the caller
    commits). It takes the station's row first, as the heartbeat and the watchdog do, so none of
    them writes this silence's alerts meanwhile; the station is read again under it. Answers the new
    alert, or None when no silence alert of the current silence was open."""
    await session.execute(
        update(Station)
        .where(Station.id == station.id)
        .values(line_id=Station.line_id, updated_at=Station.updated_at)
        .execution_options(synchronize_session=False)
    )
    query = select(Station).where(Station.id == station.id).execution_options(populate_existing=True)
    station = (await session.execute(query)).scalar_one()
    key = silent_key(station.code)
    if station.line_id == line_id:
        return None
    query = select(Alert).where(Alert.key == key, Alert.resolved_at.is_(None)).order_by(Alert.raised_at, Alert.id)
    opened = (await session.execute(query)).scalars().all()
    since = station.last_heartbeat_at or station.created_at
    silent = []
    for alert in opened:
        if alert.raised_at < since:  # left open from an earlier silence: over at the heartbeat after it
            alert.resolved_at = since
            continue
        detail = dict(alert.detail or {})
        if "line_id" not in detail:
            detail["line_id"] = station.line_id
            try:
                alert.raised_at = min(alert.raised_at, datetime.fromisoformat(detail["last_heartbeat_at"]))
            except (KeyError, TypeError, ValueError):
                pass
        moment = max(at, alert.raised_at)
        alert.resolved_at = moment
        alert.detail = {**detail, "silent_seconds": int((moment - since).total_seconds()), "moved_to_line_id": line_id}
        silent.append(alert)
    if not silent:  # no alert of this silence yet: split the one written later at this move
        if since < at:
            station.line_moves = [*(station.line_moves or ()), {"at": at.isoformat(), "from_line_id": station.line_id}]
        return None
    last, seconds = silent[-1], int((moment - since).total_seconds())
    moved = Alert(
        key=key,
        severity=last.severity,
        source="station",
        message=f"Station {station.code} silent for {seconds} s, moved by a line configuration",
        detail={
            "code": "STATION_SILENT",
            "station": station.code,
            "silent_seconds": seconds,
            "last_heartbeat_at": (last.detail or {}).get("last_heartbeat_at"),
            "never_heard": (last.detail or {}).get("never_heard", station.last_heartbeat_at is None),
            "line_id": line_id,
            "moved_from_line_id": last.detail["line_id"],
        },
        raised_at=moment,
    )
    await _with_line_codes(session, *(a.detail for a in silent), moved.detail)
    session.add(moved)
    return moved
