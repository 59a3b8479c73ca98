"""PostgreSQL, real concurrent transactions: a record whose transaction took its id first but
committed after another record of the same item still is the item's first attempt — in
``process_items``, in first-pass yield and in a rebuild (F13: "first" was first to commit)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from test_kpi_rollups import _rollups, plant  # noqa: F401  (plant: a fixture)

from mes_kernel.db.models import Lot, ProcessItem
from mes_kernel.services import records, rollups
from mes_kernel.services.rollups import rebuild

SERIAL = "LOT-A1-SN-0"


def _row(lot, *, result: str, n: int) -> dict:
    now = datetime.now(UTC)
    return {
        "idempotency_key": uuid.uuid4().hex, "request_hash": f"{n:064x}", "lot_id": lot.id,
        "lot_number": "LOT-A1", "process_id": "TEST-20", "worker_id": "W-1", "station_id": None,
        "line_id": lot.line_id, "unit_id": None, "serial_number": SERIAL,
        "result": result, "defect_code": "SOLDER" if result == "fail" else None,
        "data": {}, "recorded_at": None, "event_at": now, "created_by": "test",
        "created_at": now, "_station_seq": n, "_lot_status": "in_progress", "_product": "P-A",
        "_request_id": None, "_client_ip": None,
    }  # fmt: skip


@pytest.mark.parametrize("first", ["fail", "pass"])
async def test_a_lower_id_committed_late_becomes_the_items_first_attempt(kernel, plant, monkeypatch, first):  # noqa: F811
    """Transaction A inserts its record (the lower id) and stops before counting it; B inserts a
    record of the same unit and step (a higher id), counts it and commits; then A counts and
    commits. The item's first attempt is A's record, its first-pass result A's."""
    if kernel.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids are taken in commit order")
    async with kernel.sessionmaker() as session:
        lot = (await session.execute(select(Lot.id, Lot.line_id).where(Lot.lot_number == "LOT-A1"))).one()
    a_inserted, b_committed = asyncio.Event(), asyncio.Event()
    real = rollups.add_to_rollups
    a_sessions = set()

    async def counting(session, rows, **kw):
        if id(session) in a_sessions:  # A: its record is inserted (its id taken); B goes first
            a_inserted.set()
            await b_committed.wait()
        return await real(session, rows, **kw)

    monkeypatch.setattr(records, "add_to_rollups", counting)
    later = "pass" if first == "fail" else "fail"

    async def a() -> int:
        async with kernel.sessionmaker() as session:
            a_sessions.add(id(session))
            found = await records.write_rows(session, [_row(lot, result=first, n=1)])
            await session.commit()
        return next(iter(found.values()))[0].id

    async def b() -> int:
        await a_inserted.wait()
        async with kernel.sessionmaker() as session:
            found = await records.write_rows(session, [_row(lot, result=later, n=2)])
            await session.commit()
        b_committed.set()
        return next(iter(found.values()))[0].id

    a_id, b_id = await asyncio.wait_for(asyncio.gather(a(), b()), timeout=60)
    assert a_id < b_id
    async with kernel.sessionmaker() as session:
        item = (
            await session.execute(
                select(ProcessItem).where(ProcessItem.item == SERIAL, ProcessItem.process_id == "TEST-20")
            )
        ).scalar_one()
        counts = (
            await session.execute(
                text(
                    "SELECT sum(first_total), sum(first_passed), sum(final_passed) FROM kpi_hourly "
                    "WHERE process_id = 'TEST-20'"
                )
            )
        ).one()
    assert (item.first_record_id, item.first_passed) == (a_id, first == "pass")
    assert (item.last_record_id, item.last_passed) == (b_id, later == "pass")
    assert tuple(counts) == (1, int(first == "pass"), int(later == "pass"))
    live = await _rollups(kernel)
    async with kernel.sessionmaker() as session, session.begin():
        await rebuild(session)
    assert await _rollups(kernel) == live
