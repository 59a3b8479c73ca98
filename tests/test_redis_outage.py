"""Redis is not critical: unreachable, the kernel keeps serving from its in-process fallbacks, says
DEGRADED, and stays ready; with no Redis configured it is shown as not configured."""

from urllib.parse import urlparse

import httpx
import pytest
from tcp_relay import TcpRelay

from mes_kernel.app import create_app


@pytest.mark.sqlite_only
async def test_embedded_mode_shows_redis_as_not_configured_and_not_critical(client, admin_headers):
    health = await client.get("/api/v1/health", headers=admin_headers)
    assert health.status_code == 200, health.text
    redis = health.json()["components"]["kernel"]["checks"]["redis"]
    assert redis["status"] == "NOT_CONFIGURED" and redis["critical"] is False
    assert health.json()["components"]["kernel"]["status"] == "UP"
    metrics = (await client.get("/metrics")).text
    assert 'component="kernel.redis"' not in metrics  # nothing to watch, so never reported as DOWN


@pytest.mark.postgres_only
async def test_redis_outage_degrades_health_and_keeps_the_node_ready_and_serving(settings, admin_headers):
    """The real Redis behind a relay; the relay is cut (Redis gone) and brought back."""
    real = urlparse(settings.redis_url)
    relay = TcpRelay(real.hostname, real.port or 6379)
    port = await relay.start()
    through = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}{real.path}"})
    app = create_app(through, load_entry_points=False)
    headers = admin_headers
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test", headers=headers) as client:
            before = (await client.get("/api/v1/health")).json()
            assert before["components"]["kernel"]["checks"]["redis"]["status"] == "UP"

            await relay.cut()
            app.state.health._cached = None  # the tree is cached for 1.5 s; ask afresh
            health = await client.get("/api/v1/health")
            assert health.status_code == 200, health.text
            tree = health.json()
            redis = tree["components"]["kernel"]["checks"]["redis"]
            assert redis["status"] == "DEGRADED" and redis["critical"] is False, redis
            assert "in-process" in redis["reason"]
            assert redis["reason_code"] == "REDIS_UNREACHABLE" and redis["reason_params"]["error"]
            assert tree["status"] == "DEGRADED" and tree["critical_down"] == []
            ready = await client.get("/api/v1/health/readiness")
            assert ready.status_code == 200, ready.text

            created = await client.post("/api/v1/lots", json={"lot_number": "LOT-REDIS-GONE", "product": "P"})
            assert created.status_code == 201, created.text
            assert (await client.get("/api/v1/lots/LOT-REDIS-GONE")).status_code == 200

            await relay.start()
            app.state.health._cached = None
            again = (await client.get("/api/v1/health")).json()
            assert again["components"]["kernel"]["checks"]["redis"]["status"] == "UP", again
    await relay.cut()
