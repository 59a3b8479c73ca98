"""Per-LOT daily yield counts per step and per product, ``kpi_daily_lots`` and
``kpi_daily_product_lots`` (PostgreSQL reads them; SQLite has the tables empty, like ``kpi_daily``);
the per-LOT triggers pause while ``mes kpi rebuild`` counts its items at once;
a Pareto bar's failed records by unit.

The drill-down behind a yield bar sums the bar's ``kpi_hourly_lots`` rows per LOT (0026): a step's
30 days at 10 million records were 60,000 rows (a row per LOT, hour and station: a LOT's units
spread over the step's stations), 43 ms of CPU; a product's bar adds up every step too. These
tables hold the same counts per UTC day with the stations (and, per product, the steps) summed —
about a row per LOT and day — summed from the folded hourly rows by the fold and the rebuild like
``kpi_daily`` (:data:`mes_kernel.services.rollups.COARSE`): the drill-down reads its whole days
there and the hours at either end from the hourly table. A station's bar keeps reading the hourly
rows (a station's LOTs are what it made: its own rows).

The trigger function is replaced by one that counts nothing while the transaction's setting
``mes.lot_counts_paused`` is on (:mod:`mes_kernel.db.lot_counts`): ``mes kpi rebuild`` deletes
and inserts every item of its range with it on, then counts them with one grouped insert — the
triggers counting 10 M items one statement's rows at a time made it 1.7 times slower.

The drill-down behind a Pareto bar pages the code's failed units by item: it grouped every
failed record of the range per unit and sorted them for each page (37 ms for a code's 30 days at
10 M records, 40,000 records). ``ix_process_records_failed_defect_item`` (``(defect_code, item,
event_at) … WHERE result = 'fail'``, item = ``coalesce(serial_number, lot_number)``) gives them in
page order: a page reads its units' entries (1.5 ms). Only failed records write it.

The table is filled from the hourly rows as they are now (shard 0; unfolded shards are added by
the next fold), under a lock that keeps the fold out until the migration commits.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-01 14:00:00
"""

import sqlalchemy as sa
from alembic import op

from mes_kernel.db import lot_counts

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

FAILED = sa.text("result = 'fail'")
FAILED_ITEM = sa.text("coalesce(serial_number, lot_number)")
# the levels this revision made, as it made them (0030 adds a station's)
DAY_KEYS = {
    "kpi_daily_lots": ("process_id", "day_start", "line_id", "lot_id"),
    "kpi_daily_product_lots": ("product", "day_start", "line_id", "lot_id"),
}


def upgrade() -> None:
    for table, key in DAY_KEYS.items():
        op.create_table(
            table,
            sa.Column(key[0], sa.String(64), nullable=False),  # the step or the product
            sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("line_id", sa.BigInteger(), nullable=False),
            sa.Column("lot_id", sa.BigInteger(), nullable=False),
            *(sa.Column(name, sa.Integer(), nullable=False) for name in lot_counts.COUNTS),
            sa.PrimaryKeyConstraint(*key, name=f"pk_{table}", postgresql_include=list(lot_counts.COUNTS)),
        )
    op.create_index(
        "ix_process_records_failed_defect_item",
        "process_records",
        ["defect_code", FAILED_ITEM, "event_at"],
        postgresql_include=["lot_number", "serial_number", "line_id"],
        postgresql_where=FAILED,
        sqlite_where=FAILED,
    )
    if op.get_bind().dialect.name != "postgresql":  # SQLite reads the hourly rows; its triggers are as they were
        return
    from mes_kernel.services.rollups import FOLD_LOCK_ID, derive_coarse

    bind = op.get_bind()
    bind.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": FOLD_LOCK_ID})  # no fold meanwhile
    bind.execute(sa.text("LOCK TABLE kpi_hourly_lots IN SHARE MODE"))
    for statement, params in derive_coarse(since_day=None, tables=tuple(DAY_KEYS)):
        bind.execute(statement, params)
    op.execute(lot_counts.POSTGRESQL[0])  # the trigger function, with the pause


def downgrade() -> None:
    op.drop_index("ix_process_records_failed_defect_item", table_name="process_records")
    for table in DAY_KEYS:
        op.drop_table(table)
    # the function's pause stays: nothing sets it on at 0026
