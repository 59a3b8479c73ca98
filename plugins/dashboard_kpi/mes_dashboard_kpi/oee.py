"""OEE = availability × performance × quality per line and shift, from the hourly rollups (or the
parts machines counted), the shift calendars and the line's downtime.

Definitions and their sources are in ``docs/kpi.md``. Times in and out are UTC ``datetime``.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    String,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.base import UTCDateTime
from mes_kernel.db.models import Alert, Device, Line, MachineCount, MachineState, Process, Station
from mes_kernel.services.silence import line_spans

from . import sources
from .periods import Periods
from .ranges import Range, SharedOccurrences, calendars, ratio
from .shifts import Occurrence
from .sources import hours_between

Interval = tuple[datetime, datetime]


def _covered(intervals: list[Interval], lo: datetime, hi: datetime) -> float:
    """Seconds of ``[lo, hi)`` covered by the union of ``intervals``."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if a < hi and b > lo)
    seconds, end = 0.0, lo
    for a, b in clipped:
        a = max(a, end)
        if b > a:
            seconds += (b - a).total_seconds()
            end = b
    return seconds


#: A station is silent when its last heartbeat is older than this (the kernel's default
#: ``STATION_SILENT_AFTER_SECONDS``; the routes pass the running kernel's setting).
SILENT_AFTER_SECONDS = 120.0


async def downtime_intervals(
    *, session: AsyncSession, line_id: int, span: Range, now: datetime, silent_after: float = SILENT_AFTER_SECONDS
) -> list[Interval]:
    """When the line was down (see :func:`downtime_by_line`)."""
    down = await downtime_by_line(session=session, line_ids={line_id}, span=span, now=now, silent_after=silent_after)
    return down[line_id]


async def downtime_by_line(
    *,
    session: AsyncSession,
    line_ids: set[int],
    span: Range,
    now: datetime,
    silent_after: float = SILENT_AFTER_SECONDS,
) -> dict[int, list[Interval]]:
    """When each line was down: machine states other than ``running`` (connector plugins), station
    silence and device faults (an open circuit breaker of one of the line's devices), each open one
    lasting until ``now``.

    A station is silent (docs/kpi.md): between two heartbeats more than ``silent_after`` seconds
    apart (its ``station:<code>:silent`` alerts, raised at the earlier one — by the watchdog, or
    recorded by the later heartbeat when no watchdog saw the silence: ``mes_kernel.services.silence``);
    since its last heartbeat when that is more than ``silent_after`` seconds before ``now`` (whether
    or not an alert is raised yet); and, never heard at all (``last_heartbeat_at`` null), from its
    registration (``created_at``) on.

    Which line a silence counts against:

    - an alert whose detail names a line (``detail.line_id``: the station's line when it was
      written) counts for that line only, wherever the station is now (null: for no line). A line
      configuration that moved the station while it was silent split its alert at the move
      (``mes_kernel.services.silence.move_silence``): the old line's resolved there, the new line's
      raised there;
    - an alert written before alerts named their line counts for the station's line now, and from
      the last heartbeat its detail names (it may have been raised later, at the watchdog's round);
      an alert naming its line is raised at its silence's start already, and one opened by a move
      must not reach back before the move;
    - silent now, by the station's row: for its line now, from its last heartbeat (or registration)
      — but not before it joined that line, when a silence alert of the station that names another
      line was resolved by a move (``detail.moved_to_line_id``): from the latest such alert's
      ``resolved_at`` (a move before ``span.since`` is not read, and need not be: the intervals
      are read within the span); moved during this silence before any alert was raised
      (``stations.line_moves``), each line it was on for its part, up to the move.

    One query however many lines: the alerts, the states, and the stations (with their
    registration and last heartbeat) and devices that tie an alert to its lines, as one
    ``UNION ALL`` (a round trip each cost more than the rows)."""
    out: dict[int, list[Interval]] = {line_id: [] for line_id in line_ids}
    if not line_ids:
        return out
    ids = sorted(line_ids)
    # the alerts come first: a UNION's columns take the first SELECT's types (JSON, UTC datetimes)
    query = union_all(
        select(_kind("alert"), _no(BigInteger), Alert.key, Alert.detail, Alert.raised_at, Alert.resolved_at).where(
            Alert.raised_at < span.until,
            (Alert.resolved_at.is_(None)) | (Alert.resolved_at > span.since),
            (Alert.key.like("station:%:silent")) | (Alert.key.like("breaker:%")),
        ),
        select(
            _kind("state"),
            MachineState.line_id,
            _no(String),
            _no(Alert.detail.type),
            MachineState.started_at,
            MachineState.ended_at,
        ).where(
            MachineState.line_id.in_(ids),
            MachineState.state != "running",
            MachineState.started_at < span.until,
            (MachineState.ended_at.is_(None)) | (MachineState.ended_at > span.since),
        ),
        # every station (a plant has hundreds at most): one moved off a line during a silence no
        # alert covers yet keeps that line's part in ``line_moves``, wherever it is now
        select(
            _kind("station"),
            Station.line_id,
            Station.code,
            Station.line_moves,
            Station.created_at,
            Station.last_heartbeat_at,
        ),
        select(
            _kind("device"), Device.line_id, Device.code, _no(Alert.detail.type), _no(UTCDateTime), _no(UTCDateTime)
        ).where(Device.line_id.in_(ids)),
    )
    stations: dict[str, set[int]] = {}
    devices: dict[str, set[int]] = {}
    alerts, silent = [], []
    for kind, line_id, code, detail, a, b in await session.execute(query):
        if kind == "state":
            out[line_id].append((a, b or now))
        elif kind == "station":
            if line_id in out:
                stations.setdefault(code, set()).add(line_id)
            if (silent_since := _silent_since(a, b, now=now, silent_after=silent_after)) is not None:
                silent += [(code, *span) for span in line_spans(silent_since, None, detail or (), line_id)]
        elif kind == "device":
            devices.setdefault(code, set()).add(line_id)
        else:
            alerts.append((code, detail, a, b))
    joined: dict[tuple[str, int], datetime] = {}  # (station, its line now): moved onto it at
    for key, detail, raised, resolved in alerts:
        parts = key.split(":")
        if parts[0] != "station":
            lines = devices.get(parts[-1], ())
        elif isinstance(detail, dict) and "line_id" in detail:
            named = detail["line_id"]
            lines = (named,) if isinstance(named, int) and named in out else ()
            if "moved_to_line_id" in detail and resolved is not None:
                for line_id in stations.get(parts[1], ()):
                    if named != line_id:  # resolved by the move that may have brought it to line_id
                        joined[parts[1], line_id] = max(resolved, joined.get((parts[1], line_id), resolved))
        else:  # written before alerts named their line
            try:
                raised = min(raised, datetime.fromisoformat(detail.get("last_heartbeat_at")))
            except (TypeError, ValueError, AttributeError):
                pass
            lines = stations.get(parts[1], ())
        for line_id in lines:
            out[line_id].append((raised, resolved or now))
    for code, since, until, line_id in silent:
        if line_id not in out:
            continue
        since, until = max(since, joined.get((code, line_id), since)), until or now
        if since < until:
            out[line_id].append((since, until))
    return out


def _silent_since(
    registered: datetime, heard: datetime | None, *, now: datetime, silent_after: float
) -> datetime | None:
    """Since when a station is silent at ``now`` by its own row: never heard, since it was
    registered; heard, since its last heartbeat once that is over ``silent_after`` seconds old;
    None while it reports."""
    if heard is None:
        return registered if registered < now else None
    return heard if (now - heard).total_seconds() > silent_after else None


def _kind(name: str):
    return literal_column(f"'{name}'", String).label("kind")


def _no(type_):
    """A typed NULL column of a ``UNION`` arm that has no such value."""
    return cast(null(), type_)


def factors(
    planned: float, down: float, ideal: float, counted: int, good: int, total: int, timed: int = 0
) -> dict[str, Any]:
    """OEE and its three factors from a period's sums (seconds planned and down, shown to the
    microsecond; ``ideal`` the
    bottleneck's ideal seconds × its ``counted`` parts, see :func:`bottleneck`; good parts, parts;
    ``timed`` how many of the summed lines or shifts have a bottleneck — a step or machine with an
    ideal cycle time that made parts in the range), each factor with the figures it was divided
    from, and ``computed_from`` naming how OEE was obtained:

    - ``"factors"``: availability × performance × quality;
    - ``"no_output"``: planned time and nothing made: OEE = good count × ideal cycle time ÷ planned
      time = 0 (fully productive time is none); quality stays null (no part to divide by);
    - ``"no_planned_time"``, ``"no_run_time"`` (parts made while the line counted as down all the
      planned time), ``"no_ideal_cycle_time"`` (parts made at no step or machine with an ideal
      cycle time): OEE null, unknown rather than zero.
    """
    # seconds to the microsecond, the resolution of the times they come from: sums of float
    # seconds carry binary noise (0.1 + 0.2 s of downtime is 0.30000000000000004), and a range's
    # seconds must be the sum of its periods' and shifts' as shown
    planned, down = round(planned, 6), round(down, 6)
    run = round(max(planned - down, 0.0), 6)
    availability = ratio(run, planned)
    # parts were made but no step (or machine) they were made at has an ideal cycle time: the
    # performance is unknown, not zero
    performance = None if total and not timed else ratio(ideal, run)
    quality = ratio(good, total)
    if None not in (availability, performance, quality):
        # the product of the exact factors, rounded once (the rounded factors' product can be
        # 0.0 for an OEE of 0.0083)
        oee, computed_from = round((run / planned) * (ideal / run) * (good / total), 4), "factors"
    elif not planned:
        oee, computed_from = None, "no_planned_time"
    elif not total:
        oee, computed_from = 0.0, "no_output"
    elif not run:
        oee, computed_from = None, "no_run_time"
    else:
        oee, computed_from = None, "no_ideal_cycle_time"
    return {
        "oee": oee,
        "computed_from": computed_from,
        "availability": {
            "value": availability,
            "planned_seconds": planned,
            "downtime_seconds": down,
            "run_seconds": run,
        },
        "performance": {
            "value": performance,
            "ideal_cycle_seconds_total": ideal,
            "run_seconds": run,
            "total_count": counted,
            # above 1: the line made parts faster than its ideal cycle time says it can (the
            # ideal is set too slow) — kept, not capped, and flagged for the views to warn
            "over_ideal": over_ideal(performance),
        },
        "quality": {"value": quality, "good": good, "total": total},
    }


def over_ideal(performance: float | None) -> bool:
    """Whether a performance is above 1 (faster than ideal: the ideal cycle time is set too slow)."""
    return performance is not None and performance > 1


def bottleneck(steps: dict[str, tuple[float | None, int]], rows) -> tuple[str, float] | None:
    """The line's bottleneck (constraint) over a range: of the steps (or machines) that made parts
    in ``rows`` (``(start, step, parts, good)``) and have an ideal cycle time, the one with the
    largest (``steps``: ``{step: (ideal cycle seconds or None, sequence)}``); a tie goes to the
    later step in the routing, then the larger code. ``(step, ideal seconds)``, or None when no
    step that made parts has an ideal cycle time."""
    made = {step for _, step, parts, _ in rows if parts}
    timed = [(ideal, sequence, step) for step, (ideal, sequence) in steps.items() if step in made and ideal]
    if not timed:
        return None
    ideal, _, step = max(timed)
    return step, ideal


async def oee(
    *,
    session: AsyncSession,
    span: Range,
    line: Line | None,
    now: datetime,
    bucket: str | None = None,
    silent_after: float = SILENT_AFTER_SECONDS,
) -> dict[str, Any]:
    """OEE = availability × performance × quality for the line (or all lines together) and for
    each shift occurrence in the range, planned time counted up to ``now``. ``performance``
    says what it was computed from: each line's bottleneck, its ideal cycle time and parts. With
    ``bucket`` (``"day"`` or ``"week"``, ISO 8601 weeks of ``span.zone``) the answer carries
    ``bucket`` and ``buckets`` (each period's factors, :class:`periods.Periods`) instead of
    ``shifts``, from the same queries."""
    periods = Periods(span, bucket) if bucket else None
    by_line, shifts_out, bottlenecks = await oee_by_line(
        session=session, span=span, line=line, now=now, periods=periods, silent_after=silent_after
    )
    totals = dict(ZERO)
    for figures in by_line.values():
        for key, value in figures.items():
            totals[key] += value
    out = factors(**totals)
    out["performance"]["computed_from"] = [bottlenecks[line_id] for line_id in by_line]
    head = {"line": line.code if line else None, "from": span.since.isoformat(), "to": span.until.isoformat()}
    if periods is not None:
        return {**head, **out, "bucket": bucket, "buckets": periods.items(factors)}
    return {**head, **out, "shifts": shifts_out}


ZERO = {"planned": 0.0, "down": 0.0, "ideal": 0.0, "counted": 0, "good": 0, "total": 0, "timed": 0}


async def oee_by_line(
    *,
    session: AsyncSession,
    span: Range,
    line: Line | None,
    now: datetime,
    periods: Periods | None = None,
    silent_after: float = SILENT_AFTER_SECONDS,
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Each line's OEE figures over the range (summed over its shifts), every shift's factors
    (each shift's figures also added to ``periods`` when given), and each line's
    ``computed_from`` of performance (its bottleneck: ``{line, counts_from, step,
    ideal_cycle_seconds, count, ideal_seconds}``, ``step`` None when none has an ideal time).
    Each line's shifts are those of the calendar version in force at each moment, read on the
    plant's clock (``span.shift_zone``). Four queries however many lines and shifts (the calendar
    versions, the lines' codes, the counts per span between shift bounds, the downtime), two more
    only when machines counted parts."""
    until = min(span.until, now)
    codes, plans = {}, {}
    if until > span.since:
        shared = SharedOccurrences(since=span.since, until=until, zone=span.shift_zone)
        versions = await calendars(session, line)
        if versions:
            codes = dict((await session.execute(select(Line.id, Line.code).where(Line.id.in_(sorted(versions))))).all())
        for line_id in sorted(versions):
            if occs := shared(versions[line_id]):
                plans[line_id] = occs
    by_line: dict[int, dict[str, Any]] = {}
    shifts_out: list[dict[str, Any]] = []
    bottlenecks: dict[int, dict[str, Any]] = {}
    if not plans:
        return by_line, shifts_out, bottlenecks
    bounds = sorted({moment for occs in plans.values() for occ in occs for moment in (occ.start, occ.end)})
    hours, steps, machines, machine_ideals = await _counts_by_line(session, line, set(plans), bounds)
    down = await downtime_by_line(session=session, line_ids=set(plans), span=span, now=now, silent_after=silent_after)
    for line_id, occs in plans.items():
        totals = dict(ZERO)
        # a line whose machines counted parts in the range (connector plugins) takes performance
        # and quality from those counts, else from its process records (docs/kpi.md)
        if machines.get(line_id):
            line_hours, line_steps, source = machines[line_id], machine_ideals, "machines"
        else:
            line_hours, line_steps, source = hours.get(line_id, []), steps, "records"
        # performance counts the parts of the line's bottleneck only (docs/kpi.md): summing
        # every step's ideal seconds would count a unit once per step the line runs in parallel
        in_shifts = [row for occ in occs for row in line_hours[_rows_of(line_hours, occ)]]
        constraint = bottleneck(line_steps, in_shifts)
        for occ in occs:
            figures = _shift_figures(occ, down[line_id], line_hours, constraint)
            for key, value in figures.items():
                totals[key] += value
            if periods is not None:
                periods.add(occ.start, figures)
            shift_factors = factors(**figures)
            shifts_out.append(
                {
                    "line": codes[line_id],
                    "shift": occ.shift,
                    "start": occ.start.isoformat(),
                    "end": occ.end.isoformat(),
                    "oee": shift_factors["oee"],
                    **{k: shift_factors[k]["value"] for k in ("availability", "performance", "quality")},
                    "computed_from": shift_factors["computed_from"],
                    "counts_from": source,
                    "bottleneck": constraint[0] if constraint else None,
                    "performance_over_ideal": shift_factors["performance"]["over_ideal"],
                }
            )
        totals["timed"] = 1 if constraint else 0
        by_line[line_id] = totals
        bottlenecks[line_id] = {
            "line": codes[line_id],
            "counts_from": source,
            "step": constraint[0] if constraint else None,
            "ideal_cycle_seconds": constraint[1] if constraint else None,
            "count": totals["counted"],
            "ideal_seconds": round(totals["ideal"], 3),
        }
    return by_line, shifts_out, bottlenecks


async def _counts_by_line(
    session: AsyncSession, line: Line | None, line_ids: set[int], bounds: list[datetime]
) -> tuple[dict[int, list[tuple]], dict[str, tuple], dict[int, list[tuple]], dict[str, tuple]]:
    """Per line, sorted: ``(start, step, records, passed)`` of the rollup hours that start in each
    span between two consecutive ``bounds`` (sorted UTC times: every shift's start and end),
    ``start`` being the span's first bound, one row per step; the steps that made them as
    ``{step: (ideal cycle seconds or None, sequence)}``; and the same of the parts the machines of
    ``line_ids`` counted (connector plugins; ``step`` the machine's code; a line whose machines
    counted nothing is left out), with the machines' ideal cycle times. A shift is a run of whole
    spans, so :func:`_shift_figures` sums a few rows per shift, not each of its hours. One query.

    PostgreSQL sums the spans itself (``width_bucket`` over the bounds: a binary search per rollup
    row), so a 30-day range of 4 lines brings back a few rows per step and shift, not every hour;
    SQLite sums per hour (each hour's start its own key: the same sums, as more rows). Steps and
    their ideal cycle times are joined as they are now, so an edited ideal time counts at once.
    The sums come back as integers and floats (not ``numeric``, which arrives as ``Decimal``)
    through the Core connection (no ORM row processing)."""
    spans = session.bind.dialect.name == "postgresql"
    # machine hours from the first hour a shift starts in: one there (before any shift) still makes
    # the line's counts come from its machines, as it always did
    first_hour = bounds[0].replace(minute=0, second=0, microsecond=0)
    edges = bindparam("bounds", bounds, type_=postgresql.ARRAY(DateTime(timezone=True)))

    def span_of(hour_start):
        return func.width_bucket(hour_start, edges) if spans else hour_start

    hours = sources.line_hours(session, bounds[0], bounds[-1], line.id if line else None)
    records = (
        select(
            _kind("record"),
            hours.c.line_id,
            span_of(hours.c.hour_start),
            hours.c.process_id,
            cast(func.sum(hours.c.total), BigInteger),
            cast(func.sum(hours.c.passed), BigInteger),
            cast(func.max(Process.sequence), BigInteger),
            cast(func.max(Process.ideal_cycle_seconds), Float),
        )
        .select_from(hours.outerjoin(Process, Process.id == hours.c.process_id))
        .group_by(hours.c.line_id, span_of(hours.c.hour_start), hours.c.process_id)
    )
    # per machine: its ideal cycle time is in its configuration, applied below
    parts = MachineCount.good + MachineCount.bad
    machine = (
        select(
            _kind("machine"),
            MachineCount.line_id,
            span_of(MachineCount.hour_start),
            MachineCount.device,
            cast(func.sum(parts), BigInteger),
            cast(func.sum(MachineCount.good), BigInteger),
            # hours in which the machine counted something (a line with none is not a counted one)
            cast(func.sum(case(((MachineCount.good != 0) | (MachineCount.bad != 0), 1), else_=0)), BigInteger),
            _no(Float),
        )
        .where(MachineCount.line_id.in_(sorted(line_ids)), hours_between(MachineCount, first_hour, bounds[-1]))
        .group_by(MachineCount.line_id, span_of(MachineCount.hour_start), MachineCount.device)
    )
    out: dict[int, list] = {}
    steps: dict[str, tuple] = {}
    counted_by: dict[tuple[int, Any], list] = {}
    for kind, line_id, at, step, total, passed, aux, ideal in await (await session.connection()).execute(
        union_all(records, machine)
    ):
        # a span's index counts from 1 (0: before the first bound); an hour is UTC already (UTCDateTime)
        start = (bounds[at - 1] if at else first_hour) if spans else at
        if kind == "record":
            out.setdefault(line_id, []).append((start, step, total, passed or 0))
            steps[step] = (ideal, aux or 0)
        elif aux:
            counted_by.setdefault((line_id, start), []).append((step, total, passed))
    for items in out.values():
        items.sort()
    return out, steps, *await _machine_counts(session, counted_by)


async def _machine_counts(
    session: AsyncSession, counted_by: dict[tuple[int, Any], list]
) -> tuple[dict[int, list[tuple]], dict[str, tuple]]:
    """Machine counts per line and span (``(device, parts, good)`` each) in the shape of
    :func:`_counts_by_line`, and each machine's ``(ideal cycle seconds or None, 0)``: its effective
    configuration's ``ideal_cycle_seconds`` (the device's own, else the line's ``device_defaults``
    for its kind). Two queries, only when machines counted parts."""
    if not counted_by:
        return {}, {}
    from mes_kernel.devices import effective_config

    counted_lines = {line_id for line_id, _ in counted_by}
    lines = {x.id: x for x in (await session.execute(select(Line).where(Line.id.in_(counted_lines)))).scalars()}
    ideal: dict[str, tuple] = {}
    for device in (await session.execute(select(Device).where(Device.line_id.in_(counted_lines)))).scalars():
        value = effective_config(lines[device.line_id], device).get("ideal_cycle_seconds")
        valid = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        ideal[device.code] = (float(value) if valid else None, 0)
    out: dict[int, list[tuple]] = {}
    for (line_id, start), machines in sorted(counted_by.items()):
        for device, total, good in sorted(machines):
            out.setdefault(line_id, []).append((start, device, total, good))
    return out, ideal


def _rows_of(hours, occ: Occurrence) -> slice:
    """The rows of ``hours`` (sorted by their start) that start in the shift occurrence."""
    return slice(bisect_left(hours, (occ.start,)), bisect_left(hours, (occ.end,)))


def _shift_figures(
    occ: Occurrence, down: list[Interval], hours, constraint: tuple[str, float] | None
) -> dict[str, Any]:
    """A shift's planned and down seconds, and the counts of the rollup hours that start in it
    (``hours``: rows of hours, or of spans between shift bounds, per step, sorted by their start,
    see :func:`_counts_by_line`; an hour counts for the shift its first instant falls in, exact
    when shifts start on whole hours): good and total of every step, the parts of the line's
    bottleneck (``constraint``: its step and ideal cycle seconds) and their ideal seconds."""
    counted = good = total = 0
    for _, step, n, passed in hours[_rows_of(hours, occ)]:
        total += n
        good += passed
        if constraint and step == constraint[0]:
            counted += n
    return {
        "planned": (occ.end - occ.start).total_seconds(),
        "down": _covered(down, occ.start, occ.end),
        "ideal": round(constraint[1] * counted, 3) if constraint else 0.0,
        "counted": counted,
        "good": good,
        "total": total,
        "timed": 1 if constraint else 0,
    }
