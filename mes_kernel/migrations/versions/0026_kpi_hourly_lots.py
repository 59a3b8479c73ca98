"""Per-LOT hourly yield counts, ``kpi_hourly_lots``, kept by triggers on ``process_items``.

The drill-down behind a yield bar (``GET /kpi/drilldown?kind=process|station|product``) lists the
bar's LOTs, most first-try failures first, with each LOT's counts and the number of LOTs. It
summed the bar's items per LOT: at 10 million records a step's week held 470,000 items (0.75 s).
This table holds those sums per LOT and hour (a few rows per LOT however many units it holds);
:mod:`mes_kernel.db.lot_counts` has the triggers and why they are triggers.

The table is filled from the items as they are now, in the migration's transaction, after the
triggers are in place: creating a trigger locks ``process_items`` against writers until the
migration commits, so no item is written between the fill's reading and the triggers counting.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01 10:40:00
"""

import sqlalchemy as sa
from alembic import op

from mes_kernel.db import lot_counts

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

UNFOLDED = sa.text("shard <> 0")


def upgrade() -> None:
    op.create_table(
        "kpi_hourly_lots",
        sa.Column("process_id", sa.String(64), primary_key=True),
        sa.Column("hour_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("line_id", sa.BigInteger(), primary_key=True),
        sa.Column("station_id", sa.BigInteger(), primary_key=True),
        sa.Column("product", sa.String(64), primary_key=True),
        sa.Column("lot_id", sa.BigInteger(), primary_key=True),
        sa.Column("shard", sa.Integer(), primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in lot_counts.COUNTS),
    )
    op.create_index("ix_kpi_hourly_lots_station_hour", "kpi_hourly_lots", ["station_id", "hour_start"])
    op.create_index("ix_kpi_hourly_lots_product_hour", "kpi_hourly_lots", ["product", "hour_start"])
    op.create_index(
        "ix_kpi_hourly_lots_unfolded",
        "kpi_hourly_lots",
        ["hour_start"],
        postgresql_where=UNFOLDED,
        sqlite_where=UNFOLDED,
    )
    for statement in lot_counts.statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.execute(lot_counts.FILL)


def downgrade() -> None:
    for statement in lot_counts.DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("kpi_hourly_lots")
