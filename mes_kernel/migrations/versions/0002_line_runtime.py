"""Line configuration version and run-time plugin switches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 11:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config_version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "plugin_states",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plugin_states")),
    )


def downgrade() -> None:
    op.drop_table("plugin_states")
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.drop_column("config_version")
