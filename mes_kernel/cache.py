"""Two-level cache: L1 in-process LRU with TTL, L2 Redis, invalidated across processes on writes.

With no Redis configured, L1 alone. If Redis goes away mid-run, reads and writes fall back to L1
(and are retried against Redis after a short pause), so an outage degrades speed, never answers.
Other processes' L1 copies are dropped through a Redis pub/sub channel when a key is invalidated;
while Redis is down that cannot happen, so L1 entries are kept short (``l1_ttl``) to bound staleness.
"""

from __future__ import annotations

import asyncio
import contextlib
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

#: Invalidated after every committed change of the plant's configuration that answers are computed
#: from: a line's configuration (its output step, plugins, devices, stations — every reload of
#: :class:`mes_kernel.runtime.RuntimeConfig`), a routing step (``/processes``), a station registered,
#: a shift calendar. Put ``await cache.stamp(CONFIGURATION)`` into the key of an answer computed
#: from them, and the change retires it on every worker at once (:meth:`Cache.stamp`).
CONFIGURATION = "kernel:configuration"


def station_line_key(station_id: int) -> str:
    """The cached line of a station (what its records are counted on)."""
    return f"station-line:{station_id}"


def station_token_key(digest: str) -> str:
    """A station token's cached owner: the station's id, code and line."""
    return f"station_token:{digest}"


# TTL (seconds) by kind of data: the spec's 5 min – 1 h range for L2.
KIND_TTL = {"lot": 300, "station_token": 300, "permission": 3600, "template": 3600, "dashboard": 300}


# SET value only while the key's invalidation counter is still what the reader saw.
_SET_IF_GENERATION = """
if tonumber(redis.call('GET', KEYS[1]) or '0') == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


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
        self._later: set[asyncio.Task] = set()
        self._local_gen: dict[str, int] = {}
        self._set_if_generation = redis.register_script(_SET_IF_GENERATION) if redis is not None else None
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

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        kind: str | None = None,
        generation: tuple[int, int] | None = None,
    ) -> None:
        """Store ``value``. With ``generation`` (from :meth:`generation`, taken before the value
        was read from the database) the value is stored only if the key was not invalidated since:
        a reader that fetched a row just before another request changed it must not cache it after."""
        ttl = ttl or KIND_TTL.get(kind or "", 300)
        if generation is not None and self._local_gen.get(key, 0) != generation[0]:
            return
        self.l1.set(key, value, min(ttl, self.l1_ttl))
        if self._redis_usable():
            payload = json.dumps(value, default=str)
            try:
                if generation is None:
                    await self.redis.set(self.prefix + key, payload, ex=int(max(1, ttl)))
                elif not await self._set_if_generation(
                    keys=[self.prefix + "gen:" + key, self.prefix + key],
                    args=[generation[1], payload, int(max(1, ttl))],
                ):
                    self.l1.delete(key)  # another process invalidated it meanwhile
            except Exception as exc:
                self._redis_failed(exc)

    async def generation(self, key: str) -> tuple[int, int]:
        """The key's invalidation counters (this process, Redis), to pass to :meth:`set`."""
        remote = 0
        if self._redis_usable():
            try:
                remote = int(await self.redis.get(self.prefix + "gen:" + key) or 0)
            except Exception as exc:
                self._redis_failed(exc)
        return self._local_gen.get(key, 0), remote

    async def stamp(self, key: str) -> str:
        """A token that changes whenever ``key`` is invalidated, here or in any other process: put
        it into the keys of values derived from what ``key`` stands for, and one
        ``invalidate(key)`` retires them all (unread, they expire). Race-free: a value computed from
        the old state before the invalidation is stored under the old token, which nobody asks for
        once the invalidating request has answered. Read from Redis (one GET) so every worker sees
        the new token at once; while Redis is unreachable, this process's own count, and another
        process's change reaches it only as its values expire."""
        if self._redis_usable():
            try:
                return f"r{int(await self.redis.get(self.prefix + 'gen:' + key) or 0)}"
            except Exception as exc:
                self._redis_failed(exc)
        return f"l{self._local_gen.get(key, 0)}"

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
            generation = await self.generation(key)
            value = await factory()
            if value is not None:
                await self.set(key, value, ttl=ttl, kind=kind, generation=generation)
        return value

    def _bump(self, keys) -> None:
        if len(self._local_gen) > 100_000:
            # forget old counters; a reader holding one now sees a mismatch and simply does not cache
            self._local_gen = {k: v + 1 for k, v in list(self._local_gen.items())[-10_000:]}
        for key in keys:
            self._local_gen[key] = self._local_gen.get(key, 0) + 1

    async def invalidate(self, *keys: str) -> None:
        """Drop keys here, in Redis, and in every other process's L1."""
        self._bump(keys)
        for key in keys:
            self.l1.delete(key)
        if self._redis_usable() and keys:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for k in keys:
                        pipe.incr(self.prefix + "gen:" + k)
                        pipe.expire(self.prefix + "gen:" + k, 86400)
                    await pipe.execute()
                await self.redis.delete(*(self.prefix + k for k in keys))
                await self.redis.publish(self.channel, json.dumps({"node": self.node, "keys": list(keys)}))
            except Exception as exc:
                self._redis_failed(exc)

    def invalidate_later(self, *keys: str, delay: float = 1.0) -> None:
        """Invalidate again after ``delay``: a reader that fetched the old row just before the
        commit may have cached it just after the first invalidation ("delayed double delete")."""

        async def again():
            await asyncio.sleep(delay)
            await self.invalidate(*keys)

        task = asyncio.create_task(again())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    # ------------------------------------------------------------------ cross-process invalidation
    async def start(self) -> None:
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="cache-invalidation")

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            subscribed = False
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                if delay > 1.0:
                    self.l1.clear()  # back after an outage: invalidations were missed meanwhile
                subscribed, delay = True, 1.0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if asyncio.current_task().cancelling():
                        # redis-py's read timeout can swallow a cancellation that lands with it: the
                        # task would loop on, and the server's shutdown would wait for it forever.
                        raise asyncio.CancelledError
                    if message is None or message.get("type") != "message":
                        continue
                    body = json.loads(message["data"])
                    if body.get("node") != self.node:
                        self._bump(body.get("keys", []))
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
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), timeout=2.0)

    async def close(self) -> None:
        for task in list(self._later):
            task.cancel()
        if self._listener:
            self._listener.cancel()
            # Bounded: a Redis client caught mid-connect may take its time to notice the cancellation.
            await asyncio.wait([self._listener], timeout=5.0)
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
        cache.invalidate_later(*keys)
