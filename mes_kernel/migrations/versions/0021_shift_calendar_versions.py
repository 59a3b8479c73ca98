"""Effective-dated shift calendars: ``shift_calendar_versions`` (a line's shifts in force from
``valid_from`` until its next version) replaces ``shift_calendars`` (one calendar per line, which
every KPI applied to every date, so an edit rewrote the plan and OEE of the whole past).

Each existing calendar becomes its line's first version, in force from the line's creation
(the start of the hour of ``lines.created_at``): it is the only calendar known, and the one every report of the line's
life so far was computed with, so the line's figures since its creation stay as they were; only
the planned time the old code counted before the line existed goes away. A calendar edited
since the line was created cannot be told apart from the one it replaced (the old table kept no
history; the audit log holds the earlier ones: ``entity = 'shift_calendar'``). Back-date or
correct a version with ``PUT /lines/{code}/shifts`` and ``effective_from`` (docs/kpi.md).

The downgrade keeps, per line, the version in force at the time it runs (the earliest if all
are still to come).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 03:40:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "shift_calendar_versions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shifts", JSON, nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_shift_calendar_versions_line_id_lines"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shift_calendar_versions")),
        sa.UniqueConstraint("line_id", "valid_from", name=op.f("uq_shift_calendar_versions_line_id_valid_from")),
    )
    # from the start of the hour the line was created in: the KPIs count whole rollup hours, each
    # for the shift its start falls in, so a version starting mid-hour would lose its first hour
    if op.get_bind().dialect.name == "postgresql":
        created_hour = "date_trunc('hour', l.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # naive UTC text
        created_hour = "strftime('%Y-%m-%d %H:00:00.000000', l.created_at)"
    op.execute(
        "INSERT INTO shift_calendar_versions (line_id, valid_from, shifts, updated_by, updated_at) "
        f"SELECT c.line_id, {created_hour}, c.shifts, c.updated_by, c.updated_at "
        "FROM shift_calendars c JOIN lines l ON l.id = c.line_id"
    )
    op.drop_table("shift_calendars")


def downgrade() -> None:
    table = op.create_table(
        "shift_calendars",
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("shifts", JSON, nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_shift_calendars_line_id_lines"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_shift_calendars")),
    )
    versions = sa.table(
        "shift_calendar_versions",
        sa.column("line_id", BigId),
        sa.column("valid_from", sa.DateTime(timezone=True)),
        sa.column("shifts", JSON),
        sa.column("updated_by", sa.String()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    kept: dict[int, tuple] = {}
    rows = op.get_bind().execute(sa.select(versions).order_by(versions.c.line_id, versions.c.valid_from))
    for line_id, valid_from, shifts, updated_by, updated_at in rows:
        valid_from = valid_from if valid_from.tzinfo else valid_from.replace(tzinfo=UTC)  # SQLite: naive UTC
        if line_id not in kept or valid_from <= now:
            kept[line_id] = (shifts, updated_by, updated_at)
    if kept:
        op.bulk_insert(
            table,
            [
                {"line_id": line_id, "shifts": shifts, "updated_by": by, "updated_at": at}
                for line_id, (shifts, by, at) in kept.items()
            ],
        )
    op.drop_table("shift_calendar_versions")
