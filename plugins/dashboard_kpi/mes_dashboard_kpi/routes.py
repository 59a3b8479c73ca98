"""HTTP routes: the dashboard summary, the alerts list, and one small data endpoint per panel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic_settings import BaseSettings, SettingsConfigDict

from mes_kernel.api.deps import SessionDep, require_permission
from mes_kernel.errors import Unprocessable
from mes_kernel.kernel import Kernel

from . import kpi

READ = "dashboard:read"


class DashboardSettings(BaseSettings):
    """``MES_DASHBOARD_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MES_DASHBOARD_", extra="ignore")

    timezone: str = "UTC"
    """The plant's IANA time zone: it decides where "today" starts."""
    cache_seconds: float = 5.0
    """How long a computed summary is reused (the web polls every 10 s, per open browser)."""


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
        try:
            return kpi.plant_zone(tz or config.timezone)
        except ValueError as exc:
            raise Unprocessable(str(exc), field="tz") from None

    async def cached(key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        get_or_set = getattr(kernel.cache, "get_or_set", None)
        if config.cache_seconds <= 0 or get_or_set is None:
            return await compute()
        return await get_or_set(key, compute, ttl=config.cache_seconds, kind="dashboard")

    dashboard = APIRouter(prefix="/dashboard", tags=["dashboard"], dependencies=[require_permission(READ)])
    alerts = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[require_permission(READ)])

    @dashboard.get("/summary", summary="Production at a glance")
    async def get_summary(session: SessionDep, tz: TzQuery = None) -> dict[str, Any]:
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
    async def get_yield(session: SessionDep, tz: TzQuery = None) -> dict[str, Any]:
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
    async def get_throughput(session: SessionDep, hours: Annotated[int, Query(ge=1, le=168)] = 24) -> dict[str, Any]:
        """Records per UTC hour, oldest first, zeros included, for the last ``hours`` hours."""
        return {"points": await kpi.throughput_per_hour(session=session, now=datetime.now(UTC), hours=hours)}

    @dashboard.get("/kpi/defects", summary="Defects today by code (bar panel)")
    async def get_defects(
        session: SessionDep, tz: TzQuery = None, limit: Annotated[int, Query(ge=1, le=50)] = 10
    ) -> dict[str, Any]:
        """Failed records today by defect code, most frequent first."""
        since, until = kpi.day_window(now=datetime.now(UTC), zone=zone_of(tz))
        items = await kpi.top_defects(session=session, since=since, until=until, limit=limit)
        return {"items": items, "day_start": since.isoformat()}

    @alerts.get("", summary="Alerts, newest first")
    async def get_alerts(
        session: SessionDep,
        include_resolved: Annotated[bool, Query(description="also list alerts that have cleared")] = False,
        severity: Annotated[str | None, Query(description="only this severity, e.g. critical")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Open alerts (a breaker opened, a station went silent, a backlog grows), newest first,
        with open counts by severity. Polled by the dashboard every 30 s."""
        return await kpi.list_alerts(session=session, include_resolved=include_resolved, severity=severity, limit=limit)

    return [dashboard, alerts]
