"""Per-LOT hourly yield counts, ``kpi_hourly_lots``, kept by triggers on ``process_items``; the
failed records' index covers what the drill-down behind a Pareto bar counts.

The drill-down behind a yield bar (``GET /kpi/drilldown?kind=process|station|product``) lists the
bar's LOTs, most first-try failures first, with each LOT's counts and the number of LOTs. It
summed the bar's items per LOT: at 10 million records a step's week held 470,000 items (0.75 s).
This table holds those sums per LOT and hour (a few rows per LOT however many units it holds);
:mod:`mes_kernel.db.lot_counts` has the triggers and why they are triggers.

The table is filled from the items as they are now, in the migration's transaction, after the
triggers are in place: creating a trigger locks ``process_items`` against writers until the
migration commits, so no item is written between the fill's reading and the triggers counting.

The drill-down pages a yield bar's items in (hour, item, step) order, each kind of bar (a step, a
station, a product) from an index of its own (``ix_process_items_<kind>_page``) and one of its
losses only (``…_losses``, partial: failed a first try or the latest): a page reads its 50 entries
(and their rows) whatever the range, and a bar with no losses finds none without reading its items.
The indexes carry no more than their order: every recorded item writes each, and a page reads few
rows.
They replace ``ix_process_items_process_hour`` (0025: the per-LOT sums, now the table above),
``ix_process_items_not_passed`` (0022) and ``ix_process_items_hour_start`` (0009: only the rebuild
read by it, which reads most of the table anyway). On PostgreSQL they are built ``CONCURRENTLY``
after the migration's transaction (recording goes on); at 10 M items, about three minutes.

The drill-down behind a Pareto bar counts a defect code's failed records in a range per LOT and
unit: ``ix_process_records_failed_defect`` (0022) found them, and every one was then read from its
partition's heap (0.43 s for a code's 30 days at 10 M records). On PostgreSQL the index now
includes ``lot_number``, ``serial_number`` and ``line_id``, so the count reads the index alone.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01 10:40:00
"""

import sqlalchemy as sa
from alembic import op

from mes_kernel.db import lot_counts

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

UNFOLDED = sa.text("shard <> 0")
LOSSES = sa.text("NOT first_passed OR NOT last_passed")
PAGES = {  # models.ITEM_PAGES as of this migration
    "process": ["process_id", "hour_start", "item"],
    "station": ["station_id", "hour_start", "item", "process_id"],
    "product": ["product", "hour_start", "item", "process_id"],
}
REPLACED = {  # name: (columns, options) of the item indexes the pages replace
    "ix_process_items_hour_start": (["hour_start"], {}),
    "ix_process_items_process_hour": (
        ["process_id", "hour_start"],
        {"postgresql_include": ["lot_id", "line_id", "first_passed", "last_passed"]},
    ),
    "ix_process_items_not_passed": (["hour_start"], {"postgresql_where": LOSSES, "sqlite_where": LOSSES}),
}
FAILED = sa.text("result = 'fail'")
DEFECTS = "ix_process_records_failed_defect"


def upgrade() -> None:
    op.create_table(
        "kpi_hourly_lots",
        sa.Column("process_id", sa.String(64), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("station_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in lot_counts.COUNTS),
        sa.PrimaryKeyConstraint(
            *lot_counts.KEY, "shard", name="pk_kpi_hourly_lots", postgresql_include=list(lot_counts.COUNTS)
        ),
    )
    for name, column in (("station_hour", "station_id"), ("product_hour", "product")):
        op.create_index(
            f"ix_kpi_hourly_lots_{name}",
            "kpi_hourly_lots",
            [column, "hour_start"],
            postgresql_include=lot_counts.COVERED,
        )
    op.create_index(
        "ix_kpi_hourly_lots_unfolded",
        "kpi_hourly_lots",
        ["hour_start"],
        postgresql_where=UNFOLDED,
        sqlite_where=UNFOLDED,
    )
    for statement in lot_counts.statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.execute(lot_counts.FILL)
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # SQLite has no INCLUDE: its index stays
        op.drop_index(DEFECTS, table_name="process_records")
        _defects_index(include=["lot_number", "serial_number", "line_id"])
    if not postgres:  # one writer, small tables
        _item_pages(concurrently=False)
        return
    with op.get_context().autocommit_block():  # each statement below commits on its own
        _item_pages(concurrently=True)


def _item_pages(*, concurrently: bool) -> None:
    for kind, columns in PAGES.items():
        op.create_index(
            f"ix_process_items_{kind}_page", "process_items", columns, postgresql_concurrently=concurrently
        )
        op.create_index(
            f"ix_process_items_{kind}_losses",
            "process_items",
            columns,
            postgresql_where=LOSSES,
            sqlite_where=LOSSES,
            postgresql_concurrently=concurrently,
        )
    for name in REPLACED:
        op.drop_index(name, table_name="process_items", postgresql_concurrently=concurrently)


def _defects_index(include: list[str]) -> None:
    op.create_index(
        DEFECTS,
        "process_records",
        ["defect_code", "event_at"],
        postgresql_include=include,
        postgresql_where=FAILED,
        sqlite_where=FAILED,
    )


def downgrade() -> None:
    for name, (columns, options) in REPLACED.items():
        op.create_index(name, "process_items", columns, **options)
    for kind in PAGES:
        for part in ("page", "losses"):
            op.drop_index(f"ix_process_items_{kind}_{part}", table_name="process_items")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(DEFECTS, table_name="process_records")
        _defects_index(include=[])
    for statement in lot_counts.DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("kpi_hourly_lots")
