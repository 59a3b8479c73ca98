"""LOTs and units: create, list, update with validated status transitions, history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import write_audit
from ..cache import Cache, mark_stale
from ..db.base import utcnow
from ..db.models import DeviceAction, Line, Lot, ProcessRecord, Unit
from ..errors import Conflict, NotFound, Unprocessable
from ..schemas import LotCreate, LotUpdate

TRANSITIONS: dict[str, set[str]] = {
    "created": {"in_progress", "on_hold", "closed", "scrapped"},
    "in_progress": {"on_hold", "closed", "scrapped"},
    "on_hold": {"in_progress", "closed", "scrapped"},
    "closed": set(),
    "scrapped": set(),
}
FINAL = {"closed", "scrapped"}


def lot_snapshot(lot: Lot) -> dict[str, Any]:
    return {
        "lot_number": lot.lot_number,
        "product": lot.product,
        "quantity": lot.quantity,
        "status": lot.status,
        "note": lot.note,
        "line_id": lot.line_id,
    }


async def get_lot(session: AsyncSession, lot_number: str) -> Lot:
    lot = (await session.execute(select(Lot).where(Lot.lot_number == lot_number))).scalar_one_or_none()
    if lot is None:
        raise NotFound(f"LOT {lot_number} not found", code="LOT_NOT_FOUND", lot_number=lot_number)
    return lot


async def get_unit(session: AsyncSession, serial_number: str) -> Unit:
    unit = (await session.execute(select(Unit).where(Unit.serial_number == serial_number))).scalar_one_or_none()
    if unit is None:
        raise NotFound(f"unit {serial_number} not found", code="UNIT_NOT_FOUND", serial_number=serial_number)
    return unit


async def cached_lot(session: AsyncSession, cache: Cache, lot_number: str) -> dict[str, Any]:
    """The LOT's id, status and product from the cache (the hot path of every record)."""

    async def load():
        lot = await get_lot(session, lot_number)
        return {"id": lot.id, "status": lot.status, "product": lot.product}

    return await cache.get_or_set(f"lot:{lot_number}", load, kind="lot")


async def create_lot(*, session: AsyncSession, lot_in: LotCreate, actor: str) -> Lot:
    line_id = None
    if lot_in.line:
        line = (await session.execute(select(Line).where(Line.code == lot_in.line))).scalar_one_or_none()
        if line is None:
            raise NotFound(f"line {lot_in.line} not found", code="LINE_NOT_FOUND")
        line_id = line.id
    lot = Lot(
        lot_number=lot_in.lot_number,
        product=lot_in.product,
        quantity=lot_in.quantity,
        note=lot_in.note,
        line_id=line_id,
        status="created",
    )
    session.add(lot)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"LOT {lot_in.lot_number} already exists", code="LOT_EXISTS") from None
    await write_audit(
        session, actor=actor, action="create", entity="lot", entity_id=lot.lot_number, after=lot_snapshot(lot)
    )
    return lot


async def update_lot(*, session: AsyncSession, lot_number: str, lot_in: LotUpdate, actor: str) -> Lot:
    lot = (
        await session.execute(select(Lot).where(Lot.lot_number == lot_number).with_for_update())
    ).scalar_one_or_none()
    if lot is None:
        raise NotFound(f"LOT {lot_number} not found", code="LOT_NOT_FOUND")
    before = lot_snapshot(lot)
    changes = lot_in.model_dump(exclude_unset=True, exclude_none=True)
    if lot.status in FINAL and changes:
        raise Conflict(f"LOT {lot_number} is {lot.status}; it cannot change", code="LOT_CLOSED", status_now=lot.status)
    new_status = changes.get("status")
    values: dict[str, Any] = {k: changes[k] for k in ("quantity", "note") if k in changes}
    if new_status and new_status != lot.status:
        if new_status not in TRANSITIONS[lot.status]:
            raise Conflict(
                f"LOT {lot_number} cannot go from {lot.status} to {new_status}",
                code="INVALID_TRANSITION",
                allowed=sorted(TRANSITIONS[lot.status]),
            )
        values["status"] = new_status
        if new_status in FINAL:
            values["closed_at"] = utcnow()
    values["updated_at"] = utcnow()
    # Compare-and-set on the status read above: of two racing changes only one applies (SQLite
    # ignores FOR UPDATE; this holds on both databases).
    result = await session.execute(
        update(Lot).where(Lot.id == lot.id, Lot.status == before["status"]).values(**values),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount == 0:
        await session.rollback()
        now = await get_lot(session, lot_number)
        raise Conflict(
            f"LOT {lot_number} changed meanwhile (now {now.status}); reload and try again",
            code="LOT_CLOSED" if now.status in FINAL else "INVALID_TRANSITION",
            status_now=now.status,
        )
    await session.refresh(lot)
    await write_audit(
        session,
        actor=actor,
        action="update",
        entity="lot",
        entity_id=lot_number,
        before=before,
        after=lot_snapshot(lot),
    )
    mark_stale(session, f"lot:{lot_number}")
    return lot


async def list_lots(
    *,
    session: AsyncSession,
    status: str | None = None,
    product: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Lot], int]:
    query = select(Lot)
    if status:
        query = query.where(Lot.status == status)
    if product:
        query = query.where(Lot.product == product)
    if created_from:
        query = query.where(Lot.created_at >= created_from)
    if created_to:
        query = query.where(Lot.created_at < created_to)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(Lot.lot_number.ilike(pattern, escape="\\"), Lot.product.ilike(pattern, escape="\\")))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.execute(query.order_by(Lot.created_at.desc(), Lot.id.desc()).limit(limit).offset(offset))
    return list(rows.scalars()), total


async def add_units(*, session: AsyncSession, lot_number: str, serial_numbers: list[str], actor: str) -> list[Unit]:
    lot = await get_lot(session, lot_number)
    if lot.status in FINAL:
        raise Conflict(f"LOT {lot_number} is {lot.status}", code="LOT_CLOSED")
    if len(set(serial_numbers)) != len(serial_numbers):
        raise Unprocessable("serial numbers repeat within the request", code="DUPLICATE_SERIAL")
    bad = [s for s in serial_numbers if not s or len(s) > 64 or not s.isprintable() or s.strip() != s]
    if bad:
        raise Unprocessable("malformed serial numbers", code="VALIDATION_ERROR", serial_numbers=bad[:20])
    existing = (
        (await session.execute(select(Unit.serial_number).where(Unit.serial_number.in_(serial_numbers))))
        .scalars()
        .all()
    )
    if existing:
        raise Conflict("serial numbers already registered", code="SERIAL_EXISTS", serial_numbers=sorted(existing)[:20])
    units = [Unit(serial_number=s, lot_id=lot.id, status="in_progress") for s in serial_numbers]
    session.add_all(units)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict("serial numbers already registered", code="SERIAL_EXISTS") from None
    from ..audit import audit_row, write_audit_rows

    await write_audit_rows(
        session,
        [
            audit_row(
                actor=actor,
                action="create",
                entity="unit",
                entity_id=u.serial_number,
                after={"serial_number": u.serial_number, "lot_number": lot_number},
            )
            for u in units
        ],
    )
    return units


async def history(
    *, session: AsyncSession, lot_id: int | None = None, unit_id: int | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Process records and device actions of a LOT or a unit, oldest first."""
    rec_q = select(ProcessRecord)
    act_q = select(DeviceAction)
    if unit_id is not None:
        rec_q = rec_q.where(ProcessRecord.unit_id == unit_id)
        act_q = act_q.where(DeviceAction.unit_id == unit_id)
    else:
        rec_q = rec_q.where(ProcessRecord.lot_id == lot_id)
        act_q = act_q.where(DeviceAction.lot_id == lot_id)
    records = (await session.execute(rec_q.order_by(ProcessRecord.created_at).limit(limit))).scalars().all()
    actions = (await session.execute(act_q.order_by(DeviceAction.created_at).limit(limit))).scalars().all()
    events = [
        {
            "at": r.created_at,
            "type": "process_record",
            "lot_number": r.lot_number,
            "serial_number": r.serial_number,
            "data": {
                "id": r.id,
                "process_id": r.process_id,
                "result": r.result,
                "defect_code": r.defect_code,
                "worker_id": r.worker_id,
                "station_id": r.station_id,
                "created_by": r.created_by,
                "recorded_at": r.recorded_at.isoformat() if r.recorded_at else None,
                "data": r.data,
            },
        }
        for r in records
    ] + [
        {
            "at": a.created_at,
            "type": "device_action",
            "lot_number": a.lot_number,
            "serial_number": a.serial_number,
            "data": {
                "id": a.id,
                "action": a.action,
                "plugin": a.plugin,
                "device": a.device,
                "driver": a.driver,
                "driver_version": a.driver_version,
                "actor": a.actor,
                "station_id": a.station_id,
                "outcome": a.outcome,
                "detail": a.detail,
            },
        }
        for a in actions
    ]
    events.sort(key=lambda e: e["at"])
    return events[:limit]


async def mark_started(
    *, session: AsyncSession, lot: dict[str, Any], lot_number: str, actor: str, **context: Any
) -> None:
    """A LOT's first record moves it from created to in progress."""
    result = await session.execute(
        update(Lot)
        .where(Lot.id == lot["id"], Lot.status == "created")
        .values(status="in_progress", updated_at=utcnow())
    )
    if result.rowcount:
        await write_audit(
            session,
            actor=actor,
            action="update",
            entity="lot",
            entity_id=lot_number,
            before={"status": "created"},
            after={"status": "in_progress"},
            **context,
        )
        mark_stale(session, f"lot:{lot_number}")
