"""Users, logins, sessions and rotating refresh tokens.

A *session* is one login: the family of refresh tokens that rotation chains together, named by
the family id, which access tokens carry as ``sid``. Every request checks its access token
against the session (still live?) and the user (active, same ``token_version``?) through the
kernel cache, so logout, reuse detection, deactivation, a role change and a password change end
the affected access tokens on every worker as soon as the cache invalidation arrives (Redis
pub/sub; one process without Redis).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import write_audit
from ..cache import Cache, commit, mark_stale
from ..db.base import utcnow
from ..db.models import RefreshToken, User
from ..errors import Conflict, MesError, NotFound, Unauthorized
from ..schemas import UserCreate, UserUpdate
from ..security import (
    DUMMY_HASH,
    create_access_token,
    hash_password,
    new_opaque_token,
    successor_refresh_token,
    token_digest,
    username_key,
    verify_password,
)
from ..settings import Settings

if TYPE_CHECKING:
    from ..kernel import Kernel


def user_state_key(user_id: int) -> str:
    """Cache key of what requests check about a user: ``{"active": bool, "version": int}``."""
    return f"auth_user:{user_id}"


def session_state_key(family_id: str) -> str:
    """Cache key of whether a session (refresh token family) is live: ``{"live": bool}``."""
    return f"auth_session:{family_id}"


class LoginThrottled(MesError):
    """429 ``LOGIN_THROTTLED``: too many wrong passwords for one account; ``retry_after`` seconds."""

    status = 429
    code = "LOGIN_THROTTLED"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


def user_snapshot(user: User) -> dict:
    return {"username": user.username, "role": user.role, "full_name": user.full_name, "is_active": user.is_active,
            "language": user.language}


async def find_user(session: AsyncSession, username: str) -> User | None:
    """The user whose name equals ``username`` under :func:`~mes_kernel.security.username_key`."""
    key = username_key(username)
    return (await session.execute(select(User).where(User.username_key == key))).scalar_one_or_none()


async def create_user(*, session: AsyncSession, user_in: UserCreate, actor: str, settings: Settings) -> User:
    key = username_key(user_in.username)
    if (await session.execute(select(User.id).where(User.username_key == key))).first() is not None:
        raise Conflict(f"user {user_in.username} already exists", code="USER_EXISTS")
    password_hash = await asyncio.to_thread(hash_password, user_in.password, settings.bcrypt_rounds)
    user = User(
        username=user_in.username,
        username_key=key,
        full_name=user_in.full_name,
        role=user_in.role,
        password_hash=password_hash,
        language=user_in.language,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # created meanwhile by another request
        await session.rollback()
        raise Conflict(f"user {user_in.username} already exists", code="USER_EXISTS") from None
    await write_audit(
        session, actor=actor, action="create", entity="user", entity_id=user.username, after=user_snapshot(user)
    )
    return user


async def _get_user(session: AsyncSession, username: str) -> User:
    user = await find_user(session, username)
    if user is None:
        raise NotFound(f"user {username} not found", code="USER_NOT_FOUND")
    return user


async def update_user(
    *, session: AsyncSession, username: str, user_in: UserUpdate, actor: str, settings: Settings
) -> User:
    """Change a user. A new role, a new password or deactivation bumps ``token_version`` (every
    access token of the user stops working); a new password and deactivation also end every session.
    Commit with :func:`mes_kernel.cache.commit` so the cached user state is invalidated."""
    user = await _get_user(session, username)
    before = user_snapshot(user)
    changes = user_in.model_dump(exclude_unset=True, exclude_none=True)
    ends_sessions = False
    if "password" in changes:
        user.password_hash = await asyncio.to_thread(hash_password, changes.pop("password"), settings.bcrypt_rounds)
        ends_sessions = True
    revokes_access = ends_sessions or changes.get("role", user.role) != user.role
    if changes.get("is_active") is False and user.is_active:
        ends_sessions = revokes_access = True
    for field, value in changes.items():
        setattr(user, field, value)
    if revokes_access:
        user.token_version += 1
    if ends_sessions:
        await revoke_all(session=session, user_id=user.id)
    user.updated_at = utcnow()
    await session.flush()
    mark_stale(session, user_state_key(user.id))
    await write_audit(
        session,
        actor=actor,
        action="update",
        entity="user",
        entity_id=user.username,
        before=before,
        after=user_snapshot(user),
    )
    return user


async def unlock_user(*, session: AsyncSession, username: str, actor: str) -> User:
    """Clear a login lock and the count of wrong passwords (audited)."""
    user = await _get_user(session, username)
    before = {"failed_logins": user.failed_logins, "locked_until": user.locked_until}
    user.failed_logins = 0
    user.locked_until = None
    await session.flush()
    await write_audit(
        session,
        actor=actor,
        action="update",
        entity="user",
        entity_id=user.username,
        before=before,
        after={"failed_logins": 0, "locked_until": None},
    )
    return user


# ------------------------------------------------------------------ login


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


async def _count_failure(*, session: AsyncSession, user: User, settings: Settings, now: datetime) -> None:
    """One more wrong password; at ``login_max_failures`` the account locks for ``login_lock_minutes``.
    Atomic in the database, so workers and nodes count together. Committed here: the login fails."""
    failures = (
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins)
        )
    ).scalar_one()
    if failures >= settings.login_max_failures:
        until = now + timedelta(minutes=settings.login_lock_minutes)
        locked = await session.execute(
            update(User)
            .where(User.id == user.id, User.failed_logins >= settings.login_max_failures)
            .values(failed_logins=0, locked_until=until)
        )
        if locked.rowcount:
            await write_audit(
                session,
                actor="system:login_throttle",
                action="update",
                entity="user",
                entity_id=user.username,
                before={"failed_logins": failures, "locked_until": None},
                after={"failed_logins": 0, "locked_until": until},
            )
    await session.commit()


async def authenticate(*, session: AsyncSession, username: str, password: str, settings: Settings) -> User:
    """The user with this name and password, or 401 ``INVALID_CREDENTIALS`` (the same answer for an
    unknown name, a wrong password and a disabled account), or 429 ``LOGIN_THROTTLED`` while the
    account is locked after ``login_max_failures`` wrong passwords in a row."""
    user = await find_user(session, username)
    now = utcnow()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        wait = _seconds_until(user.locked_until, now)
        raise LoginThrottled(f"too many wrong passwords for this account; try again in {wait} s", retry_after=wait)
    ok = await asyncio.to_thread(verify_password, password, user.password_hash if user else DUMMY_HASH)
    if user is not None and not ok:
        await _count_failure(session=session, user=user, settings=settings, now=now)
    if not user or not ok or not user.is_active:
        raise Unauthorized("wrong username or password", code="INVALID_CREDENTIALS")
    if user.failed_logins or user.locked_until is not None:
        user.failed_logins = 0
        user.locked_until = None
    return user


# ------------------------------------------------------------------ tokens


def _access_token(user: User, family_id: str, settings: Settings) -> str:
    return create_access_token(
        subject=user.username,
        role=user.role,
        uid=user.id,
        sid=family_id,
        ver=user.token_version,
        secret=settings.secret_key,
        minutes=settings.access_token_minutes,
    )


def _pair(user: User, family_id: str, refresh: str, settings: Settings) -> dict:
    return {
        "access_token": _access_token(user, family_id, settings),
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": settings.access_token_minutes * 60,
        "role": user.role,
    }


async def issue_tokens(*, session: AsyncSession, user: User, settings: Settings) -> dict:
    """A new session: an access token and the first refresh token of a new family."""
    family_id = str(uuid.uuid4())
    refresh = new_opaque_token("mrt_")
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=token_digest(refresh),
            expires_at=utcnow() + timedelta(days=settings.refresh_token_days),
        )
    )
    await session.flush()
    return _pair(user, family_id, refresh, settings)


async def _revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    mark_stale(session, session_state_key(family_id))


async def rotate_refresh(
    *, session: AsyncSession, refresh_token: str, settings: Settings, cache: Cache, _retry: bool = True
) -> dict:
    """Swap a refresh token for a new pair.

    The successor is derived from the token (:func:`~mes_kernel.security.successor_refresh_token`),
    so every rotation of one token within ``refresh_grace_seconds`` of the first (two tabs, a retried
    request) gets the same successor. A rotated token presented after that window means it leaked:
    the whole family is revoked, 401 ``REFRESH_TOKEN_REUSED``. A token of an ended session (logout,
    password change) answers 401 ``INVALID_TOKEN``; a disabled user's 401 ``ACCOUNT_DISABLED``."""
    row = (
        await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_digest(refresh_token)).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise Unauthorized("unknown refresh token", code="INVALID_TOKEN")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("this account is disabled", code="ACCOUNT_DISABLED")
    if row.revoked_at is not None:
        raise Unauthorized("this session has ended; log in again", code="INVALID_TOKEN")
    now = utcnow()
    if row.expires_at < now:
        raise Unauthorized("refresh token expired", code="TOKEN_EXPIRED")
    successor = successor_refresh_token(refresh_token, settings.secret_key)
    if row.rotated_at is None:
        # Only one of racing rotations writes the successor: the conditional update decides.
        won = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
        )
        if won.rowcount:
            session.add(
                RefreshToken(
                    user_id=user.id,
                    family_id=row.family_id,
                    token_hash=token_digest(successor),
                    expires_at=now + timedelta(days=settings.refresh_token_days),
                )
            )
            await session.flush()
            return _pair(user, row.family_id, successor, settings)
        if _retry:  # lost the race: look again once the winner has committed
            await session.rollback()
            return await rotate_refresh(
                session=session, refresh_token=refresh_token, settings=settings, cache=cache, _retry=False
            )
        raise Unauthorized("refresh token is being rotated; retry", code="INVALID_TOKEN")
    if now - row.rotated_at <= timedelta(seconds=settings.refresh_grace_seconds):
        live = (
            await session.execute(
                select(func.count())
                .select_from(RefreshToken)
                .where(RefreshToken.token_hash == token_digest(successor), RefreshToken.revoked_at.is_(None))
            )
        ).scalar_one()
        if live:
            return _pair(user, row.family_id, successor, settings)
        raise Unauthorized("this session has ended; log in again", code="INVALID_TOKEN")
    await _revoke_family(session, row.family_id, now)
    await commit(session, cache)
    raise Unauthorized(
        "refresh token was already used; all sessions of this login are revoked", code="REFRESH_TOKEN_REUSED"
    )


async def logout(*, session: AsyncSession, refresh_token: str, user_id: int) -> None:
    """End the session of ``refresh_token`` if it belongs to ``user_id``; its access tokens die too.
    Commit with :func:`mes_kernel.cache.commit`."""
    row = (
        await session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_digest(refresh_token)))
    ).scalar_one_or_none()
    if row is not None and row.user_id == user_id:
        await _revoke_family(session, row.family_id, utcnow())


async def end_session(*, session: AsyncSession, family_id: str) -> None:
    """End the session ``family_id`` (the ``sid`` of an access token). Commit with ``cache.commit``."""
    await _revoke_family(session, family_id, utcnow())


async def revoke_all(*, session: AsyncSession, user_id: int) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# ------------------------------------------------------------------ per request


async def check_access_claims(kernel: Kernel, claims: dict[str, Any]) -> None:
    """Refuse an access token whose session or user changed since it was issued: 401
    ``TOKEN_REVOKED`` (session ended, role or password changed) or ``ACCOUNT_DISABLED``.

    Two cache reads (in-process L1 almost always). A token without ``sid`` was not issued by a
    login (only code holding the signing key mints those, e.g. the test kit); it is still refused
    once its user's version moves on or the user is disabled."""
    cache = kernel.cache
    user_id = int(claims["uid"])
    family_id = claims.get("sid")

    async def user_state() -> dict | None:
        async with kernel.sessionmaker() as session:
            row = (await session.execute(select(User.is_active, User.token_version).where(User.id == user_id))).first()
        return {"active": row.is_active, "version": row.token_version} if row else None

    state = await cache.get_or_set(user_state_key(user_id), user_state, kind="auth_user")
    if state is None:
        if family_id is not None:
            raise Unauthorized("the user of this token no longer exists", code="TOKEN_REVOKED")
        return
    if not state["active"]:
        raise Unauthorized("this account is disabled", code="ACCOUNT_DISABLED")
    if claims.get("ver", 0) != state["version"]:
        raise Unauthorized("this token was revoked (role or password changed); log in again", code="TOKEN_REVOKED")
    if family_id is None:
        return

    async def session_state() -> dict:
        async with kernel.sessionmaker() as session:
            live = (
                await session.execute(
                    select(RefreshToken.id)
                    .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                    .limit(1)
                )
            ).first()
        return {"live": live is not None}

    if not (await cache.get_or_set(session_state_key(str(family_id)), session_state, kind="auth_session"))["live"]:
        raise Unauthorized("this session has ended; log in again", code="TOKEN_REVOKED")
