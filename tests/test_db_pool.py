"""The kernel's connection pool: a pooled connection is pinged before use only after lying idle,
and read-only routes run without a transaction (no BEGIN / ROLLBACK round trips)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mes_kernel.api.deps import range_read_sessionmaker, read_sessionmaker
from mes_kernel.db import base
from mes_kernel.db.base import make_engine


async def _terminate(settings, pid: int) -> None:
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def _backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


@pytest.mark.postgres_only
async def test_a_connection_idle_past_the_window_is_pinged_and_replaced(settings, monkeypatch):
    monkeypatch.setattr(base, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout is "after idling"
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        dead = await _backend_pid(engine)
        await _terminate(settings, dead)  # the server ended it while it lay in the pool
        assert await _backend_pid(engine) != dead  # the ping found it dead: a new one answered
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_a_connection_used_within_the_window_is_not_pinged(settings, monkeypatch):
    monkeypatch.setattr(base, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        dead = await _backend_pid(engine)
        await _terminate(settings, dead)
        with pytest.raises(DBAPIError):  # no ping: the statement itself meets the closed connection
            await _backend_pid(engine)
        assert await _backend_pid(engine) != dead  # and the pool replaced it for the next request
    finally:
        await engine.dispose()


async def _in_transaction(session) -> bool:
    """Whether the driver's connection under the session is inside a transaction (a BEGIN went out)."""
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    return raw.is_in_transaction() if hasattr(raw, "is_in_transaction") else raw.in_transaction


async def test_read_sessions_send_no_begin_and_no_rollback(kernel):
    async with kernel.sessionmaker() as session:  # the ordinary session: a query opens a transaction
        assert (await session.execute(text("SELECT 41 + 1"))).scalar() == 42
        # (pysqlite opens its transaction at the first write, not at a read)
        assert await _in_transaction(session) == (kernel.engine.dialect.name == "postgresql")
    async with read_sessionmaker(kernel)() as session:  # a read session: each statement on its own
        assert (await session.execute(text("SELECT 41 + 1"))).scalar() == 42
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
        assert not await _in_transaction(session)
    assert read_sessionmaker(kernel) is read_sessionmaker(kernel)  # one maker per kernel


@pytest.mark.postgres_only
async def test_range_read_sessions_plan_each_statement_for_its_values(kernel):
    """PostgreSQL keeps one generic plan for a prepared statement from its sixth run on (asyncpg
    prepares them all) — a plan blind to the range it is given. A range read session's statements
    are planned for their values every time (``SET LOCAL plan_cache_mode``), and the setting ends
    with its transaction: the pooled connection is back to the default."""
    query = text("SELECT count(*) FROM process_records WHERE event_at >= :since AND event_at < :until /* %s */")
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)

    async def plans(session, tag: str) -> tuple[int, int]:
        marked = text(query.text % tag)
        for _ in range(8):
            assert (await session.execute(marked, {"since": since, "until": until})).scalar() == 0
        found = await session.execute(
            text("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE :tag"),
            {"tag": f"%/* {tag} */%"},
        )
        return found.one()

    async with read_sessionmaker(kernel)() as session:  # what we rely on upstream: a generic plan
        generic, custom = await plans(session, "read")
        assert generic > 0 and custom == 5, (generic, custom)
    async with range_read_sessionmaker(kernel)() as session:
        assert (await session.execute(text("SHOW plan_cache_mode"))).scalar() == "force_custom_plan"
        generic, custom = await plans(session, "range")
        assert (generic, custom) == (0, 8)
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
    assert await raw.fetchval("SHOW plan_cache_mode") == "auto"
    assert range_read_sessionmaker(kernel) is range_read_sessionmaker(kernel)
