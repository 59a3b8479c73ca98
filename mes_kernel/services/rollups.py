"""Hourly KPI rollups, kept exact in the same transaction as the records they count, and rebuilt
from raw records by ``mes kpi rebuild``.

Why the same transaction rather than an incremental job with a watermark: record ids come from a
sequence and commit out of order, so an id or time watermark either waits for the slowest open
transaction or misses a row that committed late. Counting inside the recording transaction makes
the rollup commit or roll back with its records — nothing to reconcile — at the cost of a few
upserts per group-commit batch (measured by ``bench/bench_records.py --rollups``).

Buckets are ``(hour_start, line_id, process_id, station_id, product)``; ``0`` stands for "no line"
or "no station" so the key has no NULLs. A record counts in the UTC hour of ``event_at`` (when it
happened at the station). An item (a unit by serial number, else its LOT) counts for first-pass
and final yield once per process step, in the bucket of its first record there; "first" and
"latest" are by record id, the order the server stored them.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import KpiHourly, KpiHourlyDefect, ProcessItem

SHARDS = 8
COUNTS = ("total", "passed", "first_total", "first_passed", "final_passed", "cycle_seconds_sum", "cycle_count")


def hour_of(moment: datetime) -> datetime:
    """The UTC hour that contains ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def item_of(row: dict[str, Any]) -> str:
    """What first-pass yield counts: the unit's serial number, else the LOT number."""
    return row.get("serial_number") or row["lot_number"]


def cycle_seconds(data: Any) -> float | None:
    """``data.cycle_seconds`` when it is a finite non-negative number (a station's measured cycle)."""
    value = data.get("cycle_seconds") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _bucket(row: dict[str, Any]) -> tuple:
    return (
        hour_of(row["event_at"]),
        row.get("line_id") or 0,
        row["process_id"],
        row.get("station_id") or 0,
        row["_product"],
    )


def _upsert(session: AsyncSession, table):
    module = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return module.insert(table)


async def add_to_rollups(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Count records just inserted (each with ``id``, ``_product`` and its columns) into the rollups,
    in the caller's transaction. Rows are locked in key order, so concurrent batches never deadlock."""
    if not rows:
        return
    sums: dict[tuple, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    defects: dict[tuple, int] = defaultdict(int)
    for row in rows:
        counts = sums[_bucket(row)]
        counts["total"] += 1
        counts["passed"] += row["result"] == "pass"
        cycle = cycle_seconds(row.get("data"))
        if cycle is not None:
            counts["cycle_seconds_sum"] += cycle
            counts["cycle_count"] += 1
        if row["result"] == "fail" and row.get("defect_code"):
            defects[(*_bucket(row), row["defect_code"])] += 1
    await _count_items(session, rows, sums)
    # One shard per transaction: concurrent transactions counting into the same bucket mostly
    # lock different rows (readers sum the shards; fold_shards folds closed hours back into
    # shard 0). SQLite has one writer at a time: nothing to spread.
    shard = random.randrange(SHARDS) if session.bind.dialect.name == "postgresql" else 0
    await _add(session, KpiHourly, sorted((k + (shard,), v) for k, v in sums.items()), COUNTS)
    defect_rows = sorted((k + (shard,), {"count": n}) for k, n in defects.items())
    await _add(session, KpiHourlyDefect, defect_rows, ("count",))


async def _count_items(session: AsyncSession, rows: list[dict[str, Any]], sums) -> None:
    by_item: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_item[(row["process_id"], item_of(row))].append(row)
    items = sorted(by_item)
    values = []
    for key in items:
        ordered = sorted(by_item[key], key=lambda r: r["id"])
        first, last = ordered[0], ordered[-1]
        hour, line_id, _, station_id, product = _bucket(first)
        values.append(
            {
                "process_id": key[0],
                "item": key[1],
                "first_record_id": first["id"],
                "last_record_id": last["id"],
                "hour_start": hour,
                "line_id": line_id,
                "station_id": station_id,
                "product": product,
                "first_passed": first["result"] == "pass",
                "last_passed": last["result"] == "pass",
            }
        )
    stmt = (
        _upsert(session, ProcessItem.__table__)
        .on_conflict_do_nothing(index_elements=["process_id", "item"])
        .returning(ProcessItem.process_id, ProcessItem.item)
    )
    new = {(r.process_id, r.item) for r in await session.execute(stmt, values)}
    for value in values:
        if (value["process_id"], value["item"]) in new:
            bucket = (value["hour_start"], value["line_id"], value["process_id"], value["station_id"], value["product"])
            counts = sums[bucket]
            counts["first_total"] += 1
            counts["first_passed"] += value["first_passed"]
            counts["final_passed"] += value["last_passed"]
    seen = [(v["process_id"], v["item"]) for v in values if (v["process_id"], v["item"]) not in new]
    if not seen:
        return
    query = (
        select(ProcessItem)
        .where(tuple_(ProcessItem.process_id, ProcessItem.item).in_(seen))
        .order_by(ProcessItem.process_id, ProcessItem.item)
    )
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    latest = {(v["process_id"], v["item"]): v for v in values}
    changes = []
    for item in (await session.execute(query)).scalars():
        value = latest[(item.process_id, item.item)]
        if value["last_record_id"] <= item.last_record_id:
            continue
        if value["last_passed"] != item.last_passed:
            bucket = (item.hour_start, item.line_id, item.process_id, item.station_id, item.product)
            sums[bucket]["final_passed"] += 1 if value["last_passed"] else -1
        changes.append(
            {"p": item.process_id, "i": item.item, "last_id": value["last_record_id"], "last_ok": value["last_passed"]}
        )
    if changes:
        table = ProcessItem.__table__
        await session.execute(
            update(table)
            .where(table.c.process_id == bindparam("p"), table.c.item == bindparam("i"))
            .values(last_record_id=bindparam("last_id"), last_passed=bindparam("last_ok")),
            changes,
            execution_options={"synchronize_session": False},
        )


async def _add(session: AsyncSession, model, items: list[tuple[tuple, dict[str, float]]], columns) -> None:
    if not items:
        return
    table = model.__table__
    key_columns = [c.name for c in table.primary_key.columns]
    values = [{**dict(zip(key_columns, key, strict=True)), **counts} for key, counts in items]
    stmt = _upsert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=key_columns, set_={c: table.c[c] + stmt.excluded[c] for c in columns}
    )
    await session.execute(stmt, values)


async def fold_shards(session: AsyncSession, *, before: datetime) -> int:
    """Fold the shards of every bucket of the hours before ``before`` into shard 0 (PostgreSQL),
    in the caller's transaction; returns how many shard rows went. Exact under concurrent
    recording: a transaction adding to a row being folded waits for the fold, then finds the row
    gone and inserts it afresh (to be folded next time)."""
    if session.bind.dialect.name != "postgresql":
        return 0
    folded = 0
    for table, key, counts in (
        ("kpi_hourly", "hour_start, line_id, process_id, station_id, product", COUNTS),
        ("kpi_hourly_defects", "hour_start, line_id, process_id, station_id, product, defect_code", ("count",)),
    ):
        sums = ", ".join(f"sum({c})" for c in counts)
        updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
        result = await session.execute(
            text(f"""
            WITH moved AS (DELETE FROM {table} WHERE hour_start < :before AND shard <> 0 RETURNING *)
            INSERT INTO {table} ({key}, shard, {", ".join(counts)})
            SELECT {key}, 0, {sums} FROM moved GROUP BY {key}
            ON CONFLICT ({key}, shard) DO UPDATE SET {updates}
            """),
            {"before": before},
        )
        folded += result.rowcount
    return folded


def _hour_sql(column: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLite keeps UTC wall time as text in SQLAlchemy's format; the hour must be the same text.
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


def _cycle_sql(dialect: str) -> tuple[str, str]:
    if dialect == "postgresql":
        number = "jsonb_typeof(r.data->'cycle_seconds') = 'number' AND (r.data->>'cycle_seconds')::float8 >= 0"
        return f"CASE WHEN {number} THEN (r.data->>'cycle_seconds')::float8 END", number
    number = (
        "json_valid(r.data) AND json_type(r.data, '$.cycle_seconds') IN ('integer', 'real') "
        "AND json_extract(r.data, '$.cycle_seconds') >= 0"
    )
    return f"CASE WHEN {number} THEN json_extract(r.data, '$.cycle_seconds') END", number


async def rebuild(session: AsyncSession, *, since: datetime | None = None) -> dict[str, int]:
    """Recompute the rollups of every hour from ``since`` (all when None) from raw records, in the
    caller's transaction: the caller commits once, so an interrupted rebuild leaves the previous
    rollups as they were. Returns how many rollup rows were written.

    On PostgreSQL the rollup tables are locked against writers first (recording transactions wait
    at their rollup upsert, then add their counts to the rebuilt rows): a record committed while
    the rebuild reads is either in its reading or added after, never both, never neither.
    """
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        await session.execute(text("LOCK TABLE process_items, kpi_hourly, kpi_hourly_defects IN EXCLUSIVE MODE"))
    start = hour_of(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
    bound = {"since": start if dialect == "postgresql" else start.strftime("%Y-%m-%d %H:%M:%S.%f")}
    for table in ("kpi_hourly", "kpi_hourly_defects", "process_items"):
        await session.execute(text(f"DELETE FROM {table} WHERE hour_start >= :since"), bound)
    hour = _hour_sql("r.event_at", dialect)
    cycle, has_cycle = _cycle_sql(dialect)
    passed = "CASE WHEN r.result = 'pass' THEN 1 ELSE 0 END"
    records = await session.execute(
        text(f"""
        INSERT INTO kpi_hourly (hour_start, line_id, process_id, station_id, product, shard, total, passed,
                                first_total, first_passed, final_passed, cycle_seconds_sum, cycle_count)
        SELECT {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product, 0,
               count(*), sum({passed}), 0, 0, 0, coalesce(sum({cycle}), 0),
               sum(CASE WHEN {has_cycle} THEN 1 ELSE 0 END)
        FROM process_records r JOIN lots l ON l.id = r.lot_id
        WHERE r.event_at >= :since
        GROUP BY {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product
    """),
        bound,
    )
    defects = await session.execute(
        text(f"""
        INSERT INTO kpi_hourly_defects (hour_start, line_id, process_id, station_id, product, defect_code, shard,
                                        count)
        SELECT {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product,
               r.defect_code, 0, count(*)
        FROM process_records r JOIN lots l ON l.id = r.lot_id
        WHERE r.event_at >= :since AND r.result = 'fail' AND r.defect_code IS NOT NULL AND r.defect_code <> ''
        GROUP BY {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product,
                 r.defect_code
    """),
        bound,
    )
    true, false = ("true", "false") if dialect == "postgresql" else ("1", "0")
    items = await session.execute(
        text(f"""
        INSERT INTO process_items (process_id, item, first_record_id, last_record_id, hour_start, line_id,
                                   station_id, product, first_passed, last_passed)
        SELECT f.process_id, f.item, f.first_id, f.last_id, {_hour_sql("a.event_at", dialect)},
               coalesce(a.line_id, 0), coalesce(a.station_id, 0), l.product,
               CASE WHEN a.result = 'pass' THEN {true} ELSE {false} END,
               CASE WHEN b.result = 'pass' THEN {true} ELSE {false} END
        FROM (SELECT process_id, coalesce(serial_number, lot_number) AS item, min(id) AS first_id,
                     max(id) AS last_id
              FROM process_records GROUP BY process_id, coalesce(serial_number, lot_number)) f
        JOIN process_records a ON a.id = f.first_id
        JOIN process_records b ON b.id = f.last_id
        JOIN lots l ON l.id = a.lot_id
        WHERE a.event_at >= :since
    """),
        bound,
    )
    # Every item's first record lies in its bucket, so the bucket's row exists: update it.
    await session.execute(
        text("""
        UPDATE kpi_hourly SET
            first_total = s.first_total, first_passed = s.first_passed, final_passed = s.final_passed
        FROM (SELECT hour_start, line_id, process_id, station_id, product, count(*) AS first_total,
                     sum(CASE WHEN first_passed THEN 1 ELSE 0 END) AS first_passed,
                     sum(CASE WHEN last_passed THEN 1 ELSE 0 END) AS final_passed
              FROM process_items WHERE hour_start >= :since
              GROUP BY hour_start, line_id, process_id, station_id, product) s
        WHERE kpi_hourly.hour_start = s.hour_start AND kpi_hourly.line_id = s.line_id
          AND kpi_hourly.process_id = s.process_id AND kpi_hourly.station_id = s.station_id
          AND kpi_hourly.product = s.product AND kpi_hourly.shard = 0
    """),
        bound,
    )
    return {"kpi_hourly": records.rowcount, "kpi_hourly_defects": defects.rowcount, "process_items": items.rowcount}
