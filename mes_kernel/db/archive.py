"""Archive old months of process data (PostgreSQL) and bring them back.

A month is archived as one dump holding both of its partitions: ``process_records_YYYY_MM`` and
``trace_events_YYYY_MM`` (the records and their history entries; both are partitioned by the
server's receipt month, see :mod:`mes_kernel.db.partitions`). Each step commits on its own, and
where a month stands is written in ``archived_months`` (one row per month), so a run interrupted
anywhere (killed, a failed dump, a lost connection) is finished by running the command again:

1. **detach** (one short transaction, under the partitions' advisory lock): the month's row is
   written (``detached``) and both partitions leave their parents. Rows of the month still
   waiting in a default partition are first moved into the month's partition, so none stays behind.
2. **uncount**, in bounded batches (``batch_rows`` rows of a table each, one transaction per
   batch): the batch's trace events are subtracted from ``trace_totals``, so a history's total
   counts what it can show, then the batch's records read for their latest station time. The
   records' idempotency keys stay (:mod:`mes_kernel.db.record_keys`). Each batch
   moves the month's cursor (``trace_after``, ``keys_after``: the last id done) in its own
   transaction, so a crash between batches resumes after the last one committed and never
   subtracts twice; the last batch sets the month ``uncounted``. At the spec's load a month is
   ~52 M records and as many events: one transaction would hold their locks and its WAL for an
   hour, and start over from nothing after a crash. The records' latest station time
   (``last_event_at``) is gathered on the way, for ``mes kpi rebuild``'s guard (which may start only
   after it). So before anything is detached, a month holding a record whose station time lies
   more than :data:`~mes_kernel.db.offline.AHEAD` after the month's end (a station clock far off:
   2031, 9999) is refused, naming the records (:class:`FarStationTimes`) — archived, such a record
   would keep every rebuild from starting before its time. Done after the
   detach, not in it: a detach holds an exclusive lock on the parent table until commit.
3. **dump**: ``pg_dump -Fc`` of the month's tables into ``<backup_dir>/partitions/
   process_data_YYYY_MM-<stamp>.dump.partial`` (folder 0700, file 0600: it holds the plant's
   production data), read back with ``pg_restore --list`` (every table must be listed with its
   data), a ``.sha256`` written beside it, then renamed to ``.dump``. A ``.partial`` left by an
   interrupted run is deleted by the next.
4. **drop** the month's tables; the month's row says ``archived`` and names the dump.

Last, every archived month's idempotency keys received before the retry window are pruned, in
batches (:func:`mes_kernel.db.record_keys.prune_keys`): until then a retry of an archived record
finds its key and is answered as a duplicate.

Restore (:func:`restore_month`) is the reverse, in one transaction: the month's partitions are
created anew, the dump's rows loaded into them, its events added back to ``trace_totals``, its
records' idempotency keys claimed again (those not pruned are still there) and its
``archived_months`` row deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..private_files import private_dir, private_file, write_private
from .offline import AHEAD
from .partitions import (
    LOCK_ID,
    RECORDS,
    SCHEMA,
    TABLES,
    TRACE,
    Month,
    Partitioned,
    attached,
    create_month,
    detach,
    detached,
    month_of_partition,
    older_than,
    partitioned_tables,
    waiting_in_default,
)
from .record_keys import default_retry_window, prune_keys

ARCHIVE_LOCK_ID = 0x6D65_7361  # one archive or restore run at a time (a session lock, freed if the run dies)
# How runs before archived_months marked a detached table whose rows were already out of
# trace_totals and process_record_keys (COMMENT ON TABLE); read when adopting such a month.
UNCOUNTED = "mes:uncounted"
FOLDER = "partitions"
BATCH_ROWS = 200_000  # rows of a month's table per uncount transaction
DETACHED, UNCOUNTED_STATE, ARCHIVED = "detached", "uncounted", "archived"


class ArchiveError(RuntimeError):
    """An archive or restore step failed; what was done stays done, running again continues."""


class FarStationTimes(ArchiveError):
    """Months to archive hold records whose station time lies far after their month; nothing was
    archived. ``records``: up to :data:`SHOWN` of them as ``(id, item, process_id, event_at,
    created_at)``; ``count``: how many there are."""

    def __init__(self, records: list[tuple], count: int):
        self.records, self.count = records, count
        listed = "; ".join(
            f"#{rid} {item} at {step}: station time {at:%Y-%m-%d %H:%M} UTC, received {got:%Y-%m-%d %H:%M} UTC"
            for rid, item, step, at, got in records
        )
        more = f" and {count - len(records)} more" if count > len(records) else ""
        months = sorted({f"{got:%Y-%m}-01" for *_, got in records})
        super().__init__(
            f"nothing archived: {count} record{'s' if count != 1 else ''} in the months to archive "
            f"{'have' if count != 1 else 'has'} a station time more than {AHEAD.days} days after "
            f"{'their' if count != 1 else 'its'} month (a station clock far off): {listed}{more}. "
            "Archived, they would keep `mes kpi rebuild` from starting before that time. "
            "Set their station time to their receipt time (UPDATE process_records "
            "SET event_at = created_at WHERE id IN (…)), run `mes kpi rebuild --since "
            f"{months[0]}`, then archive again"
        )


SHOWN = 10
_FAR = text(
    "SELECT id, coalesce(serial_number, lot_number), process_id, event_at, created_at FROM process_records "
    "WHERE created_at < :before AND event_at > "
    "(date_trunc('month', created_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' + :ahead "
    "ORDER BY id"
)


def _far_station_times(conn: Connection, before: date) -> None:
    """Raise :class:`FarStationTimes` when a month wholly before ``before`` (attached, or rows of
    it waiting in a default partition) holds a record far ahead of it. One read of those months'
    records, before the run detaches anything (no lock held but the read's own)."""
    bound = datetime(before.year, before.month, 1, tzinfo=UTC)
    far = conn.execute(_FAR, {"before": bound, "ahead": AHEAD}).all()
    if far:
        raise FarStationTimes([tuple(row) for row in far[:SHOWN]], len(far))


def dump_name(month: Month) -> str:
    """The file name prefix of a month's archive."""
    return f"process_data_{month.label}"


# ---------------------------------------------------------------- steps (sync, inside a transaction)


def _detach_older(conn: Connection, before: date) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    tables = partitioned_tables(conn)
    months: set[Month] = set()
    for table in tables:
        present = attached(conn, table)
        for month in waiting_in_default(conn, table, before):
            if month.of_table(table) not in present:
                create_month(conn, month, table)
        months |= set(older_than(conn, before, table))
        # A month a run left half-detached (the earlier code detached records alone) goes whole.
        months |= {month_of_partition(name) for name in detached(conn, table)}
    for month in sorted(months, key=lambda m: (m.year, m.month)):
        going = [table for table in tables if month.of_table(table) in attached(conn, table)]
        if going:
            _mark_detached(conn, month)
        for table in going:
            detach(conn, month, table)


def _mark_detached(conn: Connection, month: Month) -> None:
    """The month's row, written in the detach's transaction: its records go offline now. A row
    left ``archived`` (the month was brought back by hand) starts over; a run's own row stays."""
    conn.execute(
        text(
            "INSERT INTO archived_months (month_start, state, trace_after, keys_after, updated_at) "
            "VALUES (:m, :state, 0, 0, now()) ON CONFLICT (month_start) DO UPDATE SET state = EXCLUDED.state, "
            "trace_after = 0, keys_after = 0, last_event_at = NULL, dump = NULL, updated_at = now() "
            "WHERE archived_months.state = :archived"
        ),
        {"m": month.start, "state": DETACHED, "archived": ARCHIVED},
    )


def _waiting(conn: Connection) -> dict[Month, list[tuple[Partitioned, str]]]:
    """Detached monthly tables by month: what this run or an interrupted one detached."""
    months: dict[Month, list[tuple[Partitioned, str]]] = defaultdict(list)
    for table in TABLES:
        for name in detached(conn, table):
            months[month_of_partition(name)].append((table, name))
    return dict(months)


def _is_counted(conn: Connection, name: str) -> bool:
    comment = conn.execute(
        text("SELECT obj_description(to_regclass(:name), 'pg_class')"), {"name": f"{SCHEMA}.{name}"}
    ).scalar()
    return comment != UNCOUNTED


def _exists(conn: Connection, name: str) -> bool:
    return conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"{SCHEMA}.{name}"}).scalar()


def _totals_delta(relation: str) -> str:
    """SQL: the events per LOT and per unit of ``relation``'s trace rows (``scope, subject_id, n``)."""
    return (
        f"SELECT 'lot' AS scope, lot_id AS subject_id, count(*) AS n FROM {relation} GROUP BY lot_id "
        f"UNION ALL SELECT 'unit', unit_id, count(*) FROM {relation} WHERE unit_id IS NOT NULL "
        "GROUP BY unit_id"
    )


def _adopt(conn: Connection, month: Month, tables: list[tuple[Partitioned, str]]) -> None:
    """Give a month left detached by a run before ``archived_months`` its row: ``uncounted`` when
    that run marked its tables so, else ``detached`` from the start."""
    counted = any(_is_counted(conn, name) for _, name in tables)
    conn.execute(
        text(
            "INSERT INTO archived_months (month_start, state, trace_after, keys_after, updated_at) "
            "VALUES (:m, :state, 0, 0, now()) ON CONFLICT (month_start) DO NOTHING"
        ),
        {"m": month.start, "state": DETACHED if counted else UNCOUNTED_STATE},
    )


TRACE_BATCH = "trace events taken out of the history totals"
RECORDS_BATCH = "records read for their latest station time"


def _uncount_batch(
    conn: Connection, month: Month, tables: list[tuple[Partitioned, str]], batch_rows: int
) -> tuple[int, str]:
    """One batch of a detached month's uncount, in the caller's transaction: up to ``batch_rows``
    trace events after the month's ``trace_after`` taken out of ``trace_totals``, or (the events
    done) up to ``batch_rows`` records after ``keys_after`` read for their latest station time
    (``last_event_at``; their keys stay); the cursor moves in the same transaction. Returns the
    rows done and what was done to them (:data:`TRACE_BATCH` or :data:`RECORDS_BATCH`); 0 rows when
    the month is uncounted (then marked so)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    state = conn.execute(
        text("SELECT state, trace_after, keys_after FROM archived_months WHERE month_start = :m FOR UPDATE"),
        {"m": month.start},
    ).one_or_none()
    if state is None or state.state != DETACHED:
        return 0, ""
    names = {table: name for table, name in tables if _exists(conn, name)}
    if TRACE in names:
        conn.execute(
            text(
                f"CREATE TEMP TABLE mes_batch ON COMMIT DROP AS SELECT id, lot_id, unit_id "
                f"FROM {SCHEMA}.{names[TRACE]} WHERE id > :after ORDER BY id LIMIT :n"
            ),
            {"after": state.trace_after, "n": batch_rows},
        )
        done, last = conn.execute(text("SELECT count(*), max(id) FROM mes_batch")).one()
        if done:
            conn.execute(text(f"CREATE TEMP TABLE mes_delta ON COMMIT DROP AS {_totals_delta('mes_batch')}"))
            # Lock the totals in the writers' order (scope, then id) before changing them, so a
            # recording transaction touching the same LOTs waits instead of deadlocking.
            conn.execute(
                text(
                    "SELECT 1 FROM trace_totals t JOIN mes_delta d USING (scope, subject_id) "
                    "ORDER BY t.scope, t.subject_id FOR UPDATE OF t"
                )
            )
            conn.execute(
                text(
                    "UPDATE trace_totals t SET events = t.events - d.n FROM mes_delta d "
                    "WHERE t.scope = d.scope AND t.subject_id = d.subject_id"
                )
            )
            conn.execute(
                text(
                    "DELETE FROM trace_totals t USING mes_delta d "
                    "WHERE t.scope = d.scope AND t.subject_id = d.subject_id AND t.events <= 0"
                )
            )
            conn.execute(
                text("UPDATE archived_months SET trace_after = :last, updated_at = now() WHERE month_start = :m"),
                {"last": last, "m": month.start},
            )
            conn.execute(text("DROP TABLE mes_delta"))
        conn.execute(text("DROP TABLE mes_batch"))
        if done:
            return done, TRACE_BATCH
    if RECORDS in names:
        conn.execute(
            text(
                f"CREATE TEMP TABLE mes_batch ON COMMIT DROP AS SELECT id, event_at "
                f"FROM {SCHEMA}.{names[RECORDS]} WHERE id > :after ORDER BY id LIMIT :n"
            ),
            {"after": state.keys_after, "n": batch_rows},
        )
        done, last, latest = conn.execute(text("SELECT count(*), max(id), max(event_at) FROM mes_batch")).one()
        if done:
            # The records' idempotency keys stay: a retry of one must still be answered as the
            # duplicate it is (see :func:`prune_keys` for when they go).
            conn.execute(
                text(
                    "UPDATE archived_months SET keys_after = :last, updated_at = now(), "
                    "last_event_at = greatest(last_event_at, :latest) WHERE month_start = :m"
                ),
                {"last": last, "latest": latest, "m": month.start},
            )
        conn.execute(text("DROP TABLE mes_batch"))
        if done:
            return done, RECORDS_BATCH
    conn.execute(
        text("UPDATE archived_months SET state = :s, updated_at = now() WHERE month_start = :m"),
        {"s": UNCOUNTED_STATE, "m": month.start},
    )
    return 0, ""


def _drop(conn: Connection, month: Month, tables: list[tuple[Partitioned, str]], dump: Path) -> dict[str, int]:
    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    state = conn.execute(
        text("SELECT state FROM archived_months WHERE month_start = :m FOR UPDATE"), {"m": month.start}
    ).scalar()
    if state != UNCOUNTED_STATE:
        raise ArchiveError(f"{month.label} is not uncounted ({state}): not dropping its tables")
    rows = {}
    for _, name in tables:
        if _exists(conn, name):
            rows[name] = conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{name}")).scalar()
            conn.execute(text(f"DROP TABLE {SCHEMA}.{name}"))
    conn.execute(
        text("UPDATE archived_months SET state = :s, dump = :dump, updated_at = now() WHERE month_start = :m"),
        {"s": ARCHIVED, "dump": str(dump), "m": month.start},
    )
    return rows


# ---------------------------------------------------------------- commands


async def _run(*command: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ArchiveError(f"{command[0]} failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def _listed_tables(listing: str) -> set[str]:
    """``schema.table`` of every table whose data a ``pg_restore --list`` shows."""
    return {f"{schema}.{name}" for schema, name in re.findall(r" TABLE DATA (\S+) (\S+) ", listing)}


def _plain_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def _one_run_at_a_time(engine):
    """Hold the archive lock on a connection of its own for the whole run (freed if the run dies)."""
    async with engine.connect() as conn:
        if not (await conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": ARCHIVE_LOCK_ID})).scalar():
            raise ArchiveError("another archive or restore of partitions is running")
        await conn.commit()  # the lock is the session's; no transaction stays open for the run
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ARCHIVE_LOCK_ID})
            await conn.commit()


async def archive_partitions(
    engine,
    *,
    database_url: str,
    before: date,
    backup_dir: Path,
    batch_rows: int = BATCH_ROWS,
    on_batch=None,
    keep_keys: timedelta | None = None,
    on_prune=None,
    now: datetime | None = None,
) -> list[dict]:
    """Archive every month wholly before ``before``: detach its ``process_records`` and
    ``trace_events`` partitions, take them out of the trace totals (in batches of ``batch_rows``
    rows, a transaction each; their idempotency keys stay), dump both into one file
    ``backup_dir/partitions/process_data_YYYY_MM-<stamp>.dump`` (``pg_dump -Fc``, a ``.sha256``
    beside it; both 0600, the folder 0700), check the dump reads back, drop them. Also finishes
    months a previous run left detached, from the batch it had reached. No-op on SQLite.
    ``on_batch(month_label, rows, what)`` is called after each committed batch (progress; ``what``
    the batch's rows and what was done to them, e.g. "trace events taken out of the history totals"). Then the
    idempotency keys of every archived month received more than ``keep_keys`` (the retry window,
    :func:`mes_kernel.db.record_keys.retry_window`; default: under the default settings) before
    ``now`` (default: the current time) are pruned, ``on_prune(month_label, keys)`` after each
    batch (:func:`mes_kernel.db.record_keys.prune_keys`).

    Returns one entry per month archived: ``month`` (``YYYY_MM``), ``rows`` (by table name),
    ``dump`` (path), ``sha256``. Raises :class:`ArchiveError` when a step fails (``pg_dump`` or
    ``pg_restore --list`` failing, a dump missing a table, another run holding the lock); what was
    done stays done and running again continues. Raises :class:`FarStationTimes` (nothing done)
    when a month to archive holds a record whose station time lies far after the month.
    """
    if engine.dialect.name != "postgresql":
        return []
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    folder = private_dir(backup_dir / FOLDER)
    done = []
    async with _one_run_at_a_time(engine):
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: _far_station_times(sync, before))
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: _detach_older(sync, before))
        async with engine.begin() as conn:
            waiting = await conn.run_sync(_waiting)
            for month, tables in waiting.items():  # months a run before archived_months left detached
                await conn.run_sync(lambda sync, m=month, t=tables: _adopt(sync, m, t))
        for month in sorted(waiting, key=lambda m: (m.year, m.month)):
            tables = waiting[month]
            while True:
                async with engine.begin() as conn:
                    rows, what = await conn.run_sync(
                        lambda sync, m=month, t=tables: _uncount_batch(sync, m, t, batch_rows)
                    )
                if not rows:
                    break
                if on_batch is not None:
                    on_batch(month.label, rows, what)
            target, digest = await _dump(database_url, folder, month, [name for _, name in tables])
            async with engine.begin() as conn:
                rows = await conn.run_sync(lambda sync, m=month, t=tables, d=target: _drop(sync, m, t, d))
            done.append({"month": month.label, "rows": rows, "dump": str(target), "sha256": digest})
        await prune_keys(
            engine, keep=keep_keys or default_retry_window(), now=now, batch_rows=batch_rows, on_batch=on_prune
        )
    return done


async def _dump(database_url: str, folder: Path, month: Month, names: list[str]) -> tuple[Path, str]:
    for stale in folder.glob(f"{dump_name(month)}-*.dump.partial"):
        stale.unlink()
    for checksum in folder.glob(f"{dump_name(month)}-*.dump.sha256"):
        if not checksum.with_suffix("").exists():  # written just before a rename that never happened
            checksum.unlink()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{dump_name(month)}-{stamp}.dump"
    partial = target.with_name(target.name + ".partial")
    tables = [arg for name in names for arg in ("-t", f"{SCHEMA}.{name}")]
    private_file(partial)  # pg_dump writes into it and keeps its mode: 0600 from the start
    await _run("pg_dump", "-Fc", *tables, "-f", str(partial), _plain_url(database_url))
    listed = _listed_tables(await _run("pg_restore", "--list", str(partial)))
    missing = {f"{SCHEMA}.{name}" for name in names} - listed
    if missing:
        raise ArchiveError(f"the dump of {month.label} lacks {', '.join(sorted(missing))}")
    digest = _sha256(partial)
    write_private(target.with_name(target.name + ".sha256"), f"{digest}  {target.name}\n")
    partial.rename(target)
    return target, digest


def _sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (a month's dump is gigabytes)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _restore_sql(month: Month, names: list[str]) -> tuple[str, str]:
    """What runs before and after the dump's data, in the same transaction: create the month's
    partitions (fresh, so they carry the parents' own constraints), then count them again."""
    before = [f"SELECT pg_advisory_xact_lock({LOCK_ID});"]
    # pg_restore's script empties the search path; the month is online again once this commits
    after = ["RESET search_path;", f"DELETE FROM archived_months WHERE month_start = '{month.start.isoformat()}';"]
    bounds = f"FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.next().start.isoformat()}')"
    for table in TABLES:
        name = month.of_table(table)
        if name not in names:
            continue
        before.append(f"CREATE TABLE {SCHEMA}.{name} PARTITION OF {table.parent} {bounds};")
        if table is TRACE:
            after.append(
                f"INSERT INTO trace_totals (scope, subject_id, events) SELECT scope, subject_id, n "
                f"FROM ({_totals_delta(SCHEMA + '.' + name)}) d ORDER BY scope, subject_id "
                "ON CONFLICT (scope, subject_id) DO UPDATE SET events = trace_totals.events + EXCLUDED.events;"
            )
        else:
            # A key reused after the archive (a new record under it) keeps that record.
            after.append(
                f"INSERT INTO process_record_keys (idempotency_key, created_at) "
                f"SELECT idempotency_key, created_at FROM {SCHEMA}.{name} ON CONFLICT DO NOTHING;"
            )
    return "\n".join(before) + "\n", "\n".join(after) + "\n"


async def _pipe_restore(database_url: str, dump: Path, before: str, after: str) -> None:
    """``before``, the dump's data (``pg_restore --data-only``) and ``after`` through one ``psql
    --single-transaction``: all of it or, on any error, nothing. Streamed: a month is gigabytes."""
    psql = await asyncio.create_subprocess_exec(
        "psql",
        "--single-transaction",
        "--no-psqlrc",
        "--quiet",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        _plain_url(database_url),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    data = await asyncio.create_subprocess_exec(
        "pg_restore",
        "--data-only",
        "-f",
        "-",
        str(dump),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def feed() -> None:
        try:
            psql.stdin.write(before.encode())
            while chunk := await data.stdout.read(1 << 20):
                psql.stdin.write(chunk)
                await psql.stdin.drain()
            psql.stdin.write(after.encode())
            await psql.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            # psql stopped at an error (its own message says which): let pg_restore finish writing
            while await data.stdout.read(1 << 20):
                pass
        finally:
            psql.stdin.close()

    async def errors(proc) -> bytes:
        return await proc.stderr.read()

    _, restore_err, psql_err = await asyncio.gather(feed(), errors(data), errors(psql))
    await data.wait()
    await psql.wait()
    if data.returncode != 0:
        raise ArchiveError(f"pg_restore failed: {restore_err.decode(errors='replace').strip()}")
    if psql.returncode != 0:
        raise ArchiveError(
            f"restoring {dump.name} failed, nothing restored: {psql_err.decode(errors='replace').strip()}"
        )


async def restore_month(engine, *, database_url: str, dump: Path) -> dict:
    """Bring an archived month back from its dump: check its ``.sha256`` (when beside it), then in
    one transaction create the month's partitions of ``process_records`` / ``trace_events`` anew,
    load the dump's rows into them, add its events back to ``trace_totals`` and claim its records'
    idempotency keys again. All or nothing: after an interruption or an error nothing was
    restored; run it again.

    The dumped tables themselves are not restored and attached: a ``CHECK`` constraint read back
    from a dump can differ in its parsed form from the parent's (``result IN (...)`` on a
    ``varchar``), and PostgreSQL then refuses the attach.

    Returns ``{"month": "YYYY_MM", "rows": {table: rows restored}}``. Raises :class:`ArchiveError`
    for a file that is not such an archive, a checksum mismatch, a month already online (or
    detached and not yet archived), or a failed restore (with PostgreSQL's message).
    """
    if engine.dialect.name != "postgresql":
        raise ArchiveError("partitions exist on PostgreSQL only")
    if not dump.is_file():
        raise ArchiveError(f"{dump}: no such file")
    checksum = dump.with_name(dump.name + ".sha256")
    if checksum.is_file():
        expected = checksum.read_text().split()[0]
        if _sha256(dump) != expected:
            raise ArchiveError(f"{dump.name} does not match its .sha256: not restoring a damaged archive")
    listed = _listed_tables(await _run("pg_restore", "--list", str(dump)))
    names = sorted(name.split(".", 1)[1] for name in listed if name.startswith(SCHEMA + "."))
    months = {month_of_partition(name) for name in names}
    valid = {m.of_table(t) for m in months if m is not None for t in TABLES}
    if len(months) != 1 or None in months or set(names) - valid or len(listed) != len(names):
        raise ArchiveError(f"{dump.name} is not the archive of one month of process data")
    [month] = months
    async with _one_run_at_a_time(engine):
        async with engine.connect() as conn:
            present = await conn.run_sync(lambda sync: [n for n in names if _exists(sync, n)])
        if present:
            raise ArchiveError(
                f"month {month.label} is online already or not archived yet ({', '.join(present)} exist): "
                "nothing restored"
            )
        await _pipe_restore(database_url, dump, *_restore_sql(month, names))
        async with engine.connect() as conn:
            rows = {n: (await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{n}"))).scalar() for n in names}
    return {"month": month.label, "rows": rows}


__all__ = ["ArchiveError", "archive_partitions", "dump_name", "restore_month", "RECORDS", "TRACE"]
