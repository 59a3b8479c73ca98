"""LOTs and units: create, list, update with validated status transitions (each one traced)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import write_audit
from ..cache import Cache, mark_stale
from ..db.base import utcnow
from ..db.models import Line, Lot, Unit
from ..errors import Conflict, NotFound, Unprocessable
from ..schemas import LotCreate, LotUpdate
from ..text import is_identifier
from .trace import add_trace_events, trace_row

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


#: Reasons the server itself gives a LOT's status change: code → English text (the dashboard's catalogs
#: hold each code's translations under ``history.reason.<code>``).
STATUS_REASONS: dict[str, str] = {"FIRST_PROCESS_RECORD": "first process record"}


def status_change(
    *, lot_id: int, lot_number: str, before: str | None, after: str, actor: str, at: datetime | None = None,
    received_at: datetime | None = None, reason: str | None = None, reason_code: str | None = None,
) -> dict[str, Any]:
    """The trace row of a LOT moving from ``before`` (None at creation) to ``after``: who and why;
    ``at`` when it happened (station time), ``received_at`` the server's time (default: now).
    ``reason`` is a person's words as given; a reason the server writes itself is ``reason_code`` (one of
    :data:`STATUS_REASONS`, which the dashboard translates) with its English text in ``reason`` for API users."""
    payload: dict[str, Any] = {"lot_number": lot_number, "from": before, "to": after}
    if reason_code:
        payload["reason_code"] = reason_code
        reason = STATUS_REASONS[reason_code]
    if reason:
        payload["reason"] = reason
    # The receipt time is the partition key (the month the change is archived with): the server's,
    # never a station's ``at``.
    return trace_row(kind="status_change", lot_id=lot_id, recorded_at=at, received_at=received_at, actor=actor,
                     payload=payload)


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
    """The LOT's id, status, product, line and ``registered_at`` (its ``created_at``, ISO 8601: the
    bound of its station times) from the cache (the hot path of every record)."""

    async def load():
        lot = await get_lot(session, lot_number)
        return {"id": lot.id, "status": lot.status, "product": lot.product, "line_id": lot.line_id,
                "registered_at": lot.created_at.isoformat()}

    return await cache.get_or_set(f"lot:{lot_number}", load, kind="lot")


async def create_lot(*, session: AsyncSession, lot_in: LotCreate, actor: str) -> Lot:
    line_id = None
    if lot_in.line:
        line = (await session.execute(select(Line).where(Line.code == lot_in.line))).scalar_one_or_none()
        if line is None:
            raise NotFound(f"line {lot_in.line} not found", code="LINE_NOT_FOUND", field="line")
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
    await add_trace_events(session, [status_change(lot_id=lot.id, lot_number=lot.lot_number, before=None,
                                                  after="created", actor=actor, at=lot.created_at,
                                                  received_at=lot.created_at)])
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
    reason = changes.pop("reason", None)
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
    if lot.status != before["status"]:
        await add_trace_events(session, [status_change(lot_id=lot.id, lot_number=lot_number, before=before["status"],
                                                      after=lot.status, actor=actor, at=values["updated_at"],
                                                      received_at=values["updated_at"],
                                                      reason=reason or changes.get("note"))])
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


async def unit_counts(session: AsyncSession, lot_ids: Iterable[int]) -> dict[int, int]:
    """Registered units per LOT id, in one query: ``{lot_id: count}`` with 0 for a LOT without units.

    Every answer that carries a LOT's ``unit_count`` takes it from here, so no route can answer a LOT
    without its count (``LotOut.unit_count`` is required).
    """
    ids = list(dict.fromkeys(lot_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Unit.lot_id, func.count(Unit.id)).where(Unit.lot_id.in_(ids)).group_by(Unit.lot_id)
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({lot_id: n for lot_id, n in rows.all()})
    return counts


async def add_units(*, session: AsyncSession, lot_number: str, serial_numbers: list[str], actor: str) -> list[Unit]:
    lot = await get_lot(session, lot_number)
    if lot.status in FINAL:
        raise Conflict(f"LOT {lot_number} is {lot.status}", code="LOT_CLOSED")
    if len(set(serial_numbers)) != len(serial_numbers):
        raise Unprocessable("serial numbers repeat within the request", code="DUPLICATE_SERIAL")
    bad = [s for s in serial_numbers if len(s) > 64 or not is_identifier(s)]
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
    await add_trace_events(
        session,
        [
            trace_row(kind="registration", lot_id=lot.id, unit_id=u.id, recorded_at=u.created_at,
                      received_at=u.created_at, actor=actor,
                      payload={"lot_number": lot_number, "serial_number": u.serial_number})
            for u in units
        ],
    )
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


async def mark_started(
    *, session: AsyncSession, lot: dict[str, Any], lot_number: str, actor: str, at: datetime | None = None,
    received_at: datetime | None = None, **context: Any,
) -> dict[str, Any] | None:
    """A LOT's first record moves it from created to in progress. Returns the trace row of the
    change (at ``at``, the record's station time; received with the record, at ``received_at``), or
    None when the LOT had started already; the caller adds it with the records' own, so every
    transaction takes the trace totals in one order."""
    result = await session.execute(
        update(Lot)
        .where(Lot.id == lot["id"], Lot.status == "created")
        .values(status="in_progress", updated_at=utcnow())
    )
    if not result.rowcount:
        return None
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
    return status_change(lot_id=lot["id"], lot_number=lot_number, before="created", after="in_progress", actor=actor,
                         at=at, received_at=received_at, reason_code="FIRST_PROCESS_RECORD")
