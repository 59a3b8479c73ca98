"""Per-principal rate limits on the ``limits`` library: sliding-window counters shared through Redis.

Policy (docs/api.md "Rate limits", the nginx zones in deploy/nginx are the outer half of it):

- a **station** (``mst_`` machine token) is always counted as itself, by the SHA-256 of its token —
  no database or cache round trip is needed to know whose budget a request spends, so a station whose
  token dropped out of the cache (a database restart) keeps its own budget instead of its address's;
- a **person** (a JWT whose signature verifies) has two budgets: reads (``GET``/``HEAD``/``OPTIONS``,
  and routes that declare :data:`COUNTS_AS_READ` — a lookup or preview that takes a body but changes
  nothing; ``RATE_LIMIT_READS_PER_MINUTE``, sized for one dashboard open on several screens) and writes
  (``RATE_LIMIT_PER_MINUTE``, the spec's 100/min);
  A person's token that has expired (past the 30 s leeway), or whose session or user this process
  already knows to have ended (logout, reuse, deactivation, a new role or password: the in-process
  copy the session check keeps), spends no one's personal budget: a stolen or outdated token cannot
  use up its owner's budget;
- everyone else — no credential, a forged, expired or ended one — is counted against the client address
  (``RATE_LIMIT_PER_MINUTE``), so an invalid credential never buys a fresh budget. Station-shaped tokens
  that turn out invalid (401) also count against the address's failure budget; once it is spent, an
  address may only present station tokens the kernel already knows.

Counters are sliding-window counters (limits' ``SlidingWindowCounterRateLimiter``): no burst of twice
the budget at a window's edge, O(1) per request in Redis. With no Redis configured, or while it is
unreachable, each process counts in memory alone (answers never wait on Redis).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import jwt
import structlog
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from .cache import MISSING
from .inputguard import match_route
from .security import ALGORITHM, LEEWAY_SECONDS, STATION_TOKEN_PREFIX, token_digest
from .services.auth import session_state_key, user_state_key

log = structlog.get_logger(__name__)

EXEMPT_PREFIXES = ("/api/v1/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/assets", "/favicon")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REDIS_RETRY_SECONDS = 5.0

RATE_LIMIT_EXTENSION = "x-rate-limit-budget"
COUNTS_AS_READ: dict[str, str] = {RATE_LIMIT_EXTENSION: "reads"}
"""A route's ``openapi_extra`` that makes a person's request to it count against the reads budget,
whatever its method: ``@router.post("/scans/lookup", openapi_extra=COUNTS_AS_READ)``. For a route that
takes a body but changes nothing (a lookup, a preview, a dry run). It is plain OpenAPI data, so a plugin
may also write ``openapi_extra={"x-rate-limit-budget": "reads"}`` itself, and ``/openapi.json`` shows
it to clients. Stations and addresses keep their single budget."""


@dataclass(frozen=True)
class Verdict:
    """One counted request: whether it may pass, its budget and what is left of it."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class RateLimiter:
    """Sliding-window counters in Redis (shared by workers and nodes) or in process memory.

    ``redis_url`` None means embedded: memory only. When Redis fails, this process counts in memory
    for ``REDIS_RETRY_SECONDS`` before trying Redis again.
    """

    def __init__(self, redis_url: str | None = None, namespace: str = "mes") -> None:
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared = None
        if redis_url:
            storage = RedisStorage(
                _async_uri(redis_url),
                implementation="redispy",
                key_prefix=f"{namespace}:rl",
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._redis_down_until = 0.0

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Verdict:
        """Count one request against ``item`` for ``identifiers``; never raises for a storage outage."""
        if self._shared is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self._hit(self._shared, item, identifiers)
            except Exception as exc:
                log.warning("rate_limit_redis_unavailable", error=f"{type(exc).__name__}: {exc}")
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return await self._hit(self._memory, item, identifiers)

    async def exhausted(self, item: RateLimitItem, *identifiers: str) -> bool:
        """True when ``identifiers`` have no budget left under ``item`` (counts nothing)."""
        strategy = self._memory
        if self._shared is not None and time.monotonic() >= self._redis_down_until:
            strategy = self._shared
        try:
            return not await strategy.test(item, *identifiers)
        except Exception:
            return not await self._memory.test(item, *identifiers)

    @staticmethod
    async def _hit(strategy, item: RateLimitItem, identifiers) -> Verdict:
        allowed = await strategy.hit(item, *identifiers)
        stats = await strategy.get_window_stats(item, *identifiers)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, item.amount, max(0, stats.remaining), reset)


def _async_uri(url: str) -> str:
    """limits names its asyncio storages ``async+redis://``; a ``rediss://`` URL keeps its TLS."""
    scheme, _, rest = url.partition("://")
    return f"async+{scheme}://{rest}"


@dataclass(frozen=True)
class Budget:
    """Whose budget a request spends: ``kind`` is station, user or address."""

    kind: str
    identity: str
    item: RateLimitItem
    station_digest: str | None = None
    bucket: str = "all"


class RateLimitMiddleware:
    """Answers 429 ``RATE_LIMITED`` (with ``Retry-After``) over budget; adds ``X-RateLimit-*`` headers.

    ``X-RateLimit-Limit`` is the budget per minute, ``-Remaining`` what is left of it in the sliding
    window, ``-Reset`` the seconds until the current window ends. A refused request is answered before
    routing, but its route is resolved, so metrics count the 429 under the route that was asked for.
    """

    def __init__(self, app, *, limiter: RateLimiter, settings, cache) -> None:
        self.app = app
        self.limiter = limiter
        self.cache = cache
        self.secret = settings.secret_key
        self.station_item = RateLimitItemPerMinute(settings.station_rate_limit_per_minute)
        self.write_item = RateLimitItemPerMinute(settings.rate_limit_per_minute)
        self.read_item = RateLimitItemPerMinute(settings.read_rate_limit_per_minute)
        self.address_item = RateLimitItemPerMinute(settings.rate_limit_per_minute)
        self.failure_item = RateLimitItemPerMinute(settings.rate_limit_per_minute, namespace="FAILED")

    def budget(self, scope) -> Budget:
        """Who is calling, from the credential alone (signature or token hash; no database)."""
        auth = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
                break
        token = auth[7:].strip().decode("latin-1") if auth[:7].lower() == b"bearer " else ""
        if token.startswith(STATION_TOKEN_PREFIX):
            digest = token_digest(token)
            return Budget("station", digest[:32], self.station_item, station_digest=digest)
        if token:
            try:
                claims = jwt.decode(
                    token, self.secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "sub"]},
                )
            except jwt.PyJWTError:
                claims = None
            if claims is not None and isinstance(claims.get("sub"), str) and not self._known_ended(claims):
                if scope["method"] in READ_METHODS or _declared_read(scope):
                    return Budget("user", claims["sub"], self.read_item, bucket="reads")
                return Budget("user", claims["sub"], self.write_item, bucket="writes")
        address = scope.get("state", {}).get("client_ip") or "unknown"
        return Budget("address", address, self.address_item)

    def _known_ended(self, claims: dict) -> bool:
        """Whether this process's copy of the session and user state (kept by the session check,
        :func:`mes_kernel.services.auth.check_access_claims`; no I/O here) says the token is dead."""
        sid, uid = claims.get("sid"), claims.get("uid")
        if isinstance(sid, str):
            session = self.cache.l1.get(session_state_key(sid))
            if isinstance(session, dict) and session.get("live") is False:
                return True
        if type(uid) is int:
            user = self.cache.l1.get(user_state_key(uid))
            if isinstance(user, dict) and (not user.get("active") or user.get("version") != claims.get("ver", 0)):
                return True
        return False

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/api/")
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            return await self.app(scope, receive, send)
        budget = self.budget(scope)
        state = scope.setdefault("state", {})
        address = state.get("client_ip") or "unknown"
        if budget.kind == "user":
            state["principal"] = f"user:{budget.identity}"
        elif budget.kind == "station":
            state["principal"] = f"station:{budget.identity[:12]}"
            state["station_digest"] = budget.station_digest
        if (
            budget.kind == "station"
            and self.cache.l1.get(f"station_token:{budget.station_digest}") in (MISSING, None)
            and await self.limiter.exhausted(self.failure_item, address)
            and not await self._known_station(budget.station_digest)
        ):
            verdict = Verdict(False, self.failure_item.amount, 0, 60)
        else:
            verdict = await self.limiter.hit(budget.item, budget.kind, budget.bucket, budget.identity)
        headers = [
            (b"x-ratelimit-limit", str(verdict.limit).encode()),
            (b"x-ratelimit-remaining", str(verdict.remaining).encode()),
            (b"x-ratelimit-reset", str(verdict.reset_seconds).encode()),
        ]
        if not verdict.allowed:
            _resolve_route(scope)
            return await _refuse(send, verdict, headers)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
                if message["status"] == 401 and budget.kind == "station":
                    await self.limiter.hit(self.failure_item, address)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _known_station(self, digest: str) -> bool:
        try:
            return await self.cache.get(f"station_token:{digest}") not in (MISSING, None)
        except Exception:
            return False


async def _refuse(send, verdict: Verdict, headers) -> None:
    body = json.dumps(
        {
            "detail": {
                "code": "RATE_LIMITED",
                "message": f"more than {verdict.limit} requests per minute",
                "retry_after": verdict.reset_seconds,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(verdict.reset_seconds).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _declared_read(scope) -> bool:
    """Whether the route ``scope`` asks for declares :data:`COUNTS_AS_READ` in its ``openapi_extra``."""
    route, _child = match_route(scope)
    endpoint = getattr(route, "original_route", route)
    extra = getattr(endpoint, "openapi_extra", None) or {}
    return extra.get(RATE_LIMIT_EXTENSION) == "reads"


def _resolve_route(scope) -> None:
    """Put the route a refused request asked for into the scope, as routing would have (with its
    full path, so metrics label it by its template)."""
    route, _child = match_route(scope)
    if route is not None:
        scope["route"] = route
