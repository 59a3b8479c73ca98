"""Output against plan: each line's output step, and its first passes there per hour, day or week
of the plant's calendar, read from the hourly rollups.

A line's **output step** is the routing step whose first passes are what the line made: the one
its configuration names (``output_step``, :mod:`mes_kernel.lines`), else the highest-sequence step
it has records at in the range read (at least the :data:`DEFAULT_STEP_LOOKBACK` before the
range's end). Definitions and their sources are in ``docs/kpi.md``; times in and out are UTC.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, DateTime, Integer, bindparam, case, cast, func, literal, null, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.models import Line, Process

from . import sources
from .ranges import Range, SharedOccurrences, calendars

#: How far back from a range's end the default output step looks for the steps a line recorded at:
#: a range shorter than this is widened to it, so this morning's hours — before any unit reached
#: the line's last step today — still count at that step, not at the step the units are at now.
DEFAULT_STEP_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class OutputRow:
    """One line's counts at its output step in one bucket: ``good`` items first passing the step,
    ``first_tried`` items first tried at it (the two are different items: neither is a share of
    the other)."""

    bucket: Any
    line_id: int
    good: int
    first_tried: int


async def output_rows(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    configured: dict[int, str],
    line_id: int | None = None,
    bucket_of: Callable[[ColumnElement], ColumnElement] | None = None,
) -> tuple[dict[int, tuple[str, bool]], list[OutputRow]]:
    """Each line's output step as ``{line id: (step, configured)}`` (``0``: records without a
    line, which take the default) and its counts there per bucket over ``[since, until)``.

    ``configured`` maps line ids to the step their configuration names; ``bucket_of`` turns the
    rollup hour into the bucket key (default: one bucket, key ``1``). One query: the rollup rows of
    the range, widened back to :data:`DEFAULT_STEP_LOOKBACK` for the default step, summed per
    bucket (hours before ``since`` as one key, ``None``), line and step, with each step's sequence.
    """
    hours = sources.line_hours(session, min(since, until - DEFAULT_STEP_LOOKBACK), until, line_id)
    key = bucket_of(hours.c.hour_start) if bucket_of else literal(1, Integer)
    bucket = case((hours.c.hour_start >= since, key), else_=null())
    query = (
        select(
            bucket,
            hours.c.line_id,
            hours.c.process_id,
            cast(func.sum(hours.c.output), BigInteger),
            cast(func.sum(hours.c.first_total), BigInteger),
            cast(func.sum(hours.c.total), BigInteger),
            cast(func.max(Process.sequence), BigInteger),
        )
        .select_from(hours.outerjoin(Process, Process.id == hours.c.process_id))
        .group_by(bucket, hours.c.line_id, hours.c.process_id)
    )
    rows = (await (await session.connection()).execute(query)).all()
    highest: dict[int, tuple[int, str]] = {}
    for _, line, step, _, _, records, sequence in rows:
        if records and (line not in highest or (sequence or 0, step) > highest[line]):
            highest[line] = (sequence or 0, step)
    steps = {line: (step, False) for line, (_, step) in highest.items()}
    steps.update({lid: (step, True) for lid, step in configured.items() if line_id in (None, lid)})
    out = [
        OutputRow(at, line, int(good or 0), int(tried or 0))
        for at, line, step, good, tried, _, _ in rows
        if at is not None and line in steps and steps[line][0] == step
    ]
    return steps, out


def configured_steps(lines) -> dict[int, str]:
    """``{line id: output step}`` of the lines whose configuration names one."""
    return {line.id: step for line in lines if (step := (line.config or {}).get("output_step"))}


def _bucket_starts(span: Range, bucket: str) -> list[datetime]:
    zone = span.zone
    local = span.since.astimezone(zone)
    if bucket == "hour":
        first = span.since.replace(minute=0, second=0, microsecond=0)
        step = timedelta(hours=1)
        starts, at = [], first
        while at < span.until:
            starts.append(at)
            at += step
        return starts
    day = local.date()
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    starts = []
    while True:
        at = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
        if at >= span.until:
            return starts
        starts.append(at)
        day += timedelta(days=7 if bucket == "week" else 1)


async def output(*, session: AsyncSession, span: Range, line: Line | None, bucket: str) -> dict[str, Any]:
    """Per bucket (hour, day or week of the plant's calendar): ``good``, the items whose first pass
    at their line's output step falls in the bucket (a unit reworked and passing today counts
    today); ``first_tried``, the items whose first attempt there falls in the bucket (other items:
    not a denominator of ``good``); and ``plan``, each shift's planned output spread over the
    shift's hours. Without a line, each line counts at its own output step, summed.
    ``output_steps`` names each line's step: ``[{line (code, null: records without a line), step,
    configured (false: the default)}]``."""
    starts = _bucket_starts(span, bucket)
    ends = [*starts[1:], span.until]
    items = [{"start": s.isoformat(), "good": 0, "first_tried": 0, "plan": 0.0} for s in starts]
    lines = [line] if line else (await session.execute(select(Line))).scalars().all()
    # PostgreSQL sums each bucket itself (``width_bucket`` over the bucket starts: 30 rows a line
    # and step for 30 days, not 720 hours); SQLite sums per hour, each placed by a bisect here
    buckets = session.bind.dialect.name == "postgresql" and bucket != "hour"
    edges = bindparam("starts", [*starts, span.until], type_=postgresql.ARRAY(DateTime(timezone=True)))

    def bucket_of(hour):
        return func.width_bucket(hour, edges) if buckets else hour

    steps, rows = await output_rows(
        session,
        since=span.since,
        until=span.until,
        configured=configured_steps(lines),
        line_id=line.id if line else None,
        bucket_of=bucket_of,
    )
    for row in rows:
        # a bucket's index counts from 1; an hour (UTC) goes to the bucket it starts in
        i = row.bucket - 1 if buckets else bisect_right(starts, row.bucket) - 1
        if 0 <= i < len(items):
            items[i]["good"] += row.good
            items[i]["first_tried"] += row.first_tried
    shared = SharedOccurrences(since=span.since, until=span.until, zone=span.shift_zone)
    for versions in (await calendars(session, line)).values():
        for occ in shared(versions):
            # only the buckets the shift overlaps: from the one it starts in to the one it ends in
            for i in range(max(bisect_right(starts, occ.start) - 1, 0), bisect_left(starts, occ.end)):
                overlap = (min(ends[i], occ.end) - max(starts[i], occ.start)).total_seconds()
                if overlap > 0:
                    items[i]["plan"] += occ.planned_output * overlap / occ.full_seconds
    for item in items:
        item["plan"] = round(item["plan"], 2)
    codes = {x.id: x.code for x in lines}
    named = [
        {"line": codes.get(line_id), "step": step, "configured": configured}
        for line_id, (step, configured) in steps.items()
        if line_id in codes or line_id == 0
    ]
    named.sort(key=lambda s: (s["line"] is None, s["line"] or ""))
    return {"bucket": bucket, "output_steps": named, "items": items}
