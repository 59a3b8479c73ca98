"""Where the KPIs read their counts: the rows recording transactions wrote and the fold has not
summed yet are found through their partial index, in every plan PostgreSQL may cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mes_dashboard_kpi import sources
from sqlalchemy import select


@pytest.mark.parametrize(
    ("source", "index"),
    [
        (sources.line_hours, "ix_kpi_hourly_unfolded"),
        (sources.item_counts, "ix_kpi_hourly_unfolded"),
        (sources.line_defect_counts, "ix_kpi_hourly_defects_unfolded"),
    ],
)
async def test_unfolded_rows_are_found_by_their_partial_index_in_a_generic_plan(kernel, source, index):
    """asyncpg prepares each statement and PostgreSQL caches a generic plan from its sixth run: a
    bound ``shard <> $1`` cannot prove the index's ``shard <> 0``, and every hourly row was scanned."""
    if kernel.engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads the hourly rollups alone, and plans each statement afresh")
    until = datetime.now(UTC).replace(minute=30)  # not midnight: partial days read hourly rows too
    async with kernel.sessionmaker() as session:
        query = select(source(session, until - timedelta(days=30), until))
        compiled = query.compile(dialect=kernel.engine.dialect)
        params = [compiled.params[name] for name in compiled.positiontup]
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        await driver.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        try:
            await driver.execute(f"PREPARE kpi_source AS {compiled}")
            arguments = ", ".join(f"'{p.isoformat()}'" if isinstance(p, datetime) else str(int(p)) for p in params)
            plan = "\n".join(row[0] for row in await driver.fetch(f"EXPLAIN EXECUTE kpi_source({arguments})"))
        finally:
            await driver.execute("DEALLOCATE ALL; RESET plan_cache_mode; RESET enable_seqscan")
    assert index in plan, plan
