"""Per-LOT daily yield counts per station, ``kpi_daily_station_lots`` (PostgreSQL reads it; SQLite
has the table empty, like ``kpi_daily_lots``).

The drill-down behind a station's yield bar summed the station's ``kpi_hourly_lots`` rows per LOT:
a station works several steps of a LOT over several hours, so its 30 days at 10 M records were
25,600 rows for 4,950 LOTs. This table holds the same counts per UTC day with the steps summed —
about a row per LOT and day — summed from the folded hourly rows by the fold and the rebuild like
``kpi_daily_lots`` (:data:`mes_kernel.services.rollups.COARSE`): the drill-down reads its whole
days here and the hours at either end from the hourly table.

The table is filled from the hourly rows as they are now (shard 0; unfolded shards are added by
the next fold), under a lock that keeps the fold out until the migration commits. Recording goes
on meanwhile: the lock on ``kpi_hourly_lots`` (SHARE) holds its writers — the recording
transactions' triggers — only while the table is filled (a few seconds at 10 M records).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

TABLE = "kpi_daily_station_lots"
KEY = ("station_id", "day_start", "line_id", "lot_id")
COUNTS = ("first_total", "first_passed", "final_passed", "recovered")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("station_id", sa.BigInteger(), nullable=False),
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint(*KEY, name=f"pk_{TABLE}", postgresql_include=list(COUNTS)),
    )
    if op.get_bind().dialect.name != "postgresql":  # SQLite reads the hourly rows
        return
    from mes_kernel.services.rollups import FOLD_LOCK_ID, derive_coarse

    bind = op.get_bind()
    bind.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": FOLD_LOCK_ID})  # no fold meanwhile
    bind.execute(sa.text("LOCK TABLE kpi_hourly_lots IN SHARE MODE"))
    for statement, params in derive_coarse(since_day=None, tables=(TABLE,)):
        bind.execute(statement, params)


def downgrade() -> None:
    op.drop_table(TABLE)
