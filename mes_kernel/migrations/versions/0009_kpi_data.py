"""Data at the spec's load: monthly partitions of process records (PostgreSQL), idempotency keys,
hourly KPI rollups, shift calendars, machine states, ideal cycle times, two read-only roles.

On PostgreSQL ``process_records`` is rebuilt as a table partitioned by month of ``created_at``
(its rows copied over, its id sequence kept); SQLite keeps one table. Rollups of the existing
records are not computed here: run ``mes kpi rebuild`` after upgrading.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:00:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mes_kernel.db import partitions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OLD_ROLES = ("admin", "production_manager", "worker", "viewer")
NEW_ROLES = (*OLD_ROLES, "quality_manager", "executive")
NEW_INDEXES = {
    "ix_process_records_created_at": ["created_at"],
    "ix_process_records_lot_id_event_at_id": ["lot_id", "event_at", "id"],
    "ix_process_records_unit_id_event_at_id": ["unit_id", "event_at", "id"],
}
OLD_INDEXES = {
    "ix_process_records_lot_number": ["lot_number"],
    "ix_process_records_lot_process_created": ["lot_number", "process_id", "created_at"],
    "ix_process_records_process_id": ["process_id"],
    "ix_process_records_unit_id": ["unit_id"],
    "ix_process_records_worker_id": ["worker_id"],
}
COLUMNS = (
    "id, idempotency_key, request_hash, lot_id, lot_number, process_id, worker_id, station_id, unit_id, "
    "serial_number, result, defect_code, data, recorded_at, created_by, created_at"
)


def _record_columns(*, partitioned: bool) -> list:
    return [
        sa.Column("id", BigId, nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("lot_id", BigId, nullable=False),
        sa.Column("lot_number", sa.String(length=64), nullable=False),
        sa.Column("process_id", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("station_id", BigId, nullable=True),
        *([sa.Column("line_id", BigId, nullable=True)] if partitioned else []),
        sa.Column("unit_id", BigId, nullable=True),
        sa.Column("serial_number", sa.String(length=64), nullable=True),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("defect_code", sa.String(length=64), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        *([sa.Column("event_at", sa.DateTime(timezone=True), nullable=False)] if partitioned else []),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("result IN ('pass', 'fail')", name=op.f("ck_process_records_result")),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lots.id"], name=op.f("fk_process_records_lot_id_lots"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["process_id"], ["processes.id"], name=op.f("fk_process_records_process_id_processes"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_process_records_station_id_stations"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_process_records_unit_id_units"), ondelete="RESTRICT"
        ),
    ]


def _partition_process_records() -> None:
    """PostgreSQL: rebuild ``process_records`` as a range-partitioned table, rows and ids kept."""
    bind = op.get_bind()
    op.execute("ALTER SEQUENCE process_records_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE process_records RENAME TO process_records_unpartitioned")
    for name in OLD_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(
        "ALTER TABLE process_records_unpartitioned DROP CONSTRAINT pk_process_records, "
        "DROP CONSTRAINT uq_process_records_idempotency_key"
    )
    op.create_table(
        "process_records",
        *_record_columns(partitioned=True),
        sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_process_records")),
        sa.UniqueConstraint(
            "idempotency_key", "created_at", name=op.f("uq_process_records_idempotency_key_created_at")
        ),
        postgresql_partition_by="RANGE (created_at)",
    )
    op.execute("ALTER TABLE process_records ALTER COLUMN id SET DEFAULT nextval('process_records_id_seq')")
    op.execute("ALTER SEQUENCE process_records_id_seq OWNED BY process_records.id")
    oldest = bind.execute(sa.text("SELECT min(created_at) FROM process_records_unpartitioned")).scalar()
    today = datetime.now(UTC).date()
    partitions.ensure(bind, today=today, since=min(oldest.date(), today) if oldest else today)
    op.execute(
        f"INSERT INTO process_records ({COLUMNS}, line_id, event_at) "
        f"SELECT {', '.join('r.' + c.strip() for c in COLUMNS.split(','))}, "
        "coalesce(s.line_id, l.line_id), coalesce(r.recorded_at, r.created_at) "
        "FROM process_records_unpartitioned r JOIN lots l ON l.id = r.lot_id "
        "LEFT JOIN stations s ON s.id = r.station_id"
    )
    op.execute("DROP TABLE process_records_unpartitioned")
    for name, columns in {**OLD_INDEXES, **NEW_INDEXES}.items():
        op.create_index(name, "process_records", columns)


def _unpartition_process_records() -> None:
    op.execute("ALTER SEQUENCE process_records_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE process_records RENAME TO process_records_partitioned")
    op.execute(
        "ALTER TABLE process_records_partitioned DROP CONSTRAINT pk_process_records, "
        "DROP CONSTRAINT uq_process_records_idempotency_key_created_at"
    )
    for name in {**OLD_INDEXES, **NEW_INDEXES}:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.create_table(
        "process_records",
        *_record_columns(partitioned=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_records")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_process_records_idempotency_key")),
    )
    op.execute("ALTER TABLE process_records ALTER COLUMN id SET DEFAULT nextval('process_records_id_seq')")
    op.execute("ALTER SEQUENCE process_records_id_seq OWNED BY process_records.id")
    op.execute(f"INSERT INTO process_records ({COLUMNS}) SELECT {COLUMNS} FROM process_records_partitioned")
    op.execute("DROP TABLE process_records_partitioned CASCADE")
    op.execute(f"DROP SCHEMA IF EXISTS {partitions.SCHEMA} CASCADE")
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, "process_records", columns)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_role"), f"role IN {NEW_ROLES}")
    with op.batch_alter_table("processes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ideal_cycle_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("device_actions", schema=None) as batch_op:
        batch_op.create_index("ix_device_actions_lot_id_created_at_id", ["lot_id", "created_at", "id"])

    op.create_table(
        "process_record_keys",
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_process_record_keys")),
    )
    op.execute(
        "INSERT INTO process_record_keys (idempotency_key, created_at) "
        "SELECT idempotency_key, created_at FROM process_records"
    )
    if postgres:
        _partition_process_records()
    else:
        with op.batch_alter_table("process_records", schema=None) as batch_op:
            batch_op.add_column(sa.Column("line_id", BigId, nullable=True))
            batch_op.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))
        op.execute(
            "UPDATE process_records SET event_at = coalesce(recorded_at, created_at), line_id = coalesce("
            "(SELECT s.line_id FROM stations s WHERE s.id = process_records.station_id), "
            "(SELECT l.line_id FROM lots l WHERE l.id = process_records.lot_id))"
        )
        with op.batch_alter_table("process_records", schema=None) as batch_op:
            batch_op.alter_column("event_at", existing_type=sa.DateTime(timezone=True), nullable=False)
            batch_op.drop_constraint(op.f("uq_process_records_idempotency_key"), type_="unique")
            batch_op.create_unique_constraint(
                op.f("uq_process_records_idempotency_key_created_at"), ["idempotency_key", "created_at"]
            )
            for name, columns in NEW_INDEXES.items():
                batch_op.create_index(name, columns)

    op.create_table(
        "process_items",
        sa.Column("process_id", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("first_record_id", sa.BigInteger(), nullable=False),
        sa.Column("last_record_id", sa.BigInteger(), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("station_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("first_passed", sa.Boolean(), nullable=False),
        sa.Column("last_passed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "item", name=op.f("pk_process_items")),
    )
    op.create_index("ix_process_items_hour_start", "process_items", ["hour_start"])

    def key() -> list[sa.Column]:
        return [
            sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("line_id", sa.BigInteger(), nullable=False),
            sa.Column("process_id", sa.String(length=64), nullable=False),
            sa.Column("station_id", sa.BigInteger(), nullable=False),
            sa.Column("product", sa.String(length=64), nullable=False),
        ]

    op.create_table(
        "kpi_hourly",
        *key(),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("passed", sa.BigInteger(), nullable=False),
        sa.Column("first_total", sa.BigInteger(), nullable=False),
        sa.Column("first_passed", sa.BigInteger(), nullable=False),
        sa.Column("final_passed", sa.BigInteger(), nullable=False),
        sa.Column("cycle_seconds_sum", sa.Float(), nullable=False),
        sa.Column("cycle_count", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour_start", "line_id", "process_id", "station_id", "product", "shard", name=op.f("pk_kpi_hourly")
        ),
    )
    op.create_index("ix_kpi_hourly_line_id_hour_start", "kpi_hourly", ["line_id", "hour_start"])
    op.create_table(
        "kpi_hourly_defects",
        *key(),
        sa.Column("defect_code", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour_start",
            "line_id",
            "process_id",
            "station_id",
            "product",
            "defect_code",
            "shard",
            name=op.f("pk_kpi_hourly_defects"),
        ),
    )
    op.create_table(
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
    op.create_table(
        "machine_states",
        sa.Column("id", BigId, nullable=False),
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("station_id", BigId, nullable=True),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('running', 'idle', 'down', 'setup')", name=op.f("ck_machine_states_state")),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_machine_states_line_id_lines"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_machine_states_station_id_stations"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_states")),
    )
    op.create_index("ix_machine_states_line_id_started_at", "machine_states", ["line_id", "started_at"])


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_machine_states_line_id_started_at", table_name="machine_states")
    op.drop_table("machine_states")
    op.drop_table("shift_calendars")
    op.drop_table("kpi_hourly_defects")
    op.drop_index("ix_kpi_hourly_line_id_hour_start", table_name="kpi_hourly")
    op.drop_table("kpi_hourly")
    op.drop_index("ix_process_items_hour_start", table_name="process_items")
    op.drop_table("process_items")
    if postgres:
        _unpartition_process_records()
    else:
        with op.batch_alter_table("process_records", schema=None) as batch_op:
            for name in NEW_INDEXES:
                batch_op.drop_index(name)
            batch_op.drop_constraint(op.f("uq_process_records_idempotency_key_created_at"), type_="unique")
            batch_op.create_unique_constraint(op.f("uq_process_records_idempotency_key"), ["idempotency_key"])
            batch_op.drop_column("event_at")
            batch_op.drop_column("line_id")
    op.drop_table("process_record_keys")
    with op.batch_alter_table("device_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_device_actions_lot_id_created_at_id")
    with op.batch_alter_table("processes", schema=None) as batch_op:
        batch_op.drop_column("ideal_cycle_seconds")
    op.execute(f"UPDATE users SET role = 'viewer' WHERE role NOT IN {OLD_ROLES}")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_role"), f"role IN {OLD_ROLES}")
