"""Where the KPIs read: partial indexes serve the plans PostgreSQL caches, not only the first ones.

asyncpg prepares each statement and PostgreSQL may plan it generically from its sixth run, for any
value of its parameters: a bound ``shard <> $1`` or ``status = $1`` cannot prove a partial index's
``shard <> 0`` or ``status = 'in_progress'``, so the cached plan scanned every hourly row (the
30-day OEE's query: 4.2 ms for five requests, 14.5 ms from the sixth) or sorted every LOT of a line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mes_dashboard_kpi import sources
from mes_dashboard_kpi.reports import current_lots
from sqlalchemy import select


async def _generic_plan(kernel, query) -> str:
    """``EXPLAIN`` of the plan PostgreSQL caches for ``query`` whatever its parameters' values."""
    compiled = query.compile(dialect=kernel.engine.dialect, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup]
    arguments = ", ".join(f"'{p.isoformat()}'" if isinstance(p, datetime) else repr(p) for p in params)
    async with kernel.sessionmaker() as session:
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        await driver.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        try:
            await driver.execute(f"PREPARE kpi_read AS {compiled}")
            rows = await driver.fetch(
                f"EXPLAIN EXECUTE kpi_read({arguments})" if params else "EXPLAIN EXECUTE kpi_read"
            )
        finally:
            await driver.execute("DEALLOCATE ALL; RESET plan_cache_mode; RESET enable_seqscan")
    return "\n".join(row[0] for row in rows)


@pytest.fixture
def postgresql_only(kernel):
    if kernel.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no cached generic plans (and reads the hourly rollups alone)")


@pytest.mark.parametrize(
    ("source", "index"),
    [
        (sources.line_hours, "ix_kpi_hourly_unfolded"),
        (sources.item_counts, "ix_kpi_hourly_unfolded"),
        (sources.line_defect_counts, "ix_kpi_hourly_defects_unfolded"),
    ],
)
async def test_unfolded_rows_are_found_by_their_partial_index_in_a_generic_plan(kernel, postgresql_only, source, index):
    until = datetime.now(UTC).replace(minute=30)  # not midnight: partial days read hourly rows too
    async with kernel.sessionmaker() as session:
        query = select(source(session, until - timedelta(days=30), until))
    plan = await _generic_plan(kernel, query)
    assert index in plan, plan


async def test_each_line_s_lot_in_progress_is_probed_by_its_partial_index_in_a_generic_plan(kernel, postgresql_only):
    plan = await _generic_plan(kernel, current_lots([1, 2, 3]))
    assert "ix_lots_in_progress_by_line" in plan, plan
