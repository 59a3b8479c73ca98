"""Rate limiting per client: 429 RATE_LIMITED with Retry-After, stations' own budget, shared through Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter

from mes_kernel.app import create_app
from mes_kernel.security import create_access_token

USER_LIMIT = 5
STATION_LIMIT = 12
LOTS = "/api/v1/lots"


@pytest.fixture
def settings(settings):
    """Small budgets keep the test fast; the production default (100/min) is checked in test_settings."""
    return settings.model_copy(
        update={
            "rate_limit_per_minute": USER_LIMIT,
            "rate_limit_reads_per_minute": USER_LIMIT,
            "station_rate_limit_per_minute": STATION_LIMIT,
        }
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
    # Writes are a budget of their own: a person who read a lot may still save.
    assert (await client.post(LOTS, json={"lot_number": "L-1", "product": "P"}, headers=alice)).status_code != 429

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
        # Counted as the station from the first request on (by its token's hash), never as its address.
        assert statuses == [200] * STATION_LIMIT + [429] * (20 - STATION_LIMIT), statuses
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


async def test_a_station_whose_token_left_the_cache_keeps_its_own_budget(app, client, kernel, station_headers):
    """The 38 s lockout: an uncached station token used to be counted against the client address."""
    from mes_kernel.security import token_digest

    digest = token_digest(station_headers["Authorization"].split()[1])
    async with _client_from_address(app) as plant:
        await _fresh_window()
        # Someone else at the same address (a shared NAT) spends the address's whole budget.
        assert [(await plant.get(LOTS)).status_code for _ in range(USER_LIMIT + 1)] == [401] * USER_LIMIT + [429]
        await kernel.cache.invalidate(f"station_token:{digest}")
        r = await plant.get("/api/v1/auth/me", headers=station_headers)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit"] == str(STATION_LIMIT)
        assert r.headers["x-ratelimit-remaining"] == str(STATION_LIMIT - 1)
        assert 1 <= int(r.headers["x-ratelimit-reset"]) <= 60


async def test_invented_station_tokens_spend_the_address_failure_budget(app, client, kernel, station_headers):
    assert (await client.get("/api/v1/auth/me", headers=station_headers)).status_code == 200  # now known
    async with _client_from_address(app) as stranger:
        await _fresh_window()
        guesses = [
            (await stranger.get(LOTS, headers={"Authorization": f"Bearer mst_guess-{i}"})).status_code
            for i in range(USER_LIMIT + 2)
        ]
        # Each invented token is a budget of its own, but every 401 also counts against the address.
        assert guesses == [401] * USER_LIMIT + [429, 429], guesses
        # A station the kernel already knows still gets through from the same address.
        assert (await stranger.get("/api/v1/auth/me", headers=station_headers)).status_code == 200


async def test_a_refused_request_is_counted_under_its_route_in_metrics(app, client, kernel):
    alice = _user(kernel)
    await _fresh_window()
    for _ in range(USER_LIMIT + 1):
        last = await client.get(f"{LOTS}/LOT-RL-METRICS", headers=alice)
    assert last.status_code == 429
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/lots/{lot_number}",status="429"' in metrics


async def test_one_dashboard_on_several_screens_stays_inside_the_default_budgets(settings, kernel):
    """Defaults: writes 100/min per person (the spec), reads 6 x that. A dashboard polls about 25
    times a minute (summary and alerts, the KPI plugin's panels): four screens for a minute of
    polling, at once, pass; writes beyond 100 do not."""
    defaults = settings.model_copy(
        update={"rate_limit_per_minute": 100, "rate_limit_reads_per_minute": 0, "station_rate_limit_per_minute": 6000}
    )
    app = create_app(defaults, load_entry_points=False)
    manager = _user(kernel, role="viewer")
    async with app.router.lifespan_context(app):
        async with _client_from_address(app) as screens:
            await _fresh_window()
            reads = await asyncio.gather(*(screens.get(LOTS, headers=manager) for _ in range(4 * 25)))
            assert {r.status_code for r in reads} == {200}
            assert int(reads[-1].headers["x-ratelimit-limit"]) == 600
            writes = [
                (await screens.post(LOTS, json={"lot_number": f"L-{i}"}, headers=manager)).status_code
                for i in range(101)
            ]
            assert 429 not in writes[:100] and writes[100] == 429, writes


@pytest.mark.postgres_only
async def test_a_database_restart_does_not_lock_a_station_out(settings, kernel):
    """Reproduces the 38 s lockout of issue 8: PostgreSQL away, the station's token out of the cache,
    the station retrying more often than its address's budget allows. It must get through as soon as
    the database is back."""
    from urllib.parse import urlparse

    from tcp_relay import TcpRelay

    from mes_kernel.db.models import Line, Station, StationToken
    from mes_kernel.security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest

    real = urlparse(settings.database_url.replace("+asyncpg", ""))
    relay = TcpRelay(real.hostname, real.port or 5432)
    port = await relay.start()
    through = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://{real.username}@127.0.0.1:{port}{real.path}"}
    )
    app = create_app(through, load_entry_points=False)
    token = new_opaque_token(STATION_TOKEN_PREFIX)
    station = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        kernel = app.state.kernel
        async with kernel.sessionmaker() as session:
            line = Line(code="LINE-RL", name="Line", config={})
            session.add(line)
            await session.flush()
            st = Station(code="ST-RL", name="Station", line_id=line.id, heartbeat={})
            session.add(st)
            await session.flush()
            session.add(StationToken(station_id=st.id, name="t", token_hash=token_digest(token)))
            await session.commit()
        async with _client_from_address(app) as plant:
            await _fresh_window()
            assert (await plant.get("/api/v1/auth/me", headers=station)).status_code == 200
            await relay.cut()
            await kernel.cache.invalidate(f"station_token:{token_digest(token)}")
            during = [(await plant.get("/api/v1/auth/me", headers=station)).status_code for _ in range(USER_LIMIT + 3)]
            assert set(during) == {503}, during  # never 429: the station spends its own budget
            await relay.start()
            after = await plant.get("/api/v1/auth/me", headers=station)
            assert after.status_code == 200, after.text
            assert after.json()["name"] == "ST-RL" or "ST-RL" in after.text
    await relay.cut()


async def test_an_ended_or_expired_token_does_not_spend_its_owners_budget(app, client, kernel, viewer_headers):
    """A stolen token, once its login ended or it expired, must not keep its owner at 429: it is
    counted against the address it comes from, like any other invalid credential."""
    def login():
        return client.post("/api/v1/auth/login", json={"username": "viewer", "password": "password-viewer"})

    await _fresh_window()
    stolen = (await login()).json()
    stolen_headers = {"Authorization": f"Bearer {stolen['access_token']}"}
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": stolen["refresh_token"]},
                               headers=stolen_headers)
    assert logout.status_code == 204, logout.text
    expired = create_access_token(subject="viewer", role="viewer", uid=0, secret=kernel.settings.secret_key,
                                  minutes=-60)
    async with _client_from_address(app) as thief:
        for _ in range(2 * USER_LIMIT):
            r = await thief.post(LOTS, json={"lot_number": "L-T", "product": "P"}, headers=stolen_headers)
            assert r.status_code in (401, 429), r.text
            r = await thief.get(LOTS, headers={"Authorization": f"Bearer {expired}"})
            assert r.status_code in (401, 429), r.text
    owner = {"Authorization": f"Bearer {(await login()).json()['access_token']}"}
    assert (await client.get(LOTS, headers=owner)).status_code == 200
    assert (await client.post(LOTS, json={"lot_number": "L-OWN", "product": "P"}, headers=owner)).status_code != 429


async def test_reads_with_a_body_spend_a_persons_reads_budget_not_the_writes_budget(settings, kernel):
    """Issue 12: a person's scan lookups (and label previews, line checks) are reads sent with a body.
    Routes declare it (``COUNTS_AS_READ``, or the plain OpenAPI key from a plugin that imports nothing),
    so more of them than the writes budget leave every write of the minute intact."""
    budgets = settings.model_copy(
        update={"rate_limit_per_minute": 3, "rate_limit_reads_per_minute": 9, "station_rate_limit_per_minute": 50}
    )
    app = create_app(budgets)
    acme = APIRouter(prefix="/api/v1/acme", tags=["acme"])

    @acme.post("/dry-run", openapi_extra={"x-rate-limit-budget": "reads"})
    async def dry_run() -> dict:
        return {"changed": False}

    @acme.post("/apply")
    async def apply() -> dict:
        return {"changed": True}

    app.include_router(acme)
    person = _user(kernel, role="admin")
    async with app.router.lifespan_context(app):
        async with _client_from_address(app) as c:
            await _fresh_window()
            reads = [
                await c.post("/api/v1/scans/lookup", json={"code": "NO-SUCH-UNIT", "record": False}, headers=person),
                await c.post("/api/v1/scans/lookup", json={"code": "NO-SUCH-UNIT", "record": False}, headers=person),
                await c.post("/api/v1/labels/preview", json={"template": "unit_label", "sample": True}, headers=person),
                await c.post("/api/v1/lines/validate", json={"line": {"code": "L1"}}, headers=person),
                await c.post("/api/v1/acme/dry-run", headers=person),
            ]
            assert [r.status_code for r in reads][2:] == [200, 200, 200], [r.text for r in reads]
            assert {r.status_code for r in reads[:2]} == {404}  # counted all the same
            assert [r.headers["x-ratelimit-limit"] for r in reads] == ["9"] * 5
            assert [int(r.headers["x-ratelimit-remaining"]) for r in reads] == [8, 7, 6, 5, 4]
            writes = [await c.post("/api/v1/acme/apply", headers=person) for _ in range(4)]
            assert [r.status_code for r in writes] == [200, 200, 200, 429]
            assert {r.headers["x-ratelimit-limit"] for r in writes} == {"3"}
            # the writes budget is spent; the reads budget is not
            assert (await c.post("/api/v1/acme/dry-run", headers=person)).status_code == 200
            spec = (await c.get("/openapi.json")).json()["paths"]
            for path in ("/api/v1/scans/lookup", "/api/v1/labels/preview", "/api/v1/lines/validate"):
                assert spec[path]["post"]["x-rate-limit-budget"] == "reads", path
            assert "x-rate-limit-budget" not in spec["/api/v1/lots"]["post"]
