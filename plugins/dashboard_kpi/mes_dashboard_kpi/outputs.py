"""Output against plan: each line's output step, and its first passes there per hour, day or week
of the plant's calendar, read from the hourly rollups.

A line's **output step** is the routing step whose first passes are what the line made: the one
its configuration names (``output_step``, :mod:`mes_kernel.lines`), else the highest-sequence step
it has records at in the :data:`DEFAULT_STEP_LOOKBACK` before the range's end (its current
routing's last step), else — a line that recorded nothing then — in the range. Definitions and
their sources are in ``docs/kpi.md``; times in and out are UTC.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, DateTime, Integer, bindparam, case, cast, func, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.models import Line, Process

from . import sources
from .periods import periods_of
from .ranges import Range, SharedOccurrences, calendars

#: How far back from a range's end the default output step looks for the steps a line recorded at:
#: this morning's hours — before any unit reached the line's last step today — still count at that
#: step, not at the step the units are at now; and a year's range reads a week's steps, not a year's.
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
    lines: list[int] | None,
    configured: dict[int, str],
    bucket_of: Callable[[ColumnElement], ColumnElement] | None = None,
) -> tuple[dict[int, tuple[str, bool]], list[OutputRow]]:
    """Each line's output step as ``{line id: (step, configured)}`` (``0``: records without a
    line, which take the default; a line with no step is left out) and its counts there per
    bucket over ``[since, until)``, of ``lines`` (None: every line, and records without one).

    ``configured`` maps line ids to the step their configuration names; ``bucket_of`` turns the
    rollup hour into the bucket key (default: one bucket, key ``1``). Two queries: the steps each
    line recorded at in the :data:`DEFAULT_STEP_LOOKBACK` before ``until`` (skipped when every
    line is configured), then one pass over the range's rows keeping each line's rows at its own
    step (``process_id = CASE line_id WHEN … END``) — and every step of a line that recorded
    nothing in the lookback, its default being its highest in the range. Summing every line × step
    of the range and choosing afterwards took twice as long for a year by week; an arm per line
    (``UNION ALL``) read the year's pages once per line."""
    one = lines[0] if lines is not None and len(lines) == 1 else None
    steps = {line: (step, True) for line, step in configured.items() if lines is None or line in lines}
    if lines is None or len(steps) < len(lines):
        recent = sources.line_hours(session, until - DEFAULT_STEP_LOOKBACK, until, one)
        query = (
            select(recent.c.line_id, recent.c.process_id, func.max(Process.sequence))
            .select_from(recent.outerjoin(Process, Process.id == recent.c.process_id))
            .group_by(recent.c.line_id, recent.c.process_id)
            .having(func.sum(recent.c.total) > 0)
        )
        found = _highest((await (await session.connection()).execute(query)).all())
        wanted = found if lines is None else {line: found[line] for line in lines if line in found}
        steps.update({line: (step, False) for line, (step, _) in wanted.items() if line not in steps})
    hours = sources.line_hours(session, since, until, one)
    bucket = bucket_of(hours.c.hour_start) if bucket_of else literal(1, Integer)
    query = select(
        bucket,
        hours.c.line_id,
        hours.c.process_id,
        cast(func.sum(hours.c.output), BigInteger),
        cast(func.sum(hours.c.first_total), BigInteger),
        cast(func.sum(hours.c.total), BigInteger),
    ).group_by(bucket, hours.c.line_id, hours.c.process_id)
    if lines is not None and one is None:
        query = query.where(hours.c.line_id.in_(lines))
    if steps:  # each line's rows at its own step only; a line without one at every step
        own = case({line: step for line, (step, _) in steps.items()}, value=hours.c.line_id, else_=hours.c.process_id)
        query = query.where(hours.c.process_id == own)
    rows = (await (await session.connection()).execute(query)).all()
    if quiet := {(line, step) for _, line, step, _, _, records in rows if line not in steps and records}:
        sequence = dict((await session.execute(select(Process.id, Process.sequence))).all())
        found = _highest([(line, step, sequence.get(step)) for line, step in quiet])
        steps.update({line: (step, False) for line, (step, _) in found.items()})
    out = [
        OutputRow(at, line, int(good or 0), int(tried or 0))
        for at, line, step, good, tried, _ in rows
        if line in steps and steps[line][0] == step
    ]
    return steps, out


def _highest(rows) -> dict[int, tuple[str, int]]:
    """Per line, of ``(line, step, sequence)`` rows, the step with the highest sequence (a tie:
    the larger id) as ``(step, sequence)``."""
    best: dict[int, tuple[int, str]] = {}
    for line, step, sequence in rows:
        if line not in best or (sequence or 0, step) > best[line]:
            best[line] = (sequence or 0, step)
    return {line: (step, sequence) for line, (sequence, step) in best.items()}


def configured_steps(lines) -> dict[int, str]:
    """``{line id: output step}`` of the lines whose configuration names one."""
    return {line.id: step for line in lines if (step := (line.config or {}).get("output_step"))}


def _buckets(span: Range, bucket: str) -> tuple[list[datetime], list[dict[str, Any]]]:
    """The buckets' starts and their items, oldest first. A day or week is a whole period of the
    plant's calendar (:func:`periods.periods_of`): ``period``, ``start`` its midnight (a week's
    Monday 00:00, as ``/kpi/oee?bucket=week`` answers), ``end``, ``counted_from``/``counted_to`` the
    part inside the range and ``partial``. An hour has ``start`` and ``end``, the first one the hour
    the range starts in."""
    if bucket != "hour":
        found = periods_of(span, bucket)
        starts = [p.start for p in found]
        bounds = [p.bounds() for p in found]
    else:
        starts, at = [], span.since.replace(minute=0, second=0, microsecond=0)
        while at < span.until:
            starts.append(at)
            at += timedelta(hours=1)
        bounds = [{"start": s.isoformat(), "end": (s + timedelta(hours=1)).isoformat()} for s in starts]
    return starts, [{**b, "good": 0, "first_tried": 0, "plan": 0.0} for b in bounds]


async def output(*, session: AsyncSession, span: Range, line: Line | None, bucket: str) -> dict[str, Any]:
    """Per bucket (hour, day or week of the plant's calendar): ``good``, the items whose first pass
    at their line's output step falls in the bucket (a unit reworked and passing today counts
    today); ``first_tried``, the items whose first attempt there falls in the bucket (other items:
    not a denominator of ``good``); and ``plan``, each shift's planned output spread over the
    shift's hours. Day and week buckets are whole periods of the plant's calendar (a week from its
    Monday 00:00); one the range cuts says ``partial``, and its output and plan both count only
    the part inside the range (``counted_from`` to ``counted_to``). Without a line, each line counts
    at its own output step, summed.
    ``output_steps`` names each line's step: ``[{line (code, null: records without a line), step,
    configured (false: the default)}]``."""
    starts, items = _buckets(span, bucket)
    # a bucket's output and plan count only its part inside the range: the rollup hours read are
    # the range's, the shift occurrences are clipped to it, and the last bucket ends with it
    ends = [*starts[1:], span.until]
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
        lines=[line.id] if line else None,
        configured=configured_steps(lines),
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
