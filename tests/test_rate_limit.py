"""Rate limiting per client: 429 RATE_LIMITED with Retry-After, stations' own budget, shared through Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest

from mes_kernel.app import create_app
from mes_kernel.security import create_access_token

USER_LIMIT = 5
STATION_LIMIT = 12
LOTS = "/api/v1/lots"


@pytest.fixture
def settings(settings):
    """Small budgets keep the test fast; the production default (100/min) is checked in test_settings."""
    return settings.model_copy(
        update={"rate_limit_per_minute": USER_LIMIT, "station_rate_limit_per_minute": STATION_LIMIT}
    )


def _user(kernel, role: str = "viewer") -> dict[str, str]:
    """A token under a name no other test uses: budgets are per user, and Redis may be shared."""
    name = f"rl-{uuid.uuid4().hex[:10]}"
    token = create_access_token(subject=name, role=role, uid=0, secret=kernel.settings.secret_key, minutes=15)
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def _client_from_address(app):
    """Another client address, so no other test's requests share this one's per-address budget."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
        yield c


async def _fresh_window() -> None:
    """Counting windows are whole minutes: do not start a count in the last seconds of one."""
    left = 60 - time.time() % 60
    if left < 3:
        await asyncio.sleep(left + 0.05)


async def test_the_request_over_the_limit_is_429_rate_limited_with_retry_after(client, app, kernel):
    alice, bob = _user(kernel), _user(kernel)
    await _fresh_window()
    remaining = []
    for _ in range(USER_LIMIT):
        r = await client.get(LOTS, headers=alice)
        assert r.status_code == 200, r.text
        remaining.append(int(r.headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    assert r.headers["x-ratelimit-limit"] == str(USER_LIMIT)

    limited = await client.get(LOTS, headers={**alice, "X-Request-ID": "req-over-limit"})
    assert limited.status_code == 429, limited.text
    detail = limited.json()["detail"]
    assert detail["code"] == "RATE_LIMITED"
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert detail["retry_after"] == retry_after
    assert limited.headers["x-request-id"] == "req-over-limit"
    assert (await client.post(LOTS, json={"lot_number": "L-1", "product": "P"}, headers=alice)).status_code == 429

    # Budgets are per client: another user is untouched; probes and metrics are never limited.
    assert (await client.get(LOTS, headers=bob)).status_code == 200
    for path in ("/api/v1/health/liveness", "/api/v1/health/readiness", "/metrics"):
        assert (await client.get(path, headers=alice)).status_code == 200, path


async def test_invalid_credentials_count_against_the_client_address(app, client):
    async with _client_from_address(app) as stranger:
        await _fresh_window()
        statuses = []
        for i in range(USER_LIMIT):
            forged = {"Authorization": f"Bearer forged.{i}.token", "X-Forwarded-For": f"192.0.2.{i}"}
            r = await stranger.get(LOTS, headers=forged)
            statuses.append(r.status_code)
        assert statuses == [401] * USER_LIMIT
        # Neither a new forged token, nor a forwarded-for header, nor none at all buys a fresh budget;
        # neither does a login attempt.
        assert (await stranger.get(LOTS, headers={"Authorization": "Bearer another.forged.one"})).status_code == 429
        assert (await stranger.get(LOTS)).status_code == 429
        login = await stranger.post("/api/v1/auth/login", json={"username": "admin", "password": "guess"})
        assert login.status_code == 429
        assert login.json()["detail"]["code"] == "RATE_LIMITED"


async def test_station_tokens_have_their_own_larger_budget(app, client, kernel, station_headers):
    async with _client_from_address(app) as station:
        await _fresh_window()
        statuses = [(await station.get("/api/v1/auth/me", headers=station_headers)).status_code for _ in range(20)]
        passed = statuses.count(200)
        # The first request, before the token is known, counts against the address; then the station's own budget.
        assert STATION_LIMIT <= passed <= STATION_LIMIT + 1, statuses
        assert passed > USER_LIMIT
        assert statuses == [200] * passed + [429] * (20 - passed)
        # A user on the same address still has a budget of their own.
        assert (await station.get(LOTS, headers=_user(kernel))).status_code == 200


@pytest.mark.postgres_only
async def test_two_app_instances_share_the_count_through_redis(client, settings, kernel):
    assert settings.redis_url
    alice = _user(kernel)
    other = create_app(settings, load_entry_points=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            await _fresh_window()
            statuses = []
            for i in range(USER_LIMIT + 2):
                worker = client if i % 2 == 0 else second
                statuses.append((await worker.get(LOTS, headers=alice)).status_code)
    assert statuses == [200] * USER_LIMIT + [429, 429]


@pytest.mark.sqlite_only
async def test_with_redis_unreachable_requests_are_served_and_still_limited(settings, kernel):
    """Redis going away must cost the shared count, never an answer: each process then counts alone."""
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(broken, load_entry_points=False)
    alice = _user(kernel)
    async with app.router.lifespan_context(app):
        async with _client_from_address(app) as c:
            await _fresh_window()
            statuses = [(await c.get(LOTS, headers=alice)).status_code for _ in range(USER_LIMIT + 1)]
            assert statuses == [200] * USER_LIMIT + [429], statuses
            # The cached paths (LOT status, process, station token) work on the in-process cache alone.
            manager = _user(kernel, role="production_manager")
            for path, body in (
                (LOTS, {"lot_number": "LOT-NO-REDIS", "product": "P"}),
                ("/api/v1/processes", {"id": "STEP-1", "name": "one"}),
                (
                    "/api/v1/process-records",
                    {
                        "idempotency_key": "no-redis-0001",
                        "lot_number": "LOT-NO-REDIS",
                        "process_id": "STEP-1",
                        "result": "pass",
                    },
                ),
            ):
                r = await c.post(path, json=body, headers=manager)
                assert r.status_code == 201, (path, r.text)
