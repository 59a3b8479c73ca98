"""A database that is unreachable (restarting, network cut) is answered with 503 and Retry-After,
never 500, and liveness still answers."""


import pytest
from tcp_relay import TcpRelay

from mes_kernel.app import create_app


@pytest.mark.postgres_only
async def test_unreachable_database_answers_503_with_retry_after(settings, admin_headers_factory):
    dead = settings.model_copy(update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"})
    app = create_app(dead)
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as client:
            headers = admin_headers_factory(dead)
            r = await client.get("/api/v1/lots", headers=headers)
            assert r.status_code == 503, r.text
            assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and r.headers["retry-after"] == "5"
            assert (await client.get("/api/v1/health/liveness")).status_code == 200
            assert (await client.get("/api/v1/health/readiness")).status_code == 503
            health = await client.get("/api/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "DOWN"


@pytest.fixture
def admin_headers_factory():
    from mes_kernel.security import create_access_token

    def make(settings):
        token = create_access_token(subject="ops", role="admin", uid=1, secret=settings.secret_key, minutes=5)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.mark.postgres_only
async def test_database_restart_loses_nothing_acknowledged_and_recovers(settings, admin_headers_factory):
    from urllib.parse import urlparse

    import httpx
    from sqlalchemy import func, select

    from mes_kernel.db.models import Lot, Process, ProcessRecord

    real = urlparse(settings.database_url.replace("+asyncpg", ""))
    relay = TcpRelay(real.hostname, real.port or 5432)
    port = await relay.start()
    through = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://{real.username}@127.0.0.1:{port}{real.path}"}
    )
    app = create_app(through)
    headers = admin_headers_factory(through)
    record = {"lot_number": "LOT-R1", "process_id": "ASSY-10", "worker_id": "W-1", "result": "pass"}
    async with app.router.lifespan_context(app):
        kernel = app.state.kernel
        async with kernel.sessionmaker() as session:
            session.add(Process(id="ASSY-10", name="Assembly", sequence=10))
            session.add(Lot(lot_number="LOT-R1", product="P", status="in_progress"))
            await session.commit()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test", headers=headers) as client:
            first = await client.post("/api/v1/process-records", json={**record, "idempotency_key": "restart-0001"})
            assert first.status_code == 201, first.text

            await relay.cut()  # the database goes away: every pooled connection dies with it
            during = await client.post("/api/v1/process-records", json={**record, "idempotency_key": "restart-0002"})
            assert during.status_code == 503, during.text
            assert during.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and "retry-after" in during.headers
            assert (await client.get("/api/v1/health/readiness")).status_code == 503

            await relay.start()  # back, on the same port
            retried = await client.post("/api/v1/process-records", json={**record, "idempotency_key": "restart-0002"})
            assert retried.status_code in (200, 201), retried.text
            assert (
                await client.post("/api/v1/process-records", json={**record, "idempotency_key": "restart-0001"})
            ).status_code == 200
            assert (await client.get("/api/v1/health/readiness")).status_code == 200
        async with kernel.sessionmaker() as session:
            keys = (
                await session.execute(
                    select(ProcessRecord.idempotency_key, func.count()).group_by(ProcessRecord.idempotency_key)
                )
            ).all()
    assert sorted(keys) == [("restart-0001", 1), ("restart-0002", 1)]
    await relay.cut()
