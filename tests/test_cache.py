"""The two-level cache: bounded L1 with TTL, shared L2 in Redis, cross-process invalidation, Redis outages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from urllib.parse import urlparse

import pytest
from redis import asyncio as aioredis
from tcp_relay import TcpRelay

from mes_kernel.cache import CHANNEL, LRU, MISSING, Cache

REDIS_URL = os.environ.get("MES_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="MES_TEST_REDIS_URL not set")


def _redis(url: str):
    return aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def _key() -> str:
    return f"test-{uuid.uuid4().hex}"


async def _eventually(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


# ------------------------------------------------------------------ L1


def test_l1_holds_at_most_1000_items_and_evicts_the_least_recently_used():
    cache = Cache(None)
    assert cache.l1.maxsize == 1000
    for i in range(1000):
        cache.l1.set(f"k{i}", i, 60)
    assert cache.l1.get("k0") == 0  # touched: now the most recently used
    for i in range(1000, 1500):
        cache.l1.set(f"k{i}", i, 60)
    assert len(cache.l1) == 1000
    assert cache.l1.get("k0") == 0
    assert cache.l1.get("k1") is MISSING
    assert cache.l1.get("k500") is MISSING
    assert cache.l1.get("k501") == 501
    assert cache.l1.get("k1499") == 1499


async def test_l1_entries_expire_after_their_ttl():
    cache = Cache(None, l1_ttl=30.0)
    await cache.set("short", {"v": 1}, ttl=0.2)
    await cache.set("long", {"v": 2}, ttl=60)
    assert await cache.get("short") == {"v": 1}
    await asyncio.sleep(0.3)
    assert await cache.get("short") is MISSING
    assert await cache.get("long") == {"v": 2}
    assert len(cache.l1) == 1  # expired entries are dropped, not kept

    capped = Cache(None, l1_ttl=0.2)  # the L1 never keeps an entry past l1_ttl, whatever its kind's L2 TTL
    await capped.set("lot:LOT-1", {"status": "created"}, kind="permission")
    await asyncio.sleep(0.3)
    assert await capped.get("lot:LOT-1") is MISSING

    lru = LRU(maxsize=3)
    lru.set("x", 1, -1)
    assert lru.get("x") is MISSING


async def test_without_redis_the_cache_is_l1_alone():
    cache = Cache(None)
    await cache.start()
    calls = []

    async def factory():
        calls.append(1)
        return {"id": 7}

    assert await cache.get_or_set("lot:A", factory, kind="lot") == {"id": 7}
    assert await cache.get_or_set("lot:A", factory, kind="lot") == {"id": 7}
    assert len(calls) == 1
    await cache.invalidate("lot:A", "never-set")
    assert await cache.get("lot:A") is MISSING
    assert await cache.get_or_set("lot:B", lambda: asyncio.sleep(0, None)) is None  # None is not cached
    assert await cache.get("lot:B") is MISSING
    await cache.close()
    assert cache.stats["redis_errors"] == 0


# ------------------------------------------------------------------ L2 and invalidation across processes


async def _subscribers(channel: str) -> int:
    client = _redis(REDIS_URL)
    try:
        return dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _two_workers():
    """Two caches on one Redis, as two gunicorn workers would have, both listening for invalidations."""
    namespace = f"t{uuid.uuid4().hex[:10]}"  # nobody else's keys or messages
    first, second = Cache(_redis(REDIS_URL), namespace=namespace), Cache(_redis(REDIS_URL), namespace=namespace)
    assert first.channel == second.channel != CHANNEL
    await first.start()
    await second.start()
    try:
        subscribed = False
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not subscribed:
            subscribed = await _subscribers(first.channel) >= 2
            await asyncio.sleep(0.02)
        yield first, second
    finally:
        for cache in (first, second):
            await cache.close()
            await cache.redis.aclose()


@needs_redis
async def test_invalidate_in_one_worker_drops_the_other_workers_l1():
    key = _key()
    async with _two_workers() as (first, second):
        await first.set(key, {"status": "in_progress"}, kind="lot")
        assert await second.get(key) == {"status": "in_progress"}  # through L2 …
        assert second.l1.get(key) == {"status": "in_progress"}  # … and now in the second worker's L1
        assert second.stats["l2_hits"] == 1

        await first.invalidate(key)
        assert first.l1.get(key) is MISSING
        assert await _eventually(lambda: second.l1.get(key) is MISSING), "the other worker kept a stale L1 entry"
        assert await second.get(key) is MISSING  # and L2 no longer has it either
        assert await first.redis.exists(first.prefix + key) == 0

        # The same, the other way round, with several keys at once.
        keys = [_key() for _ in range(3)]
        for k in keys:
            await first.set(k, k)
            assert await second.get(k) == k
            assert await first.get(k) == k
        await second.invalidate(*keys)
        assert await _eventually(lambda: all(first.l1.get(k) is MISSING for k in keys))


@needs_redis
async def test_a_stamp_moves_on_every_worker_the_moment_one_invalidates_it():
    """No waiting on the pub/sub message: the other worker reads the stamp from Redis, so its next
    lookup after the invalidating call returns is under the new token."""
    key = _key()
    async with _two_workers() as (first, second):
        stamp = await second.stamp(key)
        assert stamp == await first.stamp(key)  # both workers share one answer under it
        await first.set(f"report@{stamp}", {"step": "PACK-30"}, kind="dashboard")
        assert await second.get(f"report@{await second.stamp(key)}") == {"step": "PACK-30"}
        await first.invalidate(key)
        fresh = await second.stamp(key)
        assert fresh != stamp
        assert await second.get(f"report@{fresh}") is MISSING
        assert await first.stamp(key) == fresh


async def test_without_redis_a_stamp_is_this_process_s_own():
    cache = Cache(None)
    stamp = await cache.stamp("kernel:configuration")
    assert await cache.stamp("kernel:configuration") == stamp
    await cache.invalidate("kernel:configuration")
    assert await cache.stamp("kernel:configuration") != stamp


@needs_redis
async def test_l2_ttl_follows_the_kind_of_data():
    cache = Cache(_redis(REDIS_URL), namespace=f"t{uuid.uuid4().hex[:10]}")
    try:
        expectations = {"lot": 300, "station_token": 300, "permission": 3600, "dashboard": 300}
        for kind, ttl in expectations.items():
            key = _key()
            await cache.set(key, {"kind": kind}, kind=kind)
            remaining = await cache.redis.ttl(cache.prefix + key)
            assert ttl - 5 <= remaining <= ttl, (kind, remaining)
            await cache.invalidate(key)
        key = _key()
        await cache.set(key, 1, ttl=42)
        assert 37 <= await cache.redis.ttl(cache.prefix + key) <= 42
        await cache.invalidate(key)
    finally:
        await cache.redis.aclose()


# ------------------------------------------------------------------ Redis outages


async def test_unreachable_redis_never_raises_and_l1_still_answers():
    cache = Cache(_redis("redis://127.0.0.1:1/0"))
    await cache.start()
    try:
        await cache.set("lot:X", {"status": "created"}, kind="lot")
        assert await cache.get("lot:X") == {"status": "created"}
        assert await cache.get("lot:unknown") is MISSING
        assert await cache.get_or_set("lot:Y", lambda: asyncio.sleep(0, {"id": 1})) == {"id": 1}
        assert await cache.get("lot:Y") == {"id": 1}
        await cache.invalidate("lot:X")
        assert await cache.get("lot:X") is MISSING
        assert cache.stats["redis_errors"] >= 1
    finally:
        await cache.close()
        await cache.redis.aclose()



@needs_redis
async def test_redis_going_away_mid_run_degrades_to_l1_without_errors():
    target = urlparse(REDIS_URL)
    proxy = TcpRelay(target.hostname, target.port or 6379)
    port = await proxy.start()
    cache = Cache(_redis(f"redis://127.0.0.1:{port}{target.path or '/0'}"))
    await cache.start()
    key = _key()
    try:
        await cache.set(key, {"v": 1}, kind="lot")
        cache.l1.delete(key)
        assert await cache.get(key) == {"v": 1}  # served by Redis through the relay
        assert cache.stats["l2_hits"] == 1

        await proxy.cut()
        other = _key()
        await cache.set(other, {"v": 2})  # must not raise
        assert await cache.get(other) == {"v": 2}  # L1 answers
        assert await cache.get(_key()) is MISSING
        await cache.invalidate(other)  # must not raise
        assert await cache.get(other) is MISSING
        assert await cache.get_or_set("lot:Z", lambda: asyncio.sleep(0, 5)) == 5
        assert cache.stats["redis_errors"] >= 1
    finally:
        await cache.close()
        await cache.redis.aclose()
        check = _redis(REDIS_URL)
        await check.delete(cache.prefix + key)
        await check.aclose()


async def test_l1_keeps_its_entries_while_redis_stays_down():
    """The listener retries every second or more: its failures must not wipe L1 each time."""
    cache = Cache(_redis("redis://127.0.0.1:1/0"), l1_ttl=30.0)
    await cache.start()
    try:
        await cache.set("lot:KEPT", {"status": "created"}, kind="lot")
        await asyncio.sleep(1.5)
        assert await cache.get("lot:KEPT") == {"status": "created"}
    finally:
        await cache.close()
        await cache.redis.aclose()
