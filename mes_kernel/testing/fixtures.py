"""Pytest fixtures for the kernel and its plugins: a fresh database per test, an app, a client, users.

Auto-loaded as a pytest plugin (entry point ``pytest11``). Every test that uses ``client`` runs on
SQLite and — when ``MES_TEST_DATABASE_URL`` points at a PostgreSQL server — again on PostgreSQL
with Redis (``MES_TEST_REDIS_URL``). Register a plugin for one test with
``@pytest.mark.mes_plugins(my_plugin_module)``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..settings import Settings

PG_URL = os.environ.get("MES_TEST_DATABASE_URL")  # postgresql+asyncpg://user@127.0.0.1:5432/test
REDIS_URL = os.environ.get("MES_TEST_REDIS_URL")  # redis://127.0.0.1:6379/15


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _default_asyncio_mode(config)
    config.addinivalue_line("markers", "mes_plugins(*plugins): register extra plugins in the app for this test")
    config.addinivalue_line("markers", "sqlite_only: the test is about SQLite behaviour")
    config.addinivalue_line("markers", "postgres_only: the test needs PostgreSQL")
    config.addinivalue_line("markers", "postgres: the PostgreSQL + Redis run of a test (MES_TEST_DATABASE_URL)")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    forget_finished_apps()


def forget_finished_apps() -> None:
    """Let the apps a test built be freed once it is over.

    FastAPI (0.11x–0.16x, ``fastapi.dependencies.models``) remembers whether each endpoint and
    dependency is a coroutine or a generator in ``lru_cache``s of 4,096 entries keyed by the
    callable itself: every app built in the process stays alive through its routes' closures
    until newer ones push it out. A test process builds an app or more per test; it carried a few
    dozen dead apps — 3.5 million objects, a 4–10 s full collection wherever one runs (the
    station window's ``GuiThreadCollector.stop``). Cleared after each test (the next app fills
    them again); ``tests/test_testing_kit.py`` pins that an app is freed."""
    from fastapi.dependencies import models

    for cached in vars(models).values():
        if callable(getattr(cached, "cache_clear", None)) and hasattr(cached, "cache_info"):
            cached.cache_clear()


def _default_asyncio_mode(config) -> None:
    """Run ``async def`` tests and fixtures without markers (pytest-asyncio's ``auto`` mode), so a
    plugin author's ``pytest`` works with no configuration. A mode chosen on the command line or in
    the project's pytest configuration is left alone."""
    if not config.pluginmanager.hasplugin("asyncio") or config.getoption("asyncio_mode", None) is not None:
        return
    inipath = config.inipath
    if inipath is not None and "asyncio_mode" in inipath.read_text(errors="replace"):
        return
    config.option.asyncio_mode = "auto"


def _admin_url(pg_url: str, database: str) -> str:
    base = pg_url.rsplit("/", 1)[0]
    return f"{base}/{database}"


def _sync_pg(url: str) -> str:
    return url.replace("+asyncpg", "")


async def _pg_exec(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_sync_pg(url), timeout=60)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close(timeout=10)


def _in_thread(coro_fn) -> None:
    """Run a coroutine to completion from sync code that may sit inside a running loop."""
    import asyncio
    import threading

    errors: list[BaseException] = []

    def target():
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    from ..migrate import upgrade

    path = tmp_path_factory.mktemp("mes-template") / "template.db"
    upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _pg_template() -> str | None:
    if not PG_URL:
        yield None
        return
    from ..migrate import upgrade

    name = f"mes_tpl_{os.getpid()}"

    async def create():
        await _pg_exec(_admin_url(PG_URL, "postgres"), f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')

    _in_thread(create)
    upgrade(Settings(database_url=_admin_url(PG_URL, name)))
    yield name
    _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class _DatabaseStock:
    """Copies of the migrated template made one test ahead, on a thread of their own.

    ``CREATE DATABASE … TEMPLATE`` of the migrated schema (some 700 relations) takes most of a
    second, mostly waiting on the server's disk; a test's setup spent it before every PostgreSQL
    run. Here the copy for the next test is made while this one runs, and a used database is
    dropped after its test the same way: a test's setup takes a ready copy (waiting only if the
    previous test was shorter than one copy). Each database is still fresh and used by one test.
    """

    #: how long one job (a copy, a drop) may take before it is tried again; a try is cut off, not
    #: waited for (a run of the suite once hung for good in one, with no connection to the server)
    JOB_SECONDS = 180.0
    TRIES = 3

    def __init__(self, template: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._template = template
        self._admin = _admin_url(PG_URL, "postgres")
        self._work = ThreadPoolExecutor(1, thread_name_prefix="mes-test-databases")
        self._next = None
        # The stock thread's own event loop, kept for every job: ``asyncio.run`` per job made and
        # shut down a loop (and its default executor) each time, and once never returned from that
        # shutdown, holding every later test's database behind it.
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run_once(self, *statements: str) -> None:
        """The statements on the stock's own loop, cut off after ``JOB_SECONDS`` (``TimeoutError``)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(asyncio.wait_for(_pg_exec(self._admin, *statements), self.JOB_SECONDS))

    def _run(self, *statements: str) -> None:
        """:meth:`_run_once`, tried again when cut off (``TRIES`` in all)."""
        for attempt in range(self.TRIES):
            try:
                return self._run_once(*statements)
            except TimeoutError:
                if attempt == self.TRIES - 1:
                    raise

    def _make(self) -> str:
        """A new copy of the template; a new name per try (a copy cut off may exist: it is dropped)."""
        for attempt in range(self.TRIES):
            name = f"mes_t_{uuid.uuid4().hex[:12]}"
            try:
                self._run_once(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                return name
            except TimeoutError:
                self._work.submit(self._run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                if attempt == self.TRIES - 1:
                    raise

    def _close_loop(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def take(self) -> str:
        """A fresh copy for this test (ready, or waited for); the next one starts being made."""
        made = self._next or self._work.submit(self._make)
        self._next = self._work.submit(self._make)
        return made.result()

    def give_back(self, name: str) -> None:
        """Drop a test's database after it, on the stock's thread."""
        self._work.submit(self._run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the copy no test took, and wait for every drop."""
        if self._next is not None:
            try:
                self.give_back(self._next.result())
            except Exception:  # the copy was never made: nothing to drop
                pass
        self._work.submit(self._close_loop)  # after every drop (one thread: in order)
        self._work.shutdown(wait=True)


@pytest.fixture(scope="session")
def _pg_stock(_pg_template) -> _DatabaseStock | None:
    if _pg_template is None:
        yield None
        return
    stock = _DatabaseStock(_pg_template)
    yield stock
    stock.close()


def pytest_generate_tests(metafunc):
    if "mes_backend" in metafunc.fixturenames:
        params = [pytest.param("sqlite", id="sqlite")]
        params.append(pytest.param("postgres", id="postgres", marks=pytest.mark.postgres))
        metafunc.parametrize("mes_backend", params, indirect=True)


@pytest.fixture
async def mes_backend(request, tmp_path) -> AsyncIterator[dict[str, Any]]:
    """A fresh, migrated database (and a flushed Redis on PostgreSQL runs) for one test."""
    kind = request.param
    if kind == "sqlite" and request.node.get_closest_marker("postgres_only"):
        pytest.skip("PostgreSQL-only test")
    if kind == "postgres" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("SQLite-only test")
    if kind == "sqlite":
        db = tmp_path / "mes.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), db)
        yield {"kind": kind, "database_url": f"sqlite+aiosqlite:///{db}", "redis_url": None}
        return
    if not PG_URL:
        pytest.skip("MES_TEST_DATABASE_URL not set: PostgreSQL runs skipped (make test sets it when a server is up)")
    stock: _DatabaseStock = request.getfixturevalue("_pg_stock")
    name = await asyncio.to_thread(stock.take)
    # A namespace of its own, so tests (and other runs on the machine) never see each other's keys.
    namespace = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield {"kind": kind, "database_url": _admin_url(PG_URL, name), "redis_url": REDIS_URL,
               "redis_namespace": namespace}
    finally:
        stock.give_back(name)
        if REDIS_URL:
            from redis import asyncio as aioredis

            r = aioredis.from_url(REDIS_URL)
            keys = [k async for k in r.scan_iter(match=f"{namespace}:*", count=1000)]
            if keys:
                await r.delete(*keys)
            await r.aclose()


@pytest.fixture
def settings(mes_backend, tmp_path) -> Settings:
    return Settings(
        environment="test",
        database_url=mes_backend["database_url"],
        redis_url=mes_backend["redis_url"],
        redis_namespace=mes_backend.get("redis_namespace", "mes"),
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        bcrypt_rounds=4,
        files_dir=str(tmp_path / "files"),
        log_json=False,
        log_level="WARNING",
        workers=2,
        db_pool_size=5,
        db_max_overflow=5,
        audit_seal_interval_seconds=3600,
        rate_limit_per_minute=100_000,
        station_rate_limit_per_minute=100_000,
        _env_file=None,
    )


@pytest.fixture
def app(settings, request):
    from ..app import create_app

    marker = request.node.get_closest_marker("mes_plugins")
    extra = list(marker.args) if marker else []
    return create_app(settings, extra_plugins=extra)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in process, with the lifespan (plugins loaded) running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
            yield c


@pytest.fixture
def kernel(app, client):
    return app.state.kernel


async def _user_headers(kernel, username: str, role: str) -> dict[str, str]:
    from ..db.models import User
    from ..security import create_access_token, hash_password

    async with kernel.sessionmaker() as session:
        user = User(username=username, role=role, full_name=username.title(),
                    password_hash=hash_password("password-" + username, 4))
        session.add(user)
        await session.commit()
        uid = user.id
    token = create_access_token(subject=username, role=role, uid=uid, secret=kernel.settings.secret_key,
                                minutes=kernel.settings.access_token_minutes)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin_headers(kernel) -> dict[str, str]:
    return await _user_headers(kernel, "admin", "admin")


@pytest.fixture
async def manager_headers(kernel) -> dict[str, str]:
    return await _user_headers(kernel, "manager", "production_manager")


@pytest.fixture
async def worker_headers(kernel) -> dict[str, str]:
    return await _user_headers(kernel, "worker", "worker")


@pytest.fixture
async def viewer_headers(kernel) -> dict[str, str]:
    return await _user_headers(kernel, "viewer", "viewer")


@pytest.fixture
async def quality_headers(kernel) -> dict[str, str]:
    return await _user_headers(kernel, "quality", "quality_manager")


@pytest.fixture
async def executive_headers(kernel) -> dict[str, str]:
    return await _user_headers(kernel, "executive", "executive")


@pytest.fixture
async def station_headers(kernel) -> dict[str, str]:
    """A machine token for station ST-01 on line LINE-A."""
    from ..db.models import Line, Station, StationToken
    from ..security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest

    token = new_opaque_token(STATION_TOKEN_PREFIX)
    async with kernel.sessionmaker() as session:
        line = Line(code="LINE-A", name="Line A", config={})
        session.add(line)
        await session.flush()
        station = Station(code="ST-01", name="Station 1", line_id=line.id, heartbeat={})
        session.add(station)
        await session.flush()
        session.add(StationToken(station_id=station.id, name="test", token_hash=token_digest(token)))
        await session.commit()
    if kernel.runtime is not None:
        # as every committed configuration change does: else the periodic check finds the new line a
        # moment later and retires the answers cached meanwhile (a test reading one twice saw it change)
        await kernel.runtime.announce()
    return {"Authorization": f"Bearer {token}"}


async def _register_at(kernel, lot_id: int, registered_at: Any) -> None:
    from sqlalchemy import update

    from ..db.models import Lot, Unit

    async with kernel.sessionmaker() as session:
        await session.execute(update(Lot).where(Lot.id == lot_id).values(created_at=registered_at))
        await session.execute(update(Unit).where(Unit.lot_id == lot_id).values(created_at=registered_at))
        await session.commit()


@pytest.fixture
async def make_lot(client, kernel):
    """``await make_lot(units=3)`` creates a LOT (and the processes ASSY-10, TEST-20, PACK-30)."""
    from ..db.models import Process
    from ..security import create_access_token

    token = create_access_token(subject="kit", role="admin", uid=0, secret=kernel.settings.secret_key, minutes=15)
    headers = {"Authorization": f"Bearer {token}"}
    async with kernel.sessionmaker() as session:
        for seq, pid in enumerate(("ASSY-10", "TEST-20", "PACK-30")):
            if await session.get(Process, pid) is None:
                session.add(Process(id=pid, name=pid, sequence=(seq + 1) * 10))
        await session.commit()

    async def make(
        lot_number: str | None = None, *, product: str = "PRD-100", units: int = 0, registered_at: Any = None
    ) -> dict[str, Any]:
        """``registered_at`` (aware): the LOT and its units as if registered then (their
        ``created_at``), so station times before now are not refused as before their registration."""
        lot_number = lot_number or f"LOT-{uuid.uuid4().hex[:8].upper()}"
        r = await client.post("/api/v1/lots", json={"lot_number": lot_number, "product": product}, headers=headers)
        assert r.status_code == 201, r.text
        lot = r.json()
        serials = [f"{lot_number}-{i:04d}" for i in range(1, units + 1)]
        if serials:
            r = await client.post(f"/api/v1/lots/{lot_number}/units", json={"serial_numbers": serials},
                                  headers=headers)
            assert r.status_code == 201, r.text
        lot["serial_numbers"] = serials
        if registered_at is not None:
            await _register_at(kernel, lot["id"], registered_at)
            lot["created_at"] = registered_at.isoformat()
        return lot

    return make
