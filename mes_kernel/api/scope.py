"""Per-line plugin scope: the kernel dependency every plugin router is mounted behind (plugin switched on,
the caller's line enables it), and the same rule for what a station is shown (``/auth/me``,
``/stations/me/config``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..breakers import current_line
from ..errors import Forbidden, Unauthorized
from ..security import STATION_TOKEN_PREFIX
from .deps import get_principal, oauth2_scheme


def serves_line(kernel, plugin: str, line_id: int | None) -> bool:
    """Whether ``plugin`` serves a caller bound to ``line_id`` (a station's line) right now.

    False when the plugin is failed, incompatible or switched off by an administrator; when lines are
    configured and ``line_id`` is None (a station on no line); or when the line's configuration leaves
    the plugin out. With no line configured at all, every active plugin serves. The rule
    :func:`plugin_scope` enforces on routes, as a yes/no for what a station is shown.
    """
    if not kernel.plugins.is_active(plugin):
        return False
    if line_id is None:
        return not kernel.runtime.lines
    scope = kernel.runtime.line_by_id(line_id)
    return scope is None or scope.enables(plugin)


def plugins_serving(kernel, line_id: int | None) -> list[str]:
    """Names of the loaded plugins that serve a station of ``line_id`` (sorted); see :func:`serves_line`."""
    return sorted(name for name in kernel.plugins.loaded() if serves_line(kernel, name, line_id))


def plugin_scope(plugin: str):
    """A dependency refusing calls into ``plugin``'s routes that the running configuration forbids.

    - the plugin is failed or switched off by an administrator → 403 ``PLUGIN_DISABLED``;
    - the caller is bound to a line (a station token; its station's line) and that line's
      configuration does not enable the plugin → 403 ``PLUGIN_NOT_ENABLED`` naming plugin and line;
      so is a station assigned to no line once any line is configured (``line`` is null then).

    For a caller bound to a line it also sets :data:`mes_kernel.breakers.current_line`, so the
    plugin's breakers use that line's overrides. People keep their role-based rights everywhere.
    Authentication itself stays the route's business: a missing or bad token passes through here.
    """

    async def guard(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> None:
        kernel = request.app.state.kernel
        current_line.set(None)
        if not kernel.plugins.is_active(plugin):
            state, reason = kernel.plugins.state_of(plugin)
            raise Forbidden(f"plugin {plugin} is {state}: {reason}", code="PLUGIN_DISABLED", plugin=plugin, state=state)
        if not token or not token.startswith(STATION_TOKEN_PREFIX):
            return
        try:
            principal = await get_principal(kernel, token)
        except Unauthorized:
            return
        if principal.line_id is None and kernel.runtime.lines:
            # Lines are configured, and plugins are enabled per line: a station assigned to none
            # has no line that enables anything.
            raise Forbidden(
                f"station {principal.name} belongs to no line, and plugin {plugin} is enabled per line",
                code="PLUGIN_NOT_ENABLED",
                plugin=plugin,
                line=None,
            )
        scope = kernel.runtime.line_by_id(principal.line_id)
        if scope is None:
            return
        if not scope.enables(plugin):
            raise Forbidden(
                f"plugin {plugin} is not enabled on line {scope.code}",
                code="PLUGIN_NOT_ENABLED",
                plugin=plugin,
                line=scope.code,
            )
        current_line.set(scope.code)

    guard.__name__ = f"plugin_scope_{plugin}"
    return Depends(guard)
