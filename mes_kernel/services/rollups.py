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
"latest" are by record id, the order the server stored them — not the order transactions commit
in: a record whose id is below its item's first one, committed late, moves the item's first
attempt (and its counts) to itself (:func:`_update_seen`).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..db import lot_counts
from ..db.models import KpiHourly, KpiHourlyDefect, ProcessItem
from . import rebuild_sql
from .rebuild_sql import hour_sql
from .trace import TRACE_CTES, add_trace_events, trace_params

# PostgreSQL: every recording transaction adds its counts in rows of its own shard (a random
# number in [1, SHARD_SPACE)), so it inserts rows nobody else writes and never waits for another
# transaction's row lock; fold_shards sums them into shard 0 (the rebuild's) every few seconds.
SHARD_SPACE = 2**31 - 1
COUNTS = (
    "total",
    "passed",
    "first_total",
    "first_passed",
    "final_passed",
    "output",
    "cycle_seconds_sum",
    "cycle_count",
)


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


def _sums(rows: list[dict[str, Any]]) -> tuple[dict[tuple, dict[str, float]], dict[tuple, int], dict[tuple, list]]:
    """Per bucket: record counts; per bucket and defect code: failed records; per item (process,
    item): its records here as ``(id, passed, bucket, lot id)``. One pass over the rows (this runs in
    every recording transaction: lists and local names, not a dict per count)."""
    per_bucket: dict[tuple, list] = {}
    defects: dict[tuple, int] = defaultdict(int)
    by_item: dict[tuple[str, str], list] = defaultdict(list)
    for row in rows:
        at = row["event_at"]
        # Rows carry UTC times (the resolver converts a station's time); anything else is converted.
        hour = at.replace(minute=0, second=0, microsecond=0) if at.tzinfo is UTC else hour_of(at)
        bucket = (hour, row.get("line_id") or 0, row["process_id"], row.get("station_id") or 0, row["_product"])
        counts = per_bucket.get(bucket)
        if counts is None:
            counts = per_bucket[bucket] = [0, 0, 0.0, 0]  # records, passed, cycle seconds, cycles
        counts[0] += 1
        result = row["result"]
        passed = result == "pass"
        if passed:
            counts[1] += 1
        data = row.get("data")
        if data:
            cycle = cycle_seconds(data)
            if cycle is not None:
                counts[2] += cycle
                counts[3] += 1
        if result == "fail" and row.get("defect_code"):
            defects[(*bucket, row["defect_code"])] += 1
        by_item[(row["process_id"], row.get("serial_number") or row["lot_number"])].append(
            (row["id"], passed, bucket, row["lot_id"])
        )
    sums: dict[tuple, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for bucket, (total, passed_n, cycle_sum, cycle_n) in per_bucket.items():
        sums[bucket].update(total=total, passed=passed_n, cycle_seconds_sum=cycle_sum, cycle_count=cycle_n)
    return sums, defects, by_item


def _item_values(by_item: dict[tuple, list]) -> list[dict[str, Any]]:
    """The ``process_items`` row each item of the batch would start, in key order."""
    values = []
    for key in sorted(by_item):
        attempts = by_item[key]
        if len(attempts) == 1:
            first = last = attempts[0]
        else:
            first, last = min(attempts), max(attempts)
        hour, line_id, _, station_id, product = first[2]
        passes = [a for a in attempts if a[1]]
        passed = min(passes) if passes else None
        values.append(
            {
                "process_id": key[0],
                "item": key[1],
                "first_record_id": first[0],
                "last_record_id": last[0],
                "hour_start": hour,
                "line_id": line_id,
                "station_id": station_id,
                "product": product,
                "first_passed": first[1],
                "last_passed": last[1],
                "pass_record_id": passed[0] if passed else None,
                "pass_hour_start": passed[2][0] if passed else None,
                "pass_line_id": passed[2][1] if passed else None,
                "pass_station_id": passed[2][3] if passed else None,
                "lot_id": first[3],
            }
        )
    return values


def _pass_bucket(value: dict[str, Any]) -> tuple:
    return (value["pass_hour_start"], value["pass_line_id"], value["process_id"], value["pass_station_id"],
            value["product"])  # fmt: skip


async def add_to_rollups(
    session: AsyncSession, rows: list[dict[str, Any]], *, trace: list[dict[str, Any]] | None = None
) -> None:
    """Count records just inserted (each with ``id``, ``_product`` and its columns) into the rollups,
    in the caller's transaction. Rows are locked in key order, so concurrent batches never deadlock.

    ``trace``: the transaction's trace rows (:func:`trace.trace_row`), written here too
    (:func:`trace.add_trace_events`), so that on PostgreSQL they ride in the rollups' statement.

    PostgreSQL: one statement writes the trace, claims the batch's new items and adds every
    count (records, first attempts, defects) to this transaction's own shard — the rollups add no
    round trip of their own; a second and third run only when the batch retests items already
    seen (their latest result may change final yield)."""
    postgres = session.bind.dialect.name == "postgresql"
    if trace and not (postgres and rows):
        await add_trace_events(session, trace)
    if not rows:
        return
    sums, defects, by_item = _sums(rows)
    values = _item_values(by_item)
    if postgres:
        shard = random.randrange(1, SHARD_SPACE)
        new = await _add_postgresql(session, values, sums, defects, shard, trace=trace)
        seen = [v for v in values if (v["process_id"], v["item"]) not in new]
        if seen:
            changes: dict[tuple, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
            await _update_seen(session, seen, changes)
            await _add(session, KpiHourly, sorted((k + (shard,), v) for k, v in changes.items()), COUNTS)
        return
    # SQLite: one writer at a time, statements in process; no shards.
    stmt = (
        _upsert(session, ProcessItem.__table__)
        .on_conflict_do_nothing(index_elements=["process_id", "item"])
        .returning(ProcessItem.process_id, ProcessItem.item)
    )
    new = {(r.process_id, r.item) for r in await session.execute(stmt, values)}
    for value in values:
        if (value["process_id"], value["item"]) in new:
            counts = sums[_item_bucket(value)]
            counts["first_total"] += 1
            counts["first_passed"] += value["first_passed"]
            counts["final_passed"] += value["last_passed"]
            if value["pass_record_id"] is not None:
                sums[_pass_bucket(value)]["output"] += 1
    seen = [v for v in values if (v["process_id"], v["item"]) not in new]
    if seen:
        await _update_seen(session, seen, sums)
    await _add(session, KpiHourly, sorted((k + (0,), v) for k, v in sums.items()), COUNTS)
    await _add(session, KpiHourlyDefect, sorted((k + (0,), {"count": n}) for k, n in defects.items()), ("count",))


def _item_bucket(value: dict[str, Any]) -> tuple:
    return (value["hour_start"], value["line_id"], value["process_id"], value["station_id"], value["product"])


_KEY = ("hour_start", "line_id", "process_id", "station_id", "product")
# One statement per batch (data-modifying CTEs fed by ``unnest`` of arrays). With the trace's CTEs
# (``trace.TRACE_CTES``) it also writes the batch's trace events and totals. In which order a
# statement's sub-statements run is PostgreSQL's choice; every recording transaction runs the
# same statement, so all take their row locks (items, trace totals) in one order.
_ROLLUP_CTES = f"""
    v AS (
        SELECT * FROM unnest(CAST(:i_process AS text[]), CAST(:i_item AS text[]), CAST(:i_first AS bigint[]),
                             CAST(:i_last AS bigint[]), CAST(:i_hour AS timestamptz[]), CAST(:i_line AS bigint[]),
                             CAST(:i_station AS bigint[]), CAST(:i_product AS text[]),
                             CAST(:i_first_ok AS boolean[]), CAST(:i_last_ok AS boolean[]),
                             CAST(:i_pass AS bigint[]), CAST(:i_pass_hour AS timestamptz[]),
                             CAST(:i_pass_line AS bigint[]), CAST(:i_pass_station AS bigint[]),
                             CAST(:i_lot AS bigint[]))
            AS v(process_id, item, first_record_id, last_record_id, hour_start, line_id, station_id, product,
                 first_passed, last_passed, pass_record_id, pass_hour_start, pass_line_id, pass_station_id, lot_id)
    ), new_items AS (
        INSERT INTO process_items (process_id, item, first_record_id, last_record_id, hour_start, line_id,
                                   station_id, product, first_passed, last_passed, pass_record_id,
                                   pass_hour_start, pass_line_id, pass_station_id, lot_id)
        SELECT * FROM v ORDER BY process_id, item
        ON CONFLICT (process_id, item) DO NOTHING
        RETURNING process_id, item, hour_start, line_id, station_id, product, first_passed, last_passed,
                  pass_record_id, pass_hour_start, pass_line_id, pass_station_id
    ), passes AS (
        SELECT pass_hour_start AS hour_start, pass_line_id AS line_id, process_id, pass_station_id AS station_id,
               product, count(*) AS output
        FROM new_items WHERE pass_record_id IS NOT NULL
        GROUP BY pass_hour_start, pass_line_id, process_id, pass_station_id, product
    ), firsts AS (
        SELECT {", ".join(_KEY)}, count(*) AS first_total, count(*) FILTER (WHERE first_passed) AS first_passed,
               count(*) FILTER (WHERE last_passed) AS final_passed
        FROM new_items GROUP BY {", ".join(_KEY)}
    ), b AS (
        SELECT * FROM unnest(CAST(:b_hour AS timestamptz[]), CAST(:b_line AS bigint[]), CAST(:b_process AS text[]),
                             CAST(:b_station AS bigint[]), CAST(:b_product AS text[]), CAST(:b_total AS bigint[]),
                             CAST(:b_passed AS bigint[]), CAST(:b_cycle AS float8[]), CAST(:b_cycles AS bigint[]))
            AS b({", ".join(_KEY)}, total, passed, cycle_seconds_sum, cycle_count)
    ), hourly AS (
        INSERT INTO kpi_hourly ({", ".join(_KEY)}, shard, total, passed, first_total, first_passed, final_passed,
                                output, cycle_seconds_sum, cycle_count)
        SELECT b.hour_start, b.line_id, b.process_id, b.station_id, b.product, :shard, b.total, b.passed,
               coalesce(f.first_total, 0), coalesce(f.first_passed, 0), coalesce(f.final_passed, 0),
               coalesce(p.output, 0), b.cycle_seconds_sum, b.cycle_count
        FROM b LEFT JOIN firsts f USING ({", ".join(_KEY)}) LEFT JOIN passes p USING ({", ".join(_KEY)})
        ORDER BY b.hour_start, b.line_id, b.process_id, b.station_id, b.product
        ON CONFLICT ({", ".join(_KEY)}, shard) DO UPDATE SET
            {", ".join(f"{c} = kpi_hourly.{c} + excluded.{c}" for c in COUNTS)}
    ), defects AS (
        INSERT INTO kpi_hourly_defects ({", ".join(_KEY)}, defect_code, shard, count)
        SELECT {", ".join(f"d.{c}" for c in _KEY)}, d.defect_code, :shard, d.n
        FROM unnest(CAST(:d_hour AS timestamptz[]), CAST(:d_line AS bigint[]),
                                           CAST(:d_process AS text[]), CAST(:d_station AS bigint[]),
                                           CAST(:d_product AS text[]), CAST(:d_code AS text[]),
                                           CAST(:d_count AS bigint[]))
            AS d({", ".join(_KEY)}, defect_code, n)
        ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT ({", ".join(_KEY)}, defect_code, shard) DO UPDATE SET
            count = kpi_hourly_defects.count + excluded.count
    )"""
_ADD_POSTGRESQL = text(f"WITH {_ROLLUP_CTES} SELECT process_id, item FROM new_items")
_ADD_POSTGRESQL_TRACED = text(f"WITH {TRACE_CTES}, {_ROLLUP_CTES} SELECT process_id, item FROM new_items")


async def _add_postgresql(
    session: AsyncSession, values, sums, defects, shard: int, *, trace: list[dict[str, Any]] | None
) -> set[tuple[str, str]]:
    """The batch's rollups (and its ``trace`` rows) in one round trip: claim new items (first
    attempts count in their first record's bucket), add the counts to ``shard``'s rows; returns
    the items claimed."""
    buckets = sorted(sums.items())
    failed = sorted(defects.items())
    params: dict[str, Any] = trace_params(trace) if trace else {}
    params["shard"] = shard
    for name, column in (
        ("process", "process_id"),
        ("item", "item"),
        ("first", "first_record_id"),
        ("last", "last_record_id"),
        ("hour", "hour_start"),
        ("line", "line_id"),
        ("station", "station_id"),
        ("product", "product"),
        ("first_ok", "first_passed"),
        ("last_ok", "last_passed"),
        ("pass", "pass_record_id"),
        ("pass_hour", "pass_hour_start"),
        ("pass_line", "pass_line_id"),
        ("pass_station", "pass_station_id"),
        ("lot", "lot_id"),
    ):
        params[f"i_{name}"] = [v[column] for v in values]
    for i, name in enumerate(("hour", "line", "process", "station", "product")):
        params[f"b_{name}"] = [k[i] for k, _ in buckets]
        params[f"d_{name}"] = [k[i] for k, _ in failed]
    params["b_total"] = [c["total"] for _, c in buckets]
    params["b_passed"] = [c["passed"] for _, c in buckets]
    params["b_cycle"] = [float(c["cycle_seconds_sum"]) for _, c in buckets]
    params["b_cycles"] = [c["cycle_count"] for _, c in buckets]
    params["d_code"] = [k[5] for k, _ in failed]
    params["d_count"] = [n for _, n in failed]
    statement = _ADD_POSTGRESQL_TRACED if trace else _ADD_POSTGRESQL
    return {(r.process_id, r.item) for r in await session.execute(statement, params)}


async def _update_seen(session: AsyncSession, seen: list[dict[str, Any]], sums) -> None:
    """Items this batch retests: lock them (key order), then move their first attempt back when
    the batch holds a lower record id than the one claimed (a transaction that took its ids
    earlier committed later), and their latest attempt forward; the counts that move go into
    ``sums`` (bucket → counts, added to this transaction's shard), so first-pass and final yield
    stay those of the lowest and highest record id, whatever order transactions commit in.

    Race-free under READ COMMITTED: the row lock orders every transaction touching the item, and
    each reads the item as the previous one left it (``SELECT … FOR UPDATE`` sees the latest
    committed version). Likewise the item's first pass (where it counts as output) moves to the
    batch's when that has a lower id, or starts there when the item had none."""
    query = (
        select(
            ProcessItem.process_id,
            ProcessItem.item,
            ProcessItem.first_record_id,
            ProcessItem.first_passed,
            ProcessItem.last_record_id,
            ProcessItem.last_passed,
            ProcessItem.hour_start,
            ProcessItem.line_id,
            ProcessItem.station_id,
            ProcessItem.product,
            ProcessItem.pass_record_id,
            ProcessItem.pass_hour_start,
            ProcessItem.pass_line_id,
            ProcessItem.pass_station_id,
        )
        .where(tuple_(ProcessItem.process_id, ProcessItem.item).in_([(v["process_id"], v["item"]) for v in seen]))
        .order_by(ProcessItem.process_id, ProcessItem.item)
    )
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    batch = {(v["process_id"], v["item"]): v for v in seen}
    changes, moves, passes = [], [], []
    for item in await session.execute(query):
        value = batch[(item.process_id, item.item)]
        if value["pass_record_id"] is not None and (
            item.pass_record_id is None or value["pass_record_id"] < item.pass_record_id
        ):  # the item's first pass is this batch's: its output moves (or starts) here
            if item.pass_record_id is not None:
                where = (_utc_hour(item.pass_hour_start), item.pass_line_id, item.process_id, item.pass_station_id)
                sums[(*where, item.product)]["output"] -= 1
            sums[_pass_bucket(value)]["output"] += 1
            passes.append(
                {
                    "p": item.process_id,
                    "i": item.item,
                    "pass_id": value["pass_record_id"],
                    "pass_hour": value["pass_hour_start"],
                    "pass_line": value["pass_line_id"],
                    "pass_station": value["pass_station_id"],
                }
            )
        later = value["last_record_id"] > item.last_record_id
        last_id = value["last_record_id"] if later else item.last_record_id
        last_ok = value["last_passed"] if later else item.last_passed
        bucket = (_utc_hour(item.hour_start), item.line_id, item.process_id, item.station_id, item.product)
        if value["first_record_id"] < item.first_record_id:
            # the item's first attempt is this batch's: its counts leave the old bucket
            old = sums[bucket]
            old["first_total"] -= 1
            old["first_passed"] -= 1 if item.first_passed else 0
            old["final_passed"] -= 1 if item.last_passed else 0
            new = sums[_item_bucket(value)]
            new["first_total"] += 1
            new["first_passed"] += 1 if value["first_passed"] else 0
            new["final_passed"] += 1 if last_ok else 0
            moves.append(
                {
                    "p": item.process_id,
                    "i": item.item,
                    "first_id": value["first_record_id"],
                    "first_ok": value["first_passed"],
                    "hour": value["hour_start"],
                    "line": value["line_id"],
                    "station": value["station_id"],
                    "product": value["product"],
                    "lot": value["lot_id"],
                    "last_id": last_id,
                    "last_ok": last_ok,
                }
            )
            continue
        if not later:
            continue
        if last_ok != item.last_passed:
            sums[bucket]["final_passed"] += 1 if last_ok else -1
        changes.append({"p": item.process_id, "i": item.item, "last_id": last_id, "last_ok": last_ok})
    if changes:
        await session.execute(_UPDATE_ITEM, changes, execution_options={"synchronize_session": False})
    if moves:
        await session.execute(_MOVE_FIRST, moves, execution_options={"synchronize_session": False})
    if passes:
        await session.execute(_MOVE_PASS, passes, execution_options={"synchronize_session": False})


def _utc_hour(value: datetime) -> datetime:
    """An item's stored hour as the aware UTC datetime the batch's buckets use (SQLite hands it back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_items = ProcessItem.__table__


def _item_update(**columns: str) -> Any:
    """``UPDATE process_items SET column = :param, … WHERE process_id = :p AND item = :i``."""
    return (
        update(_items)
        .where(_items.c.process_id == bindparam("p"), _items.c.item == bindparam("i"))
        .values({column: bindparam(param) for column, param in columns.items()})
    )


_UPDATE_ITEM = _item_update(last_record_id="last_id", last_passed="last_ok")
_MOVE_PASS = _item_update(
    pass_record_id="pass_id", pass_hour_start="pass_hour", pass_line_id="pass_line", pass_station_id="pass_station"
)
_MOVE_FIRST = _item_update(
    first_record_id="first_id",
    first_passed="first_ok",
    hour_start="hour",
    line_id="line",
    station_id="station",
    product="product",
    lot_id="lot",
    last_record_id="last_id",
    last_passed="last_ok",
)
_UPSERTS: dict[tuple[str, str], Any] = {}


async def _add(session: AsyncSession, model, items: list[tuple[tuple, dict[str, float]]], columns) -> None:
    if not items:
        return
    table = model.__table__
    key_columns = [c.name for c in table.primary_key.columns]
    values = [{**dict(zip(key_columns, key, strict=True)), **counts} for key, counts in items]
    dialect = session.bind.dialect.name
    stmt = _UPSERTS.get((dialect, table.name))
    if stmt is None:  # built once per dialect and table: constructing it cost as much as running it
        insert = _upsert(session, table)
        stmt = _UPSERTS[(dialect, table.name)] = insert.on_conflict_do_update(
            index_elements=key_columns, set_={c: table.c[c] + insert.excluded[c] for c in columns}
        )
    await session.execute(stmt, values)


FOLD_LOCK_ID = 0x6D65_735F_666F_6C64  # "mes_fold": one folder at a time across workers
_DAY = "date_trunc('day', {0} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
# The coarser levels (PostgreSQL), each the sum of its finer table's folded rows (shard 0):
# (table, its key as selected from the finer table's rows, its key columns, counts, finer table)
COARSE = (
    ("kpi_daily", (_DAY.format("hour_start"), *_KEY[1:]), ("day_start", *_KEY[1:]), COUNTS, "kpi_hourly"),
    (
        "kpi_line_daily_defects",
        (_DAY.format("hour_start"), "line_id", "defect_code"),
        ("day_start", "line_id", "defect_code"),
        ("count",),
        "kpi_hourly_defects",
    ),
    (
        "kpi_line_hourly",
        ("hour_start", "line_id", "process_id"),
        ("hour_start", "line_id", "process_id"),
        COUNTS,
        "kpi_hourly",
    ),
    *(
        (table, tuple(_DAY.format("hour_start") if c == "day_start" else c for c in key), key, lot_counts.COUNTS,
         "kpi_hourly_lots")
        for table, key in lot_counts.DAY_KEYS.items()
    ),
)


def _add_into(table: str, select_key, key, counts, source: str) -> str:
    """``INSERT INTO table … SELECT … FROM source GROUP BY … ON CONFLICT DO UPDATE`` (adds)."""
    picked = ", ".join(f"{expr} AS {name}" for expr, name in zip(select_key, key, strict=True))
    grouped = ", ".join(expr for expr in select_key if not expr.isdigit())  # not the constant shard
    return (
        f"INSERT INTO {table} ({', '.join(key)}, {', '.join(counts)}) "
        f"SELECT {picked}, {', '.join(f'sum({c})' for c in counts)} FROM {source} "
        f"GROUP BY {grouped} ORDER BY {grouped} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
    )


def derive_coarse(
    *,
    since_day: datetime | None,
    counts_then: tuple | None = None,
    sources: tuple[str, ...] | None = None,
    tables: tuple[str, ...] | None = None,
) -> list[tuple[Any, dict[str, Any]]]:
    """PostgreSQL statements (with their parameters) that recompute the coarser rollups of every
    day from ``since_day`` (a UTC midnight; all when None) from the folded hourly rows.
    ``counts_then``: the record counts as a migration's schema has them (a migration that ran
    before a count was added must not name it); ``sources``: only the levels summed from these
    hourly tables, ``tables``: only these levels (a migration's, of the tables that existed then;
    all when None)."""
    statements = []
    for table, select_key, key, counts, source in COARSE:
        if (sources is not None and source not in sources) or (tables is not None and table not in tables):
            continue
        counts = counts_then if counts_then is not None and counts == COUNTS else counts
        lower = "day_start" if "day_start" in key else "hour_start"
        if since_day is None:
            statements.append((text(f"DELETE FROM {table}"), {}))
            rows = f"(SELECT * FROM {source} WHERE shard = 0) s"
            statements.append((text(_add_into(table, select_key, key, counts, rows)), {}))
        else:
            statements.append((text(f"DELETE FROM {table} WHERE {lower} >= :since"), {"since": since_day}))
            rows = f"(SELECT * FROM {source} WHERE shard = 0 AND hour_start >= :since) s"
            statements.append((text(_add_into(table, select_key, key, counts, rows)), {"since": since_day}))
    return statements


async def fold_shards(session: AsyncSession, *, before: datetime | None = None, only_if_free: bool = False) -> int:
    """Fold every bucket's shards (of the hours before ``before``; all when None) into shard 0
    (PostgreSQL), adding what moved to the coarser rollups too, in the caller's transaction;
    returns how many shard rows went.

    Exact under concurrent recording: one statement's ``DELETE … RETURNING`` takes the shard rows
    committed when it starts and adds exactly those, once, to shard 0 and to the daily and
    line-hourly rows; a transaction committing later left its own rows, folded next time
    (writers never write shard 0, so they never wait for a fold).
    ``only_if_free``: do nothing (0) when another session is folding right now."""
    if session.bind.dialect.name != "postgresql":
        return 0
    if only_if_free:
        free = await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": FOLD_LOCK_ID})
        if not free.scalar():
            return 0
    folded = 0
    bound = "hour_start < :before AND " if before is not None else ""
    for table, key, counts in (
        ("kpi_hourly", _KEY, COUNTS),
        ("kpi_hourly_defects", (*_KEY, "defect_code"), ("count",)),
        ("kpi_hourly_lots", lot_counts.KEY, lot_counts.COUNTS),
    ):
        coarse = [
            f"{name} AS ({_add_into(target, select_key, target_key, counts, 'moved')} RETURNING 1)"
            for name, (target, select_key, target_key, _, source) in (
                (f"c{i}", level) for i, level in enumerate(COARSE)
            )
            if source == table
        ]
        shard0 = _add_into(table, (*key, "0"), (*key, "shard"), counts, "moved")
        ctes = ",\n".join(
            [f"moved AS (DELETE FROM {table} WHERE {bound}shard <> 0 RETURNING *)", f"folded AS ({shard0} RETURNING 1)"]
            + coarse
        )
        result = await session.execute(
            text(f"WITH {ctes} SELECT count(*) FROM moved"),
            {"before": before} if before is not None else {},
        )
        folded += result.scalar()
    return folded


ROLLUP_TABLES = ("process_items", "kpi_hourly", "kpi_hourly_defects", "kpi_hourly_lots")
_PASS_KEY = "pass_hour_start, pass_line_id, process_id, pass_station_id, product"


def backfill_output(dialect: str) -> list:
    """Migration 0023's statements: every item's first pass from the online records, and each
    bucket's ``output`` from them, into the rebuild's rows (shard 0; PostgreSQL: the coarser
    levels derived again). A bucket with a pass has records, but maybe only in unfolded shards:
    its shard-0 row is inserted then."""
    statements = [
        text("""
        UPDATE process_items SET pass_record_id = f.pass_id
        FROM (SELECT process_id, coalesce(serial_number, lot_number) AS item,
                     min(CASE WHEN result = 'pass' THEN id END) AS pass_id
              FROM process_records GROUP BY process_id, coalesce(serial_number, lot_number)) f
        WHERE f.process_id = process_items.process_id AND f.item = process_items.item
        """),
        text(f"""
        UPDATE process_items SET pass_hour_start = {hour_sql("c.event_at", dialect)},
               pass_line_id = coalesce(c.line_id, 0), pass_station_id = coalesce(c.station_id, 0)
        FROM process_records c WHERE c.id = process_items.pass_record_id
        """),
        text(f"""
        INSERT INTO kpi_hourly ({", ".join(_KEY)}, shard, {", ".join(COUNTS)})
        SELECT {_PASS_KEY}, 0, {", ".join("count(*)" if c == "output" else "0" for c in COUNTS)}
        FROM process_items WHERE pass_record_id IS NOT NULL GROUP BY {_PASS_KEY}
        ON CONFLICT ({", ".join(_KEY)}, shard) DO UPDATE SET output = excluded.output
        """),
    ]
    if dialect == "postgresql":
        levels = derive_coarse(since_day=None, sources=("kpi_hourly", "kpi_hourly_defects"))  # as of 0023
        statements += [statement for statement, _ in levels]
    return statements


COARSE_TABLES = tuple(level[0] for level in COARSE)  # PostgreSQL


async def rebuild(session: AsyncSession, *, since: datetime | None = None) -> dict[str, int]:
    """Recompute the rollups of every hour from ``since`` (all that is online when None) from raw
    records, in the caller's transaction: the caller commits once, so an interrupted rebuild
    leaves the previous rollups as they were. Returns how many rollup rows were written.

    Archived months' rollups are kept (their records are offline, :mod:`mes_kernel.db.offline`):
    without ``since`` the rebuild starts after them; a ``since`` before that raises
    :class:`~mes_kernel.db.offline.RollupsOffline`, as does an archive run not yet finished.
    The tables rewritten are analyzed at the end (same transaction): their row counts just
    changed wholesale, and a planner left with the old statistics picks scans for the dashboards'
    reads that are slower by orders of magnitude until autovacuum gets there.

    On PostgreSQL the rollup tables are locked against writers first (recording transactions wait
    at their rollup upsert, then add their counts to the rebuilt rows): a record committed while
    the rebuild reads is either in its reading or added after, never both, never neither. It
    holds the partitions' advisory lock too, so no archive run detaches a month while it reads.
    """
    from ..db.offline import RollupsOffline, offline_months
    from ..db.partitions import LOCK_ID

    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        await session.execute(
            text(
                f"LOCK TABLE {', '.join(ROLLUP_TABLES + COARSE_TABLES)} IN EXCLUSIVE MODE"
            )
        )
    offline = await offline_months(session)
    if offline.unfinished or offline.blocked(datetime.now(UTC)):
        raise RollupsOffline(offline, since)
    if offline.rebuild_from is not None:
        if since is None:
            since = offline.rebuild_from
        elif hour_of(since) < offline.rebuild_from:
            raise RollupsOffline(offline, since)
    start = hour_of(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
    bound = {"since": start if dialect == "postgresql" else start.strftime("%Y-%m-%d %H:%M:%S.%f")}
    # PostgreSQL: the per-LOT triggers paused while the range's items go and come back (only rows
    # from ``since`` on are written), which are then counted with one grouped insert. SQLite's row
    # triggers count them (kpi_hourly_lots last: the items' delete trigger has just taken their
    # counts away there).
    if dialect == "postgresql":
        await session.execute(text(lot_counts.pause(True)))
    for table in ("kpi_hourly", "kpi_hourly_defects", "process_items", "kpi_hourly_lots"):
        await session.execute(text(f"DELETE FROM {table} WHERE hour_start >= :since"), bound)
    defects = await session.execute(text(rebuild_sql.defects(dialect)), bound)
    items = await session.execute(text(rebuild_sql.items(dialect)), bound)
    if dialect == "postgresql":
        await session.execute(text(lot_counts.fill("hour_start >= :since")), bound)
        await session.execute(text(lot_counts.pause(False)))
    records = await session.execute(text(rebuild_sql.hourly(dialect)), bound)
    if dialect == "postgresql":
        day = start.replace(hour=0)
        for statement, params in derive_coarse(since_day=day if since else None):
            await session.execute(statement, params)
        await session.execute(text(f"ANALYZE {', '.join(ROLLUP_TABLES + COARSE_TABLES)}"))
    else:
        for table in ROLLUP_TABLES:
            await session.execute(text(f"ANALYZE {table}"))
    return {"kpi_hourly": records.rowcount, "kpi_hourly_defects": defects.rowcount, "process_items": items.rowcount}


async def vacuum_rebuilt(engine: AsyncEngine) -> None:
    """PostgreSQL: ``VACUUM (ANALYZE)`` the tables :func:`rebuild` rewrites, once its transaction
    has committed (VACUUM runs outside a transaction block); nothing on SQLite.

    A rebuild deletes and inserts every row of its range, so no page of those tables is marked
    all-visible any more, and every index-only read of them goes to the table's pages as well:
    at 10 M records a step's 30-day drill-down read its ~20,000 per-LOT rows through a bitmap
    heap scan, 41.5 ms of CPU per request against 32.5 once vacuumed (docs/kpi.md).
    Autovacuum marks them again in time (PostgreSQL's insert threshold, 13+); this does it before
    the dashboards are read. Raises ``sqlalchemy.exc.DBAPIError`` when VACUUM is refused (a role
    that does not own the tables): the rebuild stands, only the visibility maps wait."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM (ANALYZE) {', '.join(ROLLUP_TABLES + COARSE_TABLES)}"))
