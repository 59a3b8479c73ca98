"""Machine data from connector plugins: hourly part counts per machine, the machines' last counter
readings, process values with the unit on the machine, and an index to find a device's open state.

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "machine_counts",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("station_id", BigId, nullable=True),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("bad", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_machine_counts_line_id_lines"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_machine_counts_station_id_stations"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("device", "hour_start", name=op.f("pk_machine_counts")),
    )
    op.create_index("ix_machine_counts_line_id_hour_start", "machine_counts", ["line_id", "hour_start"])
    op.create_table(
        "machine_counters",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("counter", sa.String(length=16), nullable=False),
        sa.Column("reading", sa.BigInteger(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device", "counter", name=op.f("pk_machine_counters")),
    )
    op.create_table(
        "machine_values",
        sa.Column("id", BigId, nullable=False),
        sa.Column("line_id", BigId, nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.String(length=256), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=True),
        sa.Column("unit_id", BigId, nullable=True),
        sa.Column("source_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_machine_values_line_id_lines"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_machine_values_unit_id_units"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_values")),
    )
    op.create_index("ix_machine_values_unit_id_source_at", "machine_values", ["unit_id", "source_at"])
    op.create_index("ix_machine_values_device_source_at", "machine_values", ["device", "source_at"])
    op.create_index("ix_machine_states_device_started_at", "machine_states", ["device", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_machine_states_device_started_at", table_name="machine_states")
    op.drop_index("ix_machine_values_device_source_at", table_name="machine_values")
    op.drop_index("ix_machine_values_unit_id_source_at", table_name="machine_values")
    op.drop_table("machine_values")
    op.drop_table("machine_counters")
    op.drop_index("ix_machine_counts_line_id_hour_start", table_name="machine_counts")
    op.drop_table("machine_counts")
