"""The language each user chose for the dashboard (``users.language``: ``en`` or ``ko``; NULL until they
choose, and the dashboard then follows the browser), so the choice follows the user to any browser.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
