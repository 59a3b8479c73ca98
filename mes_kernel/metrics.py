"""Prometheus metrics, correct under several gunicorn workers (multiprocess mode).

With ``PROMETHEUS_MULTIPROC_DIR`` set (deploy/gunicorn.conf.py sets it), every worker writes its
samples to files there and each scrape builds a fresh registry with ``MultiProcessCollector``; the
gunicorn ``child_exit`` hook marks dead workers. Without it, the default in-process registry.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

log = structlog.get_logger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"], buckets=BUCKETS
)
BREAKER_TRANSITIONS = Counter("mes_breaker_transitions_total", "Breaker transitions", ["breaker", "to"])
HEALTH_CHECKS = Counter("health_check_total", "Health aggregations by overall status", ["status"])
HEALTH_DURATION = Gauge(
    "health_check_duration_seconds", "Duration of a health check", ["check"], multiprocess_mode="max"
)
HEALTH_STATE = Gauge(
    "mes_health_check_state", "Health check state: 0 UP, 1 DEGRADED, 2 DOWN", ["check"], multiprocess_mode="max"
)
PLUGIN_STATE = Gauge(
    "mes_plugin_loaded", "1 when a plugin is in the given state", ["plugin", "state"], multiprocess_mode="max"
)
DB_POOL = Gauge("mes_db_pool_connections", "Database pool connections by use", ["use"], multiprocess_mode="livesum")

STALE_STATEMENT_RETRIES = Counter(
    "mes_db_stale_statement_retries_total",
    "Requests run again after a stale prepared statement (live ALTER TABLE)",
    ["route"],
)

STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
HEALTH_VALUE = {"UP": 0, "DEGRADED": 1, "DOWN": 2}

router = APIRouter(tags=["metrics"])


class MetricsMiddleware:
    """Counts requests and latency by route template (not raw path, which would explode labels)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]
        template = "unmatched"

        async def capture(message):
            nonlocal template
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                template = route_template(scope)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if template != "/metrics":
                labels = (scope["method"], template, str(status[0]))
                REQUESTS.labels(*labels).inc()
                LATENCY.labels(*labels).observe(time.perf_counter() - started)


def route_template(scope) -> str:
    """The matched route's path template with its include prefix (``/api/v1/lots/{lot_number}``).

    FastAPI 0.16x keeps included routers apart and puts the *original* route, whose path lacks the
    include prefix, in ``scope["route"]``. The prefix is what precedes the part of the request path
    that the route's own regex matches. Pinned by ``tests/test_metrics.py``.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if path is None:
        return "unmatched"
    raw = scope.get("path", "")
    if regex is None or regex.match(raw):
        return path
    for i, char in enumerate(raw):
        if char == "/" and i and regex.match(raw[i:]):
            return raw[:i] + path
    return path


def observe_health(tree: dict) -> None:
    HEALTH_CHECKS.labels(tree["status"]).inc()
    for group, component in tree["components"].items():
        for name, item in component.get("checks", {}).items():
            if "checks" in item:  # a plugin's group of checks
                for sub, leaf in item["checks"].items():
                    _observe_leaf(f"{group}.{name}.{sub}", leaf)
            else:
                _observe_leaf(f"{group}.{name}", item)


def _observe_leaf(name: str, item: dict) -> None:
    if item.get("status") == "NOT_CONFIGURED":  # Redis in the embedded mode: nothing to watch
        return
    HEALTH_STATE.labels(name).set(HEALTH_VALUE.get(item.get("status"), 2))
    if "duration_ms" in item:
        HEALTH_DURATION.labels(name).set(item["duration_ms"] / 1000)


async def breaker_listener(key: str, old: str, new: str, _state) -> None:
    BREAKER_TRANSITIONS.labels(key, new).inc()


def observe_plugins(records: list[dict]) -> None:
    for rec in records:
        for state in ("loaded", "disabled", "incompatible", "failed"):
            PLUGIN_STATE.labels(rec["name"], state).set(1 if rec["state"] == state else 0)


def observe_pool(engine) -> None:
    pool = engine.sync_engine.pool
    checked_out = getattr(pool, "checkedout", None)
    if callable(checked_out):
        DB_POOL.labels("checked_out").set(checked_out())
        DB_POOL.labels("idle").set(pool.checkedin())


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return reg
    return REGISTRY


class WorldCollector:
    """Gauges that describe the world, computed for one scrape from the shared truth.

    A gauge set by a worker as a side effect (of a ``/health`` call, a breaker transition) describes
    that worker's last look, and in multiprocess mode a dead worker's file keeps it forever. These are
    read from the database and the breaker store (Redis when configured) by the worker that answers
    the scrape, so every scrape is as true as the shared state, whoever answers and whoever died:

    - ``mes_station_heartbeat_age_seconds{station}``: seconds since the station's last heartbeat
      (``stations.last_heartbeat_at``); stations that never sent one are left out;
    - ``mes_breaker_state{breaker}``: 0 closed, 1 half-open, 2 open (``BreakerRegistry.snapshot``);
    - ``mes_alerts_open{severity}``: alerts raised and not resolved (``alerts`` table);
    - ``mes_world_source_up{source}``: 1 when ``database`` / ``breakers`` could be read for this scrape
      (0 leaves their families out rather than reporting stale values).
    """

    def __init__(self) -> None:
        self.stations: dict[str, float] = {}
        self.breakers: dict[str, int] = {}
        self.alerts: dict[str, int] = {}
        self.up: dict[str, int] = {}

    async def read(self, kernel, now: datetime | None = None) -> WorldCollector:
        """Fill in from the database and the breaker store; ``now`` is injectable for tests."""
        from sqlalchemy import func, select

        from .db.models import Alert, Station

        now = now or datetime.now(UTC)
        try:
            async with kernel.sessionmaker() as session:
                rows = (await session.execute(select(Station.code, Station.last_heartbeat_at))).all()
                alerts = (
                    await session.execute(
                        select(Alert.severity, func.count()).where(Alert.resolved_at.is_(None)).group_by(Alert.severity)
                    )
                ).all()
            self.stations = {code: max(0.0, (now - seen).total_seconds()) for code, seen in rows if seen is not None}
            self.alerts = {severity: count for severity, count in alerts}
            self.up["database"] = 1
        except Exception as exc:
            log.warning("metrics_world_database_unreadable", error=f"{type(exc).__name__}: {exc}"[:300])
            self.up["database"] = 0
        try:
            snapshot = await kernel.breakers.snapshot()
            self.breakers = {key: STATE_VALUE.get(state["state"], 0) for key, state in snapshot.items()}
            self.up["breakers"] = 1
        except Exception as exc:
            log.warning("metrics_world_breakers_unreadable", error=f"{type(exc).__name__}: {exc}"[:300])
            self.up["breakers"] = 0
        return self

    def collect(self):
        up = GaugeMetricFamily(
            "mes_world_source_up", "1 when the source could be read for this scrape", labels=["source"]
        )
        for source, value in self.up.items():
            up.add_metric([source], value)
        yield up
        if self.up.get("database"):
            age = GaugeMetricFamily(
                "mes_station_heartbeat_age_seconds", "Seconds since a station's last heartbeat", labels=["station"]
            )
            for code, seconds in sorted(self.stations.items()):
                age.add_metric([code], seconds)
            yield age
            alerts = GaugeMetricFamily("mes_alerts_open", "Alerts raised and not resolved", labels=["severity"])
            for severity, count in sorted(self.alerts.items()):
                alerts.add_metric([severity], count)
            yield alerts
        if self.up.get("breakers"):
            state = GaugeMetricFamily(
                "mes_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open", labels=["breaker"]
            )
            for key, value in sorted(self.breakers.items()):
                state.add_metric([key], value)
            yield state


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format 0.0.4",
        }
    },
)
async def metrics(request: Request) -> Response:
    kernel = request.app.state.kernel
    observe_pool(kernel.engine)
    world = CollectorRegistry(auto_describe=False)
    world.register(await WorldCollector().read(kernel))
    return Response(generate_latest(registry()) + generate_latest(world), media_type=CONTENT_TYPE_LATEST)
