"""A database that is unreachable (restarting, network cut) is answered with 503 and Retry-After,
never 500, and liveness still answers."""

import pytest

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
