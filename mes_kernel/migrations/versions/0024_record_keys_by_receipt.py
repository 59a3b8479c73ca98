"""Idempotency keys found by their receipt time: ``process_record_keys (created_at)``.

``mes db partitions archive`` no longer deletes an archived month's keys with its records: a retry
of an archived record must still find its key (and be answered as a duplicate) for as long as a
retry can arrive — the station-time window after its receipt. The keys of archived months older
than that are pruned by the archive run, a bounded batch at a time, found through this index
(:func:`mes_kernel.db.record_keys.prune_keys`); without it each batch would read the whole table.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 06:30:00
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_process_record_keys_created_at", "process_record_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_process_record_keys_created_at", table_name="process_record_keys")
