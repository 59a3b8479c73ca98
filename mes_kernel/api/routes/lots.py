"""LOTs, their units and history; units by serial number; routing steps (processes)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response, status
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ...audit import write_audit
from ...cache import CONFIGURATION, commit
from ...db.models import Lot, Process, ProcessDefectCode, Unit
from ...errors import Conflict, NotFound, Unprocessable
from ...schemas import (
    DefectCodesIn,
    DefectCodesOut,
    LotCreate,
    LotOut,
    LotStatus,
    LotUpdate,
    Page,
    ProcessIn,
    ProcessOut,
    ProcessUpdate,
    UnitOut,
    UnitsCreate,
    UtcMoment,
)
from ...services import lots as lot_service
from ...services import trace
from ..deps import KernelDep, Principal, ReadSessionDep, SessionDep, SettingsDep, require_permission

router = APIRouter(prefix="/lots", tags=["lots"])
units_router = APIRouter(prefix="/units", tags=["lots"])
processes_router = APIRouter(prefix="/processes", tags=["processes"])


async def _lots_out(session, lots: list[Lot]) -> list[LotOut]:
    """The LOTs as answered, each with its registered ``unit_count`` (one count query for all)."""
    counts = await lot_service.unit_counts(session, (lot.id for lot in lots))
    return [LotOut.model_validate({**_columns(lot), "unit_count": counts[lot.id]}) for lot in lots]


async def _lot_out(session, lot: Lot) -> LotOut:
    return (await _lots_out(session, [lot]))[0]


def _columns(lot: Lot) -> dict[str, Any]:
    return {name: getattr(lot, name) for name in LotOut.model_fields if name != "unit_count"}


@router.post("", response_model=LotOut, status_code=status.HTTP_201_CREATED, summary="Create a LOT")
async def create_lot(body: LotCreate, session: SessionDep, principal: Principal = require_permission("lots:write")):
    lot = await lot_service.create_lot(session=session, lot_in=body, actor=principal.actor)
    await session.commit()
    return await _lot_out(session, lot)


@router.get("", response_model=Page[LotOut], summary="List LOTs (filter, search, paginate)")
async def list_lots(
    session: SessionDep,
    _: Principal = require_permission("lots:read"),
    lot_status: Annotated[LotStatus | None, Query(alias="status")] = None,
    product: str | None = None,
    created_from: UtcMoment | None = None,
    created_to: UtcMoment | None = None,
    q: Annotated[str | None, Query(max_length=64, description="search in LOT number and product")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    lots, total = await lot_service.list_lots(session=session, status=lot_status, product=product,
                                              created_from=created_from, created_to=created_to, search=q,
                                              limit=limit, offset=offset)
    return Page[LotOut](items=await _lots_out(session, lots), total=total, limit=limit, offset=offset)


@router.get("/{lot_number}", response_model=LotOut, summary="Get a LOT")
async def get_lot(lot_number: str, session: SessionDep, _: Principal = require_permission("lots:read")):
    return await _lot_out(session, await lot_service.get_lot(session, lot_number))


@router.patch("/{lot_number}", response_model=LotOut, summary="Update a LOT (status transitions are validated)")
async def update_lot(lot_number: str, body: LotUpdate, session: SessionDep, kernel: KernelDep,
                     principal: Principal = require_permission("lots:write")):
    lot = await lot_service.update_lot(session=session, lot_number=lot_number, lot_in=body, actor=principal.actor)
    await commit(session, kernel.cache)
    return await _lot_out(session, lot)


@router.post("/{lot_number}/units", response_model=list[UnitOut], status_code=status.HTTP_201_CREATED,
             summary="Register serial numbers in a LOT")
async def add_units(lot_number: str, body: UnitsCreate, session: SessionDep,
                    principal: Principal = require_permission("lots:write")):
    units = await lot_service.add_units(session=session, lot_number=lot_number,
                                        serial_numbers=body.serial_numbers, actor=principal.actor)
    await session.commit()
    return units


@router.get("/{lot_number}/units", response_model=list[UnitOut], summary="Units of a LOT")
async def list_units(lot_number: str, session: SessionDep, _: Principal = require_permission("lots:read"),
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 1000):
    lot = await lot_service.get_lot(session, lot_number)
    return (await session.execute(select(Unit).where(Unit.lot_id == lot.id).order_by(Unit.id).limit(limit))).scalars()


HistoryLimit = Annotated[int, Query(ge=1, le=500, description="events per page")]
HistoryBefore = Annotated[
    str | None, Query(description="the `next_before` cursor of the previous page (older events)")
]


@router.get(
    "/{lot_number}/history",
    summary="History of a LOT (records, device actions, scans, status changes, registrations), newest first, paged",
)
async def lot_history(lot_number: str, session: ReadSessionDep, settings: SettingsDep,
                      _: Principal = require_permission("lots:read"), limit: HistoryLimit = 100,
                      before: HistoryBefore = None):
    """One page of the LOT's history (its units' events included), newest first by when it happened
    at the station, then the station's sequence number; `total` counts every event, `next_before` is
    the cursor of the next (older) page or null (see `mes_kernel.services.trace.history`)."""
    lot = await lot_service.get_lot(session, lot_number)
    secret = settings.secret_key
    cursor = trace.decode_cursor(before, secret=secret, lot_id=lot.id) if before else None
    page = await trace.history(session=session, secret=secret, lot_id=lot.id, limit=limit, before=cursor)
    return _json({"lot_number": lot_number, "status": lot.status, **page})


@units_router.get("/{serial_number}", response_model=UnitOut, summary="Get a unit by serial number")
async def get_unit(serial_number: str, session: SessionDep, _: Principal = require_permission("lots:read")):
    return await lot_service.get_unit(session, serial_number)


@units_router.get("/{serial_number}/history", summary="History of one unit by serial number, newest first, paged")
async def unit_history(serial_number: str, session: ReadSessionDep, settings: SettingsDep,
                       _: Principal = require_permission("lots:read"), limit: HistoryLimit = 100,
                       before: HistoryBefore = None):
    """One page of the unit's history, as the LOT history."""
    unit = await lot_service.get_unit(session, serial_number)
    secret = settings.secret_key
    cursor = trace.decode_cursor(before, secret=secret, unit_id=unit.id) if before else None
    lot = await session.get(Lot, unit.lot_id)
    page = await trace.history(session=session, secret=secret, unit_id=unit.id, limit=limit, before=cursor)
    return _json({"serial_number": serial_number, "lot_number": lot.lot_number, "lot_status": lot.status,
                  "product": lot.product, **page})


def _json(content: dict[str, Any]) -> Response:
    """A history page written by orjson: FastAPI's generic encoder cost more CPU than the page's query."""
    try:
        body = orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits in a record's free-form data: the standard library takes it
        body = json.dumps(content, default=str, ensure_ascii=False).encode()
    return Response(body, media_type="application/json")


@processes_router.get("", response_model=list[ProcessOut], summary="Routing steps in sequence order")
async def list_processes(session: SessionDep, _: Principal = require_permission("lots:read")):
    return (await session.execute(select(Process).order_by(Process.sequence, Process.id))).scalars()


@processes_router.post("", response_model=ProcessOut, status_code=status.HTTP_201_CREATED,
                       summary="Define a routing step")
async def create_process(body: ProcessIn, session: SessionDep, kernel: KernelDep,
                         principal: Principal = require_permission("processes:write")):
    process = Process(id=body.id, name=body.name, sequence=body.sequence,
                      ideal_cycle_seconds=body.ideal_cycle_seconds)
    session.add(process)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"process {body.id} already exists", code="PROCESS_EXISTS") from None
    await write_audit(session, actor=principal.actor, action="create", entity="process", entity_id=body.id,
                      after=body.model_dump())
    await session.commit()
    await kernel.cache.invalidate(CONFIGURATION)  # reports read steps' sequence and ideal cycle times
    return process


@processes_router.patch("/{process_id}", response_model=ProcessOut,
                        summary="Change a routing step: name, sequence, ideal cycle time (audited)")
async def update_process(process_id: str, body: ProcessUpdate, session: SessionDep, kernel: KernelDep,
                         principal: Principal = require_permission("processes:write")):
    process = await _process(session, process_id)
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "sequence"):
        if name in changes and changes[name] is None:
            raise Unprocessable(f"{name} cannot be null", field=name)
    before = ProcessOut.model_validate(process).model_dump()
    for name, value in changes.items():
        setattr(process, name, value)
    await session.flush()
    after = ProcessOut.model_validate(process).model_dump()
    await write_audit(session, actor=principal.actor, action="update", entity="process", entity_id=process_id,
                      before=before, after=after)
    await session.commit()
    await kernel.cache.invalidate(CONFIGURATION)
    return after




async def _defect_codes(session, process_id: str) -> list[dict[str, str]]:
    rows = (
        await session.execute(
            select(ProcessDefectCode)
            .where(ProcessDefectCode.process_id == process_id)
            .order_by(ProcessDefectCode.position, ProcessDefectCode.code)
        )
    ).scalars()
    return [{"code": r.code, "name": r.name} for r in rows]


async def _process(session, process_id: str) -> Process:
    process = await session.get(Process, process_id)
    if process is None:
        raise NotFound(f"process {process_id} not found", code="PROCESS_NOT_FOUND")
    return process


@processes_router.get("/{process_id}/defect-codes", response_model=DefectCodesOut,
                      summary="The defect codes a worker may choose at this process")
async def get_defect_codes(process_id: str, session: SessionDep, _: Principal = require_permission("lots:read")):
    await _process(session, process_id)
    return {"process_id": process_id, "defect_codes": await _defect_codes(session, process_id)}


@processes_router.put("/{process_id}/defect-codes", response_model=DefectCodesOut,
                      summary="Replace the defect list of a process (audited)",
                      description="An empty list removes it. Records are not checked against the list: a "
                      "station that recorded offline with an older list must not lose the record "
                      "(see docs/completion-files.md, \"Defect codes\").")
async def put_defect_codes(process_id: str, body: DefectCodesIn, session: SessionDep, kernel: KernelDep,
                           principal: Principal = require_permission("processes:write")):
    await _process(session, process_id)
    codes = [item.code for item in body.defect_codes]
    if len(set(codes)) != len(codes):
        raise Unprocessable("each defect code may appear once", field="defect_codes")
    before = await _defect_codes(session, process_id)
    await session.execute(delete(ProcessDefectCode).where(ProcessDefectCode.process_id == process_id))
    session.add_all(
        ProcessDefectCode(process_id=process_id, code=item.code, name=item.name, position=i,
                          updated_by=principal.actor)
        for i, item in enumerate(body.defect_codes)
    )
    after = [{"code": item.code, "name": item.name} for item in body.defect_codes]
    await write_audit(session, actor=principal.actor, action="update", entity="process_defect_codes",
                      entity_id=process_id, before={"defect_codes": before}, after={"defect_codes": after})
    await commit(session, kernel.cache)
    return {"process_id": process_id, "defect_codes": after}
