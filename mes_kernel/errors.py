"""Errors with stable codes, and the handlers that answer every failure as JSON with a ``code``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

# The error classes are imported by plugin code that also runs at a station (label templates, drivers),
# where the server's stack is not installed: FastAPI, Starlette and SQLAlchemy are imported only by the
# functions that install the HTTP handlers.
if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

log = structlog.get_logger(__name__)


class MesError(Exception):
    """An error the API answers with ``status`` and ``{"detail": {"code", "message", ...}}``."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.headers = headers or {}
        self.extra = extra

    def detail(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class NotFound(MesError):
    status = 404
    code = "NOT_FOUND"


class Conflict(MesError):
    status = 409
    code = "CONFLICT"


class Unauthorized(MesError):
    status = 401
    code = "UNAUTHORIZED"

    def __init__(self, message: str = "authentication required", **kw: Any):
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(MesError):
    status = 403
    code = "FORBIDDEN"


class Unprocessable(MesError):
    status = 422
    code = "VALIDATION_ERROR"


class ServiceUnavailable(MesError):
    """A dependency refuses for now; ``retry_after`` seconds go into the body and the header."""

    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after: int, **kw: Any):
        kw.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(message, retry_after=retry_after, **kw)


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(status: int, code: str, message: str, headers=None, **extra: Any) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        status_code=status,
        content={"detail": {"code": code, "message": message, **extra}},
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as ``{"detail": {"code": ..., "message": ...}}``."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from sqlalchemy.exc import DataError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(MesError)
    async def _mes_error(_request: Request, exc: MesError):
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail()}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        errors = []
        for err in exc.errors():
            errors.append(
                {
                    "loc": list(err.get("loc", ())),
                    "msg": err.get("msg"),
                    "type": err.get("type"),
                }
            )
        malformed = any(e["type"] == "json_invalid" for e in errors)
        code = "MALFORMED_JSON" if malformed else "VALIDATION_ERROR"
        message = "request body is not valid JSON" if malformed else "request is invalid"
        status = 400 if malformed else 422
        return error_response(status, code, message, errors=errors)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(_request: Request, exc: Exception):
        # The database is restarting, unreachable or saturated: nothing was written (the
        # transaction never committed), so the client may retry the same request.
        log.warning("database_unavailable", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return error_response(503, "SERVICE_UNAVAILABLE", "the database is not reachable right now; retry",
                              headers={"Retry-After": "5"}, retry_after=5)

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError):
        # The database refused a value validation let through (SQLSTATE class 22): the client's
        # input, not a server fault.
        log.warning("database_refused_value", error=str(exc.orig)[:300])
        return error_response(422, "VALIDATION_ERROR", "a value was refused by the database")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)



class UnhandledErrorMiddleware:
    """Answers an unexpected exception with 500 ``INTERNAL_ERROR`` and logs it once.

    Starlette's own last-resort handler re-raises after answering, so the server logs the same
    traceback a second time; catching here keeps one JSON log line per failure.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unhandled_error", error=f"{type(exc).__name__}: {exc}", path=scope.get("path"))
            if started:
                raise
            response = error_response(500, "INTERNAL_ERROR", "internal server error")
            await response(scope, receive, send)
