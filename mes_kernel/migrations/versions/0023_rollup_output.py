"""Output where the item passed: ``output`` in ``kpi_hourly``, ``kpi_daily`` and ``kpi_line_hourly``
counts items whose first passing record (lowest id among an item's passes at a step) falls in the
bucket, and ``process_items`` keeps that record and its bucket (``pass_*``). Before, output was an
item's latest result booked in the hour of its first attempt: a unit reworked today raised
yesterday's output.

Existing rows are filled from the online records (PostgreSQL and SQLite alike): items whose
records are all archived keep no pass (their months' output stays 0 until restored and rebuilt).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 04:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

ROLLUPS = ("kpi_hourly", "kpi_daily", "kpi_line_hourly")


def upgrade() -> None:
    bind = op.get_bind()
    for table in ROLLUPS:
        op.add_column(table, sa.Column("output", sa.BigInteger(), nullable=False, server_default="0"))
    for name, kind in (
        ("pass_record_id", sa.BigInteger()),
        ("pass_hour_start", sa.DateTime(timezone=True)),
        ("pass_line_id", sa.BigInteger()),
        ("pass_station_id", sa.BigInteger()),
    ):
        op.add_column("process_items", sa.Column(name, kind, nullable=True))
    from mes_kernel.services.rollups import backfill_output

    for statement in backfill_output(bind.dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for name in ("pass_station_id", "pass_line_id", "pass_hour_start", "pass_record_id"):
        with op.batch_alter_table("process_items") as batch:
            batch.drop_column(name)
    for table in ROLLUPS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("output")
