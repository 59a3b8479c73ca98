"""Structured JSON logs (structlog) carrying the request id, one access line per request, gunicorn's lines too."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

import structlog

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
client_ip_var: ContextVar[str | None] = ContextVar("client_ip", default=None)


def _add_request_id(_logger, _name, event_dict):
    rid = request_id_var.get()
    if rid:
        event_dict.setdefault("request_id", rid)
    return event_dict


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Route stdlib and structlog output through one JSON (or console) renderer."""
    shared = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        shared.append(structlog.processors.format_exc_info)
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "sqlalchemy.engine", "aiosqlite", "stevedore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


access_log = structlog.get_logger("mes.access")
_ACCESS = logging.getLogger("mes.access")


class AccessLogMiddleware:
    """One JSON line per request, event ``request``, written when the answer has been sent.

    Fields: ``method``, ``route`` (the path template, e.g. ``/api/v1/lots/{lot_number}``; ``unmatched``
    when no route matched), ``path``, ``status``, ``duration_ms`` (from the request reaching the kernel to
    the last body byte handed to the server), ``request_id``, ``principal`` (``user:<name>``,
    ``station:<code>``, or null for anonymous callers) and ``client`` (the client address, through a
    trusted proxy's ``X-Forwarded-For`` when configured). Health probes and ``/metrics`` scrapes are
    logged too: an operator reading the log sees every request.
    """

    def __init__(self, app, *, cache=None) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        request_id = None

        async def capture(message):
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if _ACCESS.isEnabledFor(logging.INFO):  # LOG_LEVEL=WARNING turns the access log off, for free
                self._log(scope, status, request_id, started)

    def _log(self, scope, status: int, request_id: str | None, started: float) -> None:
        from .metrics import route_template

        state = scope.get("state", {})
        access_log.info(
            "request",
            method=scope["method"],
            route=route_template(scope),
            path=scope["path"],
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=request_id,
            principal=self._principal(state),
            client=state.get("client_ip"),
        )

    def _principal(self, state: dict) -> str | None:
        principal = state.get("principal")
        digest = state.get("station_digest")
        if digest and self.cache is not None:  # the station's code, when this worker knows its token
            found = self.cache.l1.get(f"station_token:{digest}")
            if isinstance(found, dict) and "code" in found:
                return f"station:{found['code']}"
        return principal


def gunicorn_formatter() -> logging.Formatter:
    """The JSON formatter for gunicorn's own lines (``logconfig_dict`` in deploy/gunicorn.conf.py)."""
    shared = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
    )
