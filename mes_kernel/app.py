"""The application factory: builds the FastAPI app; its lifespan connects, loads plugins, mounts them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from . import __version__
from .api.routes import (
    audit,
    auth,
    completions,
    health,
    lines,
    lots,
    plugins,
    records,
    station_cache,
    stations,
    users,
)
from .api.scope import plugin_scope
from .audit_sealer import AuditSealer
from .breakers import BreakerRegistry, MemoryBreakerStore, RedisBreakerStore
from .cache import Cache
from .compression import JsonGzipMiddleware, accepted_encodings
from .contracts import BreakerConfig, DeviceKind, HealthCheck, Panel, Permission
from .db.base import make_engine, make_sessionmaker
from .deadlines import wait_at_most
from .errors import StaleStatementRetryMiddleware, UnhandledErrorMiddleware, install_error_handlers
from .health import HealthAggregator
from .inputguard import InputGuardMiddleware
from .kernel import Kernel
from .logging import AccessLogMiddleware, configure_logging
from .machine_data import MachineDataHub
from .metrics import MetricsMiddleware, breaker_listener, observe_plugins
from .metrics import router as metrics_router
from .middleware import BodyLimitMiddleware, RequestContextMiddleware, SecurityHeadersMiddleware
from .notify import Notifier
from .openapi import build_openapi
from .permissions import PermissionTable
from .plugins import PluginManager
from .ratelimit import RateLimiter, RateLimitMiddleware
from .runtime import RuntimeConfig
from .security import ensure_secret_key
from .services.record_writer import RecordWriter
from .settings import Settings
from .startup import Step, database_answers, run_steps, wait_for_database

log = structlog.get_logger(__name__)
API_PREFIX = "/api/v1"
WEB_DIST = Path(__file__).parent / "static" / "web"

TAGS = [
    {"name": "auth", "description": "Log in, refresh and log out."},
    {"name": "lots", "description": "LOTs, units (serial numbers) and their history."},
    {"name": "process records", "description": "Process results, idempotent by key."},
    {"name": "processes", "description": "Routing steps."},
    {"name": "stations", "description": "Worker PCs: machine tokens, heartbeats, events, offline cache."},
    {"name": "completions", "description": "Completion files from test equipment: schema, attachments."},
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
            manager.fail(name, f"mes_register_permissions: {exc}", hook="mes_register_permissions", error=str(exc))

    for name, configs in await manager.call_each("mes_register_breakers"):
        try:
            for cfg in configs:
                if not isinstance(cfg, BreakerConfig):
                    raise TypeError(f"expected BreakerConfig, got {type(cfg).__name__}")
                kernel.breakers.register(cfg, plugin=name)
                records[name].breakers.append(cfg.name)
        except (TypeError, ValueError) as exc:
            manager.fail(name, f"mes_register_breakers: {exc}", hook="mes_register_breakers", error=str(exc))

    from .drivers import list_drivers

    app.state.device_kinds = {}
    app.state.device_kind_owners = {}
    for name, kinds in await manager.call_each("mes_register_device_kinds"):
        for kind in kinds:
            if isinstance(kind, DeviceKind):
                app.state.device_kinds[kind.name] = kind
                app.state.device_kind_owners[kind.name] = name
                records[name].drivers += [
                    {"kind": kind.name, "name": d.name, "package": d.package, "version": d.version}
                    for d in list_drivers(kind.namespace)
                ]

    for name, routers in await manager.call_each("mes_register_routers", kernel=kernel):
        try:
            for router in routers:
                # Behind the kernel's scope: refused while the plugin is switched off, and to a
                # station whose line does not enable it (mes_kernel.api.scope).
                app.include_router(router, prefix=API_PREFIX, dependencies=[plugin_scope(name)])
                records[name].routes += [
                    f"{','.join(sorted(getattr(r, 'methods', []) or []))} {API_PREFIX}{r.path}" for r in router.routes
                ]
        except Exception as exc:
            manager.fail(
                name, f"mes_register_routers: {type(exc).__name__}: {exc}", hook="mes_register_routers", error=str(exc)
            )

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
            endpoint = _panel_endpoint(panel.endpoint) if isinstance(panel, Panel) else None
            if endpoint and panel.kind in Panel.KINDS:
                panels.append((name, dataclasses.replace(panel, endpoint=endpoint)))
                records[name].panels.append(panel.id)
            else:
                log.warning(
                    "panel_refused",
                    plugin=name,
                    panel=getattr(panel, "id", repr(panel)),
                    reason="not a Panel, unknown kind, or an endpoint outside this server's API",
                )
    app.state.panels = panels
    app.openapi_schema = None  # plugin routes joined after the first schema was built


def _panel_endpoint(endpoint: str) -> str | None:
    """The one form of a panel's data endpoint: a path on this server under ``/api/v1``. A path
    relative to ``/api/v1`` (``/labels/stats/today``) is completed; a URL elsewhere is refused."""
    if not isinstance(endpoint, str) or "://" in endpoint or endpoint.startswith("//"):
        return None
    path = endpoint if endpoint.startswith("/") else "/" + endpoint
    return path if path.startswith(API_PREFIX + "/") else API_PREFIX + path


async def _station_watchdog(kernel: Kernel, notifier: Notifier) -> None:
    """Alert when a station goes silent or its backlog keeps growing. After a pause (the kernel
    starting, the database not answering) stations get time to report before they are called
    silent (``watching_since``, see :func:`~mes_kernel.services.stations.watch_stations`)."""
    from .services.stations import watch_stations

    watching_since = kernel.clock()
    while True:
        await asyncio.sleep(kernel.settings.station_watch_interval_seconds)
        if "database_waiting" in kernel.state:  # said once per retry by the waiter, not here too
            watching_since = None
            continue
        try:
            watching_since = watching_since or kernel.clock()
            await watch_stations(kernel, notifier, watching_since=watching_since)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            watching_since = None
            log.warning("station_watch_failed", error=str(exc))


async def _partition_keeper(kernel: Kernel) -> None:
    """PostgreSQL housekeeping of process data: keep next months' partitions created ahead (every
    6 hours), fold the KPI rollup shards recording transactions wrote (every
    ``KPI_FOLD_INTERVAL_SECONDS``, one worker at a time), so dashboards sum few rows."""
    import time

    from .db.partitions import ensure_partitions
    from .services.rollups import fold_shards

    if kernel.engine.dialect.name != "postgresql":
        return
    next_ensure = 0.0
    while True:
        try:
            if time.monotonic() >= next_ensure:
                next_ensure = time.monotonic() + 6 * 3600
                created = await ensure_partitions(kernel.engine)
                if created:
                    log.info("partitions_created", partitions=created)
            async with kernel.sessionmaker() as session, session.begin():
                await fold_shards(session, only_if_free=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("process_data_housekeeping_failed", error=str(exc))
        await asyncio.sleep(kernel.settings.kpi_fold_interval_seconds)


def create_app(
    settings: Settings | None = None,
    *,
    extra_plugins: Iterable[Any] = (),
    load_entry_points: bool = True,
    on_database_ready: Iterable[Step] = (),
    server: bool = True,
) -> FastAPI:
    """Build the app. Nothing connects and no plugin loads until the lifespan starts.

    ``on_database_ready``: start-up steps that need the database (``mes serve`` passes the schema
    upgrade and the first admin when the database was not reachable yet); they run before serving
    when the database answers at start, else as soon as it does (see ``startup.py``).
    ``server=False`` builds the kernel for a command-line tool (``mes line apply`` …): plugins load,
    but it does not follow configuration changes and does not log ``kernel_started``.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)
    ensure_secret_key(settings)
    redis = _redis_client(settings.redis_url)
    engine = make_engine(settings)
    cache = Cache(redis, namespace=settings.redis_namespace)
    store = RedisBreakerStore(redis, settings.redis_namespace) if redis else MemoryBreakerStore()
    breakers = BreakerRegistry(store=store)
    kernel = Kernel(
        settings=settings,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        cache=cache,
        breakers=breakers,
        redis=redis,
    )
    kernel.machine_data = MachineDataHub(
        kernel,
        flush_interval=settings.machine_data_flush_seconds,
        max_pending_values=settings.machine_data_max_pending,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager = PluginManager(
            safe_mode=settings.plugins_safe_mode, allow=settings.plugins_allow, deny=settings.plugins_deny
        )
        kernel.plugins = manager
        runtime = RuntimeConfig(kernel, poll_seconds=settings.config_poll_seconds)
        kernel.runtime = runtime
        app.state.permissions.owner_active = manager.is_active
        runtime.listeners.append(lambda: observe_plugins(manager.snapshot()))
        if load_entry_points:
            manager.load_entry_points()
        for plugin in extra_plugins:
            manager.register(plugin)
        notifier = Notifier(kernel)
        breakers.listeners[:] = [breaker_listener, notifier.breaker_transition]
        await cache.start()
        await _mount_plugins(app, kernel, manager)
        steps = list(on_database_ready)
        waiter = None
        if (reason := await database_answers(kernel)) is None:
            await run_steps(steps)
        else:  # started before the database: serve liveness now, full service once it answers
            kernel.state["database_waiting"] = reason
            waiter = asyncio.create_task(wait_for_database(kernel, steps, first_reason=reason), name="database-waiter")
        # The line configuration follows the database's version; until the database answers, the
        # periodic check keeps trying (runtime.py).
        if server:
            await runtime.start()
        else:
            await _load_runtime_once(runtime)
        await kernel.machine_data.start()
        # Not for a plugin switched off in the database: its start-up runs when it is switched on,
        # and switching it off runs its shut-down (runtime.py follows the switches).
        # Plugins' background work (machine connectors …) runs in a server only, not in `mes line apply`.
        kernel.state["serving"] = server
        await manager.start(kernel=kernel)
        app.state.health = HealthAggregator(kernel, app.state.plugin_checks, settings.health_cache_seconds)
        runtime.listeners.append(app.state.health.invalidate)
        observe_plugins(manager.snapshot())
        writer = RecordWriter(kernel)
        writer.start()
        kernel.state["record_writer"] = writer
        kernel.state["audit_sealer"] = audit_sealer = AuditSealer(kernel)
        sealer = asyncio.create_task(audit_sealer.run(), name="audit-sealer")
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
        if server:
            log.info(
                "kernel_started",
                version=__version__,
                database=engine.dialect.name,
                redis=bool(redis),
                plugins={r["name"]: r["state"] for r in manager.snapshot()},
            )
        try:
            yield
        finally:
            await runtime.close()
            await writer.close()
            for task in (sealer, watchdog, keeper, waiter):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await manager.stop(kernel=kernel)
            try:  # the last machine data is written; a database that does not answer must not hang shut-down
                await wait_at_most(kernel.machine_data.aclose(), 15.0)
            except TimeoutError:
                log.error("machine_data_close_timeout", seconds=15.0)
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
        docs_url=None,
        redoc_url=None,
    )
    app.openapi = lambda: build_openapi(app)
    app.state.kernel = kernel
    app.state.permissions = PermissionTable()
    app.state.panels = []
    app.state.plugin_checks = []
    app.state.device_kinds = {}
    app.state.device_kind_owners = {}
    install_error_handlers(app)

    # Added innermost first: metrics see everything, the request id is set before limits answer,
    # limits count before the validation layer reads a body.
    app.add_middleware(StaleStatementRetryMiddleware)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=RateLimiter(settings.redis_url, settings.redis_namespace),
        settings=settings,
        cache=cache,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body=settings.max_body_bytes,
        max_upload=settings.max_upload_bytes,
        streamed=frozenset({completions.ATTACHMENT_UPLOAD_PATH}),
    )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(AccessLogMiddleware, cache=cache)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    # outermost: everything inside (metrics, access log, limits) sees the answer as the app wrote it
    app.add_middleware(JsonGzipMiddleware)

    for module in (auth, users, lots, records, station_cache, stations, lines, audit, health, plugins, completions):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(lots.units_router, prefix=API_PREFIX)
    app.include_router(lots.processes_router, prefix=API_PREFIX)
    app.include_router(lines.devices_router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    _mount_docs(app)
    _mount_web(app)
    return app


async def _load_runtime_once(runtime: RuntimeConfig) -> None:
    try:
        await runtime.refresh(force=True)
    except Exception as exc:  # no schema yet (first start before `mes db upgrade`)
        log.warning("runtime_config_not_loaded", error=str(exc))


def _mount_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts from an installed package, not a CDN:
    a plant network is often offline. The assets ship in ``fastapi-offline``."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


def _mount_web(app: FastAPI) -> None:
    """Serve the managers' dashboard build when it is there; a pointer page otherwise."""
    index = WEB_DIST / "index.html"

    @app.get("/", include_in_schema=False)
    async def root():
        if index.exists():  # always revalidated; the hashed assets it names are cached for good
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(
            "<h1>NeuroHub MES</h1><p>API docs: <a href='/docs'>/docs</a> · "
            "<a href='/redoc'>/redoc</a> · health: <a href='/api/v1/health'>/api/v1/health</a></p>"
        )

    if (WEB_DIST / "assets").is_dir():
        from fastapi.staticfiles import StaticFiles

        class ImmutableAssets(StaticFiles):
            """Hashed build assets, cached for good; the build's `.br`/`.gz` twin when the client accepts it."""

            async def get_response(self, path, scope):
                response = await super().get_response(path, scope)
                if response.status_code != 200:
                    return response
                headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
                accepted = accepted_encodings(scope)
                for encoding, suffix in (("br", ".br"), ("gzip", ".gz")):
                    if encoding not in accepted:
                        continue
                    full_path, stat_result = self.lookup_path(path + suffix)
                    if stat_result is not None:
                        return FileResponse(
                            full_path,
                            stat_result=stat_result,
                            media_type=response.media_type,
                            headers={**headers, "Content-Encoding": encoding},
                        )
                response.headers.update(headers)
                return response

        app.mount("/assets", ImmutableAssets(directory=WEB_DIST / "assets"), name="web-assets")
