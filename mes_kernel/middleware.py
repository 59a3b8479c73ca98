"""Pure-ASGI middleware: request id + client address, body size limit (rate limits: ``ratelimit.py``)."""

from __future__ import annotations

import json
import uuid

import structlog
from starlette.exceptions import HTTPException

from .logging import client_ip_var, request_id_var

log = structlog.get_logger(__name__)


async def _send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
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
                send,
                422,
                {
                    "detail": {
                        "code": "VALIDATION_ERROR",
                        "message": "NUL character in the URL",
                        "errors": [{"loc": ["path"], "msg": "contains a NUL character", "type": "validation_error"}],
                    }
                },
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
    """Refuses bodies over the limit with 413 ``PAYLOAD_TOO_LARGE`` before the route reads them.

    ``streamed`` paths are left alone: their routes read the body chunk by chunk to disk and
    enforce a limit of their own (completion attachments, ``MAX_ATTACHMENT_BYTES``)."""

    def __init__(self, app, *, max_body: int, max_upload: int, streamed: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.streamed = streamed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.streamed:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_upload if multipart else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None and (declared.isascii() and declared.isdigit()) and int(declared) > limit:
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


# The dashboard is a Vite build: its scripts and styles are files of its own origin. React sets
# style attributes, hence 'unsafe-inline' for styles only. 'wasm-unsafe-eval' lets the label-template
# page compile the ZPL renderer's WebAssembly (zpl-renderer-js, loaded from our own origin in a worker);
# it allows WebAssembly compilation only, never eval() or new Function(). The API docs pages start
# Swagger UI and ReDoc with one inline script, and ReDoc runs a worker from a blob: URL.
CSP_APP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CSP_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
HSTS = b"max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    """Adds the browser-hardening headers to every answer (OWASP Secure Headers Project).

    ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` with CSP ``frame-ancestors 'none'``,
    ``Referrer-Policy: no-referrer``, a ``Content-Security-Policy`` the dashboard runs under, and
    ``Strict-Transport-Security`` only when the request came over TLS (``scope["scheme"]`` is https —
    directly, or through a trusted proxy's ``X-Forwarded-Proto``): HSTS over plain HTTP is ignored by
    browsers and would pin a plant's plain-HTTP install if it were ever later served over TLS by mistake.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = CSP_DOCS if scope["path"].startswith(DOCS_PATHS) else CSP_APP
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp.encode()),
        ]
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", HSTS))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
