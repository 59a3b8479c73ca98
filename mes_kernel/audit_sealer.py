"""The background audit sealer, elected: exactly one runs across every worker of every node.

Sealing (``audit.seal_pending``) is safe if two processes race (the unique ``prev_hash`` keeps one
block), but several nodes x several workers all sealing means wasted work and constant conflicts.
On PostgreSQL the workers hold an election through a session-level advisory lock
(``pg_try_advisory_lock``, key ``SEALER_LOCK_KEY``):

* every ``audit_seal_interval_seconds`` a worker that is not the sealer tries the lock once, never
  waiting; the one that gets it keeps that connection, seals on it, and logs ``audit_sealer_elected``;
* the sealer seals *on the connection that holds the lock*, so a sealer that lost its session (and
  with it the lock) cannot seal any more: it fails, logs ``audit_sealer_stepped_down`` and campaigns
  again like everyone else;
* the lock's session ends when the sealer's process dies (PostgreSQL sees the socket close), and
  also when the process stops answering (a frozen node, a paused VM, a cut network): the session
  runs with ``idle_session_timeout`` / ``idle_in_transaction_session_timeout`` set to the lease
  (``audit_sealer_lease_seconds``, at least 3 x the interval), which the sealer renews by sealing
  every interval. Another worker is elected within one interval after that.

The sealer's session carries ``application_name = "mes-audit-sealer <host> pid <pid>"``, so
``SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'mes-audit-sealer%'``
names it. SQLite (one process, the embedded default) has no election: its one process seals.
The election needs session-level locks: behind pgbouncer, use session pooling for the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .audit import seal_pending

log = structlog.get_logger(__name__)

SEALER_LOCK_KEY = 0x6D6573_7365616C  # "mes" "seal"
APPLICATION_NAME_PREFIX = "mes-audit-sealer"


def lease_seconds(settings) -> float:
    """How long the sealer's session may stay silent before PostgreSQL ends it (seconds)."""
    return max(settings.audit_sealer_lease_seconds, 3 * settings.audit_seal_interval_seconds)


class AuditSealer:
    """Runs in every worker; seals only while elected (PostgreSQL) or always (SQLite).

    ``role`` is ``"sealer"``, ``"standby"`` (another process holds the lock) or ``"waiting"``
    (nothing tried yet, or the database did not answer).
    """

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.role = "waiting"
        self.name = f"{APPLICATION_NAME_PREFIX} {socket.gethostname()} pid {os.getpid()}"[:63]

    async def run(self) -> None:
        settings = self.kernel.settings
        while True:
            await asyncio.sleep(settings.audit_seal_interval_seconds)
            if "database_waiting" in self.kernel.state:
                continue
            try:
                if self.kernel.engine.dialect.name == "postgresql":
                    await self._campaign()
                else:
                    async with self.kernel.sessionmaker() as session:
                        await self._seal_all(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit_seal_failed", error=str(exc))

    async def _seal_all(self, session: AsyncSession) -> None:
        while await seal_pending(session, grace_seconds=self.kernel.settings.audit_seal_grace_seconds):
            await session.commit()
        await session.commit()

    async def _campaign(self) -> None:
        """Try the lock once; when won, seal every interval on the lock's connection until it is lost."""
        settings = self.kernel.settings
        conn: AsyncConnection = await self.kernel.engine.connect()
        won = False
        try:
            won = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SEALER_LOCK_KEY})).scalar())
            await conn.commit()
            if not won:
                self.role = "standby"
                return
            lease_ms = int(lease_seconds(settings) * 1000)
            for setting, value in (
                ("idle_session_timeout", str(lease_ms)),
                ("idle_in_transaction_session_timeout", str(lease_ms)),
                ("application_name", self.name),
            ):
                await conn.execute(text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": value})
            await conn.commit()
            self.role = "sealer"
            log.info("audit_sealer_elected", sealer=self.name, lease_seconds=lease_ms / 1000)
            while True:
                async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                    await self._seal_all(session)
                await asyncio.sleep(settings.audit_seal_interval_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if won:
                log.warning("audit_sealer_stepped_down", sealer=self.name, error=str(exc))
                self.role = "waiting"
            else:
                raise
        finally:
            if won:
                # Never hand a connection holding the lock (or carrying the lease settings) back to
                # the pool: closing it for good ends the session, which frees the lock at once.
                with contextlib.suppress(Exception):
                    await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
