"""Where each archived month of process data stands: ``archived_months`` (one row per month taken
offline by ``mes db partitions archive``), so the archive's uncount step can run in bounded
batches that resume after a crash, and ``mes kpi rebuild`` knows which months' rollups it must
keep (their records are offline).

On PostgreSQL, months archived before this revision left no trace but their missing partitions:
every month before the oldest monthly partition of ``process_records`` that still has rollups is
recorded as archived (its records' latest station time unknown: the month's end stands for it).
Months a run left detached are adopted by the next archive run.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 00:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archived_months",
        sa.Column("month_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trace_after", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("keys_after", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dump", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("state IN ('detached', 'uncounted', 'archived')", name=op.f("ck_archived_months_state")),
        sa.PrimaryKeyConstraint("month_start", name=op.f("pk_archived_months")),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from mes_kernel.db import partitions

    if not partitions.is_partitioned(bind):
        return
    months = [partitions.month_of_partition(name) for name in partitions.attached(bind)]
    months = sorted((m for m in months if m is not None), key=lambda m: (m.year, m.month))
    if not months:
        return
    # Months with rollups but no partition, before the oldest one: archived by the earlier code.
    op.execute(
        sa.text(
            "INSERT INTO archived_months (month_start, state, updated_at) "
            "SELECT DISTINCT date_trunc('month', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 'archived', now() "
            "FROM kpi_hourly WHERE hour_start < :oldest"
        ).bindparams(oldest=months[0].start)
    )


def downgrade() -> None:
    op.drop_table("archived_months")
