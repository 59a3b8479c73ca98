"""A line's shift calendar over time: versions in force from a moment on (``valid_from``), read and
written through ``GET/PUT /lines/{code}/shifts``.

A change applies from ``effective_from`` on (default: now) and never rewrites the plan, availability
or OEE of the time before it: every report takes, moment by moment, the version in force then
(:func:`shifts.versioned_occurrences`). Who may date a change back: anyone who may edit the calendar
(``shifts:write``) to the start of the plant's today (a calendar typed in at 10:00 for today's early
shift); earlier only a holder of ``shifts:backdate`` (admin by default), e.g. to correct a wrong
entry or give a line registered late its history. A change dated before the line was created
counts from the line's creation, unless dated back by a holder of ``shifts:backdate``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.audit import write_audit
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import Line, ShiftCalendarVersion
from mes_kernel.errors import Forbidden

from .kpi import day_window
from .ranges import _moment

SHIFTS_BACKDATE = "shifts:backdate"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


async def _versions(session: AsyncSession, line: Line) -> list[ShiftCalendarVersion]:
    query = select(ShiftCalendarVersion).where(ShiftCalendarVersion.line_id == line.id)
    return list((await session.execute(query.order_by(ShiftCalendarVersion.valid_from))).scalars())


def in_force(versions: list[ShiftCalendarVersion], at: datetime) -> ShiftCalendarVersion | None:
    """The version in force at ``at`` (``versions`` oldest first); None before the first."""
    current = None
    for version in versions:
        if version.valid_from > at:
            break
        current = version
    return current


async def history(*, session: AsyncSession, line: Line, plant: ZoneInfo, now: datetime) -> dict[str, Any]:
    """``{line, timezone, effective_from, shifts, versions}``: the calendar in force ``now``
    (``shifts`` empty and ``effective_from`` null when none is yet), and every version oldest first
    as ``{effective_from, until, shifts, updated_by, updated_at}`` (``until``: the next version's
    ``effective_from``, null for the last). Times UTC ISO-8601; shift times on the plant's clock
    (``timezone``)."""
    versions = await _versions(session, line)
    current = in_force(versions, now)
    return {
        "line": line.code,
        "timezone": plant.key,
        "effective_from": _iso(current.valid_from) if current else None,
        "shifts": current.shifts if current else [],
        "versions": [
            {
                "effective_from": _iso(v.valid_from),
                "until": _iso(versions[i + 1].valid_from) if i + 1 < len(versions) else None,
                "shifts": v.shifts,
                "updated_by": v.updated_by,
                "updated_at": _iso(v.updated_at),
            }
            for i, v in enumerate(versions)
        ],
    }


def effective_moment(value: str | None, *, line: Line, plant: ZoneInfo, now: datetime, may_backdate: bool) -> datetime:
    """When a change takes effect (UTC, always on a whole UTC hour — rounded down): ``value`` (an
    ISO-8601 datetime with offset, or a date: its midnight on the plant's clock), default the start
    of ``now``'s hour (the KPIs count whole
    rollup hours, each for the shift its start falls in: a change on the hour splits none).
    ``Unprocessable`` (``INVALID_EFFECTIVE_FROM``, field ``effective_from``) when unreadable or
    outside 1900-9998; ``Forbidden`` (``FORBIDDEN``, permission ``shifts:backdate``) when before
    the start of the plant's today and ``may_backdate`` is false. Unless ``may_backdate``, never
    before the hour the line was created in."""
    if value is None:
        moment = _hour(now)
    else:
        moment = _moment(value, field="effective_from", zone=plant, end=False, code="INVALID_EFFECTIVE_FROM")
    today, _ = day_window(now=now, zone=plant)
    if value is not None and moment < today and not may_backdate:
        raise Forbidden(
            f"a shift calendar dated before today ({today.astimezone(plant).date()}) needs {SHIFTS_BACKDATE}",
            code="FORBIDDEN",
            permission=SHIFTS_BACKDATE,
            field="effective_from",
        )
    # on the hour (rollup hours are UTC hours, each counted for the shift its first instant is in): a
    # version from 04:30 would plan 04:30–05:00 but count none of the 04:00 hour's parts
    moment = _hour(moment)
    if not may_backdate:
        moment = max(moment, today)
        if line.created_at is not None:
            moment = max(moment, _hour(line.created_at))
    return moment


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def write_version(
    *, session: AsyncSession, line: Line, shifts: list[dict[str, Any]], valid_from: datetime, actor: str
) -> None:
    """Put ``shifts`` in force from ``valid_from`` until the line's next version (a version dated
    later stays); a version at the same moment is replaced. Audited (``entity = shift_calendar``,
    ``before``: the version in force at ``valid_from`` until now). The caller commits."""
    versions = await _versions(session, line)
    same = next((v for v in versions if v.valid_from == valid_from), None)
    before = in_force(versions, valid_from)
    before_body = {"effective_from": _iso(before.valid_from), "shifts": before.shifts} if before else None
    if same is not None:
        same.shifts, same.updated_by, same.updated_at = shifts, actor, utcnow()
    else:
        session.add(
            ShiftCalendarVersion(
                line_id=line.id, valid_from=valid_from, shifts=shifts, updated_by=actor, updated_at=utcnow()
            )
        )
    await write_audit(
        session,
        actor=actor,
        action="update" if before else "create",
        entity="shift_calendar",
        entity_id=line.code,
        before=before_body,
        after={"effective_from": _iso(valid_from), "shifts": shifts},
    )
