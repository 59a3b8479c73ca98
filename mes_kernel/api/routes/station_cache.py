"""``GET /stations/me/cache``: what a station keeps to work while the server is unreachable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from ...db.base import utcnow
from ...db.models import Lot, Process, ProcessDefectCode, ProcessRecord, Station, Unit
from ...errors import Forbidden
from ..deps import Principal, SessionDep, require_permission

router = APIRouter(prefix="/stations", tags=["stations"])

#: LOT statuses a station may still work on (and so keeps in its cache)
OPEN_STATUSES = ("created", "in_progress", "on_hold")


@router.get("/me/cache", summary="The station's offline cache: open LOTs of its line, units, routing, defect lists")
async def my_cache(
    session: SessionDep,
    principal: Principal = require_permission("stations:heartbeat"),
    max_units: Annotated[int, Query(ge=1, le=200_000, description="at most this many units")] = 50_000,
) -> dict[str, Any]:
    """A snapshot, taken in one read, of what the station's agent answers scans from while offline.

    ``lots``: the LOTs open on the station's line (and those on no line), ``units`` of those LOTs
    with ``completed_processes`` (the process ids a pass was recorded for, for the unit itself or
    the whole LOT), ``processes`` in routing order with each process's ``defect_codes``. ``synced_at``
    is the server's time of the snapshot; ``truncated`` says the unit list stopped at ``max_units``.
    """
    if principal.station_id is None:
        raise Forbidden("only stations have an offline cache", code="NOT_A_STATION")
    synced_at = utcnow()
    station = await session.get(Station, principal.station_id)
    line_id = station.line_id if station else None
    lot_filter = Lot.status.in_(OPEN_STATUSES)
    lot_filter &= or_(Lot.line_id.is_(None), Lot.line_id == line_id) if line_id else Lot.line_id.is_(None)
    lots = (await session.execute(select(Lot).where(lot_filter).order_by(Lot.id))).scalars().all()
    lot_ids = {lot.id: lot.lot_number for lot in lots}

    units: list[dict[str, Any]] = []
    passed_by_unit: dict[int, set[str]] = {}
    passed_by_lot: dict[int, set[str]] = {}
    truncated = False
    if lot_ids:
        rows = (
            await session.execute(
                select(Unit.id, Unit.serial_number, Unit.status, Unit.lot_id)
                .where(Unit.lot_id.in_(lot_ids))
                .order_by(Unit.id)
                .limit(max_units + 1)
            )
        ).all()
        truncated = len(rows) > max_units
        rows = rows[:max_units]
        passes = (
            await session.execute(
                select(ProcessRecord.lot_id, ProcessRecord.unit_id, ProcessRecord.process_id)
                .where(ProcessRecord.lot_id.in_(lot_ids), ProcessRecord.result == "pass")
                .distinct()
            )
        ).all()
        for lot_id, unit_id, process_id in passes:
            target = (
                passed_by_lot.setdefault(lot_id, set())
                if unit_id is None
                else passed_by_unit.setdefault(unit_id, set())
            )
            target.add(process_id)
        units = [
            {
                "serial_number": row.serial_number,
                "status": row.status,
                "lot_number": lot_ids[row.lot_id],
                "completed_processes": sorted(passed_by_unit.get(row.id, set()) | passed_by_lot.get(row.lot_id, set())),
            }
            for row in rows
        ]

    processes = (await session.execute(select(Process).order_by(Process.sequence, Process.id))).scalars().all()
    defects: dict[str, list[dict[str, str]]] = {}
    for code in (
        await session.execute(select(ProcessDefectCode).order_by(ProcessDefectCode.position, ProcessDefectCode.code))
    ).scalars():
        defects.setdefault(code.process_id, []).append({"code": code.code, "name": code.name})
    return {
        "synced_at": synced_at.isoformat(),
        "station": principal.station_code,
        "lots": [
            {
                "lot_number": lot.lot_number,
                "product": lot.product,
                "status": lot.status,
                "quantity": lot.quantity,
                "completed_processes": sorted(passed_by_lot.get(lot.id, set())),
            }
            for lot in lots
        ],
        "units": units,
        "truncated": truncated,
        "processes": [
            {"id": p.id, "name": p.name, "sequence": p.sequence, "defect_codes": defects.get(p.id, [])}
            for p in processes
        ],
    }
