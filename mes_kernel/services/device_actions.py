"""Traceability of device actions: every print, flash and scan lands in the LOT/unit history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import write_audit
from ..db.models import DeviceAction, Lot, Station, Unit
from ..errors import NotFound
from ..station_times import StationTimeWindow
from .trace import add_trace_events, trace_row

OUTCOMES = ("ok", "failed", "refused", "started")


async def record_device_action(
    *,
    session: AsyncSession,
    action: str,
    plugin: str,
    device: str,
    driver: str,
    driver_version: str,
    actor: str,
    outcome: str,
    lot_number: str | None = None,
    serial_number: str | None = None,
    station_code: str | None = None,
    detail: dict[str, Any] | None = None,
    recorded_at: datetime | None = None,
    station_seq: int | None = None,
    times: StationTimeWindow | None = None,
    field_name: str = "recorded_at",
) -> DeviceAction:
    """Add a device action (and its audit entry) to the caller's transaction; one naming a LOT or a
    unit joins their history (``trace_events``).

    ``serial_number`` alone is enough: the unit's LOT is filled in. Unknown LOT or serial → NotFound.
    ``recorded_at`` (UTC-aware) and ``station_seq`` are the station's time and outbox sequence
    number when a station reports the action; a server-side action happens now. With ``times``
    (the station-time window), a ``recorded_at`` before the unit's (else the LOT's) registration,
    less the clock lead, raises :class:`~mes_kernel.station_times.ImplausibleTime` naming
    ``field_name``; nothing is added.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    lot_id = unit_id = station_id = registered_at = None
    if serial_number:
        row = (await session.execute(
            select(Unit.id, Unit.lot_id, Lot.lot_number, Unit.created_at).join(Lot, Lot.id == Unit.lot_id)
            .where(Unit.serial_number == serial_number))).first()
        if row is None:
            raise NotFound(f"unit {serial_number} not found", code="UNIT_NOT_FOUND")
        unit_id, lot_id, registered_at = row.id, row.lot_id, row.created_at
        lot_number = lot_number or row.lot_number
    if lot_number and lot_id is None:
        row = (await session.execute(select(Lot.id, Lot.created_at).where(Lot.lot_number == lot_number))).first()
        if row is None:
            raise NotFound(f"LOT {lot_number} not found", code="LOT_NOT_FOUND")
        lot_id, registered_at = row.id, row.created_at
    if times is not None:
        early = times.registration_refusal(
            recorded_at, field_name, registered_at=registered_at,
            subject=f"unit {serial_number}" if unit_id is not None else f"LOT {lot_number}",
        )
        if early is not None:
            raise early
    if station_code:
        station_id = (await session.execute(select(Station.id).where(Station.code == station_code))).scalar()
    entry = DeviceAction(
        action=action, plugin=plugin, device=device, driver=driver, driver_version=driver_version,
        lot_id=lot_id, unit_id=unit_id, lot_number=lot_number, serial_number=serial_number,
        station_id=station_id, actor=actor, outcome=outcome, detail=detail or {},
    )
    session.add(entry)
    await session.flush()
    if lot_id is not None:
        await add_trace_events(session, [trace_row(
            kind="device_action", lot_id=lot_id, unit_id=unit_id, recorded_at=recorded_at, station_seq=station_seq,
            received_at=entry.created_at, station_id=station_id, actor=actor, source_id=entry.id,
            payload={"lot_number": lot_number, "serial_number": serial_number, "action": action, "plugin": plugin,
                     "device": device, "driver": driver, "driver_version": driver_version, "outcome": outcome,
                     "detail": detail or {}},
        )])
    await write_audit(session, actor=actor, action="create", entity="device_action", entity_id=entry.id,
                      after={"action": action, "plugin": plugin, "device": device, "driver": driver,
                             "driver_version": driver_version, "lot_number": lot_number,
                             "serial_number": serial_number, "station": station_code, "outcome": outcome,
                             "detail": detail or {}})
    return entry
