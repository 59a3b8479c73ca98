"""Pure-ASGI middleware: request id + client address, body size limit, per-client rate limit."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import structlog
from starlette.exceptions import HTTPException

from .cache import MISSING
from .logging import client_ip_var, request_id_var
from .security import ALGORITHM, STATION_TOKEN_PREFIX, token_digest

log = structlog.get_logger(__name__)

EXEMPT_PREFIXES = ("/api/v1/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/assets", "/favicon")


async def _send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                        *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Gives every request an id (from ``X-Request-ID`` or new), echoed in the response header."""

    def __init__(self, app, trusted_proxies: int = 0) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
            return await _send_json(
                send, 400, {"detail": {"code": "BAD_REQUEST", "message": "NUL character in the URL"}}
            )
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        client = scope.get("client")
        ip = client[0] if client else None
        if self.trusted_proxies and b"x-forwarded-for" in headers:
            hops = [h.strip() for h in headers[b"x-forwarded-for"].decode("latin-1").split(",")]
            ip = hops[-self.trusted_proxies] if len(hops) >= self.trusted_proxies else hops[0]
        scope.setdefault("state", {})["client_ip"] = ip
        t_rid = request_id_var.set(rid)
        t_ip = client_ip_var.set(ip)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(t_rid)
            client_ip_var.reset(t_ip)


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413 ``PAYLOAD_TOO_LARGE`` before the route reads them."""

    def __init__(self, app, *, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_upload if multipart else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_json(
                send, 413, {"detail": {"code": "PAYLOAD_TOO_LARGE", "message": f"body exceeds {limit} bytes"}}
            )
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _send_json(
                send, 413, {"detail": {"code": "PAYLOAD_TOO_LARGE", "message": f"body exceeds {limit} bytes"}}
            )


class _TooLarge(HTTPException):
    """Raised from inside the body reader; an HTTPException so FastAPI's reader passes it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, {"code": "PAYLOAD_TOO_LARGE", "message": f"body exceeds {limit} bytes"})


class RateLimiter:
    """Fixed one-minute windows per client; counted in Redis when configured, else in process."""

    def __init__(self, redis=None, namespace: str = "mes") -> None:
        self.redis = redis
        self.namespace = namespace
        self._local: dict[str, tuple[int, int]] = {}
        self._redis_down_until = 0.0

    async def hit(self, key: str) -> int:
        window = int(time.time() // 60)
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            rkey = f"{self.namespace}:rl:{key}:{window}"
            try:
                count = int(await self.redis.incr(rkey))
                if count == 1:  # the window's first hit sets its expiry (one command, not a pipeline, per request)
                    await self.redis.expire(rkey, 61)
                return count
            except Exception as exc:
                log.warning("rate_limit_redis_unavailable", error=str(exc))
                self._redis_down_until = time.monotonic() + 5.0
        w, count = self._local.get(key, (window, 0))
        if w != window:
            count = 0
            if len(self._local) > 100_000:
                self._local.clear()
        count += 1
        self._local[key] = (window, count)
        return count


class RateLimitMiddleware:
    """100 requests/minute per client (spec); stations get their own larger budget.

    The client is the verified user of a JWT, a station token already seen valid by this worker,
    or else the client address — so an invalid credential never buys a fresh budget.
    """

    def __init__(self, app, *, limiter: RateLimiter, settings, cache) -> None:
        self.app = app
        self.limiter = limiter
        self.settings = settings
        self.cache = cache

    async def _client(self, scope) -> tuple[str, int]:
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            if token.startswith(STATION_TOKEN_PREFIX):
                digest = token_digest(token)
                # L1, else Redis: a valid station token keeps its budget on every worker
                if await self.cache.get(f"station_token:{digest}") not in (MISSING, None):
                    return f"s:{digest[:24]}", self.settings.station_rate_limit_per_minute
            else:
                try:
                    claims = jwt.decode(token, self.settings.secret_key, algorithms=[ALGORITHM])
                    return f"u:{claims.get('sub')}", self.settings.rate_limit_per_minute
                except jwt.PyJWTError:
                    pass
        ip = scope.get("state", {}).get("client_ip") or "unknown"
        return f"ip:{ip}", self.settings.rate_limit_per_minute

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES) or \
                not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        key, limit = await self._client(scope)
        count = await self.limiter.hit(key)
        if count > limit:
            retry = 60 - int(time.time()) % 60
            return await _send_json(
                send,
                429,
                {"detail": {"code": "RATE_LIMITED", "message": f"more than {limit} requests per minute",
                            "retry_after": retry}},
                [(b"retry-after", str(retry).encode())],
            )
        remaining = str(max(0, limit - count)).encode()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-ratelimit-limit", str(limit).encode()),
                                      (b"x-ratelimit-remaining", remaining)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
