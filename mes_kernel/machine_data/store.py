"""Writing machine data: one transaction for every pending batch of every device.

State intervals go to ``machine_states`` (the open interval of the device closed where the next
starts), counts are added to ``machine_counts`` per device and hour, counter readings kept in
``machine_counters``, values inserted into ``machine_values`` and each unit's stay on the machine
written as a ``machine_data`` device action, which the unit's history shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import (
    DeviceAction,
    Lot,
    MachineCount,
    MachineCounter,
    MachineState,
    MachineValue,
    Unit,
)
from ..services.trace import add_trace_events, trace_row
from .sink import MachineSink, Pending

#: the ``action`` of the device action that records a unit's stay on a machine
VISIT_ACTION = "machine_data"


def _upsert(session: AsyncSession, model):
    return (postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert)(model)


async def open_state(session: AsyncSession, device: str) -> tuple[str, str] | None:
    """The device's state interval still open in ``machine_states`` (``(state, reason)``), if any."""
    row = (
        await session.execute(
            select(MachineState.state, MachineState.reason)
            .where(MachineState.device == device, MachineState.ended_at.is_(None))
            .order_by(MachineState.started_at.desc(), MachineState.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def counter_readings(session: AsyncSession, device: str) -> dict[str, int]:
    """The device's last stored counter readings (``good`` / ``bad``)."""
    rows = await session.execute(
        select(MachineCounter.counter, MachineCounter.reading).where(MachineCounter.device == device)
    )
    return {counter: int(reading) for counter, reading in rows}


async def write_batches(
    session: AsyncSession, batches: Sequence[tuple[MachineSink, Pending]], *, stored_at: datetime
) -> int:
    """Write every batch in the caller's transaction; returns the number of values inserted."""
    serials = {v[4] for _, batch in batches for v in batch.values if v[4]}
    serials |= {visit.serial_number for _, batch in batches for visit in batch.visits}
    units = await _units(session, serials)
    value_rows: list[dict[str, Any]] = []
    visits: list[tuple[DeviceAction, Any]] = []
    for sink, batch in batches:
        await _states(session, sink, batch.transitions)
        await _counts(session, sink, batch)
        for name, number, text, unit, serial, at in batch.values:
            unit_id = units.get(serial, (None, None, None))[0] if serial else None
            value_rows.append(
                {
                    "line_id": sink.line_id,
                    "device": sink.device,
                    "name": name,
                    "value": number,
                    "text": text,
                    "unit": unit,
                    "serial_number": serial,
                    "unit_id": unit_id,
                    "source_at": at,
                    "stored_at": stored_at,
                }
            )
        for visit in batch.visits:
            unit_id, lot_id, lot_number = units.get(visit.serial_number, (None, None, None))
            entry = DeviceAction(
                action=VISIT_ACTION,
                plugin=sink.source,
                device=sink.device,
                driver=sink.driver,
                driver_version=sink.driver_version[:32],
                lot_id=lot_id,
                unit_id=unit_id,
                lot_number=lot_number,
                serial_number=visit.serial_number,
                station_id=sink.station_id,
                actor=f"device:{sink.device}"[:100],
                outcome="recorded",
                detail=visit.summary(),
                created_at=visit.left_at or visit.entered_at,
            )
            session.add(entry)
            if lot_id is not None:
                visits.append((entry, visit))
    if visits:
        # a unit's stay on the machine joins its (and its LOT's) history, at the time it entered
        await session.flush()
        await add_trace_events(
            session,
            [
                trace_row(
                    kind="device_action",
                    lot_id=entry.lot_id,
                    unit_id=entry.unit_id,
                    recorded_at=visit.entered_at,
                    received_at=stored_at,
                    station_id=entry.station_id,
                    actor=entry.actor,
                    source_id=entry.id,
                    payload={
                        "lot_number": entry.lot_number,
                        "serial_number": entry.serial_number,
                        "action": entry.action,
                        "plugin": entry.plugin,
                        "device": entry.device,
                        "driver": entry.driver,
                        "driver_version": entry.driver_version,
                        "outcome": entry.outcome,
                        "detail": entry.detail,
                    },
                )
                for entry, visit in visits
            ],
        )
    if value_rows:
        await session.execute(insert(MachineValue), value_rows)
    return len(value_rows)


async def _units(session: AsyncSession, serials: set[str]) -> dict[str, tuple[int, int, str]]:
    out: dict[str, tuple[int, int, str]] = {}
    chunk = sorted(serials)
    for i in range(0, len(chunk), 500):
        rows = await session.execute(
            select(Unit.serial_number, Unit.id, Lot.id, Lot.lot_number)
            .join(Lot, Lot.id == Unit.lot_id)
            .where(Unit.serial_number.in_(chunk[i : i + 500]))
        )
        out.update({serial: (unit_id, lot_id, lot_number) for serial, unit_id, lot_id, lot_number in rows})
    return out


async def _states(session: AsyncSession, sink: MachineSink, transitions: list[tuple[datetime, str, str]]) -> None:
    for at, state, reason in transitions:
        await session.execute(
            update(MachineState)
            .where(MachineState.device == sink.device, MachineState.ended_at.is_(None))
            .values(ended_at=at)
        )
        session.add(
            MachineState(
                line_id=sink.line_id,
                station_id=sink.station_id,
                device=sink.device,
                state=state,
                reason=reason,
                source=sink.source,
                started_at=at,
            )
        )
        await session.flush()


async def _counts(session: AsyncSession, sink: MachineSink, batch: Pending) -> None:
    for hour, (good, bad) in sorted(batch.counts.items()):
        stmt = _upsert(session, MachineCount).values(
            device=sink.device, hour_start=hour, line_id=sink.line_id, station_id=sink.station_id, good=good, bad=bad
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["device", "hour_start"],
                set_={"good": MachineCount.good + stmt.excluded.good, "bad": MachineCount.bad + stmt.excluded.bad},
            )
        )
    for counter, (reading, at) in sorted(batch.counters.items()):
        stmt = _upsert(session, MachineCounter).values(device=sink.device, counter=counter, reading=reading, read_at=at)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["device", "counter"],
                set_={"reading": stmt.excluded.reading, "read_at": stmt.excluded.read_at},
            )
        )
