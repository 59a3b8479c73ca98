"""Each line's LOT in progress, found by an index: ``lots (line_id, updated_at, id)`` over the LOTs
in progress only. The production view's "current LOT" per line sorted every LOT in progress
(23 ms at 18,000 LOTs); with this index it is one backward index probe per line.

Revision ID: 0018
Revises: 0014
Create Date: 2026-11-30 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

IN_PROGRESS = sa.text("status = 'in_progress'")


def upgrade() -> None:
    op.create_index(
        "ix_lots_in_progress_by_line",
        "lots",
        ["line_id", "updated_at", "id"],
        postgresql_where=IN_PROGRESS,
        sqlite_where=IN_PROGRESS,
    )


def downgrade() -> None:
    op.drop_index("ix_lots_in_progress_by_line", table_name="lots")
