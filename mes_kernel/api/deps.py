"""Dependencies shared by routes: the database session, the kernel, and who is calling."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from ..cache import station_token_key
from ..db.models import Station, StationToken
from ..errors import Forbidden, Unauthorized
from ..kernel import Kernel
from ..security import STATION_TOKEN_PREFIX, decode_access_token, token_digest
from ..services.auth import check_access_claims
from ..settings import Settings

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


# Dependencies are ``async`` even when they await nothing: FastAPI runs plain ``def`` ones in a
# thread pool, a hand-off that cost more than the whole rest of a request's dependencies.
async def get_kernel(request: Request) -> Kernel:
    return request.app.state.kernel


KernelDep = Annotated[Kernel, Depends(get_kernel)]


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.kernel.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(kernel: KernelDep) -> AsyncIterator[AsyncSession]:
    async with kernel.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

def read_sessionmaker(kernel: Kernel) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read: each statement runs on its own (``AUTOCOMMIT``), so a
    request that reads sends no ``BEGIN`` before its first query and no ``ROLLBACK`` after its last
    — two round trips of the three a one-query request made. Under READ COMMITTED, what the kernel
    runs, each statement took its own snapshot already, so the answers are the same. The pool is the
    kernel engine's own. Not for anything that writes: two writes would commit apart."""
    maker = kernel.state.get("read_sessionmaker")
    if maker is None:
        engine = kernel.engine.execution_options(isolation_level="AUTOCOMMIT")
        maker = kernel.state["read_sessionmaker"] = async_sessionmaker(engine, expire_on_commit=False)
    return maker


async def get_read_session(kernel: KernelDep) -> AsyncIterator[AsyncSession]:
    async with read_sessionmaker(kernel)() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
"""A session for a route that only reads (dashboards, KPIs, histories): see :func:`read_sessionmaker`."""


class _PlannedSession(Session):
    """A session whose transactions plan every statement for its parameters (PostgreSQL)."""


@event.listens_for(_PlannedSession, "after_begin")
def _plan_for_the_parameters(session, transaction, connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


def range_read_sessionmaker(kernel: Kernel) -> async_sessionmaker[AsyncSession]:
    """Sessions for reports over a range of time the caller chooses (KPIs, drill-downs): a
    transaction (they only read; it is rolled back) in which PostgreSQL plans each statement for
    the values it is given
    (``plan_cache_mode = force_custom_plan``, ``SET LOCAL``: over when the transaction ends).

    asyncpg prepares every statement; from its sixth run PostgreSQL may keep one generic plan
    that cannot see the range, estimating a handful of rows per partition whatever it spans. The
    defect drill-down's page of units, an index walk of 65 entries (0.2 ms) in its own plan,
    became a sort of all 39,500 of the month's failures (36 ms) in the generic one. The
    transaction costs a ``BEGIN`` and the ``SET``, the ``ROLLBACK`` at the end; a request answered
    from a cache opens none. The pool is the kernel engine's own."""
    maker = kernel.state.get("range_read_sessionmaker")
    if maker is None:
        maker = kernel.state["range_read_sessionmaker"] = async_sessionmaker(
            kernel.engine, expire_on_commit=False, sync_session_class=_PlannedSession
        )
    return maker


async def get_range_read_session(kernel: KernelDep) -> AsyncIterator[AsyncSession]:
    async with range_read_sessionmaker(kernel)() as session:
        yield session


RangeReadSessionDep = Annotated[AsyncSession, Depends(get_range_read_session)]
"""A session for a report over a chosen range of time: see :func:`range_read_sessionmaker`."""


class LazySession:
    """An AsyncSession opened only when first used. The single-record path usually needs none —
    its LOT, process and station come from the cache — and a session per request was a tenth of
    that path's cost."""

    def __init__(self, maker) -> None:
        self._maker = maker
        self._session: AsyncSession | None = None
        self.info: dict = {}

    def _real(self) -> AsyncSession:
        if self._session is None:
            self._session = self._maker()
        return self._session

    @property
    def bind(self):
        return self._real().bind

    async def execute(self, *args, **kwargs):
        return await self._real().execute(*args, **kwargs)

    async def get(self, *args, **kwargs):
        return await self._real().get(*args, **kwargs)

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def get_lazy_session(kernel: KernelDep) -> AsyncIterator[LazySession]:
    session = LazySession(kernel.sessionmaker)
    try:
        yield session
    finally:
        await session.close()


LazySessionDep = Annotated[LazySession, Depends(get_lazy_session)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (by JWT) or a station (by machine token)."""

    kind: str  # "user" | "station"
    id: int
    name: str
    role: str  # a user's role; "station" for machines
    station_id: int | None = None
    station_code: str | None = None
    line_id: int | None = None
    session_id: str | None = None  # a user's login (refresh token family), the token's ``sid``

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


async def _station_from_token(kernel: Kernel, token: str) -> Principal:
    digest = token_digest(token)
    key = station_token_key(digest)

    async def lookup():
        async with kernel.sessionmaker() as session:
            row = (
                await session.execute(
                    select(Station.id, Station.code, Station.line_id)
                    .join(StationToken, StationToken.station_id == Station.id)
                    .where(StationToken.token_hash == digest, StationToken.revoked_at.is_(None))
                )
            ).first()
        return {"id": row.id, "code": row.code, "line_id": row.line_id} if row else None

    found = await kernel.cache.get_or_set(key, lookup, kind="station_token")
    if not found:
        raise Unauthorized("invalid or revoked station token", code="INVALID_TOKEN")
    return Principal(
        kind="station", id=found["id"], name=found["code"], role="station",
        station_id=found["id"], station_code=found["code"], line_id=found["line_id"],
    )


async def get_principal(kernel: KernelDep, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    if not token:
        raise Unauthorized()
    if token.startswith(STATION_TOKEN_PREFIX):
        return await _station_from_token(kernel, token)
    return await user_from_access_token(kernel, token)


_INT64 = range(-(2**63), 2**63)
_SESSION_ID = re.compile(r"[0-9a-f-]{1,36}")


def _plain_text(value: object, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest and value.isprintable()


def access_claims_well_formed(claims: dict) -> bool:
    """Whether a correctly signed token's claims have the shapes the kernel issues: ``uid`` and
    ``ver`` integers in the signed 64-bit range, ``sid`` a session id (a UUID), ``sub`` and ``role``
    printable text. Checked before any of them reaches the cache or the database, so a token minted
    with odd claims (by anything holding the key) is 401 ``INVALID_TOKEN``, never a 422 or 500."""
    uid, ver, sid = claims.get("uid"), claims.get("ver", 0), claims.get("sid")
    return (
        type(uid) is int and uid in _INT64
        and type(ver) is int and ver in _INT64
        and (sid is None or (isinstance(sid, str) and _SESSION_ID.fullmatch(sid) is not None))
        and _plain_text(claims.get("sub"), 256)
        and _plain_text(claims.get("role"), 64)
    )


async def user_from_access_token(kernel: Kernel, token: str) -> Principal:
    """The user an access token (JWT) names, once its signature, lifetime, session and user
    version are checked (see :func:`mes_kernel.services.auth.check_access_claims`). 401 with
    ``TOKEN_EXPIRED``, ``INVALID_TOKEN``, ``TOKEN_REVOKED`` or ``ACCOUNT_DISABLED`` otherwise."""
    try:
        claims = decode_access_token(token, kernel.settings.secret_key)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired", code="TOKEN_EXPIRED") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token", code="INVALID_TOKEN") from None
    if not access_claims_well_formed(claims):
        raise Unauthorized("invalid access token", code="INVALID_TOKEN")
    uid, name, role = claims["uid"], claims["sub"], claims["role"]
    if kernel.settings.token_revocation_check:
        await check_access_claims(kernel, claims)
    return Principal(kind="user", id=uid, name=name, role=role, session_id=claims.get("sid"))


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_optional_principal(
    kernel: KernelDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal | None:
    if not token:
        return None
    try:
        return await get_principal(kernel, token)
    except Unauthorized:
        return None


OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


def require_permission(name: str):
    """A dependency that answers 403 unless the caller's role holds permission ``name``."""

    async def check(principal: CurrentPrincipal, request: Request) -> Principal:
        table = request.app.state.permissions
        if not table.allows(principal.role, name):
            raise Forbidden(f"{principal.role} may not do this (needs {name})", code="FORBIDDEN", permission=name)
        return principal

    check.__name__ = f"require_{name.replace(':', '_')}"
    return Depends(check)
