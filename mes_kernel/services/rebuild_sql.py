"""The statements of ``mes kpi rebuild`` (:func:`mes_kernel.services.rollups.rebuild`): the rollup
rows of every hour from ``:since`` recomputed from raw records, as PostgreSQL and SQLite read them.
Run in this order: items first (``process_items``), then the hourly rows, whose first-try and
output counts are summed from those items in the same statement.

Where the time went (issue 13): at 600,000 generated records a first rebuild took 140–157 s, 97 s
of them in one nested loop (:func:`items`); with it gone, 14–15 s. At 300,000 records (the
database backend's CPU) the items' statement is most of the rest — one grouping of every record
by item, the item's first and first passing record read back by id, and writing a row per item
into four indexes. The items are
written in hour order: three of the four indexes lead with (or follow) ``hour_start``, so they
grow at their ends instead of at random pages (−28 % CPU for the statement). The latest record
needs no read back: ``max(2 * id + passed)`` holds its id and its result at once (ids are
unique), so a third hash join of every record is gone; the first-try and output counts are summed
into the hourly rows as they are inserted rather than written over them by two ``UPDATE`` passes.
"""

from __future__ import annotations

_KEY = ("hour_start", "line_id", "process_id", "station_id", "product")


def hour_sql(column: str, dialect: str) -> str:
    """SQL for the UTC hour of the timestamp ``column``, as the rollups store it."""
    if dialect == "postgresql":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLite keeps UTC wall time as text in SQLAlchemy's format; the hour must be the same text.
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


def cycle_sql(dialect: str) -> tuple[str, str]:
    """SQL for record ``r``'s ``data.cycle_seconds`` (NULL unless a finite number ≥ 0), and the test."""
    if dialect == "postgresql":
        number = "jsonb_typeof(r.data->'cycle_seconds') = 'number' AND (r.data->>'cycle_seconds')::float8 >= 0"
        return f"CASE WHEN {number} THEN (r.data->>'cycle_seconds')::float8 END", number
    number = (
        "json_valid(r.data) AND json_type(r.data, '$.cycle_seconds') IN ('integer', 'real') "
        "AND json_extract(r.data, '$.cycle_seconds') >= 0"
    )
    return f"CASE WHEN {number} THEN json_extract(r.data, '$.cycle_seconds') END", number


def defects(dialect: str) -> str:
    """``kpi_hourly_defects``: failed records with a defect code per bucket and code."""
    hour = hour_sql("r.event_at", dialect)
    return f"""
        INSERT INTO kpi_hourly_defects (hour_start, line_id, process_id, station_id, product, defect_code, shard,
                                        count)
        SELECT {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product,
               r.defect_code, 0, count(*)
        FROM process_records r JOIN lots l ON l.id = r.lot_id
        WHERE r.event_at >= :since AND r.result = 'fail' AND r.defect_code IS NOT NULL AND r.defect_code <> ''
        GROUP BY {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product,
                 r.defect_code
    """


def items(dialect: str) -> str:
    """``process_items``: each item whose first record lies from ``:since`` on — its first record
    (lowest id: bucket, result, LOT), latest (highest id: result) and first passing record (lowest
    id among its passes: bucket). An item whose first record is archived keeps its row: the rows
    kept (``kept``, read once, before this statement adds any) are not claimed again. Read as a
    ``NOT EXISTS`` against ``process_items`` itself, PostgreSQL planned a nested loop over a table
    its statistics called empty (a first rebuild) and scanned it again for every item while this
    statement filled it: 97 s instead of 3 for 500,000 items, growing with their square."""
    true, false = ("true", "false") if dialect == "postgresql" else ("1", "0")
    return f"""
        WITH kept AS MATERIALIZED (SELECT process_id, item FROM process_items WHERE hour_start < :since)
        INSERT INTO process_items (process_id, item, first_record_id, last_record_id, hour_start, line_id,
                                   station_id, product, first_passed, last_passed, pass_record_id,
                                   pass_hour_start, pass_line_id, pass_station_id, lot_id)
        SELECT f.process_id, f.item, f.first_id, f.last_id_passed / 2, {hour_sql("a.event_at", dialect)},
               coalesce(a.line_id, 0), coalesce(a.station_id, 0), l.product,
               CASE WHEN a.result = 'pass' THEN {true} ELSE {false} END,
               CASE WHEN f.last_id_passed % 2 = 1 THEN {true} ELSE {false} END,
               c.id, {hour_sql("c.event_at", dialect)},  -- all NULL when the item never passed
               CASE WHEN c.id IS NOT NULL THEN coalesce(c.line_id, 0) END,
               CASE WHEN c.id IS NOT NULL THEN coalesce(c.station_id, 0) END, a.lot_id
        FROM (SELECT process_id, coalesce(serial_number, lot_number) AS item, min(id) AS first_id,
                     max(2 * id + CASE WHEN result = 'pass' THEN 1 ELSE 0 END) AS last_id_passed,
                     min(CASE WHEN result = 'pass' THEN id END) AS pass_id
              FROM process_records GROUP BY process_id, coalesce(serial_number, lot_number)) f
        JOIN process_records a ON a.id = f.first_id
        LEFT JOIN process_records c ON c.id = f.pass_id
        JOIN lots l ON l.id = a.lot_id
        WHERE a.event_at >= :since
          AND NOT EXISTS (SELECT 1 FROM kept WHERE kept.process_id = f.process_id AND kept.item = f.item)
        ORDER BY 5, 1, 2  -- hour_start, process_id, item: the indexes on the hour grow at their ends
    """


def _matches(left: str, right: str, key: tuple[str, ...] = _KEY) -> str:
    return " AND ".join(f"{right}.{k} = {left}.{k}" for k in key)


def hourly(dialect: str) -> str:
    """``kpi_hourly``: records per bucket, with the items first tried there (``first_*``,
    ``final_passed``) and first passed there (``output``, items of every hour: one kept from an
    archived month may have passed after ``:since``). Every item's first and first passing record
    lies in its bucket, so each such bucket has records: a LEFT JOIN from the records loses none."""
    hour = hour_sql("r.event_at", dialect)
    cycle, has_cycle = cycle_sql(dialect)
    return f"""
        INSERT INTO kpi_hourly (hour_start, line_id, process_id, station_id, product, shard, total, passed,
                                first_total, first_passed, final_passed, output, cycle_seconds_sum, cycle_count)
        SELECT b.hour_start, b.line_id, b.process_id, b.station_id, b.product, 0, b.total, b.passed,
               coalesce(f.first_total, 0), coalesce(f.first_passed, 0), coalesce(f.final_passed, 0),
               coalesce(o.output, 0), b.cycle_seconds_sum, b.cycle_count
        FROM (SELECT {hour} AS hour_start, coalesce(r.line_id, 0) AS line_id, r.process_id,
                     coalesce(r.station_id, 0) AS station_id, l.product, count(*) AS total,
                     sum(CASE WHEN r.result = 'pass' THEN 1 ELSE 0 END) AS passed,
                     coalesce(sum({cycle}), 0) AS cycle_seconds_sum,
                     sum(CASE WHEN {has_cycle} THEN 1 ELSE 0 END) AS cycle_count
              FROM process_records r JOIN lots l ON l.id = r.lot_id
              WHERE r.event_at >= :since
              GROUP BY {hour}, coalesce(r.line_id, 0), r.process_id, coalesce(r.station_id, 0), l.product) b
        LEFT JOIN (SELECT {", ".join(_KEY)}, count(*) AS first_total,
                          sum(CASE WHEN first_passed THEN 1 ELSE 0 END) AS first_passed,
                          sum(CASE WHEN last_passed THEN 1 ELSE 0 END) AS final_passed
                   FROM process_items WHERE hour_start >= :since
                   GROUP BY {", ".join(_KEY)}) f ON {_matches("b", "f")}
        LEFT JOIN (SELECT pass_hour_start AS hour_start, pass_line_id AS line_id, process_id,
                          pass_station_id AS station_id, product, count(*) AS output
                   FROM process_items WHERE pass_hour_start >= :since
                   GROUP BY pass_hour_start, pass_line_id, process_id, pass_station_id, product) o
          ON {_matches("b", "o")}
    """
