"""The plugin authors' test kit: fake drivers behave as documented, readiness follows the schema."""

import asyncio

import pytest

from mes_kernel.contracts import BreakerConfig
from mes_kernel.testing.fakes import FakeDriver


async def test_fake_driver_records_calls_fails_and_hangs_on_demand():
    driver = FakeDriver(version="2.1", result="ok", host="10.0.0.5")
    assert await driver.send(b"^XA^XZ", copies=2) == "ok"
    driver.fail_next(2, ConnectionError("no answer"))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await driver.status()
    driver.hang_next()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(driver.status(), 0.05)
    driver.results.extend(["first", "second"])
    assert [await driver.read(), await driver.read(), await driver.read()] == ["first", "second", "ok"]
    assert driver.calls[0] == ("send", (b"^XA^XZ",), {"copies": 2})
    assert driver.settings == {"host": "10.0.0.5"} and driver.version == "2.1"


async def test_fake_driver_opens_a_kernel_breaker(kernel):
    kernel.breakers.register(BreakerConfig("fake_device", failure_threshold=2, recovery_timeout=30,
                                           expected_exceptions=(ConnectionError,)))
    driver = FakeDriver()
    driver.fail_next(2, ConnectionError("down"))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await kernel.breakers.call("fake_device", "D-1", driver.send)
    assert (await kernel.breakers.state("fake_device", "D-1")).state == "open"


async def test_readiness_needs_the_schema_at_head(client, kernel):
    from mes_kernel.migrate import downgrade

    assert (await client.get("/api/v1/health/readiness")).json()["status"] == "ready"
    await asyncio.to_thread(downgrade, kernel.settings, "base")
    r = await client.get("/api/v1/health/readiness")
    assert r.status_code == 503 and "mes db upgrade" in r.json()["message"]


async def test_an_app_a_test_served_is_freed_after_the_test(settings):
    """What ``forget_finished_apps`` (run after every test) relies on: once FastAPI's caches are
    cleared, nothing else keeps an app that served requests alive. A new cache keyed by route
    callables (FastAPI) or a registry of ours holding apps makes this fail: every test process
    would carry the apps of every test before it."""
    import gc
    import weakref

    import httpx

    from mes_kernel.app import create_app
    from mes_kernel.testing.fixtures import forget_finished_apps

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
            assert (await c.get("/api/v1/health/liveness")).status_code == 200
            assert (await c.get("/api/v1/lots")).status_code == 401  # a route with dependencies ran
    served = weakref.ref(app)
    del app, transport, c
    forget_finished_apps()
    gc.collect()
    assert served() is None, [type(r).__name__ for r in gc.get_referrers(served())][:10]
