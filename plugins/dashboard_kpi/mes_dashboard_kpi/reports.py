"""The managers' KPIs over a date range and a line, read from the hourly rollups: yield by
process/station/product, defect Pareto, each line now (OEE: ``oee.py``; output against plan:
``outputs.py``; the range, line and shift plans a report covers: ``ranges.py``).

Definitions and their sources are in ``docs/kpi.md``. Times in and out are UTC ``datetime``; the
reader's zone (``tz``) decides where days and weeks start, the plant's where shifts start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.models import Alert, Device, Line, Lot, Station

from . import sources
from .oee import SILENT_AFTER_SECONDS, factors, oee_by_line
from .outputs import configured_steps, output_rows
from .ranges import Range, SharedOccurrences, calendars, parse_range, ratio

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
                "first_pass_yield": ratio(first_pass, total),
                "final_yield": ratio(passed, total),
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


async def lines_now(
    *,
    session: AsyncSession,
    zone: ZoneInfo,
    now: datetime,
    plant: ZoneInfo | None = None,
    silent_after: float = SILENT_AFTER_SECONDS,
) -> dict[str, Any]:
    """Every line: its LOT in progress (the one most recently changed), today's output (first passes
    at its output step, named as ``output_step``: None when it has none yet) against today's plan,
    today's OEE so far, and its open alerts (its stations' and devices').
    "Today" is the day in ``zone``; shifts start on the ``plant``'s clock (default ``zone``).
    A fixed number of queries however many lines."""
    today = parse_range(since=None, until=None, zone=zone, now=now, plant=plant)
    lines = (await session.execute(select(Line).order_by(Line.code))).scalars().all()
    if not lines:
        return {"items": []}
    rows = await session.execute(current_lots([x.id for x in lines]))
    current = {line_id: lot_number for line_id, lot_number in rows if lot_number is not None}
    steps, rows = await output_rows(
        session,
        since=today.since,
        until=today.until,
        lines=[x.id for x in lines],
        configured=configured_steps(lines),
    )
    good = {row.line_id: row.good for row in rows}
    shared = SharedOccurrences(since=today.since, until=today.until, zone=today.shift_zone)
    plans = {
        line_id: sum(
            occ.planned_output
            * max((min(today.until, occ.end) - max(today.since, occ.start)).total_seconds(), 0)
            / occ.full_seconds
            for occ in shared(versions)
        )
        for line_id, versions in (await calendars(session, None)).items()
    }
    figures, _, _ = await oee_by_line(session=session, span=today, line=None, now=now, silent_after=silent_after)
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
        line_factors = factors(**line_figures) if line_figures else None
        items.append(
            {
                "line": line.code,
                "name": line.name,
                "current_lot": current.get(line.id),
                "output": good.get(line.id, 0),
                "output_step": steps.get(line.id, (None,))[0],
                "plan": round(plans.get(line.id, 0.0), 2),
                "oee": line_factors["oee"] if line_factors else None,
                # faster than ideal: the views warn instead of showing an OEE over 100 % as is
                "performance_over_ideal": line_factors["performance"]["over_ideal"] if line_factors else False,
                "open_alerts": alerts,
            }
        )
    return {"items": items}
