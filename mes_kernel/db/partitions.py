"""Monthly partitions of ``process_records`` on PostgreSQL: names, DDL, ensure ahead, detach old.

Why months, not the seed's three months: at the spec's load (20 records/s, 1.7 M a day) a month is
about 52 M rows. That keeps each partition's indexes small enough to stay in memory while it is
the one being written, lets the planner prune a dashboard's range to one or two partitions, and
lets archiving free space a month at a time; a year is 12 partitions, far below the counts where
planning slows. Quarters would hold ~155 M rows per partition and keep up to three months of
data the plant no longer needs online.

Partitions live in their own schema (``mes_partitions``) so the application schema lists the
tables the models declare and nothing else. A ``DEFAULT`` partition catches a row whose month has
no partition yet (the ensure job failed for months): the record is stored, never refused; the
next ``ensure`` moves those rows into their month's partition.

The partition key is ``created_at``, the server's receipt time: the server sets it, so a station
with a wrong clock cannot put a record into an archived month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

SCHEMA = "mes_partitions"
PARENT = "process_records"
DEFAULT = f"{PARENT}_default"
AHEAD_MONTHS = 3


@dataclass(frozen=True)
class Month:
    """A calendar month (UTC) and its partition."""

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
    def name(self) -> str:
        return f"{PARENT}_{self.year:04d}_{self.month:02d}"


def months_between(first: Month, last: Month) -> list[Month]:
    """Every month from ``first`` to ``last``, both included."""
    months, month = [], first
    while (month.year, month.month) <= (last.year, last.month):
        months.append(month)
        month = month.next()
    return months


def is_partitioned(conn: Connection) -> bool:
    """True when ``process_records`` is a partitioned table (PostgreSQL after migration 0009)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = :name"
        ),
        {"name": PARENT},
    ).scalar()
    return kind == "p"


def attached(conn: Connection) -> dict[str, str]:
    """Attached partitions by name, with their bounds as PostgreSQL prints them."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = :parent AND n.nspname = current_schema()"
        ),
        {"parent": PARENT},
    )
    return {name: bound for name, bound in rows}


def create_default(conn: Connection) -> None:
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{DEFAULT} PARTITION OF {PARENT} DEFAULT"))


def ensure(conn: Connection, *, today: date, ahead: int = AHEAD_MONTHS, since: date | None = None) -> list[str]:
    """Create the partitions from ``since``'s month (default: this month) to ``ahead`` months after
    today's; returns the names created. Rows waiting in the default partition for a month being
    created are moved into it in the same transaction (PostgreSQL refuses the new partition
    otherwise)."""
    if not is_partitioned(conn):
        return []
    create_default(conn)
    present = attached(conn)
    last = Month.of(today)
    for _ in range(ahead):
        last = last.next()
    created = []
    for month in months_between(Month.of(since or today), last):
        if month.name in present:
            continue
        _create_month(conn, month)
        created.append(month.name)
    return created


def _create_month(conn: Connection, month: Month) -> None:
    bounds = {"lo": month.start, "hi": month.next().start}
    waiting = conn.execute(
        text(f"SELECT count(*) FROM {SCHEMA}.{DEFAULT} WHERE created_at >= :lo AND created_at < :hi"), bounds
    ).scalar()
    if waiting:
        conn.execute(
            text(
                f"CREATE TEMP TABLE mes_moving ON COMMIT DROP AS SELECT * FROM {SCHEMA}.{DEFAULT} "
                "WHERE created_at >= :lo AND created_at < :hi"
            ),
            bounds,
        )
        conn.execute(text(f"DELETE FROM {SCHEMA}.{DEFAULT} WHERE created_at >= :lo AND created_at < :hi"), bounds)
    conn.execute(
        text(
            f"CREATE TABLE {SCHEMA}.{month.name} PARTITION OF {PARENT} "
            f"FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.next().start.isoformat()}')"
        )
    )
    if waiting:
        conn.execute(text(f"INSERT INTO {PARENT} SELECT * FROM mes_moving"))
        conn.execute(text("DROP TABLE mes_moving"))


def older_than(conn: Connection, before: date) -> list[Month]:
    """Attached monthly partitions whose whole month lies before ``before``."""
    limit = Month.of(before)
    months = []
    for name in attached(conn):
        if name == DEFAULT:
            continue
        year, month = (int(part) for part in name.rsplit("_", 2)[1:])
        if (year, month) < (limit.year, limit.month) and Month(year, month).next().start.date() <= before:
            months.append(Month(year, month))
    return sorted(months, key=lambda m: (m.year, m.month))


def detach(conn: Connection, month: Month) -> str:
    """Detach one month's partition; it stays as a plain table ``mes_partitions.<name>`` until archived."""
    conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {SCHEMA}.{month.name}"))
    return f"{SCHEMA}.{month.name}"


# ---------------------------------------------------------------- jobs (CLI and the kernel's background work)
LOCK_ID = 0x6D65_7370  # one advisory lock: workers and the CLI never create the same partition at once


async def ensure_partitions(engine, *, today: date | None = None, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Create this month's partition and ``ahead`` more (no-op on SQLite); returns names created."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        return await conn.run_sync(lambda sync: ensure(sync, today=today or datetime.now(UTC).date(), ahead=ahead))


def detached(conn: Connection) -> list[str]:
    """Tables in the partition schema that are no longer attached (detached, not yet archived)."""
    names = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY tablename"), {"schema": SCHEMA}
    ).scalars()
    present = attached(conn)
    return [n for n in names if n not in present and n.startswith(PARENT + "_") and n != DEFAULT]


async def archive_partitions(engine, *, database_url: str, before: date, backup_dir: Path) -> list[dict]:
    """Detach every monthly partition wholly before ``before``, dump each (``pg_dump -Fc``, with a
    ``.sha256`` beside it) into ``backup_dir/partitions``, check the dump reads back, then drop the table and
    the idempotency keys of its month. A failed dump leaves the table detached and whole: run again.
    Returns one entry per partition archived."""
    import asyncio
    import hashlib

    if engine.dialect.name != "postgresql":
        return []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        for month in await conn.run_sync(lambda sync: older_than(sync, before)):
            await conn.run_sync(lambda sync, m=month: detach(sync, m))
    async with engine.connect() as conn:
        waiting = await conn.run_sync(detached)
    # A folder of its own: the nightly backup's rotation deletes ``mes-*.dump`` after 30 days;
    # archived months are kept as long as traceability requires.
    backup_dir = backup_dir / "partitions"
    backup_dir.mkdir(parents=True, exist_ok=True)
    url = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    done = []
    for name in waiting:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = backup_dir / f"{name}-{stamp}.dump"
        for command in (
            ["pg_dump", "-Fc", "-t", f"{SCHEMA}.{name}", "-f", str(target), url],
            ["pg_restore", "--list", str(target)],
        ):
            proc = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"{command[0]} failed for {name}: {err.decode(errors='replace').strip()}")
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
        year, month = (int(part) for part in name.rsplit("_", 2)[1:])
        async with engine.begin() as conn:
            rows = (await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{name}"))).scalar()
            await conn.execute(
                text("DELETE FROM process_record_keys WHERE created_at >= :lo AND created_at < :hi"),
                {"lo": Month(year, month).start, "hi": Month(year, month).next().start},
            )
            await conn.execute(text(f"DROP TABLE {SCHEMA}.{name}"))
        done.append({"partition": name, "rows": rows, "dump": str(target), "sha256": digest})
    return done
