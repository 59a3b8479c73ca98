"""``POST /scans/lookup``: what a scanned code is, and the unit, LOT and next process behind it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import Identifier, resolve_device
from mes_kernel.db.models import Lot, Process, ProcessRecord, Unit
from mes_kernel.errors import NotFound, ServiceUnavailable
from mes_kernel.kernel import Kernel
from mes_kernel.ratelimit import COUNTS_AS_READ
from mes_kernel.services.device_actions import record_device_action
from mes_kernel.services.lots import unit_counts

from . import PLUGIN_NAME
from .parsing import ParsedCode, ParserConfig, parse_code
from .settings import BarcodeSettings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/scans", tags=["scans"])

BREAKER = "scan_lookup"
STATE_KEY = "barcode_hid"
DEVICE_KIND = "barcode_scanner"
#: ``device`` values that name how a code came in rather than a configured scanner
INPUT_ROLES = frozenset({"scanner", "keyboard", "wedge"})


class LookupIn(BaseModel):
    """A scanned (or typed) code, and optionally which scanner read it, for the traceability row."""

    code: str = Field(min_length=1, max_length=512, description="the code as scanned; an AIM prefix is allowed")
    symbology: str | None = Field(None, max_length=3, description="AIM identifier if the driver split it off")
    record: bool = Field(True, description="record the lookup as a 'scan' device action on the unit/LOT")
    device: Identifier = Field(
        "scanner",
        max_length=64,
        description="device code of the scanner (checked by the kernel's device authority), "
        "or 'scanner' / 'keyboard' / 'wedge' for input that names no configured device",
    )
    driver: Identifier = Field("unknown", max_length=64, description="driver name (evdev, serial, wedge …)")
    driver_version: str = Field("", max_length=32)
    station: Identifier | None = Field(None, max_length=64, description="station code when a person scans there")


def plugin_state(kernel: Kernel) -> dict[str, Any]:
    """The plugin's runtime state on the kernel: settings and parser configuration."""
    state = kernel.state.get(STATE_KEY)
    if state is None:
        settings = BarcodeSettings()
        state = {"settings": settings, "parser": settings.parser_config()}
        kernel.state[STATE_KEY] = state
    return state


def parser_config(kernel: Kernel) -> ParserConfig:
    return plugin_state(kernel)["parser"]


async def next_process(session: AsyncSession, *, lot_id: int, unit_id: int | None) -> tuple[Process | None, list[str]]:
    """The first process in sequence without a ``pass`` record, and those that have one.

    For a unit, a pass of the unit itself or of its whole LOT (a record without unit) counts.
    """
    passed = select(ProcessRecord.process_id).where(ProcessRecord.result == "pass", ProcessRecord.lot_id == lot_id)
    if unit_id is None:
        passed = passed.where(ProcessRecord.unit_id.is_(None))
    else:
        passed = passed.where(or_(ProcessRecord.unit_id == unit_id, ProcessRecord.unit_id.is_(None)))
    done = set((await session.execute(passed)).scalars())
    processes = (await session.execute(select(Process).order_by(Process.sequence, Process.id))).scalars().all()
    completed = [p.id for p in processes if p.id in done]
    upcoming = next((p for p in processes if p.id not in done), None)
    return upcoming, completed


def _process_out(process: Process | None) -> dict[str, Any] | None:
    if process is None:
        return None
    return {"id": process.id, "name": process.name, "sequence": process.sequence}


def _lot_out(lot: Lot, units: int) -> dict[str, Any]:
    return {
        "lot_number": lot.lot_number,
        "product": lot.product,
        "status": lot.status,
        "quantity": lot.quantity,
        "units": units,
    }


async def _unit_count(session: AsyncSession, lot_id: int) -> int:
    return (await unit_counts(session, [lot_id]))[lot_id]


async def _lookup_unit(session: AsyncSession, parsed: ParsedCode) -> dict[str, Any]:
    row = (
        await session.execute(
            select(Unit, Lot).join(Lot, Lot.id == Unit.lot_id).where(Unit.serial_number == parsed.serial_number)
        )
    ).first()
    if row is None:
        raise NotFound(
            f"unit {parsed.serial_number} not found",
            code="NOT_FOUND",
            serial_number=parsed.serial_number,
            parsed=parsed.as_dict(),
        )
    unit, lot = row
    upcoming, completed = await next_process(session, lot_id=lot.id, unit_id=unit.id)
    warnings = []
    if parsed.lot_number and parsed.lot_number != lot.lot_number:
        warnings.append(f"label says LOT {parsed.lot_number}, the unit belongs to LOT {lot.lot_number}")
    if lot.status in ("on_hold", "closed", "scrapped"):
        warnings.append(f"LOT {lot.lot_number} is {lot.status}")
    return {
        "kind": "unit",
        "unit": {"serial_number": unit.serial_number, "status": unit.status, "lot_number": lot.lot_number},
        "lot": _lot_out(lot, await _unit_count(session, lot.id)),
        "next_process": _process_out(upcoming),
        "completed_processes": completed,
        "warnings": warnings,
    }


async def _lookup_lot(session: AsyncSession, parsed: ParsedCode) -> dict[str, Any]:
    lot = (await session.execute(select(Lot).where(Lot.lot_number == parsed.lot_number))).scalar_one_or_none()
    if lot is None:
        raise NotFound(
            f"LOT {parsed.lot_number} not found",
            code="NOT_FOUND",
            lot_number=parsed.lot_number,
            parsed=parsed.as_dict(),
        )
    upcoming, completed = await next_process(session, lot_id=lot.id, unit_id=None)
    per_process = (
        await session.execute(
            select(ProcessRecord.process_id, ProcessRecord.result, func.count(func.distinct(ProcessRecord.unit_id)))
            .where(ProcessRecord.lot_id == lot.id, ProcessRecord.unit_id.is_not(None))
            .group_by(ProcessRecord.process_id, ProcessRecord.result)
        )
    ).all()
    units_by_process: dict[str, dict[str, int]] = {}
    for process_id, result, count in per_process:
        units_by_process.setdefault(process_id, {"pass": 0, "fail": 0})[result] = count
    warnings = [f"LOT {lot.lot_number} is {lot.status}"] if lot.status in ("on_hold", "closed", "scrapped") else []
    return {
        "kind": "lot",
        "unit": None,
        "lot": _lot_out(lot, await _unit_count(session, lot.id)),
        "next_process": _process_out(upcoming),
        "completed_processes": completed,
        "units_by_process": units_by_process,
        "warnings": warnings,
    }


@router.post(
    "/lookup",
    summary="Parse a scanned code and find its unit or LOT and next process",
    openapi_extra=COUNTS_AS_READ,  # a read with a body: a person's lookups spend the reads budget
    responses={404: {"description": "UNKNOWN_CODE (no rule accepts it) or NOT_FOUND (no such unit/LOT)"}},
)
async def lookup(
    body: LookupIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("scans:lookup"),
) -> dict[str, Any]:
    driver = body.driver
    if body.device not in INPUT_ROLES:
        scanner = await resolve_device(session=session, principal=principal, code=body.device, kind=DEVICE_KIND)
        driver = scanner.driver
    parsed = parse_code(body.code, config=parser_config(kernel), symbology=body.symbology)
    if parsed.kind not in ("serial", "lot"):
        what = "a product (GTIN), not a unit or LOT" if parsed.kind == "gtin" else "not a known code"
        raise NotFound(
            f"{body.code!r} is {what}: {parsed.reason or 'no serial or LOT number in it'}",
            code="UNKNOWN_CODE",
            parsed=parsed.as_dict(),
        )

    async def find() -> dict[str, Any]:
        if parsed.kind == "serial":
            return await _lookup_unit(session, parsed)
        return await _lookup_lot(session, parsed)

    # a failing database opens this breaker, so stations get a quick 503 instead of hanging lookups
    try:
        found = await kernel.breakers.call(BREAKER, None, find)
    except SQLAlchemyError as exc:
        log.warning("scan lookup failed in the database: %s", exc)
        raise ServiceUnavailable("scan lookup failed in the database; retry shortly", retry_after=5) from None
    found = {"code": body.code, "parsed": parsed.as_dict(), **found}

    if body.record and plugin_state(kernel)["settings"].record_scans:
        await record_device_action(
            session=session,
            action="scan",
            plugin=PLUGIN_NAME,
            device=body.device,
            driver=driver,
            driver_version=body.driver_version,
            actor=principal.actor,
            outcome="ok",
            lot_number=found["lot"]["lot_number"],
            serial_number=found["unit"]["serial_number"] if found["unit"] else None,
            station_code=principal.station_code or body.station,
            detail={"code": body.code, "symbology": parsed.symbology, "kind": parsed.kind, "format": parsed.format},
        )
        await session.commit()
        found["recorded"] = True
    else:
        found["recorded"] = False
    return found
