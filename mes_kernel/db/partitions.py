"""Monthly partitions of ``process_records`` and ``trace_events`` on PostgreSQL: names, DDL,
ensure ahead, detach old.

Why months, not the seed's three months: at the spec's load (20 records/s, 1.7 M a day) a month is
about 52 M rows. That keeps each partition's indexes small enough to stay in memory while it is
the one being written, lets the planner prune a dashboard's range to one or two partitions (a
range of receipts; one of station times through :func:`received_from`), and
lets archiving free space a month at a time; a year is 12 partitions, far below the counts where
planning slows. Quarters would hold ~155 M rows per partition and keep up to three months of
data the plant no longer needs online.

Both tables are partitioned by the month of the *server's* time of receipt: ``created_at`` of a
record, ``received_at`` of a trace event (a record's trace event carries the record's
``created_at`` there). The server sets it, so a station with a wrong clock cannot put a row into an
archived month, and a record and its history entry always sit in the same month: archiving a month
takes both, restoring it brings both back.

Partitions live in their own schema (``mes_partitions``) so the application schema lists the
tables the models declare and nothing else. A ``DEFAULT`` partition per table catches a row whose
month has no partition yet (the ensure job failed for months): the row is stored, never refused;
creating that month's partition later (``ensure``, or ``archive`` for an old month) moves those
rows into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..settings import STATION_TIME_MAX_LEAD_LIMIT_SECONDS

SCHEMA = "mes_partitions"
AHEAD_MONTHS = 3


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by month of ``key`` (a timestamp set by the server)."""

    parent: str
    key: str

    @property
    def default(self) -> str:
        return f"{self.parent}_default"


RECORDS = Partitioned("process_records", "created_at")
TRACE = Partitioned("trace_events", "received_at")
TABLES = (RECORDS, TRACE)
PARENT = RECORDS.parent
DEFAULT = RECORDS.default


@dataclass(frozen=True)
class Month:
    """A calendar month (UTC) and its partitions."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: date | datetime) -> Month:
        return cls(moment.year, moment.month)

    def next(self) -> Month:
        return Month(self.year + (self.month == 12), self.month % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def label(self) -> str:
        """``YYYY_MM``, the suffix of the month's partitions."""
        return f"{self.year:04d}_{self.month:02d}"

    def of_table(self, table: Partitioned) -> str:
        """The name of ``table``'s partition for this month (in :data:`SCHEMA`)."""
        return f"{table.parent}_{self.label}"

    @property
    def name(self) -> str:
        """The name of the month's ``process_records`` partition."""
        return self.of_table(RECORDS)


def month_of_partition(name: str) -> Month | None:
    """The month a partition's name (``<table>_YYYY_MM``) stands for; None for other names."""
    parts = name.rsplit("_", 2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return Month(int(parts[1]), int(parts[2]))


def months_between(first: Month, last: Month) -> list[Month]:
    """Every month from ``first`` to ``last``, both included."""
    months, month = [], first
    while (month.year, month.month) <= (last.year, last.month):
        months.append(month)
        month = month.next()
    return months


def is_partitioned(conn: Connection, table: Partitioned = RECORDS) -> bool:
    """True when ``table`` is a partitioned table (PostgreSQL: records after migration 0009, trace
    events after 0015)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = :name"
        ),
        {"name": table.parent},
    ).scalar()
    return kind == "p"


def partitioned_tables(conn: Connection) -> list[Partitioned]:
    """Which of :data:`TABLES` are partitioned in this database (none on SQLite)."""
    return [table for table in TABLES if is_partitioned(conn, table)]


def attached(conn: Connection, table: Partitioned = RECORDS) -> dict[str, str]:
    """``table``'s attached partitions by name, with their bounds as PostgreSQL prints them."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = :parent AND n.nspname = current_schema()"
        ),
        {"parent": table.parent},
    )
    return {name: bound for name, bound in rows}


def create_default(conn: Connection, table: Partitioned = RECORDS) -> None:
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    conn.execute(
        text(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table.default} PARTITION OF {table.parent} DEFAULT")
    )


def ensure(
    conn: Connection,
    *,
    today: date,
    ahead: int = AHEAD_MONTHS,
    since: date | None = None,
    tables: tuple[Partitioned, ...] = TABLES,
) -> list[str]:
    """Create, for each of ``tables`` that is partitioned, the partitions from ``since``'s month
    (default: this month) to ``ahead`` months after today's; returns the names created. Rows waiting
    in a default partition for a month being created are moved into it in the same transaction
    (PostgreSQL refuses the new partition otherwise)."""
    last = Month.of(today)
    for _ in range(ahead):
        last = last.next()
    created = []
    for table in tables:
        if not is_partitioned(conn, table):
            continue
        create_default(conn, table)
        present = attached(conn, table)
        for month in months_between(Month.of(since or today), last):
            if month.of_table(table) in present:
                continue
            create_month(conn, month, table)
            created.append(month.of_table(table))
    return created


def create_month(conn: Connection, month: Month, table: Partitioned = RECORDS) -> None:
    """Create ``table``'s partition of ``month``, moving the month's rows out of the default one."""
    bounds = {"lo": month.start, "hi": month.next().start}
    default, key = f"{SCHEMA}.{table.default}", table.key
    waiting = conn.execute(text(f"SELECT count(*) FROM {default} WHERE {key} >= :lo AND {key} < :hi"), bounds).scalar()
    if waiting:
        conn.execute(
            text(
                f"CREATE TEMP TABLE mes_moving ON COMMIT DROP AS SELECT * FROM {default} "
                f"WHERE {key} >= :lo AND {key} < :hi"
            ),
            bounds,
        )
        conn.execute(text(f"DELETE FROM {default} WHERE {key} >= :lo AND {key} < :hi"), bounds)
    conn.execute(
        text(
            f"CREATE TABLE {SCHEMA}.{month.of_table(table)} PARTITION OF {table.parent} "
            f"FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.next().start.isoformat()}')"
        )
    )
    if waiting:
        conn.execute(text(f"INSERT INTO {table.parent} SELECT * FROM mes_moving"))
        conn.execute(text("DROP TABLE mes_moving"))


def waiting_in_default(conn: Connection, table: Partitioned, before: date) -> list[Month]:
    """Months wholly before ``before`` that have rows in ``table``'s default partition (their
    partition was never created)."""
    limit = Month.of(before).start
    present = conn.execute(
        text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"{SCHEMA}.{table.default}"}
    ).scalar()
    if not present:
        return []
    rows = conn.execute(
        text(
            f"SELECT DISTINCT extract(year FROM {table.key} AT TIME ZONE 'UTC')::int, "
            f"extract(month FROM {table.key} AT TIME ZONE 'UTC')::int "
            f"FROM {SCHEMA}.{table.default} WHERE {table.key} < :limit"
        ),
        {"limit": limit},
    )
    return sorted(Month(year, month) for year, month in rows)


def older_than(conn: Connection, before: date, table: Partitioned = RECORDS) -> list[Month]:
    """``table``'s attached monthly partitions whose whole month lies before ``before``."""
    limit = Month.of(before)
    months = []
    for name in attached(conn, table):
        month = month_of_partition(name)
        if month is None:
            continue
        if (month.year, month.month) < (limit.year, limit.month) and month.next().start.date() <= before:
            months.append(month)
    return sorted(months, key=lambda m: (m.year, m.month))


def detach(conn: Connection, month: Month, table: Partitioned = RECORDS) -> str:
    """Detach ``table``'s partition of ``month``; it stays as a plain table
    ``mes_partitions.<name>`` until archived."""
    conn.execute(text(f"ALTER TABLE {table.parent} DETACH PARTITION {SCHEMA}.{month.of_table(table)}"))
    return f"{SCHEMA}.{month.of_table(table)}"


def detached(conn: Connection, table: Partitioned = RECORDS) -> list[str]:
    """``table``'s monthly tables in the partition schema that are no longer attached (detached,
    not yet archived; or restored from an archive, not yet attached)."""
    names = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY tablename"), {"schema": SCHEMA}
    ).scalars()
    present = attached(conn, table)
    return [
        n for n in names
        if n not in present and n.startswith(table.parent + "_") and n != table.default
        and month_of_partition(n) is not None and n == month_of_partition(n).of_table(table)
    ]


# ---------------------------------------------------------------- jobs (CLI and the kernel's background work)
LOCK_ID = 0x6D65_7370  # one advisory lock: workers and the CLI never create the same partition at once


async def ensure_partitions(engine, *, today: date | None = None, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Create this month's partitions (records and trace events) and ``ahead`` more (no-op on
    SQLite); returns the names created."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        return await conn.run_sync(lambda sync: ensure(sync, today=today or datetime.now(UTC).date(), ahead=ahead))


MAX_LEAD = timedelta(seconds=STATION_TIME_MAX_LEAD_LIMIT_SECONDS)


def received_from(since: datetime) -> datetime:
    """The earliest receipt (``created_at``, the partition key) of a record whose station time
    (``event_at``) is ``since`` or later: ``since`` less
    :data:`~mes_kernel.settings.STATION_TIME_MAX_LEAD_LIMIT_SECONDS` (1 day), as no station time
    is stored further ahead of its receipt (``mes_kernel.station_times``).

    A read of the records from a station time on adds ``created_at >= received_from(since)``:
    PostgreSQL then leaves out, while planning, every month's partition that ended before it. A
    range on ``event_at`` alone prunes none, and each partition's index is walked through the
    range's key: with a year of partitions, a Pareto bar's 30-day drill-down read every month's
    failures of its code. The failed-records indexes carry ``created_at`` (migration 0031), so the
    condition costs no visit to the table. Records stored before station times were checked could
    lie further ahead of their receipt; such a read misses one only if it reached the server over
    a day before its own station time."""
    return since - MAX_LEAD
