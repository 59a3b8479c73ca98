"""Login (JSON or the OAuth2 password form), rotating refresh tokens, logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import ValidationError
from sqlalchemy import select

from ...cache import commit as cache_commit
from ...db.models import User
from ...errors import Forbidden, MesError, Unauthorized
from ...schemas import LoginIn, MeUpdate, RefreshIn, TokenPair, UserUpdate
from ...services import auth as auth_service
from ..deps import CurrentPrincipal, KernelDep, SessionDep, SettingsDep
from ..scope import serves_line

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with username and password",
    description="Accepts a JSON body `{username, password}` or the OAuth2 password form (so *Authorize* in "
    "/docs works). Answers an access token (15 min) and a refresh token (7 days).",
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": LoginIn.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["username", "password"],
                                                         "properties": {"username": {"type": "string"},
                                                                        "password": {"type": "string"}}}},
    }, "required": True}},
)
async def login(request: Request, session: SessionDep, settings: SettingsDep):
    content_type = request.headers.get("content-type", "").lower()  # media types are case-insensitive
    try:
        media = content_type.split(";", 1)[0].strip()
        if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            body = LoginIn(username=str(form.get("username", "")), password=str(form.get("password", "")))
        elif media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise MesError(f"send application/json or the OAuth2 form, not {media or 'no Content-Type'}",
                           code="UNSUPPORTED_MEDIA_TYPE", status=415)
        else:
            try:
                raw = await request.json()
            except ValueError:
                raise MesError("request body is not valid JSON", code="MALFORMED_JSON") from None
            body = LoginIn.model_validate(raw)
    except ValidationError as exc:
        raise MesError("username and password are required", code="VALIDATION_ERROR", status=422,
                       errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from None
    user = await auth_service.authenticate(
        session=session, username=body.username, password=body.password, settings=settings
    )
    tokens = await auth_service.issue_tokens(session=session, user=user, settings=settings)
    await session.commit()
    return tokens


@router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Swap a refresh token for a new pair (rotation)",
    description="Refreshes of one token within 10 s of each other (two tabs) all get the same new refresh "
    "token. A token used again later revokes its whole login (`REFRESH_TOKEN_REUSED`); a token of a "
    "logged-out session answers `INVALID_TOKEN`, a disabled user's `ACCOUNT_DISABLED`.",
)
async def refresh(body: RefreshIn, session: SessionDep, settings: SettingsDep, kernel: KernelDep):
    tokens = await auth_service.rotate_refresh(
        session=session, refresh_token=body.refresh_token, settings=settings, cache=kernel.cache
    )
    await session.commit()
    return tokens


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End this login: its refresh tokens and, within a second on every worker, its access tokens",
)
async def logout(body: RefreshIn, session: SessionDep, principal: CurrentPrincipal, kernel: KernelDep):
    if principal.kind != "user":
        raise Unauthorized("stations do not log out; revoke their token instead")
    await auth_service.logout(session=session, refresh_token=body.refresh_token, user_id=principal.id)
    if principal.session_id is not None:
        await auth_service.end_session(session=session, family_id=principal.session_id)
    await cache_commit(session, kernel.cache)


@router.get("/me", summary="Who am I, and what may I do")
async def me(principal: CurrentPrincipal, request: Request, kernel: KernelDep, session: SessionDep):
    """The caller and the permissions it holds now. A failed or switched-off plugin's permissions are
    withdrawn for everyone; a station holds a plugin's permissions only while its line enables that
    plugin (the rule of :func:`mes_kernel.api.scope.serves_line`, which the plugin's routes enforce).
    ``language`` is the dashboard language a user chose (``en`` | ``ko``; null: not chosen; always null
    for a station)."""
    language = None
    if principal.kind == "user":
        language = (await session.execute(select(User.language).where(User.id == principal.id))).scalar()
    serves = None
    if principal.kind == "station":
        def serves(plugin: str) -> bool:
            return serves_line(kernel, plugin, principal.line_id)
    return {
        "kind": principal.kind,
        "name": principal.name,
        "role": principal.role,
        "station": principal.station_code,
        "language": language,
        "permissions": request.app.state.permissions.for_role(principal.role, plugin_serves=serves),
    }


@router.patch(
    "/me",
    summary="Change my own settings: the dashboard language",
    description="`{\"language\": \"en\" | \"ko\"}` — stored with the user, so every browser the user logs "
    "in from shows it (`GET /auth/me` answers it). Another value is 422 `VALIDATION_ERROR` naming "
    "`language`. Users only (a station's token is 403 `FORBIDDEN`); audited like any user change. "
    "Administrators change anyone's with `PATCH /users/{username}`.",
)
async def update_me(body: MeUpdate, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
                    kernel: KernelDep):
    if principal.kind != "user":
        raise Forbidden("only a person has settings of their own; a station has none")
    name = (await session.execute(select(User.username).where(User.id == principal.id))).scalar_one()
    user = await auth_service.update_user(session=session, username=name,
                                          user_in=UserUpdate(language=body.language), actor=principal.actor,
                                          settings=settings)
    language = user.language
    await cache_commit(session, kernel.cache)
    return {"name": name, "language": language}
