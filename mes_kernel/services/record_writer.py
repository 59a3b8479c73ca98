"""Group commit for process records: concurrent requests of one worker share a transaction.

Under load a worker holds many record requests at once. Writing each in its own transaction costs
a round trip per statement and a commit each; here the requests that arrive while a transaction
is in flight wait in a queue and go into the next one together — one multi-row INSERT … ON
CONFLICT DO NOTHING, one audit insert, one commit. A request is answered only after its commit,
so nothing acknowledged is lost. If a shared transaction fails, its rows are retried one by one,
so one bad row fails alone.

On PostgreSQL a transaction waits at most ``RECORD_LOCK_TIMEOUT_SECONDS`` (1 s) for a row another
transaction holds. The case that matters: a node froze (SIGSTOP, a paused VM) in the middle of
inserting a record, nginx sent the same request to this node, and ``INSERT … ON CONFLICT`` would
wait on the frozen transaction's uncommitted key for as long as the freeze lasts. Instead the
record answers 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After`` and the station retries with the
same key: when the frozen node thaws, its insert either commits (the retry then finds it) or is
rolled back (the retry stores it) — never both, never neither once acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from ..cache import commit
from .records import _outcome, limit_lock_wait, write_rows

log = structlog.get_logger(__name__)


class RecordWriter:
    """A queue and ``flushers`` tasks that write what has queued up, up to ``max_batch`` rows each."""

    def __init__(self, kernel, *, max_batch: int = 500, flushers: int = 2) -> None:
        self.kernel = kernel
        self.max_batch = max_batch
        self.flushers = flushers
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self.stats = {"transactions": 0, "rows": 0, "largest": 0}

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"record-writer-{i}") for i in range(self.flushers)]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():  # nobody will write these: tell their callers to retry
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(_retry_later())

    async def submit(self, row: dict[str, Any]):
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((row, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._flush(batch)

    async def _flush(
        self, batch: list[tuple[dict[str, Any], asyncio.Future]], *, lock_wait: float | None = None
    ) -> None:
        unique: dict[str, dict[str, Any]] = {}
        for row, _ in batch:
            unique.setdefault(row["idempotency_key"], row)
        try:
            async with self.kernel.sessionmaker() as session:
                await limit_lock_wait(session, lock_wait or self.kernel.settings.record_lock_timeout_seconds)
                found = await write_rows(session, list(unique.values()))
                await commit(session, self.kernel.cache)
        except Exception as exc:
            if len(batch) > 1:
                log.warning("record_group_commit_split", rows=len(batch), error=str(exc))
                if lock_timed_out(exc):
                    await self._split_after_lock_timeout(batch)
                else:
                    for item in batch:
                        await self._flush([item])
                return
            log.warning("record_write_failed", error=str(exc))
            future = batch[0][1]
            if not future.done():
                if _is_client_error(exc):
                    future.set_exception(exc)
                elif lock_timed_out(exc):
                    future.set_exception(_held_elsewhere(self.kernel.settings.record_lock_timeout_seconds))
                else:
                    future.set_exception(_retry_later())
            return
        self.stats["transactions"] += 1
        self.stats["rows"] += len(unique)
        self.stats["largest"] = max(self.stats["largest"], len(unique))
        first_of_key: set[str] = set()
        for row, future in batch:
            key = row["idempotency_key"]
            outcome = found[key]
            if (key in first_of_key or unique[key] is not row) and isinstance(outcome, tuple):
                outcome = (outcome[0], False)  # a second request with the same key in the same transaction
            first_of_key.add(key)
            if future.done():
                continue
            try:
                future.set_result(_outcome(row, outcome))
            except Exception as exc:
                future.set_exception(exc)

    async def _split_after_lock_timeout(self, batch: list[tuple[dict[str, Any], asyncio.Future]]) -> None:
        """Find the rows a stalled transaction blocks, without making every row wait behind them.

        The group transaction already waited the full lock timeout, so what blocked it is held by a
        transaction that is not moving (a frozen node's). Each row is written alone with a quarter of
        that wait, a few side by side: a held key costs its own request one short wait more (then
        503 + Retry-After), and the other rows go through — all within nginx's 5 s for records."""
        settings = self.kernel.settings
        lock_wait = max(0.1, settings.record_lock_timeout_seconds / 4)
        side_by_side = asyncio.Semaphore(max(1, settings.pool_size // 2))

        async def alone(item: tuple[dict[str, Any], asyncio.Future]) -> None:
            async with side_by_side:
                await self._flush([item], lock_wait=lock_wait)

        await asyncio.gather(*(alone(item) for item in batch))


def _is_client_error(exc: Exception) -> bool:
    from ..errors import MesError

    return isinstance(exc, MesError)


def lock_timed_out(exc: BaseException) -> bool:
    """PostgreSQL gave up waiting for a lock (SQLSTATE 55P03, ``lock_timeout``)."""
    orig = getattr(exc, "orig", None)
    return any(getattr(orig, name, None) == "55P03" for name in ("sqlstate", "pgcode"))


def _held_elsewhere(waited: float):
    from ..errors import ServiceUnavailable

    return ServiceUnavailable(
        f"another transaction has held this record's key or counters for more than {waited:g}s (a node that "
        "stopped answering?); retry with the same key",
        retry_after=max(1, round(waited)),
    )


def _retry_later():
    from ..errors import ServiceUnavailable

    return ServiceUnavailable("the record could not be stored right now; retry with the same key", retry_after=1)
