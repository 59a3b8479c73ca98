"""Defect codes per process (the list a station offers when a unit fails at that step) and
attachments of process records (files that travel with a completion file).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 15:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process_defect_codes",
        sa.Column("process_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["process_id"],
            ["processes.id"],
            name=op.f("fk_process_defect_codes_process_id_processes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("process_id", "code", name=op.f("pk_process_defect_codes")),
    )
    op.create_table(
        "record_attachments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("record_key", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["stored_files.id"], name=op.f("fk_record_attachments_file_id_stored_files"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_attachments")),
        sa.UniqueConstraint("record_key", "name", name=op.f("uq_record_attachments_record_key_name")),
    )


def downgrade() -> None:
    op.drop_table("record_attachments")
    op.drop_table("process_defect_codes")
