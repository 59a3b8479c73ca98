"""Starting before the database: serve liveness at once, wait for the database with growing pauses.

A host that boots, or compose starting its services in parallel, can run the kernel before
PostgreSQL accepts connections. The kernel then stays up: liveness answers 200, readiness 503 with
the reason, and one log line per attempt (``database_unreachable``) says which attempt failed, why,
and when the next one comes; pauses double from ``first_delay`` up to ``max_delay`` seconds. When the
database answers, the steps that need it (line overrides, and for ``mes serve`` the schema upgrade and
the first admin) run once, and the kernel is in full service.

The pauses grow so that a long outage does not flood the log, but readiness must not lag behind the
database by a whole pause: a readiness probe (a load balancer's, every few seconds) that finds the
database answering wakes the waiter at once (``nudge``) and answers 200 as soon as the steps ran.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable

import structlog
from sqlalchemy import text

log = structlog.get_logger(__name__)

Step = Callable[[], Awaitable[object]]


async def database_answers(kernel, timeout: float = 5.0) -> str | None:
    """``None`` when ``SELECT 1`` succeeds within ``timeout`` seconds, else why it did not."""
    try:
        async with asyncio.timeout(timeout):
            async with kernel.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except Exception as exc:
        detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return f"{type(exc).__name__}: {detail}"
    return None


class DatabaseWait:
    """Lets a readiness probe cut the waiter's pause short once the database answers again."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.done = asyncio.Event()

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until nudged; True when nudged."""
        try:
            async with asyncio.timeout(seconds):
                await self.wake.wait()
        except TimeoutError:
            return False
        finally:
            nudged = self.wake.is_set()
            self.wake.clear()
        return nudged

    async def nudge(self, *, timeout: float) -> bool:
        """Wake the waiter and wait up to ``timeout`` seconds for the start-up steps; True when done."""
        self.wake.set()
        try:
            async with asyncio.timeout(timeout):
                await self.done.wait()
        except TimeoutError:
            return False
        return True


def database_wait(kernel) -> DatabaseWait:
    """The kernel's one ``DatabaseWait`` (made on first use)."""
    return kernel.state.setdefault("database_wait", DatabaseWait())


async def run_steps(steps: Iterable[Step]) -> None:
    for step in steps:
        await step()


async def wait_for_database(
    kernel,
    steps: Iterable[Step],
    *,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
    first_reason: str | None = None,
) -> None:
    """Retry until the database answers, then run ``steps``; records progress in ``kernel.state``.

    ``kernel.state["database_waiting"]`` holds the latest reason while waiting (readiness shows
    it) and is removed once the database answered and the steps ran.
    """
    wait = database_wait(kernel)
    delay, attempt, nudged = first_delay, 1, False
    reason = first_reason or await database_answers(kernel)
    while reason is not None:
        kernel.state["database_waiting"] = f"attempt {attempt} failed ({reason}); next in {delay:g}s"
        log.warning("database_unreachable", attempt=attempt, retry_in_seconds=delay, error=reason, pid=os.getpid())
        nudged = await wait.pause(delay)
        delay = min(delay * 2, max_delay)
        attempt += 1
        reason = await database_answers(kernel)
    log.info("database_ready", attempts=attempt, woken_by_readiness=nudged, pid=os.getpid())
    while True:
        try:
            await run_steps(steps)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away again mid-way: the steps are idempotent
            kernel.state["database_waiting"] = (
                f"start-up steps failed ({type(exc).__name__}: {exc}); next in {delay:g}s"
            )
            log.warning("database_startup_steps_failed", retry_in_seconds=delay, error=str(exc))
            await wait.pause(delay)
            delay = min(delay * 2, max_delay)
    kernel.state.pop("database_waiting", None)
    wait.done.set()
