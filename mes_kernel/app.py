"""The application factory: builds the FastAPI app; its lifespan connects, loads plugins, mounts them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from . import __version__
from .api.routes import audit, auth, health, lines, lots, plugins, records, stations, users
from .audit import seal_pending
from .breakers import BreakerRegistry, MemoryBreakerStore, RedisBreakerStore
from .cache import Cache
from .contracts import BreakerConfig, DeviceKind, HealthCheck, Panel, Permission
from .db.base import make_engine, make_sessionmaker
from .errors import UnhandledErrorMiddleware, install_error_handlers
from .health import HealthAggregator
from .kernel import Kernel
from .logging import configure_logging
from .metrics import MetricsMiddleware, breaker_listener, observe_plugins
from .metrics import router as metrics_router
from .middleware import BodyLimitMiddleware, RateLimiter, RateLimitMiddleware, RequestContextMiddleware
from .notify import Notifier
from .permissions import PermissionTable
from .plugins import PluginManager
from .services.record_writer import RecordWriter
from .settings import Settings

log = structlog.get_logger(__name__)
API_PREFIX = "/api/v1"
WEB_DIST = Path(__file__).parent / "static" / "web"

TAGS = [
    {"name": "auth", "description": "Log in, refresh and log out."},
    {"name": "lots", "description": "LOTs, units (serial numbers) and their history."},
    {"name": "process records", "description": "Process results, idempotent by key."},
    {"name": "processes", "description": "Routing steps."},
    {"name": "stations", "description": "Worker PCs: machine tokens, heartbeats, events."},
    {"name": "lines", "description": "Production lines: enabled plugins, breaker overrides, devices."},
    {"name": "users", "description": "User administration."},
    {"name": "audit", "description": "The append-only audit trail."},
    {"name": "health", "description": "Health tree, liveness, readiness, breakers."},
    {"name": "plugins", "description": "Installed plugins and what they contribute."},
    {"name": "dashboard", "description": "Dashboard data and panels."},
    {"name": "metrics", "description": "Prometheus metrics."},
]


def _redis_client(url: str | None):
    if not url:
        return None
    from redis import asyncio as aioredis

    # A bounded pool that makes a burst of requests wait for a connection (up to 2 s) instead of
    # failing with "Too many connections"; the pub/sub listener holds one of them.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=2.0, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
    )
    return aioredis.Redis(connection_pool=pool)


async def _mount_plugins(app: FastAPI, kernel: Kernel, manager: PluginManager) -> None:
    """Collect every plugin's contributions (each inside its own error boundary) and mount them."""
    records = manager.records
    table: PermissionTable = app.state.permissions
    for name, perms in await manager.call_each("mes_register_permissions"):
        try:
            for perm in perms:
                if not isinstance(perm, Permission):
                    raise TypeError(f"expected Permission, got {type(perm).__name__}")
                table.add(perm, owner=name)
                records[name].permissions.append(perm.name)
        except (TypeError, ValueError) as exc:
            manager.fail(name, f"mes_register_permissions: {exc}")

    for name, configs in await manager.call_each("mes_register_breakers"):
        try:
            for cfg in configs:
                if not isinstance(cfg, BreakerConfig):
                    raise TypeError(f"expected BreakerConfig, got {type(cfg).__name__}")
                kernel.breakers.register(cfg, plugin=name)
                records[name].breakers.append(cfg.name)
        except (TypeError, ValueError) as exc:
            manager.fail(name, f"mes_register_breakers: {exc}")

    from .drivers import list_drivers

    app.state.device_kinds = {}
    for name, kinds in await manager.call_each("mes_register_device_kinds"):
        for kind in kinds:
            if isinstance(kind, DeviceKind):
                app.state.device_kinds[kind.name] = kind
                records[name].drivers += [
                    {"kind": kind.name, "name": d.name, "package": d.package, "version": d.version}
                    for d in list_drivers(kind.namespace)
                ]

    for name, routers in await manager.call_each("mes_register_routers", kernel=kernel):
        try:
            for router in routers:
                app.include_router(router, prefix=API_PREFIX)
                records[name].routes += [
                    f"{','.join(sorted(getattr(r, 'methods', []) or []))} {API_PREFIX}{r.path}"
                    for r in router.routes
                ]
        except Exception as exc:
            manager.fail(name, f"mes_register_routers: {type(exc).__name__}: {exc}")

    checks: list[tuple[str, HealthCheck]] = []
    for name, found in await manager.call_each("mes_register_health_checks", kernel=kernel):
        for check in found:
            if isinstance(check, HealthCheck):
                checks.append((name, check))
                records[name].health_checks.append(check.name)
    app.state.plugin_checks = checks

    panels: list[tuple[str, Panel]] = []
    for name, found in await manager.call_each("mes_register_panels"):
        for panel in found:
            if isinstance(panel, Panel) and panel.kind in Panel.KINDS:
                panels.append((name, panel))
                records[name].panels.append(panel.id)
    app.state.panels = panels
    app.openapi_schema = None  # plugin routes joined after the first schema was built


async def _station_watchdog(kernel: Kernel, notifier: Notifier) -> None:
    """Alert when a station goes silent or its backlog keeps growing."""
    from .services.stations import watch_stations

    while True:
        await asyncio.sleep(kernel.settings.station_watch_interval_seconds)
        try:
            await watch_stations(kernel, notifier)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("station_watch_failed", error=str(exc))


async def _sealer(kernel: Kernel) -> None:
    """Seal audit entries into chained blocks in the background."""
    while True:
        await asyncio.sleep(kernel.settings.audit_seal_interval_seconds)
        try:
            async with kernel.sessionmaker() as session:
                while await seal_pending(session, grace_seconds=kernel.settings.audit_seal_grace_seconds):
                    await session.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("audit_seal_failed", error=str(exc))


async def _partition_keeper(kernel: Kernel) -> None:
    """PostgreSQL housekeeping of process data: keep next months' partitions created ahead (every
    6 hours), fold KPI rollup shards of hours closed for 2 hours (every 10 minutes)."""
    from datetime import UTC, datetime, timedelta

    from .db.partitions import ensure_partitions
    from .services.rollups import fold_shards

    if kernel.engine.dialect.name != "postgresql":
        return
    rounds = 0
    while True:
        try:
            if rounds % 36 == 0:
                created = await ensure_partitions(kernel.engine)
                if created:
                    log.info("partitions_created", partitions=created)
            async with kernel.sessionmaker() as session, session.begin():
                await fold_shards(session, before=datetime.now(UTC) - timedelta(hours=2))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("process_data_housekeeping_failed", error=str(exc))
        rounds += 1
        await asyncio.sleep(600)


def create_app(
    settings: Settings | None = None,
    *,
    extra_plugins: Iterable[Any] = (),
    load_entry_points: bool = True,
) -> FastAPI:
    """Build the app. Nothing connects and no plugin loads until the lifespan starts."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)
    redis = _redis_client(settings.redis_url)
    engine = make_engine(settings)
    cache = Cache(redis, namespace=settings.redis_namespace)
    store = RedisBreakerStore(redis, settings.redis_namespace) if redis else MemoryBreakerStore()
    breakers = BreakerRegistry(store=store)
    kernel = Kernel(settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine), cache=cache,
                    breakers=breakers, redis=redis)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager = PluginManager(safe_mode=settings.plugins_safe_mode, allow=settings.plugins_allow,
                                deny=settings.plugins_deny)
        kernel.plugins = manager
        if load_entry_points:
            manager.load_entry_points()
        for plugin in extra_plugins:
            manager.register(plugin)
        notifier = Notifier(kernel)
        breakers.listeners[:] = [breaker_listener, notifier.breaker_transition]
        await cache.start()
        await _mount_plugins(app, kernel, manager)
        await _apply_line_overrides(kernel)
        await manager.call_each("mes_startup", kernel=kernel)
        app.state.health = HealthAggregator(kernel, app.state.plugin_checks, settings.health_cache_seconds)
        observe_plugins(manager.snapshot())
        writer = RecordWriter(kernel)
        writer.start()
        kernel.state["record_writer"] = writer
        sealer = asyncio.create_task(_sealer(kernel), name="audit-sealer")
        watchdog = asyncio.create_task(_station_watchdog(kernel, notifier), name="station-watchdog")
        keeper = asyncio.create_task(_partition_keeper(kernel), name="partition-keeper")
        kernel.state["notifier"] = notifier
        if settings.environment != "test":
            # Everything built so far lives as long as the process: keep it out of the collector's
            # sweeps, and collect young objects less often. Halved the record path's p95 (bench/).
            # Not in tests, where one process builds hundreds of apps that must be freed.
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 20)
        log.info("kernel_started", version=__version__, database=engine.dialect.name, redis=bool(redis),
                 plugins={r["name"]: r["state"] for r in manager.snapshot()})
        try:
            yield
        finally:
            await writer.close()
            for task in (sealer, watchdog, keeper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await manager.call_each("mes_shutdown", kernel=kernel, fail_on_error=False)
            await cache.close()
            await notifier.close()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="NeuroHub MES",
        version=__version__,
        description="Shop-floor core: LOTs and traceability, audit trail, devices through plugins.",
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.kernel = kernel
    app.state.permissions = PermissionTable()
    app.state.panels = []
    app.state.plugin_checks = []
    app.state.device_kinds = {}
    install_error_handlers(app)

    # Added innermost first: metrics see everything, the request id is set before limits answer.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(
        RateLimitMiddleware, limiter=RateLimiter(redis, settings.redis_namespace), settings=settings, cache=cache
    )
    app.add_middleware(BodyLimitMiddleware, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(MetricsMiddleware)

    for module in (auth, users, lots, records, stations, lines, audit, health, plugins):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(lots.units_router, prefix=API_PREFIX)
    app.include_router(lots.processes_router, prefix=API_PREFIX)
    app.include_router(lines.devices_router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    _mount_web(app)
    return app


async def _apply_line_overrides(kernel: Kernel) -> None:
    from .lines import load_breaker_overrides

    try:
        await load_breaker_overrides(kernel)
    except Exception as exc:  # no schema yet (first start before `mes db upgrade`)
        log.warning("line_overrides_not_loaded", error=str(exc))


def _mount_web(app: FastAPI) -> None:
    """Serve the managers' dashboard build when it is there; a pointer page otherwise."""
    index = WEB_DIST / "index.html"

    @app.get("/", include_in_schema=False)
    async def root():
        if index.exists():  # always revalidated; the hashed assets it names are cached for good
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return HTMLResponse("<h1>NeuroHub MES</h1><p>API docs: <a href='/docs'>/docs</a> · "
                            "<a href='/redoc'>/redoc</a> · health: <a href='/api/v1/health'>/api/v1/health</a></p>")

    if (WEB_DIST / "assets").is_dir():
        from fastapi.staticfiles import StaticFiles

        class ImmutableAssets(StaticFiles):
            async def get_response(self, path, scope):
                response = await super().get_response(path, scope)
                if response.status_code == 200:
                    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
                return response

        app.mount("/assets", ImmutableAssets(directory=WEB_DIST / "assets"), name="web-assets")
