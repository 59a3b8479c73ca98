"""HTTP routes: the dashboard summary, the alerts list, and one small data endpoint per panel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic_settings import BaseSettings, SettingsConfigDict

from mes_kernel.api.deps import Principal, RangeReadSessionDep, ReadSessionDep, SessionDep, require_permission
from mes_kernel.cache import CONFIGURATION
from mes_kernel.kernel import Kernel

from . import calendars as shift_calendars
from . import drilldown, kpi, oee, outputs, ranges, reports
from .shifts import ShiftCalendarIn, check_no_overlap

READ = "dashboard:read"
LOTS_READ = "lots:read"  # the kernel's: LOTs, units and their records (not the executive's)
KPI_READ = "kpi:read"
SHIFTS_WRITE = "shifts:write"


class DashboardSettings(BaseSettings):
    """``MES_DASHBOARD_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MES_DASHBOARD_", extra="ignore")

    timezone: str = "UTC"
    """The plant's IANA time zone: it decides where "today" starts (unless a request names its own
    ``tz``), and the shift calendars' times are on its clock (whatever ``tz`` a request names)."""
    cache_seconds: float = 5.0
    """How long a computed answer is reused (the web polls every 10 s, per open browser). Records
    show after at most this; a configuration change (a line's, a step's, a station, a shift
    calendar) on the next request: the answers carry :data:`mes_kernel.cache.CONFIGURATION`'s stamp."""


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
    Query(
        description="IANA time zone that defines 'today', days and weeks (default: the plant's, "
        "MES_DASHBOARD_TIMEZONE); shifts stay on the plant's clock"
    ),
]


def summary_cache_key(zone_name: str) -> str:
    """The kernel-cache key of the summary for one time zone (stamped with the configuration's
    token when cached)."""
    return f"dashboard_kpi:summary:{zone_name}"


def build_routers(kernel: Kernel, config: DashboardSettings | None = None) -> list[APIRouter]:
    """The plugin's routers, closed over the running kernel and this plugin's settings."""
    config = config or DashboardSettings()
    plant = kpi.plant_zone(config.timezone)  # fail at start-up, not on the first request

    def zone_of(tz: str | None):
        return ranges.zone_named(config.timezone if tz is None else tz)  # "tz=" names no zone: 422

    async def cached(key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        get_or_set = getattr(kernel.cache, "get_or_set", None)
        if config.cache_seconds <= 0 or get_or_set is None:
            return await compute()
        # Stamped with the configuration's token: a change of a line, a step, a station or a shift
        # calendar retires every answer computed before it, on every worker (the next request
        # computes anew) — data alone waits out ``cache_seconds``.
        stamp = await kernel.cache.stamp(CONFIGURATION)
        return await get_or_set(f"{key}@{stamp}", compute, ttl=config.cache_seconds, kind="dashboard")

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
                now=kernel.clock(),
                zone=zone,
                silent_after_seconds=kernel.settings.station_silent_after_seconds,
            )

        return await cached(summary_cache_key(zone.key), compute)

    @dashboard.get("/kpi/yield", summary="First-pass yield today (stat panel)")
    async def get_yield(session: ReadSessionDep, tz: TzQuery = None) -> dict[str, Any]:
        """Today's first-pass yield as ``value`` (a ratio 0–1, ``null`` when nothing was tested),
        with the pass/fail counts behind it."""
        zone = zone_of(tz)
        since, until = kpi.day_window(now=kernel.clock(), zone=zone)
        results = await kpi.process_results(session=session, since=since, until=until)
        return {
            "value": results["first_pass_yield"],
            "unit": "ratio",
            "day_start": since.isoformat(),
            **results,
        }

    @dashboard.get("/kpi/throughput", summary="Process records per hour (timeseries panel)")
    async def get_throughput(
        session: ReadSessionDep, hours: Annotated[int, Query(ge=1, le=168)] = 24, tz: TzQuery = None
    ) -> dict[str, Any]:
        """Records per UTC hour, oldest first, zeros included, for the last ``hours`` hours. ``tz``
        is checked as every dashboard route's (422 ``INVALID_TIMEZONE``); the last hours are the
        same in every zone."""
        zone_of(tz)
        return {"points": await kpi.throughput_per_hour(session=session, now=kernel.clock(), hours=hours)}

    @dashboard.get("/kpi/defects", summary="Defects today by code (bar panel)")
    async def get_defects(
        session: ReadSessionDep, tz: TzQuery = None, limit: Annotated[int, Query(ge=1, le=50)] = 10
    ) -> dict[str, Any]:
        """Failed records today by defect code, most frequent first."""
        since, until = kpi.day_window(now=kernel.clock(), zone=zone_of(tz))
        items = await kpi.top_defects(session=session, since=since, until=until, limit=limit)
        return {"items": items, "day_start": since.isoformat()}

    @alerts.get("", summary="Alerts: open ones first, then the latest resolved")
    async def get_alerts(
        session: ReadSessionDep,
        include_resolved: Annotated[bool, Query(description="also list alerts that have cleared")] = False,
        severity: Annotated[str | None, Query(description="only this severity, e.g. critical")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Open alerts (a breaker opened, a station went silent, a backlog grows), newest raised
        first — with ``include_resolved``, followed by the resolved ones, latest resolved first —
        with open counts by severity. Polled by the dashboard every 30 s."""
        return await kpi.list_alerts(session=session, include_resolved=include_resolved, severity=severity, limit=limit)

    kpis = APIRouter(prefix="/kpi", tags=["kpi"], dependencies=[require_permission(KPI_READ)])
    calendars = APIRouter(prefix="/lines", tags=["kpi"])

    async def scope(session, since, until, tz, line):
        span = ranges.parse_range(since=since, until=until, zone=zone_of(tz), now=kernel.clock(), plant=plant)
        return span, await ranges.line_named(session, line)

    def key_of(name: str, *parts: Any) -> str:
        return f"dashboard_kpi:{name}:" + "|".join("" if p is None else str(p) for p in parts)

    @kpis.get("/oee", summary="OEE per line and per shift over a range")
    async def get_oee(
        session: RangeReadSessionDep,
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
        bucket: Annotated[
            str | None,
            Query(
                pattern="^(day|week)$",
                description="per day or ISO 8601 week of the plant's calendar: `buckets` instead of `shifts`",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """OEE = availability × performance × quality (ISO 22400-2), with what each factor was
        computed from, for the line (or all lines) and for each shift in the range — or, with
        ``bucket``, for each day or week (a shift counts in the period it starts in). Planned time
        counts up to now."""
        span, found = await scope(session, since, until, tz, line)
        now = kernel.clock()
        return await cached(
            key_of("oee", span.since, span.until, span.zone.key, line, bucket, now.replace(second=0, microsecond=0)),
            lambda: oee.oee(
                session=session,
                span=span,
                line=found,
                now=now,
                bucket=bucket,
                silent_after=kernel.settings.station_silent_after_seconds,
            ),
        )

    @kpis.get("/yield", summary="First-pass and final yield by process, station or product")
    async def get_yield_by(
        session: RangeReadSessionDep,
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
        session: RangeReadSessionDep,
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
        session: RangeReadSessionDep,
        bucket: Annotated[str, Query(pattern="^(hour|day|week)$")] = "day",
        since: FromQuery = None,
        until: ToQuery = None,
        line: LineQuery = None,
        tz: TzQuery = None,
    ) -> dict[str, Any]:
        """Per bucket of the plant's calendar: items first passing their line's output step
        (``good``), items first tried there (``first_tried``: other items, not a denominator), and
        the shifts' planned output; ``output_steps`` names each line's step (its configured
        ``output_step``, else its highest-sequence step with records; docs/kpi.md)."""
        span, found = await scope(session, since, until, tz, line)
        return await cached(
            key_of("output", bucket, span.since, span.until, span.zone.key, line),
            lambda: outputs.output(session=session, span=span, line=found, bucket=bucket),
        )

    @kpis.get(
        "/drilldown",
        summary="The LOTs and units behind a Pareto or yield bar",
        dependencies=[require_permission(LOTS_READ)],
    )
    async def get_drilldown(
        session: RangeReadSessionDep,
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
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    ) -> dict[str, Any]:
        """The LOTs (with counts, most affected first) and a page of units behind one bar of
        ``/kpi/pareto`` (``kind=defect``) or ``/kpi/yield`` (``kind=process|station|product``),
        over the same ``from``/``to``/``line``/``tz``; totals hold the bar's numbers and what is
        listed, and ``archived`` names the archived months the range covers (their records counted,
        not listed). Needs ``kpi:read`` and ``lots:read``. Shapes: :func:`drilldown.drilldown`,
        docs/kpi.md."""
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
            oldest_station_time=timedelta(days=kernel.settings.station_time_max_age_days),
            secret=kernel.settings.secret_key,
        )

    @kpis.get("/lines/now", summary="Each line now: LOT, output against plan, OEE, open alerts")
    async def get_lines_now(session: ReadSessionDep, tz: TzQuery = None) -> dict[str, Any]:
        """What the production view shows per line, for the plant's today."""
        zone = zone_of(tz)
        now = kernel.clock()
        return await cached(
            key_of("lines_now", zone.key),
            lambda: reports.lines_now(
                session=session,
                zone=zone,
                now=now,
                plant=plant,
                silent_after=kernel.settings.station_silent_after_seconds,
            ),
        )

    @calendars.get(
        "/{code}/shifts",
        summary="A line's shift calendar and its versions",
        dependencies=[require_permission(KPI_READ)],
    )
    async def get_shifts(code: str, session: ReadSessionDep) -> dict[str, Any]:
        """The shifts in force now (times on the plant's clock, ``timezone``; Monday = 0; empty
        when none is), from when (``effective_from``), and every version of the calendar oldest
        first (``versions``: ``{effective_from, until, shifts, updated_by, updated_at}``)."""
        line_row = await ranges.line_at(session, code)
        return await shift_calendars.history(session=session, line=line_row, plant=plant, now=kernel.clock())

    @calendars.put("/{code}/shifts", summary="Change a line's shift calendar from a moment on")
    async def put_shifts(
        code: str,
        body: ShiftCalendarIn,
        session: SessionDep,
        request: Request,
        principal: Principal = require_permission(SHIFTS_WRITE),
    ) -> dict[str, Any]:
        """Put ``shifts`` in force from ``effective_from`` (ISO-8601 datetime with offset, or a date:
        its midnight on the plant's clock; default now) until the calendar's next version; the time
        before keeps the calendar that was in force. Dating it before the plant's today needs
        ``shifts:backdate`` (403 ``FORBIDDEN``); overlapping shifts answer 422 ``SHIFTS_OVERLAP``,
        an unreadable date 422 ``INVALID_EFFECTIVE_FROM``. Audited. Answers as ``GET``."""
        check_no_overlap(body.shifts)
        line_row = await ranges.line_at(session, code)
        now = kernel.clock()
        may_backdate = request.app.state.permissions.allows(principal.role, shift_calendars.SHIFTS_BACKDATE)
        valid_from = shift_calendars.effective_moment(
            body.effective_from, line=line_row, plant=plant, now=now, may_backdate=may_backdate
        )
        await shift_calendars.write_version(
            session=session,
            line=line_row,
            shifts=[s.model_dump() for s in body.shifts],
            valid_from=valid_from,
            actor=principal.actor,
        )
        await session.commit()
        await kernel.cache.invalidate(CONFIGURATION)  # OEE, plan and output answers read the calendar
        return await shift_calendars.history(session=session, line=line_row, plant=plant, now=now)

    return [dashboard, alerts, kpis, calendars]
