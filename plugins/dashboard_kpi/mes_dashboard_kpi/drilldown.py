"""The LOTs and units behind one bar of the quality view: a Pareto bar (a defect code) or a yield
bar (a process step, a station, a product), over the same range and line the bar was counted on.

Counts match the bar exactly because they read what the bar's rollup was summed from:

- a **defect** bar counts failed records with that code whose hour (of ``event_at``) starts in the
  range — the rows :func:`mes_kernel.services.rollups.rebuild` sums into ``kpi_hourly_defects``;
  read from ``process_records`` through the partial index ``ix_process_records_failed_defect``
  (``(defect_code, event_at) INCLUDE (lot_number, serial_number, line_id) WHERE result = 'fail'``,
  migrations 0022 and 0026) alone, its units page in item order through
  ``ix_process_records_failed_defect_item`` (``(defect_code, coalesce(serial_number, lot_number),
  event_at)``, 0027): a page reads its own units' entries. Only the partitions of the months
  received within a day of the range are read (:func:`mes_kernel.db.partitions.received_from`;
  the indexes carry ``created_at``, 0031);
- a **yield** bar counts items (a unit, or the LOT for LOT-level records) first tried at the step
  in the range: the ``process_items`` rows whose ``hour_start`` lies in it — the rows the rollup's
  ``first_total`` / ``first_passed`` / ``final_passed`` count. Its LOTs are summed from
  ``kpi_hourly_lots`` (those rows per LOT and hour, kept by triggers: migration 0026) and, for
  whole UTC days, ``kpi_daily_lots`` / ``kpi_daily_product_lots`` (0027) /
  ``kpi_daily_station_lots`` (0030): about a row per LOT and day, and a page
  of its items is read from the bar's own index (``ix_process_items_<kind>_page`` / ``_losses``).

A month archived by ``mes db partitions archive`` keeps its rollups (the charts keep their history)
while its records go offline: a defect bar still counts its failed records, the drill-down can no
longer list them. The answer then says so — ``archived`` names the months and how many of the
bar's records (or items) are not listed — and its ``totals`` keep the bar's number apart from what
is listed. A yield bar's items stay listed (``process_items`` rows are kept with the rollups); only
their records of those months are offline.

Times in and out are UTC; the plant's zone only decided where the range's days start.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Integer, String, func, literal, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel import cursors
from mes_kernel.db.models import Line, Lot, Process, ProcessItem, ProcessRecord, Station, Unit
from mes_kernel.db.offline import archived_within
from mes_kernel.db.partitions import received_from
from mes_kernel.errors import Unprocessable
from mes_kernel.services.rollups import hour_of

from . import sources
from .ranges import Range, ratio

KINDS = ("defect", "process", "station", "product")
OUTCOMES = ("all", "first_fail", "failed")
MAX_LOTS = 200  # LOTs listed (most affected first); ``totals.lots`` counts them all
OLDEST_STATION_TIME = timedelta(days=30)  # STATION_TIME_MAX_AGE_DAYS's default


def _bar(kind: str, key: str | None, span: Range, line: Line | None, outcome: str) -> str:
    """What a cursor is for: its bar, range, line and outcome (a position in one bar's list is no
    page of another's: the page it named would silently skip units)."""
    bar = [kind, key or "", span.since.isoformat(), span.until.isoformat(), line.code if line else "", outcome]
    return "drilldown:" + json.dumps(bar)


def encode_cursor(*position: str, secret: str, bar: str) -> str:
    """The opaque ``next_cursor`` after a page's last row — a defect bar's ``(item,)``, a yield
    bar's ``(first hour ISO, item, process id)`` — signed for ``bar`` (:func:`_bar`) with ``secret``,
    the kernel's ``SECRET_KEY`` (:mod:`mes_kernel.cursors`)."""
    return cursors.sign(json.dumps(list(position)), secret=secret, purpose=bar)


def decode_cursor(cursor: str, size: int, *, secret: str, bar: str) -> tuple[str, ...]:
    """The ``size`` strings of a ``next_cursor`` this server gave for ``bar``; ``Unprocessable``
    (422 ``INVALID_CURSOR``, field ``cursor``) for anything else — changed, made up, or another
    bar's, range's, line's or outcome's."""
    raw = cursors.unsign(cursor, secret=secret, purpose=bar)
    try:
        position = json.loads(raw) if raw is not None else None
    except ValueError:
        position = None
    if (
        not isinstance(position, list)
        or len(position) != size
        or not all(isinstance(x, str) and len(x) <= 64 for x in position)
        or not all(position[:-1] if size > 1 else position)
    ):
        raise Unprocessable("cursor is not one this server gave", code="INVALID_CURSOR", field="cursor")
    return tuple(position)


def _cursor_hour(text: str) -> datetime:
    try:
        hour = datetime.fromisoformat(text)
    except ValueError:
        hour = None
    if hour is None or hour.tzinfo is None:
        raise Unprocessable("cursor is not one this server gave", code="INVALID_CURSOR", field="cursor")
    return hour


def _hour_ceil(moment: datetime) -> datetime:
    """The first whole UTC hour at or after ``moment``: a range holds the hours that start in it."""
    hour = hour_of(moment)
    return hour if hour == moment else hour + timedelta(hours=1)


async def drilldown(
    *,
    session: AsyncSession,
    kind: str,
    key: str | None,
    span: Range,
    line: Line | None,
    outcome: str = "all",
    limit: int = 50,
    cursor: str | None = None,
    oldest_station_time: timedelta = OLDEST_STATION_TIME,
    secret: str,
) -> dict[str, Any]:
    """The LOTs and units behind one bar.

    ``kind`` ``defect`` (``key``: the defect code), ``process`` (a step id), ``station`` (a
    station code; no ``key``: records made without a station) or ``product``. Answer::

        {"kind", "key", "from", "to", "line",
         "totals": {...},            # the bar's numbers (below)
         "lots": [{"lot_number", "product", ...counts}],   # most affected first, at most 200
         "units": [{"serial_number" (null: LOT-level), "lot_number", ...}],  # a page (below)
         "next_cursor": str | null,
         "archived": {"months": ["YYYY-MM", ...], "not_listed": n} | null}

    ``archived``: null unless the range covers months whose records are archived
    (:func:`mes_kernel.db.offline.archived_within`; ``oldest_station_time``: how long before its
    receipt a record's station time may lie, ``STATION_TIME_MAX_AGE_DAYS``); then ``months``
    names them and ``not_listed`` counts the bar's records (defect) or items (yield, of the
    ``outcome``) that the lists lack because they are archived.

    Defect: totals ``{"count": the bar's failed records (from the rollups as ``/kpi/pareto`` reads
    them when the range covers an archived month; else the records listed, which they equal),
    "listed": those listed (online), "units", "lots"}`` (``units`` and ``lots``: of the records
    listed; ``units`` counts items: each unit, and a LOT once for its LOT-level records); a LOT's
    ``count`` and ``units``; a unit's ``count``, ``first_at``, ``last_at`` (ISO
    UTC). Yield: totals ``{"total",
    "first_pass", "passed", "first_pass_yield", "final_yield", "lots"}`` as ``/kpi/yield`` gives
    them (read from the rollups, as the bar), ``lots`` and ``listed``: the LOTs and items the
    lists hold; a LOT's ``total``, ``first_pass``, ``passed``; a unit's ``process``, ``station``,
    ``first_passed`` and ``passed`` (its latest record there), and ``first_hour``. ``outcome``
    (yield only) lists only the items that failed their first try (``first_fail``) or are not
    passed in the end (``failed``) — the bar's loss, read through a partial index however long
    the range. The LOTs and their counts are summed from the per-LOT rollups
    (:func:`.sources.lot_counts_of`: a few rows per LOT and day); ``units`` is a page of ``limit``
    items in (first hour, item, step) order, read from the bar's own index
    (``ix_process_items_<kind>_page`` / ``_losses``), whatever the range. A defect bar's units are
    by item (serial number, else the LOT number), from ``ix_process_records_failed_defect_item``.

    Errors (422, ``field: key`` or ``cursor``): ``KEY_REQUIRED`` without a ``key`` where one is
    needed, ``PROCESS_NOT_FOUND`` / ``STATION_NOT_FOUND`` for a step or station that does not
    exist, ``INVALID_CURSOR``.
    """
    if kind != "station" and not key:
        raise Unprocessable(f"a {kind} bar needs its key", code="KEY_REQUIRED", field="key")
    bar = _bar(kind, key, span, line, outcome)
    after = decode_cursor(cursor, 1 if kind == "defect" else 3, secret=secret, bar=bar) if cursor else None
    page = partial(_page, secret=secret, bar=bar)
    head = {
        "kind": kind,
        "key": key or None,
        "from": span.since.isoformat(),
        "to": span.until.isoformat(),
        "line": line.code if line else None,
    }
    months = await archived_within(session, _hour_ceil(span.since), _hour_ceil(span.until), behind=oldest_station_time)
    if kind == "defect":
        body = await _defect(session, key, span, line, limit, after, page)
        if months:  # else every record the bar counts is online: the bar is what is listed
            body["totals"]["count"] = await _defect_bar(session, key, span, line)
        missing = body["totals"]["count"] - body["totals"]["listed"]
    else:
        body = await _yield(session, kind, key, span, line, outcome, limit, after, page)
        totals = body["totals"]
        expected = {"all": totals["total"], "first_fail": totals["total"] - totals["first_pass"],
                    "failed": totals["total"] - totals["passed"]}[outcome]  # fmt: skip
        missing = expected - totals["listed"]
    archived = {"months": months, "not_listed": max(missing, 0)} if months else None
    return {**head, **body, "archived": archived}


def _page(rows: list, limit: int, position, *, secret: str, bar: str) -> tuple[list, str | None]:
    """The page's rows (of ``limit + 1`` read) and the cursor after it (``position``: its strings)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(*position(rows[-1]), secret=secret, bar=bar) if more else None


async def _defect(session, code, span, line, limit, after, page) -> dict[str, Any]:
    r = ProcessRecord
    # 'fail' written into the SQL, not bound: the partial index serves only a predicate the planner
    # can prove implies ``result = 'fail'`` (a bound $1 loses it in the cached generic plan).
    since = _hour_ceil(span.since)
    where = [
        r.result == literal_column("'fail'", String),
        r.defect_code == code,
        r.event_at >= since,
        r.event_at < _hour_ceil(span.until),
    ]
    if session.bind.dialect.name == "postgresql":
        # the months received too early to hold a record of the range are left out while planning
        # (a range of station times prunes no partition); the indexes carry created_at (0031)
        where.append(r.created_at >= received_from(since))
    if line is not None:
        where.append(r.line_id == line.id)
    # a record's item as ``ix_process_records_failed_defect_item`` has it (the units page's order)
    item = func.coalesce(r.serial_number, r.lot_number).label("item")
    # The most affected LOTs, sorted and cut in SQL; the window sums are over every LOT (the totals).
    # Units per LOT counted as the LOT's (LOT, item) groups: a count(DISTINCT) sorts each LOT's
    # records on its own (20,000 small sorts for a code's month at 10 M records, 57 ms against 50).
    # In (LOT, item) order, ``ix_process_records_failed_defect_lot`` gives a long range's records
    # grouped as they stream past (37 ms against two hash tables' 63); a short one is sorted.
    # int4 counts: PostgreSQL sums bigints as numeric, per group and in the window.
    per_unit = (
        select(r.lot_number, item, func.count().cast(Integer).label("n"))
        .where(*where)
        .group_by(r.lot_number, item)
        .order_by(r.lot_number, item)
        .subquery()
    )
    n, units = func.sum(per_unit.c.n).cast(Integer), func.count().cast(Integer)
    top = (
        select(
            per_unit.c.lot_number,
            n.label("n"),
            units.label("units"),
            func.count().over().label("lots_total"),
            func.sum(n).over().label("count_total"),
            func.sum(units).over().label("units_total"),
        )
        .group_by(per_unit.c.lot_number)
        .order_by(n.desc(), per_unit.c.lot_number)
        .limit(MAX_LOTS)
        .subquery()
    )
    rows = (
        await session.execute(
            select(top, Lot.product)
            .select_from(top.outerjoin(Lot, Lot.lot_number == top.c.lot_number))
            .order_by(top.c.n.desc(), top.c.lot_number)
        )
    ).all()
    shown = [(row.lot_number, row.product, int(row.n), int(row.units)) for row in rows]
    lots_total, count_total, units_total = (
        (int(rows[0].lots_total), int(rows[0].count_total), int(rows[0].units_total)) if rows else (0, 0, 0)
    )
    units_query = (
        select(
            item,
            r.lot_number,
            func.max(r.serial_number).label("serial_number"),
            func.count().label("count"),
            func.min(r.event_at).label("first_at"),
            func.max(r.event_at).label("last_at"),
        )
        .where(*where)
        .group_by(item, r.lot_number)
        .order_by(item)
        .limit(limit + 1)
    )
    if after is not None:
        units_query = units_query.where(item > after[0])
    rows, next_cursor = page((await session.execute(units_query)).all(), limit, lambda row: (row.item,))
    return {
        "totals": {
            "count": count_total,
            "listed": count_total,
            "units": units_total,
            "lots": lots_total,
        },
        "lots": [
            {"lot_number": lot, "product": product, "count": n, "units": units} for lot, product, n, units in shown
        ],
        "units": [
            {
                "serial_number": row.serial_number,
                "lot_number": row.lot_number,
                "count": row.count,
                "first_at": row.first_at.isoformat(),
                "last_at": row.last_at.isoformat(),
            }
            for row in rows
        ],
        "next_cursor": next_cursor,
    }


async def _defect_bar(session, code: str, span: Range, line: Line | None) -> int:
    """The Pareto bar's own count, from what ``/kpi/pareto`` reads (the rollups, which keep the
    counts of archived months). Asked only when the range covers one: otherwise the rollups count
    exactly the records listed (``mes_kernel.services.rollups``), and the drill-down reads no more."""
    defects = sources.line_defect_counts(session, span.since, span.until, line.id if line else None)
    query = select(func.coalesce(func.sum(defects.c.count), 0)).where(defects.c.defect_code == code)
    return int((await session.execute(query)).scalar())


async def _bar_column(session, kind: str, key: str | None) -> tuple[str, Any]:
    """The column (of ``process_items`` and ``kpi_hourly_lots`` alike) and value a bar is. A step's
    id is checked only when its bar is empty (:func:`_check_step`): a step with counts exists."""
    if kind == "process":
        return "process_id", key
    if kind == "station":
        if not key:
            return "station_id", 0
        station_id = (await session.execute(select(Station.id).where(Station.code == key))).scalar()
        if station_id is None:
            raise Unprocessable(f"station {key} not found", code="STATION_NOT_FOUND", field="key")
        return "station_id", station_id
    return "product", key


async def _check_step(session, process_id: str) -> None:
    """``Unprocessable`` (422 ``PROCESS_NOT_FOUND``, field ``key``) for a step that does not exist."""
    if await session.get(Process, process_id) is None:
        raise Unprocessable(f"process {process_id} not found", code="PROCESS_NOT_FOUND", field="key")


async def _bar_numbers(session, column: str, value: Any, span: Range, line: Line | None) -> dict[str, int]:
    """The bar's own numbers (``total``, ``first_pass``, ``passed``), summed from the rows
    ``/kpi/yield`` sums (:func:`.sources.item_counts`: a few per day, any range), those of the
    bar's step id, station id (0: no station) or product alone."""
    rows = sources.item_counts(session, span.since, span.until, line.id if line else None)
    query = select(
        func.coalesce(func.sum(rows.c.first_total), 0),
        func.coalesce(func.sum(rows.c.first_passed), 0),
        func.coalesce(func.sum(rows.c.final_passed), 0),
    ).where(rows.c[column] == value)
    total, first_pass, passed = (await session.execute(query)).one()
    return {"total": int(total), "first_pass": int(first_pass), "passed": int(passed)}


def _per_lot(session, column: str, value: Any, span: Range, line: Line | None, outcome: str):
    """Per LOT, the bar's items (those of ``outcome``): ``n``, ``first`` (passed the first try),
    ``final`` (passed the latest) — summed from the per-LOT rollups (:func:`.sources.lot_counts_of`:
    about a row per LOT and day, and per hour and station at the range's ends).

    With ``recovered`` (failed the first try, passed the latest) the losses' counts follow from
    the sums: first-try failures are ``n − first`` of which ``recovered`` passed in the end; items
    not passed in the end are ``n − final``, of which ``first − (final − recovered)`` had passed
    their first try."""
    k = sources.lot_counts_of(session, column, value, span.since, span.until, line.id if line else None).c
    # int4 sums (a LOT's items): PostgreSQL sums bigints as numeric, here in the window's totals
    n, first, final, recovered = (
        func.sum(k.first_total).cast(Integer),
        func.sum(k.first_passed).cast(Integer),
        func.sum(k.final_passed).cast(Integer),
        func.sum(k.recovered).cast(Integer),
    )
    if outcome == "first_fail":
        n, first, final = n - first, literal_column("0"), recovered
    elif outcome == "failed":
        n, first, final = n - final, first - (final - recovered), literal_column("0")
    return (
        select(k.lot_id, n.label("n"), first.label("first"), final.label("final"))
        .group_by(k.lot_id)
        .having(n > 0)
        .subquery()
    )


async def _yield(session, kind, key, span, line, outcome, limit, after, page) -> dict[str, Any]:
    p = ProcessItem
    column, value = await _bar_column(session, kind, key)
    where = [p.__table__.c[column] == value, p.hour_start >= span.since, p.hour_start < span.until]
    if line is not None:
        where.append(p.line_id == line.id)
    # ``NOT first_passed`` / ``NOT last_passed`` as such: the partial index ``ix_process_items_<kind>_losses``
    # (``WHERE NOT first_passed OR NOT last_passed``) serves them, so a year's losses are read, not its items.
    if outcome == "first_fail":
        where.append(~p.first_passed)
    elif outcome == "failed":
        where.append(~p.last_passed)
    bar = await _bar_numbers(session, column, value, span, line)
    if kind == "process" and not bar["total"]:
        await _check_step(session, value)
    per_lot = _per_lot(session, column, value, span, line, outcome)
    n, first = per_lot.c.n, per_lot.c.first
    # The most first-try failures first; the LOTs cut (ties at the cut by registration) before
    # their numbers are looked up, so only the LOTs listed are joined.
    top = (
        select(per_lot, func.count().over().label("lots"), func.sum(n).over().label("listed"))
        .order_by((n - first).desc(), n.desc(), per_lot.c.lot_id)
        .limit(MAX_LOTS)
        .subquery()
    )
    rows = (
        await session.execute(
            select(Lot.lot_number, top.c.n, top.c.first, top.c.final, top.c.lots, top.c.listed, Lot.product)
            .select_from(top.outerjoin(Lot, Lot.id == top.c.lot_id))
            .order_by((top.c.n - top.c.first).desc(), top.c.n.desc(), Lot.lot_number)
        )
    ).all()
    shown = [(lot, int(c), int(f or 0), int(g or 0)) for lot, c, f, g, *_ in rows]
    lots_total, listed = (int(x or 0) for x in rows[0][4:6]) if rows else (0, 0)
    products = {row.lot_number: row.product for row in rows}
    units_query = (
        select(
            p.item.label("item"),
            p.process_id,
            Lot.lot_number,
            Unit.serial_number,  # None: a LOT-level item
            Station.code.label("station"),
            p.first_passed,
            p.last_passed,
            p.hour_start,
        )
        .select_from(
            p.__table__.outerjoin(Lot, Lot.id == p.lot_id)
            .outerjoin(Unit, Unit.serial_number == p.item)
            .outerjoin(Station, Station.id == p.station_id)
        )
        .where(*where)
        .order_by(p.hour_start, p.item, p.process_id)
        .limit(limit + 1)
    )
    if after is not None:  # the page order is the kind's index's (a step's: its step is the bar)
        hour, item, process_id = literal(_cursor_hour(after[0]), p.hour_start.type), after[1], after[2]
        if column == "process_id":
            units_query = units_query.where(tuple_(p.hour_start, p.item) > tuple_(hour, item))
        else:
            position = tuple_(hour, item, process_id)
            units_query = units_query.where(tuple_(p.hour_start, p.item, p.process_id) > position)
    rows, next_cursor = page(
        (await session.execute(units_query)).all(),
        limit,
        lambda row: (row.hour_start.isoformat(), row.item, row.process_id),
    )
    return {
        "totals": {
            **bar,
            "first_pass_yield": ratio(bar["first_pass"], bar["total"]),
            "final_yield": ratio(bar["passed"], bar["total"]),
            "lots": lots_total,
            "listed": listed,
        },
        "lots": [
            {"lot_number": lot, "product": products.get(lot), "total": n, "first_pass": f, "passed": g}
            for lot, n, f, g in shown
        ],
        "units": [
            {
                "serial_number": row.serial_number,
                "lot_number": row.lot_number,
                "process": row.process_id,
                "station": row.station,
                "first_passed": bool(row.first_passed),
                "passed": bool(row.last_passed),
                "first_hour": row.hour_start.isoformat(),
            }
            for row in rows
        ],
        "next_cursor": next_cursor,
    }
