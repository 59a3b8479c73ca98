"""The managers' KPIs over a date range and a line, read from the hourly rollups: OEE per line and
shift, yield by process/station/product, defect Pareto, output against plan, each line now.

Definitions and their sources are in ``docs/kpi.md``. Times in and out are UTC ``datetime``; the
plant's time zone only decides where days, weeks and shifts start.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Select,
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
from mes_kernel.db.models import (
    Alert,
    Device,
    Line,
    Lot,
    MachineCount,
    MachineState,
    Process,
    ShiftCalendar,
    Station,
)
from mes_kernel.errors import NotFound, Unprocessable

from . import sources
from .kpi import plant_zone
from .shifts import Occurrence, occurrences
from .sources import hours_between

MAX_RANGE = timedelta(days=366)
# Times a range may span: calendar arithmetic around a range (the next shift, the week's start)
# must stay within what a datetime holds (years 1-9999), and no plant records before 1900.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ range and filters
@dataclass(frozen=True)
class Range:
    """A half-open UTC range ``[since, until)`` and the plant's zone it was read in."""

    since: datetime
    until: datetime
    zone: ZoneInfo


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``Unprocessable`` (``INVALID_TIMEZONE``) if there is none."""
    try:
        return plant_zone(name)
    except ValueError:
        raise Unprocessable(f"unknown time zone {name!r}", code="INVALID_TIMEZONE", field="tz") from None


def _moment(value: str, *, field: str, zone: ZoneInfo, end: bool) -> datetime:
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
                raise Unprocessable(f"{field} needs a UTC offset (or give a date)", code="INVALID_RANGE", field=field)
        moment = moment.astimezone(UTC)
    except ValueError:
        raise Unprocessable(f"{field} is not an ISO-8601 date or datetime", code="INVALID_RANGE", field=field) from None
    except OverflowError:  # 9999-12-31 as ``to`` (its next midnight), 0001-01-01 east of UTC
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise Unprocessable(
            f"{field} lies outside the years 1900-9998",
            code="INVALID_RANGE",
            field=field,
            earliest=EARLIEST.isoformat(),
            latest=LATEST.isoformat(),
        )
    return moment


def parse_range(*, since: str | None, until: str | None, zone: ZoneInfo, now: datetime) -> Range:
    """``from``/``to`` as the API takes them; default: the plant's today. ``INVALID_RANGE`` when
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
    if stop <= start:
        raise Unprocessable("the range ends before it starts", code="INVALID_RANGE", field="to")
    if stop - start > MAX_RANGE:
        raise Unprocessable(
            "the range is longer than 366 days", code="INVALID_RANGE", field="to", max_days=MAX_RANGE.days
        )
    return Range(start, stop, zone)


async def line_named(session: AsyncSession, code: str | None) -> Line | None:
    """The line with this code (None for "all lines"); ``LINE_NOT_FOUND`` when there is none."""
    if code is None:
        return None
    line = (await session.execute(select(Line).where(Line.code == code))).scalar_one_or_none()
    if line is None:
        raise NotFound(f"line {code} not found", code="LINE_NOT_FOUND", field="line")
    return line


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


# ------------------------------------------------------------------ yield, Pareto
GROUPS = ("process_id", "station_id", "product")


async def yields(*, session: AsyncSession, group_by: str, span: Range, line: Line | None) -> dict[str, Any]:
    """First-pass and final yield per process, station or product (keys: process id, station
    code or ``null`` for records without a station, product)."""
    rows_ = sources.item_counts(session, span.since, span.until, line.id if line else None)
    column = rows_.c[{"process": "process_id", "station": "station_id", "product": "product"}[group_by]]
    query = (
        select(
            column,
            func.sum(rows_.c.first_total),
            func.sum(rows_.c.final_passed),
            func.sum(rows_.c.first_passed),
            func.sum(rows_.c.total),
            func.sum(rows_.c.passed),
        )
        .group_by(column)
        .order_by(column)
    )
    rows = (await session.execute(query)).all()
    names: dict[int, str] = {}
    if group_by == "station":
        ids = [r[0] for r in rows if r[0]]
        if ids:
            names = dict((await session.execute(select(Station.id, Station.code).where(Station.id.in_(ids)))).all())
    items = []
    for key, total, passed, first_pass, records, records_passed in rows:
        total, passed, first_pass = int(total or 0), int(passed or 0), int(first_pass or 0)
        items.append(
            {
                "key": (names.get(key, str(key)) if key else None) if group_by == "station" else key,
                "total": total,
                "passed": passed,
                "first_pass": first_pass,
                "first_pass_yield": _ratio(first_pass, total),
                "final_yield": _ratio(passed, total),
                "records": int(records or 0),
                "records_passed": int(records_passed or 0),
            }
        )
    return {"group_by": group_by, "items": items}


async def pareto(*, session: AsyncSession, span: Range, line: Line | None) -> dict[str, Any]:
    """Failed records by defect code, most frequent first, with each code's share and the
    cumulative share (percent, 0–100)."""
    defects = sources.line_defect_counts(session, span.since, span.until, line.id if line else None)
    count = func.sum(defects.c.count).label("count")
    query = (
        select(defects.c.defect_code, count)
        .group_by(defects.c.defect_code)
        .order_by(count.desc(), defects.c.defect_code)
    )
    rows = [(code, int(n)) for code, n in await session.execute(query)]
    total = sum(n for _, n in rows)
    items, running = [], 0
    for code, n in rows:
        running += n
        items.append(
            {
                "defect_code": code,
                "count": n,
                "percent": round(100 * n / total, 2),
                "cumulative_percent": round(100 * running / total, 2),
            }
        )
    return {"total": total, "items": items}


# ------------------------------------------------------------------ output against plan
async def last_step(session: AsyncSession) -> str | None:
    """The routing step whose passes are the line's output: the one with the highest sequence."""
    return (
        await session.execute(select(Process.id).order_by(Process.sequence.desc(), Process.id.desc()).limit(1))
    ).scalar()


async def calendars(session: AsyncSession, line: Line | None) -> dict[int, list[dict[str, Any]]]:
    query = select(ShiftCalendar.line_id, ShiftCalendar.shifts)
    if line is not None:
        query = query.where(ShiftCalendar.line_id == line.id)
    return {line_id: shifts for line_id, shifts in await session.execute(query)}


class SharedOccurrences:
    """:func:`shifts.occurrences` of each calendar once: lines that share a calendar (as most of a
    plant's do) share its occurrences, one request's worth (≈ 0.5 ms of Python per line and month)."""

    def __init__(self, *, since: datetime, until: datetime, zone: ZoneInfo) -> None:
        self.since, self.until, self.zone = since, until, zone
        self.seen: dict[str, list[Occurrence]] = {}

    def __call__(self, shifts: list[dict[str, Any]]) -> list[Occurrence]:
        key = json.dumps(shifts, sort_keys=True)
        if key not in self.seen:
            self.seen[key] = occurrences(shifts, since=self.since, until=self.until, zone=self.zone)
        return self.seen[key]


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
    """Per bucket (hour, day or week of the plant's calendar): items that passed the last routing
    step (``good``), items tried there (``total``), and the plan: each shift's planned output
    spread over the shift's hours."""
    starts = _bucket_starts(span, bucket)
    ends = [*starts[1:], span.until]
    items = [{"start": s.isoformat(), "good": 0, "total": 0, "plan": 0.0} for s in starts]
    step = await last_step(session)
    if step is not None:
        hours = sources.line_hours(session, span.since, span.until, line.id if line else None)
        # PostgreSQL sums each bucket itself (``width_bucket`` over the bucket starts: 30 rows for
        # 30 days, not 720 hours); SQLite sums per hour, each placed by a bisect here
        buckets = session.bind.dialect.name == "postgresql" and bucket != "hour"
        if buckets:
            edges = bindparam("starts", [*starts, span.until], type_=postgresql.ARRAY(DateTime(timezone=True)))
            key = func.width_bucket(hours.c.hour_start, edges)
        else:
            key = hours.c.hour_start
        query = (
            select(
                key, cast(func.sum(hours.c.final_passed), BigInteger), cast(func.sum(hours.c.first_total), BigInteger)
            )
            .where(hours.c.process_id == step)
            .group_by(key)
        )
        for at, good, total in await (await session.connection()).execute(query):
            i = at - 1 if buckets else _index(starts, at)  # a bucket's index counts from 1; an hour is UTC
            if i is not None and 0 <= i < len(items):
                items[i]["good"] += int(good or 0)
                items[i]["total"] += int(total or 0)
    shared = SharedOccurrences(since=span.since, until=span.until, zone=span.zone)
    for shifts in (await calendars(session, line)).values():
        for occ in shared(shifts):
            # only the buckets the shift overlaps: from the one it starts in to the one it ends in
            for i in range(max(bisect_right(starts, occ.start) - 1, 0), bisect_left(starts, occ.end)):
                overlap = (min(ends[i], occ.end) - max(starts[i], occ.start)).total_seconds()
                if overlap > 0:
                    items[i]["plan"] += occ.planned_output * overlap / occ.full_seconds
    for item in items:
        item["plan"] = round(item["plan"], 2)
    return {"bucket": bucket, "items": items}


def _index(starts: list[datetime], moment: datetime) -> int | None:
    lo, hi = 0, len(starts) - 1
    if not starts or moment < starts[0]:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= moment:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ------------------------------------------------------------------ OEE
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


async def downtime_intervals(*, session: AsyncSession, line_id: int, span: Range, now: datetime) -> list[Interval]:
    """When the line was down (see :func:`downtime_by_line`)."""
    return (await downtime_by_line(session=session, line_ids={line_id}, span=span, now=now))[line_id]


async def downtime_by_line(
    *, session: AsyncSession, line_ids: set[int], span: Range, now: datetime
) -> dict[int, list[Interval]]:
    """When each line was down: machine states other than ``running`` (connector plugins), station
    silence (from the station's last heartbeat until it reported again) and device faults (an
    open circuit breaker of one of the line's devices), each open one lasting until ``now``.
    One query however many lines: the alerts, the states, and the station and device codes that
    tie an alert to its lines, as one ``UNION ALL`` (a round trip each cost more than the rows)."""
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
        select(
            _kind("station"), Station.line_id, Station.code, _no(Alert.detail.type), _no(UTCDateTime), _no(UTCDateTime)
        ).where(Station.line_id.in_(ids)),
        select(
            _kind("device"), Device.line_id, Device.code, _no(Alert.detail.type), _no(UTCDateTime), _no(UTCDateTime)
        ).where(Device.line_id.in_(ids)),
    )
    stations: dict[str, set[int]] = {}
    devices: dict[str, set[int]] = {}
    alerts = []
    for kind, line_id, code, detail, a, b in await session.execute(query):
        if kind == "state":
            out[line_id].append((a, b or now))
        elif kind == "station":
            stations.setdefault(code, set()).add(line_id)
        elif kind == "device":
            devices.setdefault(code, set()).add(line_id)
        else:
            alerts.append((code, detail, a, b))
    for key, detail, raised, resolved in alerts:
        parts = key.split(":")
        if parts[0] == "station":
            try:
                raised = min(raised, datetime.fromisoformat(detail.get("last_heartbeat_at")))
            except (TypeError, ValueError, AttributeError):
                pass
            lines = stations.get(parts[1], ())
        else:
            lines = devices.get(parts[-1], ())
        for line_id in lines:
            out[line_id].append((raised, resolved or now))
    return out


def _kind(name: str):
    return literal_column(f"'{name}'", String).label("kind")


def _no(type_):
    """A typed NULL column of a ``UNION`` arm that has no such value."""
    return cast(null(), type_)


def _factors(planned: float, down: float, ideal: float, counted: int, good: int, total: int) -> dict[str, Any]:
    run = max(planned - down, 0.0)
    availability = _ratio(run, planned)
    # parts were made but no step (or machine) they were made at has an ideal cycle time: the
    # performance is unknown, not zero
    performance = None if total and not counted else _ratio(ideal, run)
    quality = _ratio(good, total)
    oee = round(availability * performance * quality, 4) if None not in (availability, performance, quality) else None
    return {
        "oee": oee,
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
        },
        "quality": {"value": quality, "good": good, "total": total},
    }


async def oee(*, session: AsyncSession, span: Range, line: Line | None, now: datetime) -> dict[str, Any]:
    """OEE = availability × performance × quality for the line (or all lines together) and for
    each shift occurrence in the range, planned time counted up to ``now``."""
    by_line, shifts_out = await _oee_by_line(session=session, span=span, line=line, now=now)
    totals = {"planned": 0.0, "down": 0.0, "ideal": 0.0, "counted": 0, "good": 0, "total": 0}
    for figures in by_line.values():
        for key, value in figures.items():
            totals[key] += value
    return {
        "line": line.code if line else None,
        "from": span.since.isoformat(),
        "to": span.until.isoformat(),
        **_factors(**totals),
        "shifts": shifts_out,
    }


async def _oee_by_line(
    *, session: AsyncSession, span: Range, line: Line | None, now: datetime
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """Each line's OEE figures over the range (summed over its shifts), and every shift's factors.
    Three queries however many lines and shifts (lines with their calendars, the counts per
    span between shift bounds, the downtime), a fourth and fifth only when machines counted parts."""
    query = select(Line.id, Line.code, ShiftCalendar.shifts).join(ShiftCalendar, ShiftCalendar.line_id == Line.id)
    if line is not None:
        query = query.where(Line.id == line.id)
    until = min(span.until, now)
    codes, plans = {}, {}
    if until > span.since:
        shared = SharedOccurrences(since=span.since, until=until, zone=span.zone)
        for line_id, code, shifts in sorted(await session.execute(query)):
            if occs := shared(shifts):
                codes[line_id], plans[line_id] = code, occs
    by_line: dict[int, dict[str, Any]] = {}
    shifts_out: list[dict[str, Any]] = []
    if not plans:
        return by_line, shifts_out
    bounds = sorted({moment for occs in plans.values() for occ in occs for moment in (occ.start, occ.end)})
    hours, machines = await _counts_by_line(session, line, set(plans), bounds)
    down = await downtime_by_line(session=session, line_ids=set(plans), span=span, now=now)
    for line_id, occs in plans.items():
        totals = {"planned": 0.0, "down": 0.0, "ideal": 0.0, "counted": 0, "good": 0, "total": 0}
        # a line whose machines counted parts in the range (connector plugins) takes performance
        # and quality from those counts, else from its process records (docs/kpi.md)
        if machines.get(line_id):
            line_hours, source = machines[line_id], "machines"
        else:
            line_hours, source = hours.get(line_id, []), "records"
        for occ in occs:
            figures = _shift_figures(occ, down[line_id], line_hours)
            for key, value in figures.items():
                totals[key] += value
            factors = _factors(**figures)
            shifts_out.append(
                {
                    "line": codes[line_id],
                    "shift": occ.shift,
                    "start": occ.start.isoformat(),
                    "end": occ.end.isoformat(),
                    "oee": factors["oee"],
                    **{k: factors[k]["value"] for k in ("availability", "performance", "quality")},
                    "counts_from": source,
                }
            )
        by_line[line_id] = totals
    return by_line, shifts_out


async def _counts_by_line(
    session: AsyncSession, line: Line | None, line_ids: set[int], bounds: list[datetime]
) -> tuple[dict[int, list[tuple]], dict[int, list[tuple]]]:
    """Per line, sorted by time: ``(start, records, passed, records of steps with an ideal cycle
    time, Σ ideal cycle seconds × records)`` of the rollup hours that start in each span between
    two consecutive ``bounds`` (sorted UTC times: every shift's start and end), ``start`` being the
    span's first bound; and the same of the parts the machines of ``line_ids`` counted (connector
    plugins; a line whose machines counted nothing is left out). A shift is a run of whole spans,
    so :func:`_shift_figures` sums a few rows per shift, not each of its hours. One query.

    PostgreSQL sums the spans itself (``width_bucket`` over the bounds: a binary search per rollup
    row), so a 30-day range of 4 lines brings back ~360 rows, not ~2,900 hours; SQLite sums per
    hour (each hour's start its own key: the same sums, as more rows). Steps and their ideal cycle
    times are joined as they are now, so an edited ideal time counts at once. The sums come back
    as integers and floats (not ``numeric``, which arrives as ``Decimal``) through the Core
    connection (no ORM row processing)."""
    spans = session.bind.dialect.name == "postgresql"
    # machine hours from the first hour a shift starts in: one there (before any shift) still makes
    # the line's counts come from its machines, as it always did
    first_hour = bounds[0].replace(minute=0, second=0, microsecond=0)
    edges = bindparam("bounds", bounds, type_=postgresql.ARRAY(DateTime(timezone=True)))

    def span_of(hour_start):
        return func.width_bucket(hour_start, edges) if spans else hour_start

    hours = sources.line_hours(session, bounds[0], bounds[-1], line.id if line else None)
    ideal = Process.ideal_cycle_seconds
    records = (
        select(
            hours.c.line_id,
            span_of(hours.c.hour_start),
            _no(String),
            cast(func.sum(hours.c.total), BigInteger),
            cast(func.sum(hours.c.passed), BigInteger),
            cast(func.sum(case((ideal.is_not(None), hours.c.total), else_=0)), BigInteger),
            cast(func.sum(func.coalesce(ideal, 0.0) * hours.c.total), Float),
        )
        .select_from(hours.outerjoin(Process, Process.id == hours.c.process_id))
        .group_by(hours.c.line_id, span_of(hours.c.hour_start))
    )
    # per machine: its ideal cycle time is in its configuration, applied below
    parts = MachineCount.good + MachineCount.bad
    machine = (
        select(
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
    counted_by: dict[tuple[int, Any], list] = {}
    for line_id, at, device, total, passed, counted, ideal_total in await (await session.connection()).execute(
        union_all(records, machine)
    ):
        # a span's index counts from 1 (0: before the first bound); an hour is UTC already (UTCDateTime)
        start = (bounds[at - 1] if at else first_hour) if spans else at
        if device is None:
            out.setdefault(line_id, []).append((start, total, passed or 0, counted or 0, ideal_total or 0.0))
        elif counted:
            counted_by.setdefault((line_id, start), []).append((device, total, passed))
    for items in out.values():
        items.sort()
    return out, await _machine_counts(session, counted_by)


async def _machine_counts(session: AsyncSession, counted_by: dict[tuple[int, Any], list]) -> dict[int, list[tuple]]:
    """Machine counts per line and span (``(device, parts, good)`` each) in the shape of
    :func:`_counts_by_line`. The ideal cycle time of a machine is its effective configuration's
    ``ideal_cycle_seconds`` (the device's own, else the line's ``device_defaults`` for its kind).
    Two queries, only when machines counted parts."""
    if not counted_by:
        return {}
    from mes_kernel.devices import effective_config

    counted_lines = {line_id for line_id, _ in counted_by}
    lines = {x.id: x for x in (await session.execute(select(Line).where(Line.id.in_(counted_lines)))).scalars()}
    ideal: dict[str, float] = {}
    for device in (await session.execute(select(Device).where(Device.line_id.in_(counted_lines)))).scalars():
        value = effective_config(lines[device.line_id], device).get("ideal_cycle_seconds")
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            ideal[device.code] = float(value)
    out: dict[int, list[tuple]] = {}
    for (line_id, start), machines in sorted(counted_by.items()):
        n = sum(total for _, total, _ in machines)
        good = sum(passed for _, _, passed in machines)
        with_ideal = sum(total for device, total, _ in machines if device in ideal)
        seconds = sum(ideal[device] * total for device, total, _ in machines if device in ideal)
        out.setdefault(line_id, []).append((start, n, good, with_ideal, seconds))
    return out


def _shift_figures(occ: Occurrence, down: list[Interval], hours) -> dict[str, Any]:
    """A shift's planned and down seconds, and the counts of the rollup hours that start in it
    (``hours``: rows of hours, or of spans between shift bounds, sorted by their start, see
    :func:`_counts_by_line`; an hour counts for the shift its first instant falls in, exact when
    shifts start on whole hours)."""
    counted = good = total = 0
    ideal_total = 0.0
    for _, n, passed, n_counted, n_ideal in hours[bisect_left(hours, (occ.start,)) : bisect_left(hours, (occ.end,))]:
        total += n
        good += passed
        counted += n_counted
        ideal_total += n_ideal
    return {
        "planned": (occ.end - occ.start).total_seconds(),
        "down": _covered(down, occ.start, occ.end),
        "ideal": round(ideal_total, 3),
        "counted": counted,
        "good": good,
        "total": total,
    }


# ------------------------------------------------------------------ each line now
def current_lots(line_ids: list[int]) -> Select:
    """``(line id, lot_number)`` of each line's newest LOT in progress (None: none): one backward
    probe of ``ix_lots_in_progress_by_line`` per line (a window over every LOT in progress sorted
    them all: 23 ms at 18,000). The status is written into the SQL, not bound: the partial index
    (``WHERE status = 'in_progress'``) serves only a predicate the planner can prove implies it,
    and a bound ``$1`` made the cached generic plan (asyncpg prepares, PostgreSQL caches from the
    sixth run) sort every LOT of the line instead."""
    newest = (
        select(Lot.lot_number)
        .where(Lot.line_id == Line.id, Lot.status == literal_column("'in_progress'", String))
        .order_by(Lot.updated_at.desc(), Lot.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return select(Line.id, newest).where(Line.id.in_(line_ids))


async def lines_now(*, session: AsyncSession, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """Every line: its LOT in progress (the one most recently changed), today's output against
    today's plan, today's OEE so far, and its open alerts (its stations' and devices').
    A fixed number of queries however many lines."""
    today = parse_range(since=None, until=None, zone=zone, now=now)
    lines = (await session.execute(select(Line).order_by(Line.code))).scalars().all()
    if not lines:
        return {"items": []}
    rows = await session.execute(current_lots([x.id for x in lines]))
    current = {line_id: lot_number for line_id, lot_number in rows if lot_number is not None}
    good: dict[int, int] = {}
    step = await last_step(session)
    if step is not None:
        hours = sources.line_hours(session, today.since, today.until)
        good = {
            line_id: int(n or 0)
            for line_id, n in await session.execute(
                select(hours.c.line_id, func.sum(hours.c.final_passed))
                .where(hours.c.process_id == step)
                .group_by(hours.c.line_id)
            )
        }
    shared = SharedOccurrences(since=today.since, until=today.until, zone=zone)
    plans = {
        line_id: sum(
            occ.planned_output
            * max((min(today.until, occ.end) - max(today.since, occ.start)).total_seconds(), 0)
            / occ.full_seconds
            for occ in shared(shifts)
        )
        for line_id, shifts in (await calendars(session, None)).items()
    }
    figures, _ = await _oee_by_line(session=session, span=today, line=None, now=now)
    open_alerts = (await session.execute(select(Alert.key).where(Alert.resolved_at.is_(None)))).scalars().all()
    stations: dict[int, set[str]] = {}
    for code, line_id in await session.execute(select(Station.code, Station.line_id)):
        stations.setdefault(line_id, set()).add(code)
    devices: dict[int, set[str]] = {}
    for code, line_id in await session.execute(select(Device.code, Device.line_id)):
        devices.setdefault(line_id, set()).add(code)
    items = []
    for line in lines:
        mine_stations, mine_devices = stations.get(line.id, set()), devices.get(line.id, set())
        alerts = sum(
            1
            for key in open_alerts
            if (key.startswith("station:") and key.split(":")[1] in mine_stations)
            or (key.startswith("breaker:") and key.split(":")[-1] in mine_devices)
        )
        line_figures = figures.get(line.id)
        items.append(
            {
                "line": line.code,
                "name": line.name,
                "current_lot": current.get(line.id),
                "output": good.get(line.id, 0),
                "plan": round(plans.get(line.id, 0.0), 2),
                "oee": _factors(**line_figures)["oee"] if line_figures else None,
                "open_alerts": alerts,
            }
        )
    return {"items": items}
