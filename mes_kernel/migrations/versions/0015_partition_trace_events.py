"""Trace events partitioned by month like process records (PostgreSQL), so archiving a month takes
a LOT's history entries with its records.

On PostgreSQL ``trace_events`` is rebuilt as a table partitioned by month of ``received_at`` (the
server's receipt: a record's trace event carries the record's ``created_at``, so both sit in the
same month); its rows and ids are copied over, its id sequence kept, its primary key becomes
``(id, received_at)`` and the two history indexes become per-partition indexes. Partitions are
created from the oldest event's month (or the oldest records partition's, whichever is older) to
three months ahead. SQLite keeps one table. The downgrade copies the
rows back into one table.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 18:40:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mes_kernel.db import partitions

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

JSON = postgresql.JSONB(astext_type=sa.Text())
KINDS = "kind IN ('process_record', 'device_action', 'scan', 'status_change', 'registration')"
COLUMNS = "id, lot_id, unit_id, kind, recorded_at, station_seq, received_at, station_id, actor, source_id, payload"
INDEXES = {
    "ix_trace_events_lot_history": ["lot_id", "recorded_at", "station_seq", "id"],
    "ix_trace_events_unit_history": ["unit_id", "recorded_at", "station_seq", "id"],
}


def _columns() -> list:
    return [
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station_seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_trace_events_kind")),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_trace_events_lot_id_lots"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_trace_events_unit_id_units"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_trace_events_station_id_stations"), ondelete="SET NULL"
        ),
    ]


def _set_aside(old: str, *, primary_key: str) -> None:
    """Rename ``trace_events`` to ``old``, freeing the sequence and the index names for the new table."""
    op.execute("ALTER SEQUENCE trace_events_id_seq OWNED BY NONE")
    op.execute(f"ALTER TABLE trace_events RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} DROP CONSTRAINT {primary_key}")
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")


def _take_sequence() -> None:
    op.execute("ALTER TABLE trace_events ALTER COLUMN id SET DEFAULT nextval('trace_events_id_seq')")
    op.execute("ALTER SEQUENCE trace_events_id_seq OWNED BY trace_events.id")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _set_aside("trace_events_unpartitioned", primary_key="pk_trace_events")
    op.create_table(
        "trace_events",
        *_columns(),
        sa.PrimaryKeyConstraint("id", "received_at", name=op.f("pk_trace_events")),
        postgresql_partition_by="RANGE (received_at)",
    )
    _take_sequence()
    today = datetime.now(UTC).date()
    oldest = [bind.execute(sa.text("SELECT min(received_at) FROM trace_events_unpartitioned")).scalar()]
    records = [partitions.month_of_partition(n) for n in partitions.attached(bind, partitions.RECORDS)]
    oldest += [m.start for m in records if m is not None]
    since = min([moment.date() for moment in oldest if moment is not None] + [today])
    partitions.ensure(bind, today=today, since=since, tables=(partitions.TRACE,))
    op.execute(f"INSERT INTO trace_events ({COLUMNS}) SELECT {COLUMNS} FROM trace_events_unpartitioned")
    op.execute("DROP TABLE trace_events_unpartitioned")
    for name, columns in INDEXES.items():
        op.create_index(name, "trace_events", columns)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside("trace_events_partitioned", primary_key="pk_trace_events")
    op.create_table("trace_events", *_columns(), sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_events")))
    _take_sequence()
    op.execute(f"INSERT INTO trace_events ({COLUMNS}) SELECT {COLUMNS} FROM trace_events_partitioned")
    # Dropping the parent drops its partitions (the default one too); detached, not yet archived
    # months stay in mes_partitions as plain tables.
    op.execute("DROP TABLE trace_events_partitioned")
    for name, columns in INDEXES.items():
        op.create_index(name, "trace_events", columns)
