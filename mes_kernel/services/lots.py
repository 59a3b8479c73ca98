"""LOTs and units: create, list, update with validated status transitions, history."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, select, true, update
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
        return {"id": lot.id, "status": lot.status, "product": lot.product, "line_id": lot.line_id}

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


def _encode_cursor(key: tuple[datetime, int, int]) -> str:
    at, rank, ident = key
    raw = f"{at.astimezone(UTC).isoformat()}|{rank}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int, int]:
    """The position a ``next_before`` cursor stands for; ``Unprocessable`` (``INVALID_CURSOR``) if it
    is not one this server wrote."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, rank, ident = raw.split("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or rank not in ("0", "1"):
            raise ValueError(raw)
        return moment, int(rank), int(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Unprocessable("before is not a cursor this server gave", code="INVALID_CURSOR", field="before") from None


# Events at the same moment: a process record ranks above a device action (rank 1 > 0), then by id.
RECORD_RANK, ACTION_RANK = 1, 0


def _before(at_col, id_col, rank: int, cursor: tuple[datetime, int, int] | None):
    """Rows whose (time, rank, id) sorts below the cursor, for a table whose rows all have ``rank``."""
    if cursor is None:
        return true()
    at, c_rank, c_id = cursor
    same_time = (id_col < c_id) if rank == c_rank else (true() if rank < c_rank else false())
    return or_(at_col < at, and_(at_col == at, same_time))


async def history(
    *,
    session: AsyncSession,
    lot_id: int | None = None,
    unit_id: int | None = None,
    limit: int = 100,
    before: tuple[datetime, int, int] | None = None,
) -> dict[str, Any]:
    """One page of the process records and device actions of a LOT or a unit, newest first.

    Ordered by when it happened: a record's ``recorded_at`` at the station (its receipt time when
    the station sent none), a device action's time; equal times by id. Returns ``{"events",
    "total", "next_before"}``: ``total`` counts every event, ``next_before`` is the opaque cursor of
    the next (older) page, ``None`` on the last. Each event carries ``recorded_at`` (station time,
    ISO 8601) and ``received_at`` (server receipt).
    """
    if unit_id is not None:
        rec_where, act_where = ProcessRecord.unit_id == unit_id, DeviceAction.unit_id == unit_id
    else:
        rec_where, act_where = ProcessRecord.lot_id == lot_id, DeviceAction.lot_id == lot_id
    # The total rides along with the page of records (one round trip less); asked on its own
    # only when no record is left before the cursor.
    records_n = select(func.count()).select_from(ProcessRecord).where(rec_where).scalar_subquery()
    actions_n = select(func.count()).select_from(DeviceAction).where(act_where).scalar_subquery()
    total_n = (records_n + actions_n).label("total")
    page_rows = (
        await session.execute(
            select(ProcessRecord, total_n)
            .where(rec_where, _before(ProcessRecord.event_at, ProcessRecord.id, RECORD_RANK, before))
            .order_by(ProcessRecord.event_at.desc(), ProcessRecord.id.desc())
            .limit(limit + 1)
        )
    ).all()
    records = [row[0] for row in page_rows]
    actions = (
        (
            await session.execute(
                select(DeviceAction)
                .where(act_where, _before(DeviceAction.created_at, DeviceAction.id, ACTION_RANK, before))
                .order_by(DeviceAction.created_at.desc(), DeviceAction.id.desc())
                .limit(limit + 1)
            )
        )
        .scalars()
        .all()
    )
    if page_rows:
        total = page_rows[0][1]
    else:
        total = (await session.execute(select(total_n))).scalar_one()
    events = [((r.event_at, RECORD_RANK, r.id), _record_event(r)) for r in records]
    events += [((a.created_at, ACTION_RANK, a.id), _action_event(a)) for a in actions]
    events.sort(key=lambda e: e[0], reverse=True)
    page = events[:limit]
    return {
        "total": total,
        "next_before": _encode_cursor(page[-1][0]) if len(events) > limit else None,
        "events": [event for _, event in page],
    }


def _record_event(r: ProcessRecord) -> dict[str, Any]:
    return {
        "at": r.event_at.isoformat(),
        "recorded_at": r.recorded_at.isoformat() if r.recorded_at else None,
        "received_at": r.created_at.isoformat(),
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


def _action_event(a: DeviceAction) -> dict[str, Any]:
    return {
        "at": a.created_at.isoformat(),
        "recorded_at": a.created_at.isoformat(),
        "received_at": a.created_at.isoformat(),
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
