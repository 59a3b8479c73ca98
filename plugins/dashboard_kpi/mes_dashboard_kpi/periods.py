"""OEE per period: the days or ISO 8601 weeks of the plant's calendar a range covers, each summing
the shifts that start in it (``GET /kpi/oee?bucket=day|week``).

A shift belongs to the period its start falls in (a night shift from Sunday 22:00 to Monday 06:00
counts in the week and on the day it started), so each period's figures are whole shifts' sums and
the periods add up to the range's totals exactly. Times in and out are UTC ``datetime``.
"""

from __future__ import annotations

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


class Periods:
    """Sums of shift figures (see :func:`oee.factors`) per day or ISO week of ``span.zone``."""

    def __init__(self, span: Range, bucket: str) -> None:
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        self.span, self.bucket = span, bucket
        self.sums: dict[date, dict[str, float]] = {}

    def _key(self, moment: datetime) -> date:
        return _first_day(moment.astimezone(self.span.zone).date(), self.bucket)

    def add(self, start: datetime, figures: dict[str, Any]) -> None:
        """Count one shift occurrence (starting at ``start``) in its period."""
        sums = self.sums.setdefault(self._key(start), dict.fromkeys(FIGURES, 0))
        for name in FIGURES:
            sums[name] += figures[name]

    def items(self, factors) -> list[dict[str, Any]]:
        """Every period of the range, oldest first, with or without shifts: ``{period, start,
        end, **factors(sums)}``, ``start``/``end`` the period's bounds clipped to the range."""
        step = timedelta(days=7 if self.bucket == "week" else 1)
        day = self._key(self.span.since)
        last = self._key(self.span.until - timedelta(microseconds=1))
        out = []
        while day <= last:
            sums = self.sums.get(day, dict.fromkeys(FIGURES, 0))
            start = max(_midnight(day, self.span.zone), self.span.since)
            end = min(_midnight(day + step, self.span.zone), self.span.until)
            ideal = round(sums["ideal"], 3)
            out.append(
                {
                    "period": _label(day, self.bucket),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    **factors(**{**sums, "ideal": ideal}),
                }
            )
            day += step
        return out
