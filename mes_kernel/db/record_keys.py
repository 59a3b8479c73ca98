"""How long a process record's idempotency key is kept, and the answer for a record archived since.

``process_record_keys`` holds one row per idempotency key (the partitioned records table cannot
keep a key unique across months, see :class:`mes_kernel.db.models.ProcessRecordKey`). Archiving a
month (:mod:`mes_kernel.db.archive`) takes its records offline but keeps their keys: a station that
never got the answer to a record resends it with the same key, and that retry must be answered as
the duplicate it is, not refused for its archived month, nor stored a second time (a retry whose
station time lies in the next month, or one restamped at the station, would otherwise be).

A retry can arrive only while its station time is accepted (:mod:`mes_kernel.station_times`): a
record received at *r* carries a station time at most ``max_lead`` after *r*, and a retry of it is
accepted only up to ``max_age`` after that time. So a key received before

    now − (STATION_TIME_MAX_AGE_DAYS + STATION_TIME_MAX_LEAD_SECONDS)

can no longer be retried with its time, and once its record is archived it is pruned
(:func:`prune_keys`, run by ``mes db partitions archive``). Keys of online records are never pruned:
the record answers its retries whatever their time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from .partitions import Month

PRUNE_ROWS = 200_000  # keys per prune transaction


def retry_window(settings: Any) -> timedelta:
    """How long after its receipt a record can still be retried with its own station time:
    ``station_time_max_age_days`` plus ``station_time_max_lead_seconds`` (of ``settings``)."""
    return timedelta(days=settings.station_time_max_age_days, seconds=settings.station_time_max_lead_seconds)


def default_retry_window() -> timedelta:
    """:func:`retry_window` under the settings' defaults (30 days and 300 s)."""
    from ..settings import Settings

    fields = Settings.model_fields
    return timedelta(
        days=fields["station_time_max_age_days"].default, seconds=fields["station_time_max_lead_seconds"].default
    )


class ArchivedRecord(dict):
    """A record whose month is archived, known only by its key: ``idempotency_key``,
    ``created_at`` (its receipt, aware UTC) and ``archived_month`` (``YYYY-MM``). Its body is in the
    month's dump, so a retry is answered without it and its body cannot be compared."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def archived_answer(record: ArchivedRecord) -> dict[str, Any]:
    """The answer to a retry of an archived record (``record`` of a batch item, or the body of 200):
    ``{"idempotency_key", "created_at" (ISO 8601), "duplicate": true, "archived": true,
    "archived_month": "YYYY-MM"}``."""
    return {
        "idempotency_key": record["idempotency_key"],
        "created_at": record["created_at"].isoformat(),
        "duplicate": True,
        "archived": True,
        "archived_month": record["archived_month"],
    }


async def archived_records(session: AsyncSession, keys: Iterable[str]) -> dict[str, ArchivedRecord]:
    """Of ``keys`` (keys no online record holds), those claimed by a record of a month taken
    offline (any row of ``archived_months``), by key. Two reads, only for keys no record answered."""
    from .models import ArchivedMonth, ProcessRecordKey

    wanted = sorted(set(keys))
    if not wanted:
        return {}
    claimed = (
        await session.execute(
            select(ProcessRecordKey.idempotency_key, ProcessRecordKey.created_at).where(
                ProcessRecordKey.idempotency_key.in_(wanted)
            )
        )
    ).all()
    if not claimed:
        return {}
    months = {key: Month.of(created_at.astimezone(UTC)) for key, created_at in claimed}
    starts = {month.start for month in months.values()}
    offline = {
        value.astimezone(UTC)
        for value in (
            await session.execute(select(ArchivedMonth.month_start).where(ArchivedMonth.month_start.in_(starts)))
        ).scalars()
    }
    return {
        key: ArchivedRecord(
            idempotency_key=key,
            created_at=created_at.astimezone(UTC),
            archived_month=f"{months[key].year:04d}-{months[key].month:02d}",
        )
        for key, created_at in claimed
        if months[key].start in offline
    }


_PRUNE = text(
    "DELETE FROM process_record_keys WHERE idempotency_key IN (SELECT idempotency_key FROM process_record_keys "
    "WHERE created_at >= :start AND created_at < :end ORDER BY created_at LIMIT :n)"
)


async def prune_keys(
    engine,
    *,
    keep: timedelta,
    now: datetime | None = None,
    batch_rows: int = PRUNE_ROWS,
    on_batch: Callable[[str, int], None] | None = None,
) -> int:
    """Delete the idempotency keys of archived months (rows of ``archived_months``, whatever their
    state: their records are offline) received more than ``keep`` (:func:`retry_window`) before
    ``now`` (default: the current time, UTC), ``batch_rows`` keys
    per transaction. ``on_batch(month "YYYY_MM", keys)`` after each. Returns the keys deleted.
    No-op on SQLite (nothing is archived there)."""
    if engine.dialect.name != "postgresql":
        return 0
    cutoff = (now or datetime.now(UTC)) - keep
    async with engine.connect() as conn:
        starts = (
            (
                await conn.execute(
                    text("SELECT month_start FROM archived_months WHERE month_start < :cutoff ORDER BY month_start"),
                    {"cutoff": cutoff},
                )
            )
            .scalars()
            .all()
        )
    pruned = 0
    for start in starts:
        month = Month.of(start.astimezone(UTC))
        end = min(month.next().start, cutoff)
        while True:
            async with engine.begin() as conn:
                done = (await conn.execute(_PRUNE, {"start": month.start, "end": end, "n": batch_rows})).rowcount
            if not done:
                break
            pruned += done
            if on_batch is not None:
                on_batch(month.label, done)
    return pruned


__all__ = [
    "ArchivedRecord",
    "archived_answer",
    "archived_records",
    "default_retry_window",
    "prune_keys",
    "retry_window",
]
