"""Waiting at most so long, even for work that does not give up when cancelled (mes_kernel.deadlines)."""

from __future__ import annotations

import asyncio

import pytest

from mes_kernel.deadlines import answers_within, wait_at_most


class Deaf:
    """Work that, once cancelled, unwinds only when ``release`` is set: a call stuck in a busy thread,
    or a protocol client that catches the cancellation to close its session first."""

    def __init__(self):
        self.release = asyncio.Event()
        self.unwound = asyncio.Event()

    async def __call__(self):
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.release.wait())
            self.unwound.set()


async def quick(value):
    return value


async def raises():
    raise ConnectionResetError("peer reset")


async def test_a_late_job_gives_time_out_at_its_deadline_while_it_still_unwinds():
    deaf = Deaf()
    with pytest.raises(TimeoutError):
        await wait_at_most(deaf(), 0.05)
    assert not deaf.unwound.is_set()  # answered before the work gave up
    deaf.release.set()
    await asyncio.wait_for(deaf.unwound.wait(), timeout=30)


async def test_an_answer_in_time_and_an_error_are_passed_on():
    assert await wait_at_most(quick(7), 30) == 7
    with pytest.raises(ConnectionResetError, match="peer reset"):
        await wait_at_most(raises(), 30)


async def test_each_job_answers_or_gets_its_stand_in():
    deaf = Deaf()
    got = await answers_within(0.05, [(quick(1), "late"), (deaf(), "late"), (raises(), "failed")])
    assert got == [1, "late", "failed"]
    deaf.release.set()
    await asyncio.wait_for(deaf.unwound.wait(), timeout=30)


async def test_a_cancelled_caller_cancels_the_work():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work():
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.ensure_future(wait_at_most(work(), 3600))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), timeout=30)

