"""What plugins are installed and what each contributes; the dashboard panels they declare."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from ..deps import CurrentPrincipal, Principal, require_permission

router = APIRouter(tags=["plugins"])


@router.get("/plugins", summary="Every plugin: state (loaded/disabled/incompatible/failed) and contributions")
async def list_plugins(request: Request, _: Principal = require_permission("plugins:read")):
    return {"safe_mode": request.app.state.kernel.settings.plugins_safe_mode,
            "plugins": request.app.state.kernel.plugins.snapshot()}


@router.get("/dashboard/panels", tags=["dashboard"],
            summary="Panels the plugins contribute to the web shell (those the caller may read)")
async def panels(request: Request, principal: CurrentPrincipal):
    table = request.app.state.permissions
    return [
        {"plugin": plugin, **asdict(panel)}
        for plugin, panel in request.app.state.panels
        if panel.permission is None or _allowed(table, principal.role, panel.permission)
    ]


def _allowed(table, role: str, permission: str) -> bool:
    try:
        return table.allows(role, permission)
    except KeyError:  # a panel naming a permission nobody declared is shown to admins only
        return role == "admin"
