"""Each item's LOT on ``process_items`` (``lot_id``) and a covering index for a step's items in a
range, so the drill-down behind a yield bar (``GET /kpi/drilldown?kind=process``) groups the bar's
items by LOT from the index alone: ``process_items (process_id, hour_start) INCLUDE (lot_id,
line_id, first_passed, last_passed)``. Before, it joined every item of the bar to ``units`` (one
row per serial number ever made) to find its LOT, and read the items from the heap.

Existing rows are filled from what the drill-down read until now: a unit's LOT by its serial
number, else the LOT the item names (a LOT-level item), else (a serial number no unit has: only
generated data) the LOT of the item's first record. On PostgreSQL the column is added in a
transaction of its own, the rows are filled in batches of ``BATCH`` items each committed on its
own (no long lock on a big table: recording goes on), and the index is built ``CONCURRENTLY``.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01 06:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

BATCH = 10_000
INDEX = "ix_process_items_process_hour"
COVERED = ["lot_id", "line_id", "first_passed", "last_passed"]
LOT_OF_ITEM = """
    coalesce((SELECT u.lot_id FROM units u WHERE u.serial_number = process_items.item),
             (SELECT l.id FROM lots l WHERE l.lot_number = process_items.item),
             (SELECT r.lot_id FROM process_records r WHERE r.id = process_items.first_record_id))
"""


def upgrade() -> None:
    op.add_column("process_items", sa.Column("lot_id", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name != "postgresql":  # SQLite: one writer, small tables
        op.execute(f"UPDATE process_items SET lot_id = {LOT_OF_ITEM}")
        op.create_index(INDEX, "process_items", ["process_id", "hour_start"])
        return
    with op.get_context().autocommit_block():  # each statement below commits on its own
        _fill_in_batches(op.get_bind())
        op.create_index(
            INDEX,
            "process_items",
            ["process_id", "hour_start"],
            postgresql_include=COVERED,
            postgresql_concurrently=True,
        )


def _fill_in_batches(bind) -> None:
    """``lot_id`` of every row, ``BATCH`` items at a time in key order (each a short transaction)."""
    after: tuple[str, str] | None = None
    while True:
        last = bind.execute(
            sa.text(f"""
            WITH batch AS (
                SELECT process_id, item FROM process_items WHERE :first OR (process_id, item) > (:p, :i)
                ORDER BY process_id, item LIMIT {BATCH}
            ), filled AS (
                UPDATE process_items SET lot_id = {LOT_OF_ITEM}
                FROM batch WHERE process_items.process_id = batch.process_id AND process_items.item = batch.item
                RETURNING process_items.process_id, process_items.item
            )
            SELECT process_id, item FROM filled ORDER BY process_id DESC, item DESC LIMIT 1
            """),
            {"first": after is None, "p": after[0] if after else "", "i": after[1] if after else ""},
        ).first()
        if last is None:
            return
        after = (last.process_id, last.item)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="process_items")
    with op.batch_alter_table("process_items") as batch:
        batch.drop_column("lot_id")
