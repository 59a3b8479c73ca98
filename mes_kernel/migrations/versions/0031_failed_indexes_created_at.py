"""The failed-records indexes carry each record's receipt (``created_at``, the partition key).

A Pareto bar's drill-down reads a code's failed records of a range of station times (``event_at``)
through ``ix_process_records_failed_defect`` (0022, 0026), ``…_item`` (0027) and ``…_lot`` (0029).
A range of station times prunes no partition (they are by month of receipt): each month's index
was walked through the code's entries, so with a year of partitions a 30-day drill-down read every
month's failures of the code. The read now adds ``created_at >= event range start − 1 day``
(:func:`mes_kernel.db.partitions.received_from`: no station time lies further ahead of its
receipt), which leaves the older months out while planning; with ``created_at`` in the indexes'
``INCLUDE`` the condition is checked in the index, without visiting the table.

PostgreSQL: each index is made again under a new name — the parent's ``ON ONLY``, each
partition's ``CONCURRENTLY`` (recording goes on) and attached, as 0029 — then the old one is
dropped and the new one takes its name. An attempt stopped half-way is taken up again.
SQLite: nothing (no partitions; ``INCLUDE`` is PostgreSQL's).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-02 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

_ITEM = "(coalesce(serial_number, lot_number))"
#: name: (key, INCLUDE before, tag of the partitions' indexes)
INDEXES = {
    "ix_process_records_failed_defect": ("(defect_code, event_at)", "lot_number, serial_number, line_id", "fdc"),
    "ix_process_records_failed_defect_item": (
        f"(defect_code, {_ITEM}, event_at)",
        "lot_number, serial_number, line_id",
        "fdi",
    ),
    "ix_process_records_failed_defect_lot": (
        f"(defect_code, lot_number, {_ITEM}, event_at)",
        "serial_number, line_id",
        "fdl",
    ),
}
VALID = (
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = :name"
)
EXISTS = "SELECT to_regclass(:name) IS NOT NULL"
PARTITIONS = (
    "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE i.inhparent = 'process_records'::regclass ORDER BY c.relname"
)


def definition(name: str, *, receipt: bool = True) -> str:
    key, include, _ = INDEXES[name]
    return f"{key} INCLUDE ({include}{', created_at' if receipt else ''}) WHERE result = 'fail'"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name, (_, _, tag) in INDEXES.items():
        new = f"{name}_0031"
        if not bind.execute(sa.text(EXISTS), {"name": new}).scalar():
            if _has_receipt(bind, name):  # made and renamed by an earlier attempt
                continue
            op.execute(f"CREATE INDEX {new} ON ONLY process_records {definition(name)}")
        partitions = bind.execute(sa.text(PARTITIONS)).all()
        with op.get_context().autocommit_block():  # each statement below commits on its own
            for schema, partition in partitions:
                child = f"{partition[:40]}_{tag}_0031"
                valid = bind.execute(sa.text(VALID), {"schema": schema, "name": child}).scalar()
                if valid is False:  # a build that failed leaves an invalid index, never attached
                    op.execute(f'DROP INDEX CONCURRENTLY "{schema}"."{child}"')
                if not valid:
                    op.execute(f'CREATE INDEX CONCURRENTLY "{child}" ON "{schema}"."{partition}" {definition(name)}')
                op.execute(f'ALTER INDEX {new} ATTACH PARTITION "{schema}"."{child}"')  # nothing if it is already
            op.execute(f"DROP INDEX IF EXISTS {name}")  # its partitions' with it
            op.execute(f"ALTER INDEX {new} RENAME TO {name}")


def _has_receipt(bind, name: str) -> bool:
    found = bind.execute(sa.text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": name}).scalar()
    return bool(found) and "created_at" in found


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(f"CREATE INDEX {name} ON process_records {definition(name, receipt=False)}")
