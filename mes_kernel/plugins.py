"""The plugin manager: finds entry-point plugins, loads each inside its own error boundary, checks
its kernel-API range, and calls hooks plugin by plugin so one broken plugin never takes the rest down.

Two switches decide whether a loaded plugin serves: its state (a hook that raised marks it *failed*)
and the administrator's run-time switch (``plugin_states``, followed by :mod:`mes_kernel.runtime`),
which leaves it mounted — its routes stay in ``/docs`` and answer 403 ``PLUGIN_DISABLED`` — so it can
be enabled again without a restart.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
import structlog
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from . import hookspecs
from .contracts import KERNEL_API_VERSION
from .deadlines import wait_at_most

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "mes_kernel.plugins"
SHUTDOWN_TIMEOUT = 15.0  # seconds a plugin's mes_shutdown may take before the kernel goes on without it
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
    #: ``reason`` as a stable code and the values it names, for a dashboard to word in its reader's
    #: language (``DENIED``, ``DISTRIBUTION_DENIED``, ``NOT_ALLOWED``, ``SAFE_MODE``, ``NAME_CONFLICT``,
    #: ``IMPORT_FAILED``, ``NO_KERNEL_API``, ``BAD_KERNEL_API``, ``KERNEL_API_MISMATCH``,
    #: ``REGISTRATION_FAILED``, ``HOOK_FAILED``, ``SWITCHED_OFF`` — whose ``reason`` is the administrator's)
    reason_code: str | None = None
    reason_params: dict[str, Any] = field(default_factory=dict)
    kernel_api: str | None = None
    bundled: bool = False
    hooks: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    drivers: list[dict[str, Any]] = field(default_factory=list)
    breakers: list[str] = field(default_factory=list)
    panels: list[str] = field(default_factory=list)
    health_checks: list[str] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)

    def refuse(self, state: str, code: str, reason: str, **params: Any) -> None:
        """Not serving: ``state`` because of ``reason`` (English), worded by ``code`` and ``params``."""
        self.state, self.reason, self.reason_code, self.reason_params = state, reason, code, params


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
        #: plugins an administrator switched off at run time (name → reason); set by the runtime config
        self.switched_off: dict[str, str] = {}
        #: plugin names declared by several distributions: every claimant, none loaded
        self.conflicts: dict[str, list[PluginRecord]] = {}
        #: plugins whose ``mes_startup`` ran and whose ``mes_shutdown`` has not: None before the
        #: kernel's start-up and after its shut-down (see :meth:`follow_switches`)
        self.running: set[str] | None = None
        self._lifecycle = asyncio.Lock()

    # ------------------------------------------------------------------ loading
    def load_entry_points(self) -> None:
        claims: dict[str, list[metadata.EntryPoint]] = defaultdict(list)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            claims[ep.name].append(ep)
        for name in sorted(claims):
            candidates = []
            for ep in claims[name]:
                dist = getattr(ep, "dist", None)
                record = PluginRecord(
                    name=ep.name,
                    distribution=dist.metadata["Name"] if dist else None,
                    version=dist.version if dist else None,
                )
                record.bundled = _normalize(record.distribution) in BUNDLED_DISTRIBUTIONS
                candidates.append((ep, record))
            self._load_claims(name, candidates)

    def _load_claims(self, name: str, candidates: list[tuple[metadata.EntryPoint, PluginRecord]]) -> None:
        """Load plugin ``name``; when several distributions declare it, none of them (the deny list can
        name a distribution to leave one)."""
        if len(candidates) > 1:
            denied = [(ep, rec) for ep, rec in candidates if _normalize(rec.distribution) in self._denied_dists()]
            kept = [(ep, rec) for ep, rec in candidates if (ep, rec) not in denied]
            for _, rec in denied:
                rec.refuse(
                    DISABLED,
                    "DISTRIBUTION_DENIED",
                    f"distribution {rec.distribution} denied by PLUGINS_DENY",
                    distribution=rec.distribution,
                )
            if len(kept) > 1:
                claimants = ", ".join(f"{rec.distribution} {rec.version}" for _, rec in kept)
                reason = (
                    f"plugin name {name!r} is declared by {len(kept)} distributions ({claimants}); "
                    f"none is loaded: uninstall one or name one distribution in PLUGINS_DENY"
                )
                for _, rec in kept:
                    rec.refuse(FAILED, "NAME_CONFLICT", reason, claimants=claimants)
                self.conflicts[name] = [rec for _, rec in candidates]
                self.records[name] = kept[0][1]
                log.error("plugin_name_conflict", plugin=name, distributions=[rec.distribution for _, rec in kept])
                return
            if not kept:
                self.conflicts[name] = [rec for _, rec in candidates]
                self.records[name] = denied[0][1]
                return
            self.conflicts[name] = [rec for _, rec in candidates]
            candidates = kept
        ep, record = candidates[0]
        self.records[name] = record
        refusal = self._disabled_reason(record)
        if refusal:
            record.refuse(DISABLED, *refusal)
            return
        try:
            plugin = ep.load()
        except Exception as exc:  # the boundary: a plugin that fails to import is shown, not fatal
            error = f"{type(exc).__name__}: {exc}"
            record.refuse(FAILED, "IMPORT_FAILED", f"import failed: {error}", error=error)
            log.error("plugin_import_failed", plugin=ep.name, error=record.reason)
            return
        self._register(ep.name, plugin, record)

    def _denied_dists(self) -> set[str]:
        return {_normalize(d) for d in self.deny}

    def register(self, plugin: Any, name: str | None = None) -> PluginRecord:
        """Register an already-imported plugin (tests, embedded use); same checks as entry points."""
        name = name or getattr(plugin, "__name__", type(plugin).__name__)
        record = PluginRecord(name=name, distribution=None, version=getattr(plugin, "__version__", None))
        self.records[name] = record
        refusal = self._disabled_reason(record)
        if refusal:
            record.refuse(DISABLED, *refusal)
            return record
        self._register(name, plugin, record)
        return record

    def _disabled_reason(self, record: PluginRecord) -> tuple[str, str] | None:
        """Why the settings keep ``record`` from loading: ``(code, reason)``, or None."""
        if record.name in self.deny:
            return "DENIED", "denied by PLUGINS_DENY"
        if self.allow and record.name not in self.allow:
            return "NOT_ALLOWED", "not in PLUGINS_ALLOW"
        if self.safe_mode and not record.bundled:
            return "SAFE_MODE", "safe mode: third-party plugins are not loaded"
        return None

    def _register(self, name: str, plugin: Any, record: PluginRecord) -> None:
        spec = getattr(plugin, "MES_KERNEL_API", None)
        record.kernel_api = spec
        if spec is None:
            record.refuse(INCOMPATIBLE, "NO_KERNEL_API", "declares no MES_KERNEL_API range")
            return
        try:
            compatible = Version(KERNEL_API_VERSION) in SpecifierSet(spec)
        except InvalidSpecifier:
            record.refuse(
                INCOMPATIBLE, "BAD_KERNEL_API", f"MES_KERNEL_API {spec!r} is not a valid version range", spec=spec
            )
            return
        if not compatible:
            reason = f"needs kernel API {spec}, this kernel provides {KERNEL_API_VERSION}"
            record.refuse(INCOMPATIBLE, "KERNEL_API_MISMATCH", reason, spec=spec, kernel=KERNEL_API_VERSION)
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # e.g. a hookimpl with an argument the spec does not have
            error = f"{type(exc).__name__}: {exc}"
            record.refuse(FAILED, "REGISTRATION_FAILED", f"registration failed: {error}", error=error)
            return
        record.state = LOADED
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def fail(self, name: str, reason: str, *, hook: str | None = None, error: str | None = None) -> None:
        """Mark a loaded plugin failed (``hook`` raised ``error``) and stop calling it."""
        record = self.records[name]
        record.refuse(FAILED, "HOOK_FAILED", reason, hook=hook, error=error or reason)
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        log.error("plugin_failed", plugin=name, reason=reason)

    # ------------------------------------------------------------------ calling hooks
    def loaded(self) -> list[str]:
        """Plugins registered and mounted (including those switched off at run time)."""
        return [name for name, rec in self.records.items() if rec.state == LOADED]

    def is_active(self, name: str) -> bool:
        """Loaded and not switched off: its routes serve, its checks run, its permissions hold."""
        record = self.records.get(name)
        return record is not None and record.state == LOADED and name not in self.switched_off

    def state_of(self, name: str) -> tuple[str, str | None]:
        """(state, reason) as shown to people: a loaded plugin switched off at run time is *disabled*."""
        record = self.records[name]
        if record.state == LOADED and name in self.switched_off:
            return DISABLED, self.switched_off[name]
        return record.state, record.reason

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, kernel: Any) -> None:
        """The kernel's start-up: ``mes_startup`` of every active plugin — not of one switched off by an
        administrator (stored in the database), whose start-up runs when it is switched on."""
        async with self._lifecycle:
            self.running = set()
        await self.follow_switches(kernel=kernel, quiet=True)

    async def follow_switches(self, *, kernel: Any, quiet: bool = False) -> dict[str, list[str]]:
        """Bring the plugins' lifecycle in line with their switches, in this process: ``mes_shutdown``
        of each plugin switched off (or failed) since the last call, then ``mes_startup`` of each one
        switched on. Called by the runtime configuration after every reload. A start-up that raises
        marks the plugin failed, as at start; a shut-down that raises is logged. Each switch followed
        is logged (``plugins_stopped`` / ``plugins_started``; not the kernel's own start, ``quiet``). Returns
        ``{"stopped": [...], "started": [...]}``; nothing before :meth:`start` or after :meth:`stop`."""
        async with self._lifecycle:
            if self.running is None:
                return {"stopped": [], "started": []}
            active = {name for name in self.loaded() if self.is_active(name)}
            stopping = sorted(self.running - active)
            starting = sorted(active - self.running)
            if stopping:
                await self.call_each("mes_shutdown", kernel=kernel, fail_on_error=False, only=stopping)
                self.running -= set(stopping)
                if not quiet:
                    log.info("plugins_stopped", plugins=stopping)
            if starting:
                await self.call_each("mes_startup", kernel=kernel, only=starting)
                self.running |= {name for name in starting if self.records[name].state == LOADED}
                if not quiet:
                    log.info("plugins_started", plugins=starting)
            return {"stopped": stopping, "started": starting}

    async def stop(self, *, kernel: Any) -> None:
        """The kernel's shut-down: ``mes_shutdown`` of every plugin whose start-up ran."""
        async with self._lifecycle:
            running, self.running = self.running or set(), None
            if running:
                await self.call_each("mes_shutdown", kernel=kernel, fail_on_error=False, only=running)

    async def call_each(
        self, hook: str, *, fail_on_error: bool = True, only: Iterable[str] | None = None, **kwargs: Any
    ) -> list[tuple[str, Any]]:
        """Call ``hook`` on every loaded plugin separately (on those named in ``only``, when given);
        await coroutines.

        Returns ``(plugin name, result)`` for each plugin that implements it. A plugin whose hook
        raises is marked failed (when ``fail_on_error``) and left out; the others still answer.

        Each plugin's implementation is called through pluggy itself, with every wrapper
        implementation (``wrapper=True`` or ``hookwrapper=True``) of the hook around it, so wrappers
        keep their pluggy meaning: they run before and after, see the result and may change it. A
        wrapper that raises is the one marked failed, and the call is made again without it.
        """
        results = []
        names = set(only) if only is not None else None
        caller = getattr(self.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                continue
            if names is not None and impl.plugin_name not in names:
                continue
            for _attempt in range(len(caller.get_hookimpls()) + 1):
                outcome = await self._call_one(hook, impl, kwargs, fail_on_error)
                if outcome is not _RETRY:
                    break
            else:
                continue
            if outcome is _SKIP:
                continue
            results.extend((impl.plugin_name, value) for value in outcome if value is not None)
        return results

    async def _bounded(self, hook: str, name: str, awaitable: Any) -> Any:
        """A plugin's ``mes_shutdown`` may take at most ``SHUTDOWN_TIMEOUT`` seconds: one that hangs
        (a protocol library waiting on a dead peer) must not hang the kernel's shut-down or a switch.
        Other hooks are awaited as they are."""
        if hook != "mes_shutdown":
            return await awaitable
        try:
            return await wait_at_most(awaitable, SHUTDOWN_TIMEOUT)  # one deaf to cancellation too
        except TimeoutError:
            log.error("plugin_shutdown_timeout", plugin=name, seconds=SHUTDOWN_TIMEOUT)
            return None

    async def _call_one(self, hook: str, impl, kwargs: dict[str, Any], fail_on_error: bool):
        """One plugin's implementation inside the wrappers: its values, ``_SKIP`` or ``_RETRY``."""
        name = impl.plugin_name
        if self.pm.get_plugin(name) is None:  # failed earlier in this round
            return _SKIP
        caller = getattr(self.pm.hook, hook)
        impls = caller.get_hookimpls()
        others = [i.plugin for i in impls if not (i.wrapper or i.hookwrapper) and i.plugin_name != name]
        code_owner = {i.function.__code__: i.plugin_name for i in impls if hasattr(i.function, "__code__")}
        if hasattr(impl.function, "__code__"):
            code_owner[impl.function.__code__] = name
        try:
            values = self.pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
            values = [await self._bounded(hook, name, v) if inspect.isawaitable(v) else v for v in values]
        except Exception as exc:
            blamed = _blame(exc, code_owner, default=name)
            error = f"{type(exc).__name__}: {exc}"
            if fail_on_error:
                self.fail(blamed, f"hook {hook} raised {error}", hook=hook, error=error)
            else:
                log.error("plugin_hook_failed", plugin=blamed, hook=hook, error=str(exc))
            return _RETRY if blamed != name and fail_on_error else _SKIP
        return values

    def snapshot(self) -> list[dict[str, Any]]:
        """Every plugin as ``GET /api/v1/plugins`` lists it; each claimant of a conflicting name."""
        out = []
        for name, rec in sorted(self.records.items()):
            for each in self.conflicts.get(name, [rec]):
                item = each.__dict__.copy()
                if each is rec and name in self.switched_off and rec.state == LOADED:
                    # the administrator's words, shown as typed
                    item.update(state=DISABLED, reason=self.switched_off[name], reason_code="SWITCHED_OFF")
                    item["reason_params"] = {}
                item["enabled"] = name not in self.switched_off
                out.append(item)
        return out


_SKIP, _RETRY = object(), object()


def _blame(exc: BaseException, code_owner: dict[Any, str], *, default: str) -> str:
    """The plugin whose function is the deepest frame of the traceback (where it was raised)."""
    blamed, tb = default, exc.__traceback__
    while tb is not None:
        blamed = code_owner.get(tb.tb_frame.f_code, blamed)
        tb = tb.tb_next
    return blamed
