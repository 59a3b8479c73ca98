"""Traceability in the order it happened: one ``trace_events`` stream per LOT and unit, with totals.

Every process record, device action (naming a LOT or unit), station scan, LOT status change and
unit registration gets a row, ordered by station time, then the station's outbox sequence number,
then id; ``trace_totals`` keeps each LOT's and unit's event count so a page never counts 100 000 rows.

The upgrade copies what already exists into the stream: process records, device actions with a
LOT, unit registrations, LOT creations and the status changes the audit log holds. Scans stored
before it stay station events only (nothing tied them to a unit). The downgrade drops both tables;
the traced rows stay in their own tables.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 15:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KINDS = "kind IN ('process_record', 'device_action', 'scan', 'status_change', 'registration')"
COLUMNS = "lot_id, unit_id, kind, recorded_at, station_seq, received_at, station_id, actor, source_id, payload"


def _obj(postgres: bool, **fields: str) -> str:
    """A JSON object built in SQL from ``name=sql expression`` pairs, in the dialect's function."""
    args = ", ".join(f"'{name}', {expr}" for name, expr in fields.items())
    return f"jsonb_build_object({args})" if postgres else f"json_object({args})"


def _field(postgres: bool, column: str, key: str) -> str:
    return f"({column} ->> '{key}')" if postgres else f"json_extract({column}, '$.{key}')"


def _backfill(postgres: bool) -> None:
    # Oldest kinds first, so that at one moment a creation sorts before what happened to the LOT.
    created = _obj(postgres, lot_number="l.lot_number", **{"from": "NULL", "to": "'created'"})
    op.execute(
        f"INSERT INTO trace_events ({COLUMNS}) SELECT l.id, NULL, 'status_change', l.created_at, 0, "
        f"l.created_at, NULL, '', NULL, {created} FROM lots l"
    )
    before, after = _field(postgres, "a.before", "status"), _field(postgres, "a.after", "status")
    changed = _obj(postgres, lot_number="l.lot_number", **{"from": before, "to": after})
    op.execute(
        f"INSERT INTO trace_events ({COLUMNS}) SELECT l.id, NULL, 'status_change', a.occurred_at, 0, "
        f"a.occurred_at, NULL, a.actor, NULL, {changed} FROM audit_log a JOIN lots l ON l.lot_number = a.entity_id "
        f"WHERE a.entity = 'lot' AND a.action = 'update' AND {after} IS NOT NULL AND {before} IS NOT NULL "
        f"AND {after} <> {before}"
    )
    registration = _obj(postgres, lot_number="l.lot_number", serial_number="u.serial_number")
    op.execute(
        f"INSERT INTO trace_events ({COLUMNS}) SELECT u.lot_id, u.id, 'registration', u.created_at, 0, "
        f"u.created_at, NULL, '', NULL, {registration} FROM units u JOIN lots l ON l.id = u.lot_id"
    )
    record = _obj(postgres, lot_number="r.lot_number", serial_number="r.serial_number", process_id="r.process_id",
                  result="r.result", defect_code="r.defect_code", worker_id="r.worker_id")
    op.execute(
        f"INSERT INTO trace_events ({COLUMNS}) SELECT r.lot_id, r.unit_id, 'process_record', r.event_at, 0, "
        f"r.created_at, r.station_id, r.created_by, r.id, {record} FROM process_records r"
    )
    action = _obj(postgres, lot_number="a.lot_number", serial_number="a.serial_number", action="a.action",
                  plugin="a.plugin", device="a.device", driver="a.driver", driver_version="a.driver_version",
                  outcome="a.outcome", detail="a.detail" if postgres else "json(a.detail)")
    op.execute(
        f"INSERT INTO trace_events ({COLUMNS}) SELECT a.lot_id, a.unit_id, 'device_action', a.created_at, 0, "
        f"a.created_at, a.station_id, a.actor, a.id, {action} FROM device_actions a WHERE a.lot_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO trace_totals (scope, subject_id, events) "
        "SELECT 'lot', lot_id, count(*) FROM trace_events GROUP BY lot_id"
    )
    op.execute(
        "INSERT INTO trace_totals (scope, subject_id, events) "
        "SELECT 'unit', unit_id, count(*) FROM trace_events WHERE unit_id IS NOT NULL GROUP BY unit_id"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "trace_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("lot_id", BigId, nullable=False),
        sa.Column("unit_id", BigId, nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station_seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station_id", BigId, nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_events")),
    )
    op.create_table(
        "trace_totals",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("scope IN ('lot', 'unit')", name=op.f("ck_trace_totals_scope")),
        sa.PrimaryKeyConstraint("scope", "subject_id", name=op.f("pk_trace_totals")),
    )
    _backfill(postgres)
    # Indexes after the copy: one sort each instead of a page split per copied row.
    op.create_index("ix_trace_events_lot_history", "trace_events", ["lot_id", "recorded_at", "station_seq", "id"])
    op.create_index("ix_trace_events_unit_history", "trace_events", ["unit_id", "recorded_at", "station_seq", "id"])


def downgrade() -> None:
    op.drop_index("ix_trace_events_unit_history", table_name="trace_events")
    op.drop_index("ix_trace_events_lot_history", table_name="trace_events")
    op.drop_table("trace_totals")
    op.drop_table("trace_events")
