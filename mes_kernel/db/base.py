"""Declarative base, UTC timestamps on both databases, and the engine/session factory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from ..settings import Settings

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases.

    SQLite keeps no offset, so values are stored as naive UTC there and given back their UTC
    zone on the way out; naive values coming in are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def json_dumps(value: Any) -> str:
    """JSON text of a value, as the engine writes JSON columns (statements that send JSON as text use it too)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # an integer beyond 64 bits: the standard library takes any size
        return json.dumps(value, default=str, ensure_ascii=False)


def make_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """Engine for the configured database; pool sizes derived so workers fit the server."""
    url = settings.database_url
    # orjson writes JSON columns several times faster than json on the record path; reads stay with
    # json, which keeps integers beyond 64 bits exact (orjson turns them into floats).
    overrides = {"json_serializer": json_dumps, **overrides}
    if url.startswith("sqlite"):
        from ..private_files import secure_sqlite

        secure_sqlite(url)  # it holds password and token hashes: 0600 before SQLite creates it 0644
        engine = create_async_engine(url, connect_args={"timeout": 30}, **overrides)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kw: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "pool_timeout": 10,
        "max_overflow": settings.max_overflow,
        "pool_recycle": 1800,
    }
    kw.update(overrides)
    engine = create_async_engine(url, **kw)
    if not kw.get("pool_pre_ping"):
        _ping_when_idle(engine)
    event.listen(engine.sync_engine, "handle_error", _broken_connection)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        # The driver raises a bare OSError when the server is down or restarting; name it, so the
        # API answers 503 "retry" instead of a 500 (a device's ConnectionError stays a device's).
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            from ..errors import ServiceUnavailable

            raise ServiceUnavailable(
                f"the database is not reachable right now ({exc.strerror or exc}); retry",
                retry_after=5,
                code="SERVICE_UNAVAILABLE",
            ) from exc

    return engine


PING_AFTER_IDLE_SECONDS = 1.0


def is_broken_connection(error: BaseException | None) -> bool:
    """asyncpg's ``InternalClientError: cannot switch to state …; another operation … is in
    progress``: what a connection whose server process was terminated mid-query raises on its next
    use (seen under load: ``tests/test_db_errors.py``). SQLAlchemy does not count it as a
    disconnect, so the pool would hand the dead connection out again."""
    return type(error).__name__ == "InternalClientError" and "another operation" in str(error)


def _broken_connection(context) -> None:
    """``handle_error``: a broken connection (:func:`is_broken_connection`) is a disconnect — the
    pool drops it, and the request answers 503 with Retry-After (``errors.database_error_kind``)."""
    if is_broken_connection(context.original_exception):
        context.is_disconnect = True


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use when it lay idle for more than
    ``PING_AFTER_IDLE_SECONDS`` (a dead one is replaced, the request never sees it).

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per request — on a
    dashboard read, one in three. A connection used a moment ago is known alive, as HikariCP's
    ``aliveBypassWindowMs`` (500 ms) assumes; a server that went away in between fails that one
    statement, which the kernel answers 503 with Retry-After (``errors.database_error_kind``), and
    the pool drops every connection older than the failure."""
    import time

    from sqlalchemy import exc

    @event.listens_for(engine.sync_engine, "checkin")
    def _used(_dbapi_conn, record):
        record.info["mes_used_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_conn, record, _proxy):
        used = record.info.get("mes_used_at")
        if used is not None and time.monotonic() - used <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_conn.ping()
        except Exception as err:  # the pool reconnects, up to three times, then raises
            raise exc.DisconnectionError(str(err)) from err


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
