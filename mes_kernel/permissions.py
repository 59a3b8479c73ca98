"""The permission table: kernel permissions and the ones plugins add, with their default roles."""

from __future__ import annotations

from collections.abc import Callable

from .contracts import Permission

ROLES = ("admin", "production_manager", "worker", "viewer", "quality_manager", "executive")
STATION = "station"  # machine identities are checked against this pseudo-role
# Read-only managers: quality looks into LOTs, units and their history (the drill-down behind a
# Pareto bar); the executive sees KPIs and lines, not individual records.
QUALITY = "quality_manager"
EXECUTIVE = "executive"
EVERYONE = ("production_manager", "worker", "viewer", QUALITY, STATION)

KERNEL_PERMISSIONS = [
    Permission("lots:read", "Read LOTs, units, records and history", EVERYONE),
    Permission("lots:write", "Create and update LOTs and register units", ("production_manager",)),
    Permission("records:write", "Record process results", ("production_manager", "worker", STATION)),
    Permission("processes:write", "Define routing steps", ("production_manager",)),
    Permission("users:manage", "Create users and change roles", ()),
    Permission("stations:manage", "Register stations and issue or revoke their tokens", ()),
    Permission("stations:heartbeat", "Report station heartbeat and events", (STATION,)),
    Permission("stations:read", "See stations and their heartbeats", ("production_manager", "viewer", QUALITY)),
    Permission("lines:manage", "Configure lines, their plugins and devices", ()),
    Permission(
        "lines:read",
        "Read line configuration and devices",
        ("production_manager", "worker", "viewer", QUALITY, EXECUTIVE, STATION),
    ),
    Permission("audit:read", "Read the audit trail", ()),
    Permission("plugins:read", "List plugins and their state", ("production_manager", "viewer")),
    Permission("plugins:manage", "Switch plugins off and on at run time", ()),
    Permission(
        "health:details", "See health-check reasons and details", ("production_manager", "worker", "viewer", QUALITY)
    ),
]


class PermissionTable:
    """Which roles hold which permission; admin holds all.

    A plugin's permissions hold only while the plugin is active: ``owner_active`` (set by the app to
    the plugin manager's view) withdraws those of a failed or disabled plugin from every role.
    """

    def __init__(self) -> None:
        self._perms: dict[str, Permission] = {}
        self._owner: dict[str, str] = {}
        self.owner_active: Callable[[str], bool] = lambda owner: True
        for perm in KERNEL_PERMISSIONS:
            self.add(perm, owner="kernel")

    def add(self, perm: Permission, *, owner: str) -> None:
        if perm.name in self._perms and self._owner[perm.name] != owner:
            raise ValueError(f"permission {perm.name!r} already declared by {self._owner[perm.name]}")
        unknown = set(perm.roles) - set(ROLES) - {STATION}
        if unknown:
            raise ValueError(f"permission {perm.name!r} names unknown roles {sorted(unknown)}")
        self._perms[perm.name] = perm
        self._owner[perm.name] = owner

    def allows(self, role: str, name: str) -> bool:
        if name not in self._perms:
            raise KeyError(f"unknown permission {name!r}")
        owner = self._owner[name]
        if owner != "kernel" and not self.owner_active(owner):
            return False
        return role == "admin" or role in self._perms[name].roles

    def for_role(self, role: str, *, plugin_serves: Callable[[str], bool] | None = None) -> list[str]:
        """The permissions ``role`` holds (sorted). ``plugin_serves`` narrows a plugin's permissions to
        those of plugins it says yes to (a station sees only the plugins its line enables)."""
        return sorted(
            n
            for n in self._perms
            if self.allows(role, n)
            and (plugin_serves is None or self._owner[n] == "kernel" or plugin_serves(self._owner[n]))
        )

    def owner(self, name: str) -> str:
        """``"kernel"`` or the name of the plugin that declared permission ``name``."""
        return self._owner[name]

    def all(self) -> list[tuple[Permission, str]]:
        return [(p, self._owner[n]) for n, p in sorted(self._perms.items())]
