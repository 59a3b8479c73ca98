"""The records and items behind a bar of the quality view, found by two partial indexes.

The failed records of one defect code in a range: ``process_records
(defect_code, event_at) WHERE result = 'fail'``. The quality view's drill-down behind a Pareto bar
(``GET /kpi/drilldown?kind=defect``) otherwise scanned every partition of ``process_records``
(no index leads with ``event_at`` or ``defect_code``); failed records are a few percent of all, so
the index is small. On PostgreSQL it is created on the partitioned table, so every month's
partition (and those ``mes db partitions`` makes later) gets its own.

The items first tried in a range that failed that try or their latest: ``process_items
(hour_start) WHERE NOT first_passed OR NOT last_passed`` — a yield bar's loss
(``kind=process|station|product&outcome=first_fail|failed``) without reading every item.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

FAILED = sa.text("result = 'fail'")
NOT_PASSED = sa.text("NOT first_passed OR NOT last_passed")


def upgrade() -> None:
    op.create_index(
        "ix_process_records_failed_defect",
        "process_records",
        ["defect_code", "event_at"],
        postgresql_where=FAILED,
        sqlite_where=FAILED,
    )
    op.create_index(
        "ix_process_items_not_passed",
        "process_items",
        ["hour_start"],
        postgresql_where=NOT_PASSED,
        sqlite_where=NOT_PASSED,
    )


def downgrade() -> None:
    op.drop_index("ix_process_items_not_passed", table_name="process_items")
    op.drop_index("ix_process_records_failed_defect", table_name="process_records")
