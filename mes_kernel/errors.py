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


class DeviceFailed(MesError):
    """A device refused an action or did not answer (a write, a print): the gateway's error, 502.
    Plugins give it their own ``code`` (``MODBUS_WRITE_FAILED``)."""

    status = 502
    code = "DEVICE_FAILED"


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


def field_of(errors: list[dict]) -> str | None:
    """The field the first error names, as every other error's ``field`` does: its location without
    where it came from (``body``, ``query``, ``path``, ``header``), dotted — ``limit``,
    ``shifts.0.planned_output``; ``None`` for the body as a whole."""
    if not errors:
        return None
    loc = list(errors[0].get("loc") or ())
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    return ".".join(str(part) for part in loc) or None


def _message(err: dict) -> str:
    """Pydantic's message, but a length limit on text reads in characters: a limit on an optional
    constrained string (``Identifier | None = Field(max_length=64)``) is checked after its
    validator, where pydantic words it for any sized value ("at most 64 items")."""
    ctx, text = err.get("ctx") or {}, err.get("input")
    if err.get("type") in ("too_long", "too_short") and isinstance(text, str):
        limit = ctx.get("max_length") if err["type"] == "too_long" else ctx.get("min_length")
        if isinstance(limit, int):
            bound = "at most" if err["type"] == "too_long" else "at least"
            unit = "character" if limit == 1 else "characters"
            return f"String should have {bound} {limit} {unit}"
    return err.get("msg")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as ``{"detail": {"code": ..., "message": ...}}``."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError, StatementError
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
                    "msg": _message(err),
                    "type": err.get("type"),
                }
            )
        malformed = any(e["type"] == "json_invalid" for e in errors)
        code = "MALFORMED_JSON" if malformed else "VALIDATION_ERROR"
        if malformed:
            return error_response(400, code, "request body is not valid JSON", errors=errors)
        field = field_of(errors)
        message = f"{field}: {errors[0]['msg']}" if field is not None else "request is invalid"
        return error_response(422, code, message, errors=errors, field=field)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(_request: Request, exc: Exception):
        # The database is restarting, unreachable or saturated: nothing was written (the
        # transaction never committed), so the client may retry the same request.
        log.warning("database_unavailable", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return error_response(
            503,
            "SERVICE_UNAVAILABLE",
            "the database is not reachable right now; retry",
            headers={"Retry-After": "5"},
            retry_after=5,
        )

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def _data_error(_request: Request, exc: Exception):
        # The database refused a value validation let through (SQLSTATE class 22, or the driver could
        # not bind it: sqlite3's OverflowError for an integer beyond 64 bits): the client's input.
        log.warning("database_refused_value", error=str(getattr(exc, "orig", exc))[:300])
        return error_response(422, "VALIDATION_ERROR", "a value was refused by the database (out of range?)")

    @app.exception_handler(StatementError)
    async def _unbindable_value(request: Request, exc: StatementError):
        # A value SQLAlchemy could not bind, before the driver saw it: an aware time with no UTC
        # time (``0001-01-01T00:00+09:00``) overflows in the UTC column type. Input, not a fault.
        if isinstance(exc.orig, OverflowError):
            return await _data_error(request, exc)
        raise exc

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError):
        # Everything the driver raised that SQLAlchemy maps to no narrower class (asyncpg's
        # AdminShutdownError and CannotConnectNowError arrive as a bare DBAPIError): sorted by SQLSTATE.
        kind = database_error_kind(exc)
        if kind == "stale_statement":
            raise exc  # StaleStatementRetryMiddleware runs the request again
        if kind == "unavailable":
            return await _database_unavailable(request, exc)
        if kind == "refused_value":
            return await _data_error(request, exc)
        raise exc

    @app.exception_handler(TimeoutError)
    async def _timed_out(request: Request, exc: TimeoutError):
        # Something a request waited on (a device, a pool, a lock, a check) did not answer within its
        # own deadline and the code above did not say what: still "busy now, retry", never a 500.
        log.warning("request_timed_out", path=request.url.path, error=f"{type(exc).__name__}: {exc}", exc_info=True)
        return error_response(
            503,
            "SERVICE_UNAVAILABLE",
            "a part of the service did not answer in time; retry",
            headers={"Retry-After": "5"},
            retry_after=5,
        )

    from .drivers import DriverLoadError

    @app.exception_handler(DriverLoadError)
    async def _driver_unavailable(_request: Request, exc: DriverLoadError):
        # A device whose configured driver cannot start (bad settings, package missing): the
        # line configuration must change, so the caller gets the reason, not a 500.
        log.warning("driver_load_failed", driver=exc.name, namespace=exc.namespace, reason=exc.reason)
        return error_response(
            503,
            "DRIVER_UNAVAILABLE",
            f"{exc}; fix the device's settings in its line configuration",
            headers={"Retry-After": "30"},
            retry_after=30,
            driver=exc.name,
            namespace=exc.namespace,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


# SQLSTATE classes and codes (PostgreSQL manual, appendix A) that mean "the database is away or
# busy right now; the same request may succeed later". 55P03 lock_not_available: a lock_timeout ran
# out (another transaction, perhaps of a frozen node, holds the rows; see RECORD_LOCK_TIMEOUT_SECONDS).
_UNAVAILABLE_CLASSES = ("08", "53", "57P", "58", "55P03")
_VALUE_CLASSES = ("22",)


def _sqlstate(exc: BaseException) -> str | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 6:
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state
        current = getattr(current, "orig", None) or current.__cause__
        seen += 1
    return None


def _chain_names(exc: BaseException) -> set[str]:
    names, current, seen = set(), exc, 0
    while current is not None and seen < 6:
        names.add(type(current).__name__)
        current = getattr(current, "orig", None) or current.__cause__
        seen += 1
    return names


def database_error_kind(exc: BaseException) -> str | None:
    """``stale_statement``, ``unavailable``, ``refused_value`` or None (a real fault) for a driver error.

    ``InvalidCachedStatementError``: asyncpg's prepared statement no longer matches the table after a
    live ``ALTER TABLE``; SQLAlchemy has already dropped the connection's statement cache, so running
    the request again succeeds. Client-side bind errors of asyncpg (``invalid input for query
    argument``, e.g. an integer out of a column's range) count as refused values.
    """
    names = _chain_names(exc)
    if "InvalidCachedStatementError" in names:
        return "stale_statement"
    state = _sqlstate(exc) or ""
    if (
        state.startswith(_UNAVAILABLE_CLASSES)
        or {"AdminShutdownError", "CannotConnectNowError", "ConnectionDoesNotExistError"} & names
        # the pool dropped the connection as gone (``db.base``: asyncpg's "another operation is in
        # progress" on a connection whose server process was terminated mid-query)
        or getattr(exc, "connection_invalidated", False)
    ):
        return "unavailable"
    if state.startswith(_VALUE_CLASSES) or "invalid input for query argument" in str(exc):
        return "refused_value"
    return None


REPLAY_MAX_BYTES = 4 * 1024 * 1024


class StaleStatementRetryMiddleware:
    """Runs a request once more when its database statement was stale (see ``database_error_kind``).

    Nothing was written: the failed statement aborted its transaction before any commit. The body is
    kept as it is read (up to ``REPLAY_MAX_BYTES``; a larger upload is not kept and not retried), so the
    second run reads the same bytes. Innermost of the kernel's middleware.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from sqlalchemy.exc import DBAPIError

        received: list = []
        kept = 0
        started = False

        async def recording_receive():
            nonlocal kept
            message = await receive()
            if kept <= REPLAY_MAX_BYTES:  # an upload streams through; beyond this it is not kept, nor retried
                kept += len(message.get("body", b""))
                received.append(message)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            return await self.app(scope, recording_receive, tracking_send)
        except DBAPIError as exc:
            if started or kept > REPLAY_MAX_BYTES or database_error_kind(exc) != "stale_statement":
                raise
            log.info("stale_statement_retried", error=str(exc)[:200], path=scope.get("path"))
            from .metrics import STALE_STATEMENT_RETRIES, route_template

            STALE_STATEMENT_RETRIES.labels(route_template(scope)).inc()
        replay = list(received)

        async def replay_receive():
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replay_receive, send)


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
