"""Users, logins and rotating refresh tokens (reuse of a rotated token revokes its whole family)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import write_audit
from ..db.base import utcnow
from ..db.models import RefreshToken, User
from ..errors import Conflict, NotFound, Unauthorized
from ..schemas import UserCreate, UserUpdate
from ..security import (
    DUMMY_HASH,
    create_access_token,
    hash_password,
    new_opaque_token,
    token_digest,
    verify_password,
)
from ..settings import Settings


def user_snapshot(user: User) -> dict:
    return {"username": user.username, "role": user.role, "full_name": user.full_name, "is_active": user.is_active}


async def create_user(*, session: AsyncSession, user_in: UserCreate, actor: str, settings: Settings) -> User:
    password_hash = await asyncio.to_thread(hash_password, user_in.password, settings.bcrypt_rounds)
    user = User(username=user_in.username, full_name=user_in.full_name, role=user_in.role,
                password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"user {user_in.username} already exists", code="USER_EXISTS") from None
    await write_audit(session, actor=actor, action="create", entity="user", entity_id=user.username,
                      after=user_snapshot(user))
    return user


async def update_user(*, session: AsyncSession, username: str, user_in: UserUpdate, actor: str,
                      settings: Settings) -> User:
    user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user {username} not found", code="USER_NOT_FOUND")
    before = user_snapshot(user)
    changes = user_in.model_dump(exclude_unset=True, exclude_none=True)
    if "password" in changes:
        user.password_hash = await asyncio.to_thread(hash_password, changes.pop("password"), settings.bcrypt_rounds)
        await revoke_all(session=session, user_id=user.id)
    for field, value in changes.items():
        setattr(user, field, value)
    if changes.get("is_active") is False:
        await revoke_all(session=session, user_id=user.id)
    user.updated_at = utcnow()
    await session.flush()
    await write_audit(session, actor=actor, action="update", entity="user", entity_id=username,
                      before=before, after=user_snapshot(user))
    return user


async def authenticate(*, session: AsyncSession, username: str, password: str) -> User:
    user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    ok = await asyncio.to_thread(verify_password, password, user.password_hash if user else DUMMY_HASH)
    if not user or not ok or not user.is_active:
        raise Unauthorized("wrong username or password", code="INVALID_CREDENTIALS")
    return user


async def issue_tokens(*, session: AsyncSession, user: User, settings: Settings, family_id: str | None = None) -> dict:
    access = create_access_token(subject=user.username, role=user.role, uid=user.id, secret=settings.secret_key,
                                 minutes=settings.access_token_minutes)
    refresh = new_opaque_token("mrt_")
    session.add(RefreshToken(
        user_id=user.id, family_id=family_id or str(uuid.uuid4()), token_hash=token_digest(refresh),
        expires_at=utcnow() + timedelta(days=settings.refresh_token_days),
    ))
    await session.flush()
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
            "expires_in": settings.access_token_minutes * 60, "role": user.role}


async def rotate_refresh(*, session: AsyncSession, refresh_token: str, settings: Settings) -> dict:
    """Swap a refresh token for a new pair. A token used twice means it leaked: the whole family
    is revoked and the caller must log in again."""
    row = (await session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == token_digest(refresh_token)).with_for_update()
    )).scalar_one_or_none()
    if row is None:
        raise Unauthorized("unknown refresh token", code="INVALID_TOKEN")
    now = utcnow()
    if row.rotated_at is not None or row.revoked_at is not None:
        await session.execute(update(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                                         RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
        await session.commit()
        raise Unauthorized("refresh token was already used; all sessions of this login are revoked",
                           code="REFRESH_TOKEN_REUSED")
    if row.expires_at < now:
        raise Unauthorized("refresh token expired", code="TOKEN_EXPIRED")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("user is disabled", code="INVALID_TOKEN")
    # Only one of two racing rotations may win: the conditional update decides.
    won = await session.execute(update(RefreshToken).where(RefreshToken.id == row.id,
                                                           RefreshToken.rotated_at.is_(None)).values(rotated_at=now))
    if not won.rowcount:
        raise Unauthorized("refresh token was already used", code="REFRESH_TOKEN_REUSED")
    return await issue_tokens(session=session, user=user, settings=settings, family_id=row.family_id)


async def logout(*, session: AsyncSession, refresh_token: str) -> None:
    row = (await session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == token_digest(refresh_token)))).scalar_one_or_none()
    if row is not None:
        await session.execute(update(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                                         RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


async def revoke_all(*, session: AsyncSession, user_id: int) -> None:
    await session.execute(update(RefreshToken).where(RefreshToken.user_id == user_id,
                                                     RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
