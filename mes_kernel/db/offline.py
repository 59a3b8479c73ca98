"""Which months of process records are offline (detached or archived by ``mes db partitions
archive``), and from which day ``mes kpi rebuild`` may rewrite rollups without losing them.

A rollup hour counts records by their station time (``event_at``); a month is archived by the
server's receipt time. So an archived month's records count in its own hours and, when a
station's clock ran ahead, in some later ones: the archive keeps the latest station time of each
month's records (``archived_months.last_event_at``). A rebuild may start at the first UTC midnight
after both the end of the last archived month and the hour of the latest archived record —
before it, it would delete counts whose records it can no longer read.

A month whose records reach far beyond it (a station clock years ahead: ``9999-12-31``, ``2031``)
would push that start past today, or past the last date Python can hold; such a month is named in
``far``, and a rebuild is refused with a message saying which month and what to do — never a
traceback. ``mes db partitions archive`` no longer archives such a month (it names the records),
so only data archived before that check can hold one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# How far after its month's end a record's station time may lie and still be a clock slightly
# ahead; beyond it the archive refuses the month (mes_kernel.db.archive), and a month archived
# earlier with such a record is reported by name.
AHEAD = timedelta(days=31)
NEVER = datetime.max.replace(tzinfo=UTC)  # rebuild_from when a month's records reach year 9999


def _month_label(start: datetime) -> str:
    return f"{start.year:04d}-{start.month:02d}"


def _next_month(start: datetime) -> datetime:
    return datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=UTC)


def _midnight_at_or_after(moment: datetime) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == moment else day + timedelta(days=1)


@dataclass
class OfflineMonths:
    """``archived``: labels (``YYYY-MM``) of months whose records are offline; ``unfinished``: those
    an archive run is still taking out (their records' latest station time not known yet);
    ``rebuild_from``: the earliest UTC midnight a rebuild may start at (None: no month is offline;
    :data:`NEVER`: a month's records reach the end of the calendar); ``far``: months whose records'
    latest station time lies more than :data:`AHEAD` after the month's end, with that time."""

    archived: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    rebuild_from: datetime | None = None
    far: dict[str, datetime] = field(default_factory=dict)

    def blocked(self, now: datetime) -> bool:
        """True when no rebuild can run today: the earliest start lies after ``now``."""
        return self.rebuild_from is not None and self.rebuild_from > now

    def within(self, since: datetime) -> list[str]:
        """The offline months whose rollups a rebuild from ``since`` would rewrite."""
        if self.rebuild_from is None or since >= self.rebuild_from:
            return []
        return [label for label in self.archived if label >= _month_label(since)] or self.archived[-1:]


async def offline_months(session: AsyncSession) -> OfflineMonths:
    """Read ``archived_months`` (empty on SQLite, which has no partitions)."""
    query = "SELECT month_start, state, last_event_at FROM archived_months ORDER BY month_start"
    rows = (await session.execute(text(query))).all()
    found = OfflineMonths()
    bound = None
    for month_start, state, last_event_at in rows:
        start = _utc(month_start)
        found.archived.append(_month_label(start))
        if state == "detached":
            found.unfinished.append(_month_label(start))
        end = _next_month(start)
        if last_event_at is not None:
            latest = _utc(last_event_at)
            if latest > end + AHEAD:
                found.far[_month_label(start)] = latest
            end = max(end, _hour_after(latest))
        bound = end if bound is None else max(bound, end)
    if bound is not None:
        found.rebuild_from = NEVER if bound == NEVER else _midnight_at_or_after(bound)
    return found


async def archived_within(
    session: AsyncSession, since: datetime, until: datetime, *, behind: timedelta
) -> list[str]:
    """The offline months (``YYYY-MM``, oldest first) whose records may count in the rollup hours
    of ``[since, until)`` — what a report over that range still counts and a list of its records
    can no longer show. A month is archived by receipt and its records count by station time,
    which lies from ``behind`` before the month's start (the oldest station time accepted,
    ``STATION_TIME_MAX_AGE_DAYS``) to the month's latest station time (``last_event_at``; while
    the archive run is unfinished, not known yet: the month's end plus :data:`AHEAD`, beyond
    which the archive refuses a month). Empty on SQLite, which has no partitions."""
    query = "SELECT month_start, last_event_at FROM archived_months ORDER BY month_start"
    found = []
    for month_start, last_event_at in (await session.execute(text(query))).all():
        start = _utc(month_start)
        end = _next_month(start)
        end = max(end, _hour_after(_utc(last_event_at))) if last_event_at is not None else end + AHEAD
        if start - behind < until and end > since:
            found.append(_month_label(start))
    return found


def _hour_after(moment: datetime) -> datetime:
    """The end of ``moment``'s hour; :data:`NEVER` when that (or its midnight) is past year 9999."""
    try:
        end = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        _midnight_at_or_after(end)
    except OverflowError:
        return NEVER
    return end


def _utc(value) -> datetime:
    if isinstance(value, str):  # SQLite hands back text for a raw SELECT
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RollupsOffline(Exception):
    """A rebuild would rewrite rollups whose records are archived; the message says what to run."""

    def __init__(self, offline: OfflineMonths, since: datetime | None):
        self.offline = offline
        self.since = since
        if offline.far and offline.blocked(datetime.now(UTC)):
            months = ", ".join(f"{label} (up to {at:%Y-%m-%d %H:%M} UTC)" for label, at in offline.far.items())
            when = (
                "no rebuild can ever start after them"
                if offline.rebuild_from == NEVER
                else f"no rebuild can start before {offline.rebuild_from.date().isoformat()}"
            )
            message = (
                f"archived months hold records whose station time lies far after the month: {months} — a "
                f"station clock that was far off. Their counts sit in those hours and their records are "
                f"offline, so {when}. Restore the month (mes db partitions restore <dump>), correct or "
                "delete those records, archive it again, then rebuild"
            )
        elif offline.unfinished:
            message = (
                f"the archive of {', '.join(offline.unfinished)} is not finished (its records are offline, "
                "how far their rollups reach is not known yet): run `mes db partitions archive` again to "
                "finish it, then rebuild"
            )
        else:
            months = offline.within(since) if since else offline.archived
            first = offline.rebuild_from.date().isoformat()
            message = (
                f"{', '.join(months)} {'is' if len(months) == 1 else 'are'} archived: "
                f"a rebuild from {since.date().isoformat() if since else 'the start'} would delete "
                f"{'its' if len(months) == 1 else 'their'} rollups, and their records are no longer online to "
                f"count again. Rebuild with --since {first} or later (or restore the month first: "
                "mes db partitions restore <dump>)"
            )
        super().__init__(message)
