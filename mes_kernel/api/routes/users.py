"""User administration (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from ...cache import commit as cache_commit
from ...db.models import User
from ...schemas import UserCreate, UserOut, UserUpdate
from ...services import auth as auth_service
from ..deps import KernelDep, Principal, SessionDep, SettingsDep, require_permission

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=list[UserOut], summary="List users")
async def list_users(session: SessionDep, _: Principal = require_permission("users:manage")):
    return (await session.execute(select(User).order_by(User.username))).scalars().all()


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED, summary="Create a user")
async def create_user(
    body: UserCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: Principal = require_permission("users:manage"),
):
    user = await auth_service.create_user(session=session, user_in=body, actor=principal.actor, settings=settings)
    await session.commit()
    return user


@router.patch("/{username}", response_model=UserOut, summary="Change a user's role, name, password or state")
async def update_user(
    username: str,
    body: UserUpdate,
    session: SessionDep,
    settings: SettingsDep,
    kernel: KernelDep,
    principal: Principal = require_permission("users:manage"),
):
    user = await auth_service.update_user(
        session=session, username=username, user_in=body, actor=principal.actor, settings=settings
    )
    await cache_commit(session, kernel.cache)
    return user


@router.post(
    "/{username}/unlock",
    response_model=UserOut,
    summary="Lift a login lock",
    description="Clears the lock that `login_max_failures` wrong passwords in a row put on the account "
    "(`LOGIN_THROTTLED`) and the count of wrong passwords. Audited.",
)
async def unlock_user(username: str, session: SessionDep, principal: Principal = require_permission("users:manage")):
    user = await auth_service.unlock_user(session=session, username=username, actor=principal.actor)
    await session.commit()
    return user
