"""A station's line moves during a silence no alert covers yet: ``stations.line_moves``.

A station moved to another line while quiet, before the watchdog raised its silence alert (the gap
was still under ``STATION_SILENT_AFTER_SECONDS``, or the kernel was down), had the whole silence
counted on its new line once the alert was raised or recorded. The moves are kept here
(``[{"at": ISO UTC, "from_line_id": int | null}]``, in order) until the next heartbeat: the
alert that is then raised or recorded is split at each (``mes_kernel.services.silence``).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-01 17:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_moves", json_type, server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.drop_column("line_moves")
