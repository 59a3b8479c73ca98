"""Two-level cache: L1 in-process LRU with TTL, L2 Redis, invalidated across processes on writes.

With no Redis configured, L1 alone. If Redis goes away mid-run, reads and writes fall back to L1
(and are retried against Redis after a short pause), so an outage degrades speed, never answers.
Other processes' L1 copies are dropped through a Redis pub/sub channel when a key is invalidated;
while Redis is down that cannot happen, so L1 entries are kept short (``l1_ttl``) to bound staleness.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MISSING = object()
CHANNEL = "mes:cache:invalidate"
PREFIX = "mes:cache:"

# TTL (seconds) by kind of data: the spec's 5 min – 1 h range for L2.
KIND_TTL = {"lot": 300, "station_token": 300, "permission": 3600, "template": 3600, "dashboard": 300}


class LRU:
    """At most ``maxsize`` items, each with an expiry; least recently used evicted first."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return MISSING
        expires, value = item
        if expires < time.monotonic():
            del self._data[key]
            return MISSING
        self._data.move_to_end(key)
        return value

    def set(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class Cache:
    """L1 + optional L2. Values must be JSON-serialisable."""

    def __init__(self, redis=None, *, maxsize: int = 1000, l1_ttl: float = 30.0, namespace: str = "mes") -> None:
        self.redis = redis
        self.prefix = f"{namespace}:cache:"  # PREFIX for the default namespace
        self.channel = f"{namespace}:cache:invalidate"  # CHANNEL for the default namespace
        self.l1 = LRU(maxsize)
        self.l1_ttl = l1_ttl
        self.node = uuid.uuid4().hex
        self._redis_down_until = 0.0
        self._listener: asyncio.Task | None = None
        self.stats = {"l1_hits": 0, "l2_hits": 0, "misses": 0, "redis_errors": 0}

    # ------------------------------------------------------------------ redis guard
    def _redis_usable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        self.stats["redis_errors"] += 1
        if time.monotonic() >= self._redis_down_until:
            log.warning("cache_redis_unavailable", error=str(exc))
        self._redis_down_until = time.monotonic() + 5.0

    # ------------------------------------------------------------------ api
    async def get(self, key: str) -> Any:
        value = self.l1.get(key)
        if value is not MISSING:
            self.stats["l1_hits"] += 1
            return value
        if self._redis_usable():
            try:
                raw = await self.redis.get(self.prefix + key)
            except Exception as exc:
                self._redis_failed(exc)
            else:
                if raw is not None:
                    value = json.loads(raw)
                    self.l1.set(key, value, self.l1_ttl)
                    self.stats["l2_hits"] += 1
                    return value
        self.stats["misses"] += 1
        return MISSING

    async def set(self, key: str, value: Any, *, ttl: float | None = None, kind: str | None = None) -> None:
        ttl = ttl or KIND_TTL.get(kind or "", 300)
        self.l1.set(key, value, min(ttl, self.l1_ttl))
        if self._redis_usable():
            try:
                await self.redis.set(self.prefix + key, json.dumps(value, default=str), ex=int(max(1, ttl)))
            except Exception as exc:
                self._redis_failed(exc)

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[Any]],
        *,
        ttl: float | None = None,
        kind: str | None = None,
    ) -> Any:
        value = await self.get(key)
        if value is MISSING:
            value = await factory()
            if value is not None:
                await self.set(key, value, ttl=ttl, kind=kind)
        return value

    async def invalidate(self, *keys: str) -> None:
        """Drop keys here, in Redis, and in every other process's L1."""
        for key in keys:
            self.l1.delete(key)
        if self._redis_usable() and keys:
            try:
                await self.redis.delete(*(self.prefix + k for k in keys))
                await self.redis.publish(self.channel, json.dumps({"node": self.node, "keys": list(keys)}))
            except Exception as exc:
                self._redis_failed(exc)

    # ------------------------------------------------------------------ cross-process invalidation
    async def start(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="cache-invalidation")

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            subscribed = False
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.channel)
                if delay > 1.0:
                    self.l1.clear()  # back after an outage: invalidations were missed meanwhile
                subscribed, delay = True, 1.0
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    body = json.loads(message["data"])
                    if body.get("node") != self.node:
                        for key in body.get("keys", []):
                            self.l1.delete(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._redis_failed(exc)
                if subscribed:
                    # From now on invalidations are missed: drop L1 once so nothing stale outlives it;
                    # while Redis stays down, L1 entries live at most l1_ttl.
                    self.l1.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None


def mark_stale(session, *keys: str) -> None:
    """Remember keys to invalidate once the session's transaction has committed."""
    session.info.setdefault("stale_keys", set()).update(keys)


async def commit(session, cache: Cache) -> None:
    """Commit, then invalidate what the transaction made stale (never before: another worker
    could re-read the old row and cache it again)."""
    keys = session.info.pop("stale_keys", set())
    await session.commit()
    if keys:
        await cache.invalidate(*keys)
