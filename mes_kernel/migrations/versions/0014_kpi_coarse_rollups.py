"""Coarser KPI rollups for long ranges: daily per line × process × station × product, daily
defects per line and code, hourly per line × process; partial indexes on the unfolded shard rows.

PostgreSQL fills them as the kernel folds recording transactions' shards (and ``mes kpi rebuild``);
SQLite's readers keep reading the hourly rollups, so there they stay empty. Existing rollups are
carried over here from ``kpi_hourly`` (shard 0, as the fold and the rebuild keep them).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COUNTS = ("total", "passed", "first_total", "first_passed", "final_passed", "cycle_seconds_sum", "cycle_count")


def _counts() -> list[sa.Column]:
    return [
        sa.Column(name, sa.Float() if name == "cycle_seconds_sum" else sa.BigInteger(), nullable=False)
        for name in COUNTS
    ]


def upgrade() -> None:
    op.create_table(
        "kpi_daily",
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("process_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint(
            "day_start", "line_id", "process_id", "station_id", "product", name=op.f("pk_kpi_daily")
        ),
    )
    op.create_index("ix_kpi_daily_line_id_day_start", "kpi_daily", ["line_id", "day_start"])
    op.create_table(
        "kpi_line_daily_defects",
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("defect_code", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day_start", "line_id", "defect_code", name=op.f("pk_kpi_line_daily_defects")),
    )
    op.create_table(
        "kpi_line_hourly",
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("process_id", sa.String(length=64), nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint("hour_start", "line_id", "process_id", name=op.f("pk_kpi_line_hourly")),
    )
    op.create_index("ix_kpi_line_hourly_line_id_hour_start", "kpi_line_hourly", ["line_id", "hour_start"])
    for table in ("kpi_hourly", "kpi_hourly_defects"):
        unfolded = sa.text("shard <> 0")
        op.create_index(f"ix_{table}_unfolded", table, ["hour_start"], postgresql_where=unfolded, sqlite_where=unfolded)
    if op.get_bind().dialect.name == "postgresql":
        from mes_kernel.services.rollups import derive_coarse

        bind = op.get_bind()
        bind.execute(sa.text("LOCK TABLE kpi_hourly, kpi_hourly_defects IN EXCLUSIVE MODE"))
        for statement, params in derive_coarse(since_day=None, counts_then=COUNTS, sources=("kpi_hourly", "kpi_hourly_defects")):
            bind.execute(statement, params)


def downgrade() -> None:
    for table in ("kpi_hourly", "kpi_hourly_defects"):
        op.drop_index(f"ix_{table}_unfolded", table_name=table)
    op.drop_index("ix_kpi_line_hourly_line_id_hour_start", table_name="kpi_line_hourly")
    op.drop_table("kpi_line_hourly")
    op.drop_table("kpi_line_daily_defects")
    op.drop_index("ix_kpi_daily_line_id_day_start", table_name="kpi_daily")
    op.drop_table("kpi_daily")
