"""``GET /stations/me/cache``: what a station keeps to work while the server is unreachable.

The first sync is a full snapshot, in pages of at most ``max_units`` units (``?page=`` the
``next_page`` the last page gave); each later one asks for the changes since the ``cursor`` the
last answer gave (``?since=``). The change feed is the traceability stream (``trace_events``): every unit
registration, LOT status change and process record writes a row there in its own transaction, so
the rows after a watermark name every LOT and unit whose cached state may have changed; LOT edits
that change no status (product, quantity, line) are found by ``lots.updated_at``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from ... import cursors
from ...db.base import utcnow
from ...db.models import Lot, Process, ProcessDefectCode, ProcessRecord, Station, TraceEvent, Unit
from ...errors import Forbidden, Unprocessable
from ..deps import Principal, SessionDep, SettingsDep, require_permission

router = APIRouter(prefix="/stations", tags=["stations"])

#: LOT statuses a station may still work on (and so keeps in its cache)
OPEN_STATUSES = ("created", "in_progress", "on_hold")

#: trace kinds that change what a station caches (scans and device actions change nothing there)
CACHE_KINDS = ("registration", "status_change", "process_record")

#: how far back a delta looks again. A trace row's id is taken when it is inserted, but becomes
#: visible when its transaction commits: a row with a lower id may appear after a higher one was
#: read. Rows younger than this are read again by the next delta (applying a change twice is
#: harmless), so a write transaction may take up to this long without a station missing it; the
#: same margin covers clock differences between kernel nodes for ``lots.updated_at``.
SETTLE = timedelta(minutes=5)


def encode_sync_cursor(trace_id: int, at: datetime, *, secret: str, station_id: int) -> str:
    """The opaque ``cursor`` of a sync of station ``station_id``: every trace row up to ``trace_id``
    is in it, and LOT edits up to ``at`` (server time). Signed with ``secret`` (``SECRET_KEY``,
    :mod:`mes_kernel.cursors`) for that station alone."""
    return cursors.sign(f"c1|{trace_id}|{at.astimezone(UTC).isoformat()}", secret=secret,
                        purpose=f"sync:station:{station_id}")


def encode_page_token(trace_id: int, at: datetime, after_unit_id: int, *, secret: str, station_id: int) -> str:
    """The opaque ``next_page`` of a full snapshot of station ``station_id``: the snapshot's cursor
    and the last unit id sent. Signed as the sync cursor is."""
    return cursors.sign(f"p1|{trace_id}|{at.astimezone(UTC).isoformat()}|{after_unit_id}", secret=secret,
                        purpose=f"page:station:{station_id}")


def decode_page_token(page: str, *, secret: str, station_id: int) -> tuple[int, datetime, int]:
    """``(trace_id, at, after_unit_id)`` of a ``next_page`` this server gave station ``station_id``;
    ``Unprocessable`` ``INVALID_CURSOR`` otherwise — changed, cut short, signed with another key or
    given another station (the station then starts the snapshot again)."""
    try:
        raw = cursors.unsign(page, secret=secret, purpose=f"page:station:{station_id}")
        if raw is None:
            raise ValueError(page)
        version, ident, at, after = raw.split("|")
        moment = datetime.fromisoformat(at)
        if (
            version != "p1"
            or not ident.isdigit()
            or not after.isdigit()
            or max(int(ident), int(after)) >= 2**63
            or moment.tzinfo is None
        ):
            raise ValueError(raw)
        return int(ident), moment.astimezone(UTC), int(after)
    except (ValueError, OverflowError):
        raise Unprocessable(
            "page is not a next_page this server gave: start the snapshot again (no page)",
            code="INVALID_CURSOR",
            field="page",
        ) from None


def decode_sync_cursor(cursor: str, *, secret: str, station_id: int) -> tuple[int, datetime]:
    """``(trace_id, at)`` of a cursor this server gave station ``station_id``; ``Unprocessable``
    ``INVALID_CURSOR`` otherwise — changed, cut short, signed with another key or given another
    station, whose cache holds other LOTs (the station then asks for a full snapshot)."""
    try:
        raw = cursors.unsign(cursor, secret=secret, purpose=f"sync:station:{station_id}")
        if raw is None:
            raise ValueError(cursor)
        version, ident, at = raw.split("|")
        moment = datetime.fromisoformat(at)
        if version != "c1" or not ident.isdigit() or int(ident) >= 2**63 or moment.tzinfo is None:
            raise ValueError(raw)
        return int(ident), moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Unprocessable(
            "since is not a cursor this server gave: sync in full (no since)", code="INVALID_CURSOR", field="since"
        ) from None


@router.get("/me/cache", summary="The station's offline cache: open LOTs of its line, units, routing, defect lists")
async def my_cache(
    session: SessionDep,
    settings: SettingsDep,
    principal: Principal = require_permission("stations:heartbeat"),
    max_units: Annotated[int, Query(ge=1, le=200_000, description="at most this many units (a page)")] = 50_000,
    since: Annotated[
        str | None, Query(max_length=200, description="the cursor of the last sync: answer only what changed since")
    ] = None,
    page: Annotated[
        str | None, Query(max_length=300, description="the next_page of the last answer: the snapshot's next page")
    ] = None,
) -> dict[str, Any]:
    """A snapshot, taken in one read, of what the station's agent answers scans from while offline.

    Without ``since`` (the first sync) the answer is ``"mode": "full"``; with the ``cursor`` a
    previous answer gave it is ``"mode": "delta"``: ``lots`` and ``units`` hold only what changed
    (a new unit, a new pass, a LOT's new status), each in its whole current state, and
    ``removed_lots`` the LOT numbers the station must drop with their units (closed, scrapped, or
    moved to another line). A LOT whose own row changed comes with all its units. ``processes`` are
    always whole (a short list). Every answer carries the ``cursor`` for the next sync. A delta that
    would hold more than ``max_units`` units (or changes) answers in full instead. ``INVALID_CURSOR`` (422) for a
    ``since`` this server did not give.

    ``lots``: the LOTs open on the station's line (and those on no line), ``units`` of those LOTs
    with ``completed_processes`` (the process ids a pass was recorded for, for the unit itself or
    the whole LOT), ``processes`` in routing order with each process's ``defect_codes``. ``synced_at``
    is the server's time of the snapshot.

    A full snapshot of more than ``max_units`` units comes in pages, by unit id: a page that is not
    the last has ``next_page`` (ask again with ``?page=``), ``truncated: true`` and no ``cursor``;
    the last page has the ``cursor`` of the first page's moment, so the first delta brings every
    change made while the pages were read (each unit is in exactly one page; LOTs come with every
    page, the later page's state winning). A ``page`` stays valid: a station that lost the
    connection midway asks for the same page again. ``INVALID_CURSOR`` (422) for a ``page`` this
    server did not give, or one sent together with ``since``.
    """
    if principal.station_id is None:
        raise Forbidden("only stations have an offline cache", code="NOT_A_STATION")
    if page is not None and since is not None:
        raise Unprocessable(
            "page continues a full snapshot: send it without since", code="INVALID_CURSOR", field="page"
        )
    signed = {"secret": settings.secret_key, "station_id": principal.station_id}
    watermark = decode_sync_cursor(since, **signed) if since is not None else None
    resumed = decode_page_token(page, **signed) if page is not None else None
    synced_at = utcnow()
    station = await session.get(Station, principal.station_id)
    line_id = station.line_id if station else None
    on_line = or_(Lot.line_id.is_(None), Lot.line_id == line_id) if line_id else Lot.line_id.is_(None)
    lot_filter = Lot.status.in_(OPEN_STATUSES) & on_line
    if watermark is not None:
        delta = await _delta(
            session, watermark=watermark, now=synced_at, lot_filter=lot_filter, max_units=max_units, signed=signed
        )
        if delta is not None:
            return {
                "mode": "delta",
                "synced_at": synced_at.isoformat(),
                "station": principal.station_code,
                **delta,
                "truncated": False,
                "processes": await _processes(session),
            }
    if resumed is not None:
        snapshot_trace_id, snapshot_at, after_unit_id = resumed
    else:
        snapshot_trace_id, snapshot_at, after_unit_id = await _settled_trace_id(session, synced_at), synced_at, 0
    lots = (await session.execute(select(Lot).where(lot_filter).order_by(Lot.id))).scalars().all()
    lot_ids = {lot.id: lot.lot_number for lot in lots}

    units: list[dict[str, Any]] = []
    passed_by_unit: dict[int, set[str]] = {}
    passed_by_lot: dict[int, set[str]] = {}
    truncated = False
    next_page: str | None = None
    if lot_ids:
        rows = (
            await session.execute(
                select(Unit.id, Unit.serial_number, Unit.status, Unit.lot_id)
                .where(Unit.lot_id.in_(lot_ids), Unit.id > after_unit_id)
                .order_by(Unit.id)
                .limit(max_units + 1)
            )
        ).all()
        truncated = len(rows) > max_units
        rows = rows[:max_units]
        if truncated:
            next_page = encode_page_token(snapshot_trace_id, snapshot_at, rows[-1].id, **signed)
        # the LOTs' own passes, and the passes of this page's units only (by id range: a page of
        # 50,000 units never becomes 50,000 bound parameters)
        this_page = ProcessRecord.unit_id.is_(None)
        if rows:
            this_page = or_(this_page, ProcessRecord.unit_id.between(rows[0].id, rows[-1].id))
        passes = (
            await session.execute(
                select(ProcessRecord.lot_id, ProcessRecord.unit_id, ProcessRecord.process_id)
                .where(ProcessRecord.lot_id.in_(lot_ids), ProcessRecord.result == "pass", this_page)
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

    return {
        "mode": "full",
        "synced_at": synced_at.isoformat(),
        "station": principal.station_code,
        # a page before the last has units the station lacks and no delta would bring: no cursor
        # (a station that does not follow next_page syncs in full again next time)
        "cursor": None if truncated else encode_sync_cursor(snapshot_trace_id, snapshot_at, **signed),
        "lots": [_lot_out(lot, passed_by_lot) for lot in lots],
        "units": units,
        "truncated": truncated,
        "next_page": next_page,
        "processes": await _processes(session),
    }


def _lot_out(lot: Lot, passed_by_lot: dict[int, set[str]]) -> dict[str, Any]:
    return {
        "lot_number": lot.lot_number,
        "product": lot.product,
        "status": lot.status,
        "quantity": lot.quantity,
        "completed_processes": sorted(passed_by_lot.get(lot.id, set())),
    }


async def _processes(session) -> list[dict[str, Any]]:
    processes = (await session.execute(select(Process).order_by(Process.sequence, Process.id))).scalars().all()
    defects: dict[str, list[dict[str, str]]] = {}
    for code in (
        await session.execute(select(ProcessDefectCode).order_by(ProcessDefectCode.position, ProcessDefectCode.code))
    ).scalars():
        defects.setdefault(code.process_id, []).append({"code": code.code, "name": code.name})
    return [
        {"id": p.id, "name": p.name, "sequence": p.sequence, "defect_codes": defects.get(p.id, [])} for p in processes
    ]


async def _settled_trace_id(session, now: datetime) -> int:
    """The last trace id a snapshot taken ``now`` surely includes: the newest row older than
    ``SETTLE`` (younger ones are read again by the next delta). One backward step of the primary key."""
    found = (
        await session.execute(
            select(TraceEvent.id).where(TraceEvent.received_at < now - SETTLE).order_by(TraceEvent.id.desc()).limit(1)
        )
    ).scalar()
    return int(found or 0)


async def _delta(
    session, *, watermark: tuple[int, datetime], now: datetime, lot_filter: Any, max_units: int, signed: dict[str, Any]
) -> dict[str, Any] | None:
    """``{"cursor", "lots", "units", "removed_lots"}`` changed since ``watermark``; None when more than
    ``max_units`` units changed (the caller answers in full). ``signed``: the cursor's secret and station."""
    after_id, after_at = watermark
    rows = (
        await session.execute(
            select(TraceEvent.id, TraceEvent.lot_id, TraceEvent.unit_id, TraceEvent.kind, TraceEvent.received_at)
            .where(TraceEvent.id > after_id, TraceEvent.kind.in_(CACHE_KINDS))
            .order_by(TraceEvent.id)
            .limit(max_units + 1)
        )
    ).all()
    if len(rows) > max_units:
        return None  # a station away for long: more changes than units to send; a snapshot is cheaper
    # the next watermark: the longest run of rows (by id) that has settled; the rest is read again
    settled_id = after_id
    for row in rows:
        if row.received_at >= now - SETTLE:
            break
        settled_id = row.id
    # a LOT whose own row changed (created, new status, moved to or from this line) comes whole: the
    # station may never have had its units. A LOT-level pass changes only the LOT's own entry (the
    # station adds a LOT's passes to each of its units when it answers).
    lot_changed = set((await session.execute(select(Lot.id).where(Lot.updated_at >= after_at - SETTLE))).scalars())
    touched = sorted(lot_changed | {row.lot_id for row in rows})
    lots: list[Lot] = []
    open_ids: set[int] = set()
    if touched:
        lots = list((await session.execute(select(Lot).where(Lot.id.in_(touched)).order_by(Lot.id))).scalars())
        open_ids = set((await session.execute(select(Lot.id).where(Lot.id.in_(touched), lot_filter))).scalars())
    kept = [lot for lot in lots if lot.id in open_ids]
    removed = [lot.lot_number for lot in lots if lot.id not in open_ids]
    lot_numbers = {lot.id: lot.lot_number for lot in kept}
    whole = sorted(lot_id for lot_id in lot_changed if lot_id in open_ids)
    # units named by a changed row, read through the same range of the feed (a subquery, so a busy
    # hour's thousands of units never become thousands of bound parameters)
    changed_units = select(TraceEvent.unit_id).where(
        TraceEvent.id > after_id, TraceEvent.kind.in_(CACHE_KINDS), TraceEvent.unit_id.is_not(None)
    )
    unit_rows: list[Any] = []
    if lot_numbers:
        unit_rows = (
            await session.execute(
                select(Unit.id, Unit.serial_number, Unit.status, Unit.lot_id)
                .where(or_(Unit.lot_id.in_(whole), Unit.id.in_(changed_units)), Unit.lot_id.in_(sorted(lot_numbers)))
                .order_by(Unit.id)
                .limit(max_units + 1)
            )
        ).all()
    if len(unit_rows) > max_units:
        return None
    sent = {row.id for row in unit_rows}
    passed_by_unit: dict[int, set[str]] = {}
    passed_by_lot: dict[int, set[str]] = {}
    if lot_numbers:
        passes = (
            await session.execute(
                select(ProcessRecord.lot_id, ProcessRecord.unit_id, ProcessRecord.process_id)
                .where(ProcessRecord.lot_id.in_(sorted(lot_numbers)), ProcessRecord.result == "pass")
                .distinct()
            )
        ).all()
        for lot_id, unit_id, process_id in passes:
            if unit_id is None:
                passed_by_lot.setdefault(lot_id, set()).add(process_id)
            elif unit_id in sent:
                passed_by_unit.setdefault(unit_id, set()).add(process_id)
    return {
        "cursor": encode_sync_cursor(settled_id, now, **signed),
        "lots": [_lot_out(lot, passed_by_lot) for lot in kept],
        "units": [
            {
                "serial_number": row.serial_number,
                "status": row.status,
                "lot_number": lot_numbers[row.lot_id],
                "completed_processes": sorted(passed_by_unit.get(row.id, set()) | passed_by_lot.get(row.lot_id, set())),
            }
            for row in unit_rows
        ],
        "removed_lots": removed,
    }
