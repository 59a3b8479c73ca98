"""A line's shift calendar: validation (no overlaps), and the shift occurrences inside a time range."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from mes_kernel.contracts import Name
from mes_kernel.errors import Unprocessable

WEEK_MINUTES = 7 * 24 * 60
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Shift(BaseModel):
    """One shift: local start and end (``HH:MM``; an end at or before the start ends the next day),
    the weekdays it starts on (Monday = 0) and the planned output of one occurrence. Numbers are
    JSON numbers (``"10"`` or ``true`` is refused, not read as 10 or 1); an unknown key is refused."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[Name, Field(min_length=1, max_length=64)]
    start: Annotated[str, Field(pattern=HHMM)]
    end: Annotated[str, Field(pattern=HHMM)]
    days: Annotated[list[Annotated[StrictInt, Field(ge=0, le=6)]], Field(min_length=1, max_length=7)] = [0, 1, 2, 3, 4]
    planned_output: Annotated[StrictInt, Field(ge=0, le=10_000_000)] = 0

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, days: list[int]) -> list[int]:
        if len(set(days)) != len(days):
            raise ValueError("a day is listed twice")
        return sorted(days)

    @property
    def minutes(self) -> tuple[int, int]:
        """Start and length in minutes."""
        start = _minutes(self.start)
        length = (_minutes(self.end) - start) % (24 * 60) or 24 * 60
        return start, length


class ShiftCalendarIn(BaseModel):
    """``PUT /lines/{code}/shifts``: the shifts, in force from ``effective_from`` (an ISO-8601
    datetime with offset, or a date: its midnight on the plant's clock; default now). An unknown
    key is refused (a misspelt ``effective_from`` would otherwise put the calendar in force now)."""

    model_config = ConfigDict(extra="forbid")

    shifts: Annotated[list[Shift], Field(max_length=24)]
    effective_from: Annotated[str | None, Field(max_length=64)] = None


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def check_no_overlap(shifts: list[Shift]) -> None:
    """``Unprocessable`` (``SHIFTS_OVERLAP``) when two shifts share a minute of the week, or two
    have one name — compared as people read them: ``Day``, ``day`` and the full-width ``ＤＡＹ``
    are one name (Unicode NFKC, then case folded)."""
    names = [unicodedata.normalize("NFKC", s.name).casefold() for s in shifts]
    if len(set(names)) != len(names):
        raise Unprocessable("two shifts have the same name", code="SHIFTS_OVERLAP", field="shifts")
    spans: list[tuple[int, int, str]] = []
    for shift in shifts:
        start, length = shift.minutes
        for day in shift.days:
            begin = day * 24 * 60 + start
            spans.append((begin, begin + length, shift.name))
            if begin + length > WEEK_MINUTES:  # Sunday night into Monday morning
                spans.append((begin - WEEK_MINUTES, begin + length - WEEK_MINUTES, shift.name))
    spans.sort()
    for (_, end_a, name_a), (start_b, _, name_b) in zip(spans, spans[1:], strict=False):
        if start_b < end_a:
            raise Unprocessable(
                f"shifts {name_a} and {name_b} overlap", code="SHIFTS_OVERLAP", field="shifts", shifts=[name_a, name_b]
            )


@dataclass(frozen=True)
class Occurrence:
    """One shift on one day, clipped to the range asked for."""

    shift: str
    start: datetime
    end: datetime
    full_seconds: float
    planned_output: int


def occurrences(shifts: list[dict[str, Any]], *, since: datetime, until: datetime, zone: ZoneInfo) -> list[Occurrence]:
    """Every shift occurrence overlapping ``[since, until)``, clipped to it, oldest first; its
    ``start`` and ``end`` in UTC.

    Shift times are wall-clock times in ``zone``: a shift across a daylight-saving change lasts
    from its start to its end on the wall clock — 01:00–04:00 lasts 2 h the night the clocks
    spring forward and 4 h the night they fall back — and ``full_seconds`` is that real length,
    over which its planned output is spread.
    """
    out = []
    first_day = since.astimezone(zone).date() - timedelta(days=1)
    last_day = until.astimezone(zone).date()
    day = first_day
    # built, not validated: what was stored passed the rules of its day (a name saved before blank
    # names were refused must not take the KPIs down)
    calendar = [Shift.model_construct(**raw) for raw in shifts]
    while day <= last_day:
        for shift in calendar:
            if day.weekday() not in shift.days:
                continue
            start_min, length = shift.minutes
            start = datetime.combine(day, time(start_min // 60, start_min % 60), zone)
            end_min = start_min + length
            end = datetime.combine(
                day + timedelta(days=end_min // (24 * 60)), time((end_min % (24 * 60)) // 60, end_min % 60), zone
            )
            # In UTC, as every time the KPIs compare them with: comparing datetimes of two different
            # zones asks both for their offset each time (the bisects over 30 days of hours cost more
            # than the queries when occurrences kept the plant's zone).
            start, end = start.astimezone(UTC), end.astimezone(UTC)
            lo, hi = max(start, since), min(end, until)
            if lo < hi:
                # its real length, taken in UTC: two times of one zone subtract as wall-clock times
                # (Python), which made a 01:00-04:00 shift 3 h on the days it lasts 2 or 4
                out.append(Occurrence(shift.name, lo, hi, (end - start).total_seconds(), shift.planned_output))
        day += timedelta(days=1)
    return sorted(out, key=lambda o: o.start)


Version = tuple[datetime, list[dict[str, Any]]]
"""A calendar version: ``(valid_from, shifts)``, ``valid_from`` in UTC."""


def windows(versions: list[Version], *, since: datetime, until: datetime) -> list[tuple[datetime, datetime, list]]:
    """The part of ``[since, until)`` each version was in force (``(lo, hi, shifts)``, oldest first;
    ``versions`` sorted by ``valid_from``): from its ``valid_from`` to the next one's. Nothing
    before the first version."""
    out = []
    for i, (valid_from, shifts) in enumerate(versions):
        lo = max(since, valid_from)
        hi = min(until, versions[i + 1][0]) if i + 1 < len(versions) else until
        if lo < hi:
            out.append((lo, hi, shifts))
    return out


def versioned_occurrences(
    versions: list[Version], *, since: datetime, until: datetime, zone: ZoneInfo
) -> list[Occurrence]:
    """:func:`occurrences` of the calendar in force at each moment of ``[since, until)``: each
    version's shifts clipped to the time it was in force (a night shift running across a change
    counts under the old calendar up to the change and under the new one from it). ``zone`` is the
    plant's: shift times are its wall clock whoever asks."""
    out: list[Occurrence] = []
    for lo, hi, shifts in windows(versions, since=since, until=until):
        out += occurrences(shifts, since=lo, until=hi, zone=zone)
    return out
