"""Label templates: the plant's own ZPL, versioned, with declared fields.

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-30 12:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("zpl", sa.Text(), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("dpi", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_by", sa.String(length=100), nullable=True),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f("ck_label_templates_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_templates")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_label_templates_name_version")),
    )
    with op.batch_alter_table("label_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_templates_name"), ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("label_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_templates_name"))
    op.drop_table("label_templates")
