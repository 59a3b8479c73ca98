"""Login (JSON or the OAuth2 password form), rotating refresh tokens, logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import ValidationError

from ...errors import MesError, Unauthorized
from ...schemas import LoginIn, RefreshIn, TokenPair
from ...services import auth as auth_service
from ..deps import CurrentPrincipal, SessionDep, SettingsDep

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
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded") or content_type.startswith("multipart/"):
            form = await request.form()
            body = LoginIn(username=str(form.get("username", "")), password=str(form.get("password", "")))
        else:
            try:
                raw = await request.json()
            except ValueError:
                raise MesError("request body is not valid JSON", code="MALFORMED_JSON") from None
            body = LoginIn.model_validate(raw)
    except ValidationError as exc:
        raise MesError("username and password are required", code="VALIDATION_ERROR", status=422,
                       errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from None
    user = await auth_service.authenticate(session=session, username=body.username, password=body.password)
    tokens = await auth_service.issue_tokens(session=session, user=user, settings=settings)
    await session.commit()
    return tokens


@router.post("/refresh", response_model=TokenPair, summary="Swap a refresh token for a new pair (rotation)")
async def refresh(body: RefreshIn, session: SessionDep, settings: SettingsDep):
    tokens = await auth_service.rotate_refresh(session=session, refresh_token=body.refresh_token, settings=settings)
    await session.commit()
    return tokens


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a refresh token and its family")
async def logout(body: RefreshIn, session: SessionDep, principal: CurrentPrincipal):
    if principal.kind != "user":
        raise Unauthorized("stations do not log out; revoke their token instead")
    await auth_service.logout(session=session, refresh_token=body.refresh_token)
    await session.commit()


@router.get("/me", summary="Who am I, and what may I do")
async def me(principal: CurrentPrincipal, request: Request):
    return {"kind": principal.kind, "name": principal.name, "role": principal.role,
            "station": principal.station_code,
            "permissions": request.app.state.permissions.for_role(principal.role)}
