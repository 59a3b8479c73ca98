"""The plugin manager: finds entry-point plugins, loads each inside its own error boundary, checks
its kernel-API range, and calls hooks plugin by plugin so one broken plugin never takes the rest down.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
import structlog
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from . import hookspecs
from .contracts import KERNEL_API_VERSION

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "mes_kernel.plugins"
# Distributions that ship with the product; safe mode loads only these.
BUNDLED_DISTRIBUTIONS = {"mes-label-printer", "mes-firmware-uploader", "mes-barcode-hid", "mes-dashboard-kpi"}

LOADED, DISABLED, INCOMPATIBLE, FAILED = "loaded", "disabled", "incompatible", "failed"


@dataclass
class PluginRecord:
    """What ``GET /api/v1/plugins`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    state: str = LOADED
    reason: str | None = None
    kernel_api: str | None = None
    bundled: bool = False
    hooks: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    drivers: list[dict[str, Any]] = field(default_factory=list)
    breakers: list[str] = field(default_factory=list)
    panels: list[str] = field(default_factory=list)
    health_checks: list[str] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)


def _normalize(name: str | None) -> str | None:
    return name.lower().replace("_", "-") if name else name


class PluginManager:
    """Loads plugins and calls their hooks one plugin at a time."""

    def __init__(self, *, safe_mode: bool = False, allow: list[str] | None = None, deny: list[str] | None = None):
        self.pm = pluggy.PluginManager("mes_kernel")
        self.pm.add_hookspecs(hookspecs)
        self.safe_mode = safe_mode
        self.allow = set(allow or [])
        self.deny = set(deny or [])
        self.records: dict[str, PluginRecord] = {}

    # ------------------------------------------------------------------ loading
    def load_entry_points(self) -> None:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            record = PluginRecord(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist else None,
                version=dist.version if dist else None,
            )
            record.bundled = _normalize(record.distribution) in BUNDLED_DISTRIBUTIONS
            self.records[ep.name] = record
            reason = self._disabled_reason(record)
            if reason:
                record.state, record.reason = DISABLED, reason
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # the boundary: a plugin that fails to import is shown, not fatal
                record.state, record.reason = FAILED, f"import failed: {type(exc).__name__}: {exc}"
                log.error("plugin_import_failed", plugin=ep.name, error=record.reason)
                continue
            self._register(ep.name, plugin, record)

    def register(self, plugin: Any, name: str | None = None) -> PluginRecord:
        """Register an already-imported plugin (tests, embedded use); same checks as entry points."""
        name = name or getattr(plugin, "__name__", type(plugin).__name__)
        record = PluginRecord(name=name, distribution=None, version=getattr(plugin, "__version__", None))
        self.records[name] = record
        reason = self._disabled_reason(record)
        if reason:
            record.state, record.reason = DISABLED, reason
            return record
        self._register(name, plugin, record)
        return record

    def _disabled_reason(self, record: PluginRecord) -> str | None:
        if record.name in self.deny:
            return "denied by PLUGINS_DENY"
        if self.allow and record.name not in self.allow:
            return "not in PLUGINS_ALLOW"
        if self.safe_mode and not record.bundled:
            return "safe mode: third-party plugins are not loaded"
        return None

    def _register(self, name: str, plugin: Any, record: PluginRecord) -> None:
        spec = getattr(plugin, "MES_KERNEL_API", None)
        record.kernel_api = spec
        if spec is None:
            record.state, record.reason = INCOMPATIBLE, "declares no MES_KERNEL_API range"
            return
        try:
            compatible = Version(KERNEL_API_VERSION) in SpecifierSet(spec)
        except InvalidSpecifier:
            record.state, record.reason = INCOMPATIBLE, f"MES_KERNEL_API {spec!r} is not a valid version range"
            return
        if not compatible:
            record.state = INCOMPATIBLE
            record.reason = f"needs kernel API {spec}, this kernel provides {KERNEL_API_VERSION}"
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # e.g. a hookimpl with an argument the spec does not have
            record.state, record.reason = FAILED, f"registration failed: {type(exc).__name__}: {exc}"
            return
        record.state = LOADED
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def fail(self, name: str, reason: str) -> None:
        """Mark a loaded plugin failed (a hook raised) and stop calling it."""
        record = self.records[name]
        record.state, record.reason = FAILED, reason
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        log.error("plugin_failed", plugin=name, reason=reason)

    # ------------------------------------------------------------------ calling hooks
    def loaded(self) -> list[str]:
        return [name for name, rec in self.records.items() if rec.state == LOADED]

    async def call_each(self, hook: str, *, fail_on_error: bool = True, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` on every loaded plugin separately; await coroutines.

        Returns ``(plugin name, result)`` for each plugin that implements it. A plugin whose hook
        raises is marked failed (when ``fail_on_error``) and left out; the others still answer.
        """
        results = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            name = impl.plugin_name
            args = {a: kwargs[a] for a in impl.argnames if a in kwargs}
            try:
                value = impl.function(**args)
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                reason = f"hook {hook} raised {type(exc).__name__}: {exc}"
                if fail_on_error:
                    self.fail(name, reason)
                else:
                    log.error("plugin_hook_failed", plugin=name, hook=hook, error=str(exc))
                continue
            if value is not None:
                results.append((name, value))
        return results

    def snapshot(self) -> list[dict[str, Any]]:
        return [rec.__dict__.copy() for rec in sorted(self.records.values(), key=lambda r: r.name)]
