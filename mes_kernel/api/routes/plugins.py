"""What plugins are installed and what each contributes; switching them off and on at run time; the
dashboard panels they declare."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from ...errors import NotFound
from ...runtime import set_plugin_enabled
from ...schemas import Comment
from ..deps import CurrentPrincipal, KernelDep, Principal, SessionDep, require_permission

router = APIRouter(tags=["plugins"])


class SwitchIn(BaseModel):
    reason: Comment = Field("", max_length=500, description="why (shown in /plugins and /health)")


def _view(kernel, name: str) -> dict:
    items = [p for p in kernel.plugins.snapshot() if p["name"] == name]
    item = next((p for p in items if p["state"] != "failed" or len(items) == 1), items[0])
    return {**item, "lines": kernel.enabled_lines(name), "idle": kernel.runtime.is_idle(name)}


@router.get("/plugins", summary="Every plugin: state (loaded/disabled/incompatible/failed) and contributions")
async def list_plugins(request: Request, _: Principal = require_permission("plugins:read")):
    kernel = request.app.state.kernel
    return {
        "safe_mode": kernel.settings.plugins_safe_mode,
        "plugins": [
            {**p, "lines": kernel.enabled_lines(p["name"]), "idle": kernel.runtime.is_idle(p["name"])}
            for p in kernel.plugins.snapshot()
        ],
    }


async def _switch(*, name: str, enabled: bool, body: SwitchIn | None, kernel, session, principal: Principal) -> dict:
    if name not in kernel.plugins.records:
        raise NotFound(
            f"no plugin named {name!r} is installed (installed: {sorted(kernel.plugins.records)})",
            code="PLUGIN_NOT_FOUND",
            plugin=name,
        )
    reason = (body.reason if body else "") or (f"disabled by {principal.actor}" if not enabled else "")
    await set_plugin_enabled(session=session, name=name, enabled=enabled, reason=reason, actor=principal.actor)
    await session.commit()
    await kernel.runtime.announce()
    return _view(kernel, name)


@router.post(
    "/plugins/{name}/disable",
    summary="Switch a plugin off on every worker and node (admin, audited)",
    description="Its routes answer 403 `PLUGIN_DISABLED` (they stay listed in /docs), its health checks "
    "stop, its panels disappear and its permissions are withdrawn, within about a second everywhere. "
    "Stored in the database: survives restarts. Unknown name: 404 `PLUGIN_NOT_FOUND`.",
)
async def disable_plugin(
    name: str,
    session: SessionDep,
    kernel: KernelDep,
    body: SwitchIn | None = Body(None),
    principal: Principal = require_permission("plugins:manage"),
):
    return await _switch(name=name, enabled=False, body=body, kernel=kernel, session=session, principal=principal)


@router.post("/plugins/{name}/enable", summary="Switch a plugin back on on every worker and node (admin, audited)")
async def enable_plugin(
    name: str,
    session: SessionDep,
    kernel: KernelDep,
    body: SwitchIn | None = Body(None),
    principal: Principal = require_permission("plugins:manage"),
):
    return await _switch(name=name, enabled=True, body=body, kernel=kernel, session=session, principal=principal)


@router.get(
    "/dashboard/panels",
    tags=["dashboard"],
    summary="Panels the plugins contribute to the web shell (those the caller may read)",
    description="Only panels of active plugins: for a station, those its line enables; for people, "
    "those enabled on at least one line.",
)
async def panels(request: Request, principal: CurrentPrincipal):
    kernel = request.app.state.kernel
    table = request.app.state.permissions
    scope = kernel.runtime.line_by_id(principal.line_id) if principal.kind == "station" else None
    return [
        {"plugin": plugin, **asdict(panel)}
        for plugin, panel in request.app.state.panels
        if kernel.plugins.is_active(plugin)
        and (scope.enables(plugin) if scope is not None else not kernel.runtime.is_idle(plugin))
        and (panel.permission is None or _allowed(table, principal.role, panel.permission))
    ]


def _allowed(table, role: str, permission: str) -> bool:
    try:
        return table.allows(role, permission)
    except KeyError:  # a panel naming a permission nobody declared is shown to admins only
        return role == "admin"
