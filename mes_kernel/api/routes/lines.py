"""Production lines (plugins enabled, breaker overrides, devices) and the device list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from sqlalchemy import select

from ... import lines as line_service
from ...db.models import Device, Line, Station
from ...errors import NotFound, Unprocessable
from ...ratelimit import COUNTS_AS_READ
from ..deps import KernelDep, Principal, SessionDep, require_permission

router = APIRouter(prefix="/lines", tags=["lines"])
devices_router = APIRouter(prefix="/devices", tags=["lines"])


@router.get("", summary="Lines and their configuration")
async def list_lines(session: SessionDep, _: Principal = require_permission("lines:read")):
    lines = (await session.execute(select(Line).order_by(Line.code))).scalars().all()
    return [await line_service.export(session, line) for line in lines]


@router.get("/{code}", summary="One line's configuration, as it would be written to a file")
async def get_line(code: str, session: SessionDep, _: Principal = require_permission("lines:read")):
    line = (await session.execute(select(Line).where(Line.code == code))).scalar_one_or_none()
    if line is None:
        raise NotFound(f"line {code} not found", code="LINE_NOT_FOUND")
    return await line_service.export(session, line)


@router.post(
    "/validate",
    summary="Check a line configuration without applying it; say what applying it would change",
    description="Answers `{valid, errors, plan}`: `plan` names the line, stations and devices that `PUT` "
    "would create, change (with the fields) and delete — the plan `mes line apply --dry-run` prints.",
    openapi_extra=COUNTS_AS_READ,
)
async def validate_line(request: Request, session: SessionDep, document: dict[str, Any] = Body(...),
                        _: Principal = require_permission("lines:manage")):
    try:
        config = line_service.parse(document)
    except Unprocessable as exc:
        return {"valid": False, "errors": exc.extra.get("errors", [])}
    catalog = line_service.catalog_from_app(request.app)
    try:
        steps = await line_service.plan(session=session, config=config, catalog=catalog)
    except Unprocessable as exc:
        return {"valid": False, "errors": exc.extra.get("errors", []), "plan": None}
    return {"valid": True, "errors": [], "plan": steps.as_dict()}


@router.put("/{code}", summary="Apply a line configuration (validated first; all or nothing)")
async def put_line(code: str, request: Request, session: SessionDep, kernel: KernelDep,
                   document: dict[str, Any] = Body(...), principal: Principal = require_permission("lines:manage")):
    table = document.get("line") if isinstance(document.get("line"), dict) else {}
    named = document.get("code", table.get("code"))
    if named is not None and named != code:
        raise Unprocessable(
            f"the body names line {named!r} but the address names {code!r}",
            code="INVALID_LINE_CONFIG",
            errors=[{"loc": ["code"], "msg": f"must be {code!r} (the line in the address) or left out"}],
        )
    config = line_service.parse({**document, "code": code})
    catalog = line_service.catalog_from_app(request.app)
    line, _ = await line_service.apply(
        session=session, config=config, catalog=catalog, actor=principal.actor, at=kernel.clock()
    )
    await session.commit()
    await kernel.runtime.announce()  # every worker of every node follows within about a second
    return await line_service.export(session, line)


@devices_router.get("", summary="Devices, filtered by line, station or kind")
async def list_devices(session: SessionDep, _: Principal = require_permission("lines:read"),
                       line: str | None = None, station: str | None = None, kind: str | None = None):
    query = select(Device, Line.code.label("line_code"), Station.code.label("station_code")) \
        .outerjoin(Line, Line.id == Device.line_id).outerjoin(Station, Station.id == Device.station_id)
    if line:
        query = query.where(Line.code == line)
    if station:
        query = query.where(Station.code == station)
    if kind:
        query = query.where(Device.kind == kind)
    rows = (await session.execute(query.order_by(Device.code))).all()
    return [{"code": d.code, "kind": d.kind, "driver": d.driver, "line": line_code, "station": station_code,
             "enabled": d.enabled, "config": d.config} for d, line_code, station_code in rows]
