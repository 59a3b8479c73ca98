"""Triggers that keep ``kpi_hourly_lots`` (:class:`~mes_kernel.db.models.KpiHourlyLot`) equal to
``process_items`` summed per LOT and hour.

Why triggers rather than the recording code: an item row is written by the recording batch (a new
item), by a retest (its latest result), by a record committed late with a lower id (its first
attempt moves to another hour, station and maybe LOT), and by ``mes kpi rebuild`` (deleted and
inserted again in bulk). A trigger on the table counts every one of those in the statement that
makes the change, so the per-LOT counts cannot drift from the items whatever path wrote them.

- **PostgreSQL**: one statement-level trigger per operation, reading the statement's transition
  tables (``REFERENCING NEW TABLE / OLD TABLE``): an update adds the new rows' counts and takes
  the old rows' away, grouped, so a statement that changed nothing counted (only the latest record
  id, or the item's first pass) writes nothing. Each statement writes into a random ``shard`` of its
  own, like the recording transactions' :mod:`~mes_kernel.services.rollups` rows, so concurrent
  recording never waits on another transaction's row lock; the fold sums shards into 0.
- **SQLite** (one writer at a time): row triggers adding into shard 0.

Installed by migration 0026 and, for a schema made by ``metadata.create_all``, by the table's
``after_create`` event (:func:`install_on_create`).
"""

from __future__ import annotations

from sqlalchemy import DDL, MetaData, event

KEY = ("process_id", "hour_start", "line_id", "station_id", "product", "lot_id")
# the coarser per-LOT rows (PostgreSQL), per UTC day: a step's LOTs with the stations summed
# (kpi_daily_lots), a product's with the steps summed too (kpi_daily_product_lots), and a station's
# with the steps summed (kpi_daily_station_lots)
DAY_KEYS = {
    "kpi_daily_lots": ("process_id", "day_start", "line_id", "lot_id"),
    "kpi_daily_product_lots": ("product", "day_start", "line_id", "lot_id"),
    "kpi_daily_station_lots": ("station_id", "day_start", "line_id", "lot_id"),
}
COUNTS = ("first_total", "first_passed", "final_passed", "recovered")
COVERED = ["lot_id", "line_id", *COUNTS]  # what the station's and product's indexes carry
_CONFLICT = f"ON CONFLICT ({', '.join(KEY)}, shard) DO UPDATE SET " + ", ".join(
    f"{c} = kpi_hourly_lots.{c} + excluded.{c}" for c in COUNTS
)


def _signed(rows: str, sign: str) -> str:
    """One item's counts (``sign`` 1 or -1) from the transition table ``rows``."""
    return (
        f"SELECT process_id, hour_start, line_id, station_id, product, coalesce(lot_id, 0) AS lot_id, "
        f"{sign} AS first_total, CASE WHEN first_passed THEN {sign} ELSE 0 END AS first_passed, "
        f"CASE WHEN last_passed THEN {sign} ELSE 0 END AS final_passed, "
        f"CASE WHEN last_passed AND NOT first_passed THEN {sign} ELSE 0 END AS recovered FROM {rows}"
    )


def _add(rows: str) -> str:
    sums = ", ".join(f"sum({c})" for c in COUNTS)
    changed = " OR ".join(f"sum({c}) <> 0" for c in COUNTS)
    return (
        f"INSERT INTO kpi_hourly_lots ({', '.join(KEY)}, shard, {', '.join(COUNTS)}) "
        f"SELECT {', '.join(KEY)}, into_shard, {sums} FROM ({rows}) d GROUP BY {', '.join(KEY)} "
        f"HAVING {changed} ORDER BY {', '.join(KEY)} {_CONFLICT}"
    )


_SHARD = "CAST(1 + floor(random() * 2147483645) AS integer)"
#: The setting (PostgreSQL, ``SET LOCAL``: this transaction only) under which the triggers count
#: nothing: ``mes kpi rebuild`` deletes and inserts every item of its range, then counts them with
#: one grouped insert (:func:`fill`) — counting 10 M items row by row cost 140 s of its 330.
PAUSED = "mes.lot_counts_paused"
POSTGRESQL = [
    f"""
    CREATE OR REPLACE FUNCTION kpi_hourly_lots_count() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        into_shard integer := {_SHARD};
    BEGIN
        IF current_setting('{PAUSED}', true) = 'on' THEN  -- mes kpi rebuild counts its items at once
            RETURN NULL;
        END IF;
        IF TG_OP = 'INSERT' THEN
            {_add(_signed("new_items", "1"))};
        ELSIF TG_OP = 'DELETE' THEN
            {_add(_signed("old_items", "-1"))};
        ELSE
            {_add(_signed("new_items", "1") + " UNION ALL " + _signed("old_items", "-1"))};
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE OR REPLACE TRIGGER process_items_lots_insert AFTER INSERT ON process_items "
    "REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION kpi_hourly_lots_count()",
    "CREATE OR REPLACE TRIGGER process_items_lots_update AFTER UPDATE ON process_items "
    "REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items FOR EACH STATEMENT "
    "EXECUTE FUNCTION kpi_hourly_lots_count()",
    "CREATE OR REPLACE TRIGGER process_items_lots_delete AFTER DELETE ON process_items "
    "REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION kpi_hourly_lots_count()",
]


def _row(ref: str, sign: str) -> str:
    """SQLite: add one row's counts (``ref`` NEW or OLD)."""
    values = (
        f"{ref}.process_id, {ref}.hour_start, {ref}.line_id, {ref}.station_id, {ref}.product, "
        f"coalesce({ref}.lot_id, 0), 0, {sign}, CASE WHEN {ref}.first_passed THEN {sign} ELSE 0 END, "
        f"CASE WHEN {ref}.last_passed THEN {sign} ELSE 0 END, "
        f"CASE WHEN {ref}.last_passed AND NOT {ref}.first_passed THEN {sign} ELSE 0 END"
    )
    return f"INSERT INTO kpi_hourly_lots ({', '.join(KEY)}, shard, {', '.join(COUNTS)}) VALUES ({values}) {_CONFLICT};"


_COUNTED = "first_passed, last_passed, hour_start, line_id, station_id, product, lot_id, process_id, item"
SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS process_items_lots_insert AFTER INSERT ON process_items "
    f"BEGIN {_row('NEW', '1')} END",
    f"CREATE TRIGGER IF NOT EXISTS process_items_lots_delete AFTER DELETE ON process_items "
    f"BEGIN {_row('OLD', '-1')} END",
    f"CREATE TRIGGER IF NOT EXISTS process_items_lots_update AFTER UPDATE OF {_COUNTED} ON process_items "
    f"BEGIN {_row('OLD', '-1')} {_row('NEW', '1')} END",
]
DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS process_items_lots_insert ON process_items",
        "DROP TRIGGER IF EXISTS process_items_lots_update ON process_items",
        "DROP TRIGGER IF EXISTS process_items_lots_delete ON process_items",
        "DROP FUNCTION IF EXISTS kpi_hourly_lots_count()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS process_items_lots_insert",
        "DROP TRIGGER IF EXISTS process_items_lots_update",
        "DROP TRIGGER IF EXISTS process_items_lots_delete",
    ],
}



def fill(where: str = "") -> str:
    """Every item's counts as of now (of the items ``where`` picks, an SQL condition on
    ``process_items``), added into shard 0: migration 0026 fills the table with it, and
    ``mes kpi rebuild`` its range (under :data:`PAUSED`)."""
    rows = f"process_items WHERE {where}" if where else "process_items"
    return (
        f"INSERT INTO kpi_hourly_lots ({', '.join(KEY)}, shard, {', '.join(COUNTS)}) "
        f"SELECT {', '.join(KEY)}, 0, {', '.join(f'sum({c})' for c in COUNTS)} "
        f"FROM ({_signed(rows, '1')}) d GROUP BY {', '.join(KEY)} ORDER BY {', '.join(KEY)} {_CONFLICT}"
    )


FILL = fill()


def pause(paused: bool) -> str:
    """PostgreSQL: the statement that makes the triggers count nothing (``paused``) or count
    again, for the rest of the transaction."""
    return f"SELECT set_config('{PAUSED}', '{'on' if paused else 'off'}', true)"


def statements(dialect: str) -> list[str]:
    """The statements that install the triggers (``postgresql`` or ``sqlite``)."""
    return POSTGRESQL if dialect == "postgresql" else SQLITE


def install_on_create(metadata: MetaData) -> None:
    """Install the triggers whenever ``metadata.create_all`` makes the schema (after every table:
    they join ``process_items`` and ``kpi_hourly_lots``)."""
    for dialect in ("postgresql", "sqlite"):
        for statement in statements(dialect):
            event.listen(metadata, "after_create", DDL(statement).execute_if(dialect=dialect))
