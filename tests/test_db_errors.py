"""The database failing under a request: away or shutting down is 503 with Retry-After, a stale
prepared statement after a live ALTER TABLE is retried transparently. Never a 500."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter
from sqlalchemy import text

from mes_kernel import hookimpl
from mes_kernel.api.deps import KernelDep
from mes_kernel.metrics import STALE_STATEMENT_RETRIES

API = "/api/v1"


class SlowQueryPlugin:
    """A plugin route that holds a database query open, so the test can end its backend mid-request."""

    MES_KERNEL_API = ">=1.0"
    router = APIRouter(prefix="/slow-query", tags=["test"])

    @staticmethod
    @router.get("")
    async def slow(kernel: KernelDep):
        async with kernel.sessionmaker() as session:
            await session.execute(text("SELECT pg_sleep(60) /* mes-slow-query */"))
        return {"slept": True}

    @hookimpl
    def mes_register_routers(self, kernel):
        return [self.router]


@pytest.mark.postgres_only
@pytest.mark.mes_plugins(SlowQueryPlugin())
async def test_the_database_shutting_down_mid_request_is_503_with_retry_after(client, kernel, admin_headers):
    request = asyncio.create_task(client.get(f"{API}/slow-query", headers=admin_headers))
    terminated = 0
    async with kernel.engine.connect() as admin:
        for _ in range(200):  # until the query is running
            terminated = (
                await admin.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE query LIKE '%mes-slow-query%' AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
            await admin.commit()  # pg_stat_activity is a snapshot per transaction
            if terminated:
                break
            await asyncio.sleep(0.05)
    assert terminated == 1
    r = await asyncio.wait_for(request, timeout=30)  # AdminShutdownError (SQLSTATE 57P01) underneath
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and r.headers["retry-after"] == "5"
    assert (await client.get(f"{API}/lots", headers=admin_headers)).status_code == 200  # and the next one works


@pytest.mark.postgres_only
async def test_a_stale_statement_after_a_live_alter_table_is_retried(client, kernel, admin_headers, make_lot):
    await make_lot("LOT-STALE-1")
    for _ in range(3):  # one pooled connection, its prepared statement for the LOT list cached
        assert (await client.get(f"{API}/lots", headers=admin_headers)).status_code == 200
    async with kernel.engine.begin() as conn:  # a migration, live: the cached plan's result type changes
        await conn.execute(text("ALTER TABLE lots ALTER COLUMN product TYPE varchar(300)"))
    retries = STALE_STATEMENT_RETRIES.labels("/api/v1/lots")
    before = retries._value.get()
    r = await client.get(f"{API}/lots", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["lot_number"] == "LOT-STALE-1"
    assert retries._value.get() == before + 1  # it did go stale, and was run again


async def _starting_up_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every connection as a PostgreSQL that is still starting: FATAL 57P03 (cannot_connect_now)."""
    import struct

    try:
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        first = await reader.readexactly(length - 4)
        if struct.unpack("!I", first[:4])[0] == 80877103:  # SSLRequest: no TLS here, then the startup message
            writer.write(b"N")
            await writer.drain()
            length = struct.unpack("!I", await reader.readexactly(4))[0]
            await reader.readexactly(length - 4)
        fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
        writer.write(b"E" + struct.pack("!I", len(fields) + 4) + fields)
        await writer.drain()
    finally:
        writer.close()


@pytest.mark.sqlite_only  # needs no real database: the fake server above is the database
async def test_a_database_that_cannot_take_connections_yet_is_503(settings):
    import httpx

    from mes_kernel.app import create_app
    from mes_kernel.security import create_access_token

    server = await asyncio.start_server(_starting_up_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    starting = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/mes", "redis_url": None}
    )
    app = create_app(starting, load_entry_points=False)
    token = create_access_token(subject="ops", role="admin", uid=1, secret=starting.secret_key, minutes=5)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as client:
                r = await client.get(f"{API}/lots", headers={"Authorization": f"Bearer {token}"})
    finally:
        server.close()
    assert r.status_code == 503, r.text  # CannotConnectNowError underneath
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and r.headers["retry-after"] == "5"


@pytest.mark.postgres_only
async def test_a_connection_broken_mid_query_is_dropped_by_the_pool_and_answered_503(kernel, client, admin_headers):
    """A server process terminated mid-query can leave asyncpg's connection answering
    ``InternalClientError: cannot switch to state 12; another operation (2) is in progress`` (seen
    once under load in the test above, as a 500). The engine counts that as a disconnect — the pool
    drops the connection — and the request answers 503 with Retry-After, like any lost database."""
    from asyncpg.exceptions._base import InternalClientError
    from sqlalchemy import event

    from mes_kernel.db.base import is_broken_connection

    message = "cannot switch to state 12; another operation (2) is in progress"
    assert is_broken_connection(InternalClientError(message)) and not is_broken_connection(InternalClientError("x"))
    broken = kernel.engine.dialect.dbapi.InternalClientError(message)  # as SQLAlchemy's adapter raises it

    def fail_once(conn, cursor, statement, parameters, context, executemany):
        if "FROM lots" in statement and not failed:
            failed.append(statement)
            raise broken

    failed: list[str] = []
    event.listen(kernel.engine.sync_engine, "before_cursor_execute", fail_once)
    try:
        r = await client.get(f"{API}/lots", headers=admin_headers)
    finally:
        event.remove(kernel.engine.sync_engine, "before_cursor_execute", fail_once)
    assert failed, "the statement was not made to fail"
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and r.headers["retry-after"] == "5"
    assert (await client.get(f"{API}/lots", headers=admin_headers)).status_code == 200
