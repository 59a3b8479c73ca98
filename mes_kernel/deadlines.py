"""Waiting at most so long for work that may not give up when told to.

``asyncio.wait_for`` and ``asyncio.timeout`` cancel late work and then wait for it to unwind. Work
stuck behind a busy thread (a SQLite connection handed back through aiosqlite's thread), or a protocol
library that catches the cancellation (a client closing its session with a dead peer), unwinds late or
never: the caller waits past its deadline, or for ever. These helpers cancel late work and go on;
the work unwinds on its own, its outcome retrieved and dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any


async def wait_at_most(awaitable: Awaitable[Any], seconds: float) -> Any:
    """The awaitable's result, or ``TimeoutError`` after ``seconds``, never later.

    Raises what the awaitable raised; a late one is cancelled and left to unwind on its own. If the
    caller is cancelled, the work is cancelled too.
    """
    (task,), late = await _run_within([awaitable], seconds)
    if late:
        raise TimeoutError(f"not done within {seconds}s")
    return task.result()


async def answers_within(seconds: float, jobs: Sequence[tuple[Awaitable[Any], Any]]) -> list[Any]:
    """Every job's answer, in order, or its stand-in for a job that raised or was still running after
    ``seconds``. ``jobs`` are ``(awaitable, stand-in)`` pairs, run concurrently."""
    tasks, late = await _run_within([job for job, _ in jobs], seconds)
    return [
        stand_in if task in late or task.cancelled() or task.exception() is not None else task.result()
        for task, (_, stand_in) in zip(tasks, jobs, strict=True)
    ]


async def _run_within(
    awaitables: Sequence[Awaitable[Any]], seconds: float
) -> tuple[list[asyncio.Future], set[asyncio.Future]]:
    """The awaitables as tasks and the late ones among them, once all are done or ``seconds`` have
    passed; the late ones cancelled and left to unwind."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        _, pending = await asyncio.wait(tasks, timeout=seconds)
    except asyncio.CancelledError:
        for task in tasks:
            _abandon(task)
        raise
    for task in pending:
        _abandon(task)
    return tasks, pending


def _abandon(task: asyncio.Future) -> None:
    if task.done():
        return
    task.cancel()
    task.add_done_callback(_drop_outcome)


def _drop_outcome(task: asyncio.Future) -> None:
    """Retrieve an abandoned task's outcome once it unwinds, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
