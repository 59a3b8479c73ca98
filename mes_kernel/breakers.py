"""Circuit breakers for device actions, one truth across workers (in-process store, or Redis).

Why not the ``circuitbreaker`` package's decorator: it keeps each breaker's state in the process
that runs it (so behind several gunicorn workers each worker has its own opinion), and its state
lives in private attributes. Here the state machine (closed → open → half-open → closed) is written
once, as a pure function over a small record, and a store applies it atomically: under a lock in
process, or with WATCH/MULTI in Redis, so every worker reads and writes the same record.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from .contracts import BreakerConfig
from .errors import ServiceUnavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

#: The line of the caller being served, set by the kernel's plugin-scope dependency for a station
#: bound to a line; :meth:`BreakerRegistry.call` uses it when the plugin passes no ``line``.
current_line: ContextVar[str | None] = ContextVar("current_line", default=None)


class BreakerOpenError(ServiceUnavailable):
    """An open breaker refused the call at once."""

    def __init__(self, breaker: str, retry_after: int):
        super().__init__(
            f"{breaker} is temporarily unavailable (circuit open); try again later",
            retry_after=retry_after,
            breaker=breaker,
        )


@dataclass
class BreakerState:
    """The shared record of one breaker."""

    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_at: float = 0.0
    last_failure_at: float = 0.0
    last_failure_reason: str = ""
    opens: int = 0

    def to_redis(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_redis(cls, raw: dict) -> BreakerState:
        if not raw:
            return cls()
        raw = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        return cls(
            state=raw.get("state", CLOSED),
            failures=int(raw.get("failures", 0)),
            opened_at=float(raw.get("opened_at", 0)),
            trial_at=float(raw.get("trial_at", 0)),
            last_failure_at=float(raw.get("last_failure_at", 0)),
            last_failure_reason=raw.get("last_failure_reason", ""),
            opens=int(raw.get("opens", 0)),
        )


# -------------------------------------------------------------------- the state machine
# Each step takes the current record and returns (new record or None when unchanged, outcome).


def _step_before(s: BreakerState, now: float, cfg: BreakerConfig) -> tuple[BreakerState | None, tuple]:
    if s.state == CLOSED:
        return None, ("allow", None)
    if s.state == OPEN:
        remaining = s.opened_at + cfg.recovery_timeout - now
        if remaining > 0:
            return None, ("refuse", remaining)
        return BreakerState(**{**s.__dict__, "state": HALF_OPEN, "trial_at": now}), ("trial", HALF_OPEN)
    # half-open: one trial at a time; a trial that never reported back expires after the timeout
    if now - s.trial_at < cfg.recovery_timeout:
        return None, ("refuse", max(1.0, cfg.recovery_timeout - (now - s.trial_at)))
    return BreakerState(**{**s.__dict__, "trial_at": now}), ("trial", None)


def _step_success(s: BreakerState, now: float, cfg: BreakerConfig) -> tuple[BreakerState | None, tuple]:
    if s.state == CLOSED and s.failures == 0:
        return None, (None,)
    new = BreakerState(**{**s.__dict__, "state": CLOSED, "failures": 0, "trial_at": 0.0})
    return new, ((s.state, CLOSED) if s.state != CLOSED else None,)


def _step_failure(s: BreakerState, now: float, cfg: BreakerConfig, reason: str) -> tuple[BreakerState | None, tuple]:
    new = BreakerState(**s.__dict__)
    new.failures += 1
    new.last_failure_at = now
    new.last_failure_reason = reason[:500]
    if s.state == HALF_OPEN or (s.state == CLOSED and new.failures >= cfg.failure_threshold):
        new.state = OPEN
        new.opened_at = now
        new.opens += 1
        return new, ((s.state, OPEN),)
    return new, (None,)


# -------------------------------------------------------------------- stores


class MemoryBreakerStore:
    """Breaker records in this process (the embedded default: one process)."""

    def __init__(self) -> None:
        self._records: dict[str, BreakerState] = {}
        self._instances: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def apply(self, key: str, step: Callable[[BreakerState], tuple[BreakerState | None, tuple]]) -> tuple:
        async with self._lock:
            new, outcome = step(self._records.get(key, BreakerState()))
            if new is not None:
                self._records[key] = new
            return outcome

    async def read(self, key: str) -> BreakerState:
        return self._records.get(key, BreakerState())

    async def reset(self, key: str) -> None:
        self._records.pop(key, None)

    async def remember(self, key: str, line: str) -> None:
        """Note that breaker instance ``key`` serves ``line`` ("" for none)."""
        self._instances[key] = line

    async def instances(self) -> dict[str, str]:
        """Every breaker instance used so far and the line it last served."""
        return dict(self._instances)


class RedisBreakerStore:
    """Breaker records in Redis hashes, updated with optimistic WATCH/MULTI transactions.

    If Redis stops answering, records fall back to this process's memory so that a Redis outage
    never turns device actions into errors; the fallback is logged.
    """

    def __init__(self, redis, namespace: str = "mes") -> None:
        self.redis = redis
        self.prefix = f"{namespace}:breaker:"
        self.fallback = MemoryBreakerStore()

    async def apply(self, key: str, step) -> tuple:
        from redis.exceptions import RedisError, WatchError

        rkey = self.prefix + key
        try:
            for _ in range(50):
                async with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(rkey)
                        current = BreakerState.from_redis(await pipe.hgetall(rkey))
                        new, outcome = step(current)
                        if new is None:
                            await pipe.unwatch()
                            return outcome
                        pipe.multi()
                        pipe.hset(rkey, mapping=new.to_redis())
                        await pipe.execute()
                        return outcome
                    except WatchError:
                        continue
            raise RuntimeError(f"breaker {key}: too much contention")
        except (RedisError, OSError) as exc:
            log.warning("breaker_store_fallback", breaker=key, error=str(exc))
            return await self.fallback.apply(key, step)

    async def read(self, key: str) -> BreakerState:
        from redis.exceptions import RedisError

        try:
            return BreakerState.from_redis(await self.redis.hgetall(self.prefix + key))
        except (RedisError, OSError):
            return await self.fallback.read(key)

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)
        await self.fallback.reset(key)

    async def remember(self, key: str, line: str) -> None:
        from redis.exceptions import RedisError

        await self.fallback.remember(key, line)
        try:
            await self.redis.hset(self.prefix + "instances", key, line)
        except (RedisError, OSError) as exc:
            log.warning("breaker_store_fallback", breaker=key, error=str(exc))

    async def instances(self) -> dict[str, str]:
        from redis.exceptions import RedisError

        try:
            raw = await self.redis.hgetall(self.prefix + "instances")
        except (RedisError, OSError):
            return await self.fallback.instances()
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }


# -------------------------------------------------------------------- registry

TransitionListener = Callable[[str, str, str, BreakerState], Awaitable[None]]


@dataclass
class BreakerRegistry:
    """Every breaker config the plugins declared, per-line overrides, and the shared state."""

    store: Any = field(default_factory=MemoryBreakerStore)
    clock: Callable[[], float] = time.time
    configs: dict[str, BreakerConfig] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: line code → its ``config_version``, for the lines whose overrides are installed
    line_versions: dict[str, int] = field(default_factory=dict)
    listeners: list[TransitionListener] = field(default_factory=list)
    #: breaker instance key → the line it last served ("" for none), as this process knows it
    known: dict[str, str] = field(default_factory=dict)

    def register(self, config: BreakerConfig, *, plugin: str = "") -> None:
        if config.name in self.configs:
            raise ValueError(f"breaker config {config.name!r} registered twice")
        self.configs[config.name] = config

    def config_for(self, name: str, line: str | None = None) -> BreakerConfig:
        try:
            cfg = self.configs[name]
        except KeyError:
            raise KeyError(f"no breaker config named {name!r}; registered: {sorted(self.configs)}") from None
        override = self.overrides.get(f"{line}:{name}") if line else None
        if override:
            cfg = BreakerConfig(
                name=cfg.name,
                failure_threshold=int(override.get("failure_threshold", cfg.failure_threshold)),
                recovery_timeout=float(override.get("recovery_timeout", cfg.recovery_timeout)),
                expected_exceptions=cfg.expected_exceptions,
                description=cfg.description,
            )
        return cfg

    def set_line_overrides(
        self, line: str, overrides: dict[str, dict[str, Any]], *, version: int | None = None
    ) -> None:
        for key in [k for k in self.overrides if k.startswith(f"{line}:")]:
            del self.overrides[key]
        for name, values in overrides.items():
            self.overrides[f"{line}:{name}"] = dict(values)
        if version is not None:
            self.line_versions[line] = version

    def replace_line_overrides(self, lines: dict[str, tuple[dict[str, dict[str, Any]], int]]) -> None:
        """Install every line's overrides at once (line code → (overrides, config version)); lines
        not named lose theirs. Called by the run-time configuration after each reload."""
        self.overrides = {
            f"{line}:{name}": dict(values) for line, (found, _) in lines.items() for name, values in found.items()
        }
        self.line_versions = {line: version for line, (_, version) in lines.items()}

    @staticmethod
    def key(name: str, instance: str | None) -> str:
        return f"{name}:{instance}" if instance else name

    async def call(
        self,
        name: str,
        instance: str | None,
        fn: Callable[[], Awaitable[T]],
        *,
        line: str | None = None,
    ) -> T:
        """Run ``fn`` through breaker ``name`` (one record per ``instance``, e.g. a printer id).

        ``line`` selects the line's overrides of the thresholds; without it, the line of the station
        being served (:data:`current_line`) applies, and the plugin's defaults when there is none.
        """
        line = line or current_line.get()
        cfg = self.config_for(name, line)
        key = self.key(name, instance)
        if self.known.get(key) != (line or ""):
            self.known[key] = line or ""
            await self.store.remember(key, line or "")
        decision, extra = await self.store.apply(key, lambda s: _step_before(s, self.clock(), cfg))
        if decision == "refuse":
            raise BreakerOpenError(key, retry_after=max(1, math.ceil(extra)))
        if extra == HALF_OPEN:
            await self._notify(key, OPEN, HALF_OPEN)
        try:
            result = await fn()
        except cfg.expected_exceptions as exc:
            reason = f"{type(exc).__name__}: {exc}"
            (transition,) = await self.store.apply(key, lambda s: _step_failure(s, self.clock(), cfg, reason))
            if transition:
                await self._notify(key, *transition)
            raise
        (transition,) = await self.store.apply(key, lambda s: _step_success(s, self.clock(), cfg))
        if transition:
            await self._notify(key, *transition)
        return result

    async def _notify(self, key: str, old: str, new: str) -> None:
        state = await self.store.read(key)
        log.warning("breaker_transition", breaker=key, old=old, new=new, reason=state.last_failure_reason)
        for listener in self.listeners:
            try:
                await listener(key, old, new, state)
            except Exception as exc:  # a broken notifier must not break the device action
                log.warning("breaker_listener_failed", breaker=key, error=str(exc))

    async def state(self, name: str, instance: str | None = None) -> BreakerState:
        return await self.store.read(self.key(name, instance))

    async def reset(self, name: str, instance: str | None = None) -> None:
        await self.store.reset(self.key(name, instance))

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """State of every breaker: configured ones and every instance used so far (by any worker,
        when the store is shared), each with its *effective* threshold and timeout: the line's
        override where the instance serves a line that has one, with that line's config version."""
        now = self.clock()
        instances = {**self.known, **await self.store.instances()}
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(set(self.configs) | set(instances)):
            name = key.split(":", 1)[0]
            line = instances.get(key) or None
            cfg = self.config_for(name, line) if name in self.configs else None
            s = await self.store.read(key)
            state = s.state
            if state == OPEN and cfg and now >= s.opened_at + cfg.recovery_timeout:
                state = HALF_OPEN  # the next call will be let through as a trial
            out[key] = {
                "state": state,
                "failure_count": s.failures,
                "failure_threshold": cfg.failure_threshold if cfg else None,
                "recovery_timeout": cfg.recovery_timeout if cfg else None,
                "line": line,
                "config_version": self.line_versions.get(line) if line else None,
                "overridden": bool(line and f"{line}:{name}" in self.overrides),
                "last_failure": _iso(s.last_failure_at) if s.last_failure_at else None,
                "last_failure_reason": s.last_failure_reason or None,
                "opened_at": _iso(s.opened_at) if s.state != CLOSED else None,
                "opens": s.opens,
            }
        return out


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()
