"""The span a KPI report covers: a date range read in the reader's time zone (``tz``, default the
plant's), an optional line, and the shifts planned in it; and the ratio every report's figures are
given as.

Times in and out are UTC ``datetime``. The reader's zone decides where days and weeks start; shifts
start on the plant's wall clock (``MES_DASHBOARD_TIMEZONE``) whoever reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.models import Line, ShiftCalendarVersion
from mes_kernel.errors import NotFound, Unprocessable

from .kpi import plant_zone
from .shifts import Occurrence, Version, versioned_occurrences

MAX_RANGE = timedelta(days=366)
# Times a range may span: calendar arithmetic around a range (the next shift, the week's start)
# must stay within what a datetime holds (years 1-9999), and no plant records before 1900.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Range:
    """A half-open UTC range ``[since, until)``, the zone it was read in (``tz``: where its days
    and weeks start) and the plant's zone (where its shifts start)."""

    since: datetime
    until: datetime
    zone: ZoneInfo
    plant: ZoneInfo | None = None

    @property
    def shift_zone(self) -> ZoneInfo:
        """The zone the shift calendars' times are read in: the plant's (the reader's if unknown)."""
        return self.plant or self.zone


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``Unprocessable`` (``INVALID_TIMEZONE``) if there is none."""
    try:
        return plant_zone(name)
    except ValueError:
        raise Unprocessable(f"unknown time zone {name!r}", code="INVALID_TIMEZONE", field="tz") from None


def _moment(value: str, *, field: str, zone: ZoneInfo, end: bool, code: str = "INVALID_RANGE") -> datetime:
    """An ISO-8601 datetime with offset, or a date taken in ``zone`` (as ``to``: the end of that day)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, datetime.min.time(), zone)
            if end:
                moment = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise Unprocessable(
                    f"{field} {value!r} is no date as YYYY-MM-DD nor a date-time with its UTC offset "
                    "(2026-12-01T08:00:00+09:00)",
                    code=code,
                    field=field,
                )
        # years 1900-9998 as written, on its own clock (9998-12-31 as ``to`` in New York ends after
        # 9999-01-01 UTC, 1900-01-01 in Seoul begins in 1899 UTC: both are in range); a moment in
        # 9999 only as the end of 9998's last day
        written = moment.replace(tzinfo=None)
        wall_earliest, wall_latest = EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None)
        if not wall_earliest <= written <= wall_latest or (written == wall_latest and not end):
            moment = None
        else:
            moment = moment.astimezone(UTC)
    except ValueError:
        raise Unprocessable(f"{field} is not an ISO-8601 date or datetime", code=code, field=field) from None
    except OverflowError:  # 9999-12-31 as ``to`` (its next midnight), 0001-01-01 east of UTC
        moment = None
    if moment is None:
        raise Unprocessable(
            f"{field} lies outside the years 1900-9998",
            code=code,
            field=field,
            earliest=EARLIEST.isoformat(),
            latest=LATEST.isoformat(),
        )
    return moment


def parse_range(
    *, since: str | None, until: str | None, zone: ZoneInfo, now: datetime, plant: ZoneInfo | None = None
) -> Range:
    """``from``/``to`` as the API takes them, dates read in ``zone``; default: today in ``zone``.
    ``plant``: the zone shift times are read in (default ``zone``). ``INVALID_RANGE`` when
    reversed, empty, or longer than 366 days."""
    today = now.astimezone(zone).date()
    start = (
        _moment(since, field="from", zone=zone, end=False)
        if since
        else datetime.combine(today, datetime.min.time(), zone).astimezone(UTC)
    )
    stop = (
        _moment(until, field="to", zone=zone, end=True)
        if until
        else datetime.combine(today + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    )
    # the field named is the one the caller sent: a ``from`` after today with no ``to`` is the
    # ``from``'s fault, not that of a ``to`` nobody wrote
    field = "to" if until else "from"
    if stop <= start:
        # a date as ``to`` takes in its whole day: ``to`` the day before ``from`` ends where ``from``
        # starts, and ends before it as the caller wrote it
        empty = stop == start and not (until and len(until) == 10)
        message = "the range is empty: to is the same moment as from" if empty else "the range ends before it starts"
        raise Unprocessable(message, code="INVALID_RANGE", field=field)
    if stop - start > MAX_RANGE:
        raise Unprocessable(
            "the range is longer than 366 days", code="INVALID_RANGE", field=field, max_days=MAX_RANGE.days
        )
    return Range(start, stop, zone, plant)


async def line_named(session: AsyncSession, code: str | None) -> Line | None:
    """The line a report's ``line`` query parameter names (None for "all lines"); 422
    ``LINE_NOT_FOUND`` (``field: line``) when there is none: the report exists, its filter is
    wrong — as for a reversed range or an unknown zone."""
    if code is None:
        return None
    line = await _line(session, code)
    if line is None:
        raise Unprocessable(f"line {code} not found", code="LINE_NOT_FOUND", field="line", value=code)
    return line


async def line_at(session: AsyncSession, code: str) -> Line:
    """The line an address names (``/lines/{code}/shifts``); 404 ``LINE_NOT_FOUND`` when there is
    none: the resource itself does not exist."""
    line = await _line(session, code)
    if line is None:
        raise NotFound(f"line {code} not found", code="LINE_NOT_FOUND", field="line")
    return line


async def _line(session: AsyncSession, code: str) -> Line | None:
    return (await session.execute(select(Line).where(Line.code == code))).scalar_one_or_none()


def ratio(num: float, den: float) -> float | None:
    """``num / den`` to 4 places; None when ``den`` is 0 (nothing to divide by: unknown, not zero)."""
    return round(num / den, 4) if den else None


# ------------------------------------------------------------------ shifts planned in a range
async def calendars(session: AsyncSession, line: Line | None) -> dict[int, list[Version]]:
    """Each line's calendar versions (``{line id: [(valid_from, shifts), ...]}``, oldest first), of
    ``line`` alone when given. One query."""
    query = select(ShiftCalendarVersion.line_id, ShiftCalendarVersion.valid_from, ShiftCalendarVersion.shifts)
    if line is not None:
        query = query.where(ShiftCalendarVersion.line_id == line.id)
    out: dict[int, list[Version]] = {}
    for line_id, valid_from, shifts in await session.execute(query.order_by("line_id", "valid_from")):
        out.setdefault(line_id, []).append((valid_from, shifts))
    return out


class SharedOccurrences:
    """:func:`shifts.versioned_occurrences` of each calendar history once: lines that share one (as
    most of a plant's do) share its occurrences, one request's worth (≈ 0.5 ms of Python per line
    and month). Shift times are read in ``zone``: the plant's."""

    def __init__(self, *, since: datetime, until: datetime, zone: ZoneInfo) -> None:
        self.since, self.until, self.zone = since, until, zone
        self.seen: dict[str, list[Occurrence]] = {}

    def __call__(self, versions: list[Version]) -> list[Occurrence]:
        key = json.dumps([(at.isoformat(), shifts) for at, shifts in versions], sort_keys=True)
        if key not in self.seen:
            self.seen[key] = versioned_occurrences(versions, since=self.since, until=self.until, zone=self.zone)
        return self.seen[key]
