"""OEE per period: the days or ISO 8601 weeks of the plant's calendar a range covers, each summing
the shifts that start in it (``GET /kpi/oee?bucket=day|week``); and the periods themselves, which
``GET /kpi/output?bucket=day|week`` answers the same way.

Every period is a whole day or ISO week of the reader's calendar (``tz``, the plant's by default):
a week starts Monday 00:00 there, whatever day the range starts on. A range that starts or ends
inside a period cuts it: that period is *partial*, and its figures count only the part inside the
range (``counted_from`` to ``counted_to``), so a view can say so instead of comparing three days'
output with a week's plan.

A shift belongs to the period its start falls in (a night shift from Sunday 22:00 to Monday 06:00
counts in the week and on the day it started), so each period's figures are whole shifts' sums and
the periods add up to the range's totals exactly. Times in and out are UTC ``datetime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .ranges import Range

BUCKETS = ("day", "week")
FIGURES = ("planned", "down", "ideal", "counted", "good", "total", "timed")


def _first_day(day: date, bucket: str) -> date:
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def _label(day: date, bucket: str) -> str:
    """``2026-W49`` (ISO 8601 week, Monday first; its year is the ISO week-numbering year) or ``2026-12-01``."""
    if bucket == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _step(bucket: str) -> timedelta:
    return timedelta(days=7 if bucket == "week" else 1)


@dataclass(frozen=True)
class Period:
    """One day or ISO week: its whole bounds (``start`` the local midnight it begins at, ``end`` the
    next period's) and the part of it inside the range (``counted_from`` to ``counted_to``)."""

    day: date
    label: str
    start: datetime
    end: datetime
    counted_from: datetime
    counted_to: datetime

    @property
    def partial(self) -> bool:
        """Whether the range cuts this period (its figures count only the part inside)."""
        return self.counted_from > self.start or self.counted_to < self.end

    def bounds(self) -> dict[str, Any]:
        """``{period, start, end, counted_from, counted_to, partial}`` as the API answers them."""
        return {
            "period": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "counted_from": self.counted_from.isoformat(),
            "counted_to": self.counted_to.isoformat(),
            "partial": self.partial,
        }


def first_day(moment: datetime, zone: ZoneInfo, bucket: str) -> date:
    """The first calendar day (in ``zone``) of the day or ISO week ``moment`` falls in."""
    return _first_day(moment.astimezone(zone).date(), bucket)


def periods_of(span: Range, bucket: str) -> list[Period]:
    """Every day or ISO week of ``span.zone`` that ``span`` touches, oldest first, whole (a week
    from its Monday 00:00), each with the part inside the range."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {BUCKETS}")
    step = _step(bucket)
    day = first_day(span.since, span.zone, bucket)
    last = first_day(span.until - timedelta(microseconds=1), span.zone, bucket)
    out = []
    while day <= last:
        start, end = _midnight(day, span.zone), _midnight(day + step, span.zone)
        out.append(Period(day, _label(day, bucket), start, end, max(start, span.since), min(end, span.until)))
        day += step
    return out


class Periods:
    """Sums of shift figures (see :func:`oee.factors`) per day or ISO week of ``span.zone``."""

    def __init__(self, span: Range, bucket: str) -> None:
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        self.span, self.bucket = span, bucket
        self.sums: dict[date, dict[str, float]] = {}

    def _key(self, moment: datetime) -> date:
        return first_day(moment, self.span.zone, self.bucket)

    def add(self, start: datetime, figures: dict[str, Any]) -> None:
        """Count one shift occurrence (starting at ``start``) in its period."""
        sums = self.sums.setdefault(self._key(start), dict.fromkeys(FIGURES, 0))
        for name in FIGURES:
            sums[name] += figures[name]

    def items(self, factors) -> list[dict[str, Any]]:
        """Every period of the range, oldest first, with or without shifts: ``{period, start, end,
        counted_from, counted_to, partial, **factors(sums)}`` (:meth:`Period.bounds`: whole bounds,
        and the part the figures count)."""
        out = []
        for period in periods_of(self.span, self.bucket):
            sums = self.sums.get(period.day, dict.fromkeys(FIGURES, 0))
            ideal = round(sums["ideal"], 3)
            out.append({**period.bounds(), **factors(**{**sums, "ideal": ideal})})
        return out
