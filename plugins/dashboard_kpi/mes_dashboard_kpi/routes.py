"""HTTP routes: the dashboard summary, the alerts list, and one small data endpoint per panel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select

from mes_kernel.api.deps import Principal, ReadSessionDep, SessionDep, require_permission
from mes_kernel.audit import write_audit
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import ShiftCalendar
from mes_kernel.kernel import Kernel

from . import drilldown, kpi, oee, ranges, reports
from .shifts import ShiftCalendarIn, check_no_overlap

READ = "dashboard:read"
LOTS_READ = "lots:read"  # the kernel's: LOTs, units and their records (not the executive's)
KPI_READ = "kpi:read"
SHIFTS_WRITE = "shifts:write"


class DashboardSettings(BaseSettings):
    """``MES_DASHBOARD_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MES_DASHBOARD_", extra="ignore")

    timezone: str = "UTC"
    """The plant's IANA time zone: it decides where "today" starts."""
    cache_seconds: float = 5.0
    """How long a computed summary is reused (the web polls every 10 s, per open browser)."""


FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=64,
        description="start: ISO-8601 datetime with offset, or a date in the plant's zone (default: today)",
    ),
]
ToQuery = Annotated[
    str | None,
    Query(
        alias="to",
        max_length=64,
        description="end (exclusive): ISO-8601 datetime with offset, or a date (its whole day included)",
    ),
]
LineQuery = Annotated[str | None, Query(max_length=64, description="line code (default: all lines)")]
TzQuery = Annotated[
    str | None,
    Query(description="IANA time zone that defines 'today' (default: the plant's, MES_DASHBOARD_TIMEZONE)"),
]


def summary_cache_key(zone_name: str) -> str:
    """The kernel-cache key of the summary for one time zone."""
    return f"dashboard_kpi:summary:{zone_name}"


def build_routers(kernel: Kernel, config: DashboardSettings | None = None) -> list[APIRouter]:
    """The plugin's routers, closed over the running kernel and this plugin's settings."""
    config = config or DashboardSettings()
    kpi.plant_zone(config.timezone)  # fail at start-up, not on the first request

    def zone_of(tz: str | None):
        return ranges.zone_named(tz or config.timezone)

    async def cached(key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        get_or_set = getattr(kernel.cache, "get_or_set", None)
        if config.cache_seconds <= 0 or get_or_set is None:
            return await compute()
        return await get_or_set(key, compute, ttl=config.cache_seconds, kind="dashboard")

    dashboard = APIRouter(prefix="/dashboard", tags=["dashboard"], dependencies=[require_permission(READ)])
    alerts = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[require_permission(READ)])

    @dashboard.get("/summary", summary="Production at a glance")
    async def get_summary(session: ReadSessionDep, tz: TzQuery = None) -> dict[str, Any]:
        """LOTs by status, today's process records (pass, fail, first-pass yield), top defect
        codes, records per hour over the last 24 h, stations and devices, open alerts.

        Polled by the dashboard every 10 s; computed at most once per a few seconds per worker
        (``MES_DASHBOARD_CACHE_SECONDS``) and shared between workers through the kernel's cache.
        """
        zone = zone_of(tz)

        async def compute() -> dict[str, Any]:
            return await kpi.summary(
                session=session,
                now=datetime.now(UTC),
                zone=zone,
                silent_after_seconds=kernel.settings.station_silent_after_seconds,
            )

        return await cached(summary_cache_key(zone.key), compute)

    @dashboard.get("/kpi/yield", summary="First-pass yield today (stat panel)")
    async def get_yield(session: ReadSessionDep, tz: TzQuery = None) -> dict[str, Any]:
        """Today's first-pass yield as ``value`` (a ratio 0–1, ``null`` when nothing was tested),
        with the pass/fail counts behind it."""
        zone = zone_of(tz)
        since, until = kpi.day_window(now=datetime.now(UTC), zone=zone)
        results = await kpi.process_results(session=session, since=since, until=until)
        return {
            "value": results["first_pass_yield"],
            "unit": "ratio",
            "day_start": since.isoformat(),
            **results,
        }

    @dashboard.get("/kpi/throughput", summary="Process records per hour (timeseries panel)")
    async def get_throughput(
        session: ReadSessionDep, hours: Annotated[int, Query(ge=1, le=168)] = 24
    ) -> dict[str, Any]:
        """Records per UTC hour, oldest first, zeros included, for the last ``hours`` hours."""
        return {"points": await kpi.throughput_per_hour(session=session, now=datetime.now(UTC), hours=hours)}

    @dashboard.get("/kpi/defects", summary="Defects today by code (bar panel)")
    async def get_defects(
        session: ReadSessionDep, tz: TzQuery = None, limit: Annotated[int, Query(ge=1, le=50)] = 10
    ) -> dict[str, Any]:
        """Failed records today by defect code, most frequent first."""
        since, until = kpi.day_window(now=datetime.now(UTC), zone=zone_of(tz))
        items = await kpi.top_defects(session=session, since=since, until=until, limit=limit)
        return {"items": items, "day_start": since.isoformat()}

    @alerts.get("", summary="Alerts, newest first")
    async def get_alerts(
        session: ReadSessionDep,
        include_resolved: Annotated[bool, Query(description="also list alerts that have cleared")] = False,
        severity: Annotated[str | None, Query(description="only this severity, e.g. critical")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Open alerts (a breaker opened, a station went silent, a backlog grows), newest first,
        with open counts by severity. Polled by the dashboard every 30 s."""
        return await kpi.list_alerts(session=session, include_resolved=include_resolved, severity=severity, limit=limit)

    kpis = APIRouter(prefix="/kpi", tags=["kpi"], dependencies=[require_permission(KPI_READ)])
    calendars = APIRouter(prefix="/lines", tags=["kpi"])

    def zone_for(tz: str | None):
        return ranges.zone_named(tz or config.timezone)

    async def scope(session, since, until, tz, line):
        span = ranges.parse_range(since=since, until=until, zone=zone_for(tz), now=datetime.now(UTC))
        return span, await ranges.line_named(session, line)

    def key_of(name: str, *parts: Any) -> str:
        return f"dashboard_kpi:{name}:" + "|".join("" if p is None else str(p) for p in parts)

    @kpis.get("/oee", summary="OEE per line and per shift over a range")
    async def get_oee(
        session: ReadSessionDep,
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
    ) -> dict[str, Any]:
        """OEE = availability × performance × quality (ISO 22400-2), with what each factor was
        computed from, for the line (or all lines) and for each shift in the range. Planned time
        counts up to now."""
        span, found = await scope(session, since, until, tz, line)
        now = datetime.now(UTC)
        return await cached(
            key_of("oee", span.since, span.until, span.zone.key, line, now.replace(second=0, microsecond=0)),
            lambda: oee.oee(session=session, span=span, line=found, now=now),
        )

    @kpis.get("/yield", summary="First-pass and final yield by process, station or product")
    async def get_yield_by(
        session: ReadSessionDep,
        group_by: Annotated[str, Query(pattern="^(process|station|product)$")] = "process",
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
    ) -> dict[str, Any]:
        """Items first tried in the range, how many passed the first time and in the end, per group."""
        span, found = await scope(session, since, until, tz, line)
        return await cached(
            key_of("yield", group_by, span.since, span.until, line),
            lambda: reports.yields(session=session, group_by=group_by, span=span, line=found),
        )

    @kpis.get("/pareto", summary="Defect Pareto with cumulative percent")
    async def get_pareto(
        session: ReadSessionDep,
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
    ) -> dict[str, Any]:
        """Failed records by defect code, most frequent first, with percent and cumulative percent."""
        span, found = await scope(session, since, until, tz, line)
        return await cached(
            key_of("pareto", span.since, span.until, line),
            lambda: reports.pareto(session=session, span=span, line=found),
        )

    @kpis.get("/output", summary="Output against plan per hour, day or week")
    async def get_output(
        session: ReadSessionDep,
        bucket: Annotated[str, Query(pattern="^(hour|day|week)$")] = "day",
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
    ) -> dict[str, Any]:
        """Items that passed the last routing step (good), items tried there (total), and the
        shifts' planned output, per bucket of the plant's calendar."""
        span, found = await scope(session, since, until, tz, line)
        return await cached(
            key_of("output", bucket, span.since, span.until, span.zone.key, line),
            lambda: reports.output(session=session, span=span, line=found, bucket=bucket),
        )

    @kpis.get(
        "/drilldown",
        summary="The LOTs and units behind a Pareto or yield bar",
        dependencies=[require_permission(LOTS_READ)],
    )
    async def get_drilldown(
        session: ReadSessionDep,
        kind: Annotated[
            str, Query(pattern="^(defect|process|station|product)$", description="the chart the bar is in")
        ],
        key: Annotated[
            str | None,
            Query(
                max_length=64,
                description="defect code, process id, station code (none: records without a station) or product",
            ),
        ] = None,
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
        outcome: Annotated[
            str,
            Query(
                pattern="^(all|first_fail|failed)$",
                description="yield bars: all units, those that failed their first try, or those not passed in the end",
            ),
        ] = "all",
        limit: Annotated[int, Query(ge=1, le=500, description="units per page")] = 50,
        cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
    ) -> dict[str, Any]:
        """The LOTs (with counts, most affected first) and a page of units behind one bar of
        ``/kpi/pareto`` (``kind=defect``) or ``/kpi/yield`` (``kind=process|station|product``),
        over the same ``from``/``to``/``line``/``tz``; totals equal the bar's numbers. Needs
        ``kpi:read`` and ``lots:read``. Shapes: :func:`drilldown.drilldown`, docs/kpi.md."""
        span, found = await scope(session, since, until, tz, line)
        return await drilldown.drilldown(
            session=session,
            kind=kind,
            key=key,
            span=span,
            line=found,
            outcome=outcome,
            limit=limit,
            cursor=cursor,
        )

    @kpis.get("/lines/now", summary="Each line now: LOT, output against plan, OEE, open alerts")
    async def get_lines_now(session: ReadSessionDep, tz: TzQuery = None) -> dict[str, Any]:
        """What the production view shows per line, for the plant's today."""
        zone = zone_for(tz)
        now = datetime.now(UTC)
        return await cached(
            key_of("lines_now", zone.key), lambda: reports.lines_now(session=session, zone=zone, now=now)
        )

    @calendars.get("/{code}/shifts", summary="A line's shift calendar", dependencies=[require_permission(KPI_READ)])
    async def get_shifts(code: str, session: ReadSessionDep) -> dict[str, Any]:
        """The line's shifts (local times of the plant, Monday = 0); empty when none is set."""
        line_row = await ranges.line_named(session, code)
        shifts = (
            await session.execute(select(ShiftCalendar.shifts).where(ShiftCalendar.line_id == line_row.id))
        ).scalar()
        return {"line": code, "shifts": shifts or []}

    @calendars.put("/{code}/shifts", summary="Replace a line's shift calendar")
    async def put_shifts(
        code: str, body: ShiftCalendarIn, session: SessionDep, principal: Principal = require_permission(SHIFTS_WRITE)
    ) -> dict[str, Any]:
        """Replace the line's shifts; overlapping shifts answer 422 ``SHIFTS_OVERLAP``. Audited."""
        check_no_overlap(body.shifts)
        line_row = await ranges.line_named(session, code)
        shifts = [s.model_dump() for s in body.shifts]
        calendar = await session.get(ShiftCalendar, line_row.id)
        before = {"shifts": calendar.shifts} if calendar else None
        if calendar is None:
            session.add(
                ShiftCalendar(line_id=line_row.id, shifts=shifts, updated_by=principal.actor, updated_at=utcnow())
            )
        else:
            calendar.shifts, calendar.updated_by, calendar.updated_at = shifts, principal.actor, utcnow()
        await write_audit(
            session,
            actor=principal.actor,
            action="update" if before else "create",
            entity="shift_calendar",
            entity_id=code,
            before=before,
            after={"shifts": shifts},
        )
        await session.commit()
        return {"line": code, "shifts": shifts}

    return [dashboard, alerts, kpis, calendars]
