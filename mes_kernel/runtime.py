"""Line configuration and plugin switches at run time: one truth in the database, followed by every
worker of every node.

Every change (``PUT /lines/{code}``, ``mes line apply``, ``POST /plugins/{name}/disable``,
``mes plugins disable``) is written to the database first. The writer then announces it on the Redis
channel ``{namespace}:config:changed``; each worker listening reloads at once. A periodic check
(every ``config_poll_seconds``, one small query returning a fingerprint of the ``lines`` and
``plugin_states`` tables) covers a lost message, a Redis outage and the embedded mode without Redis,
where ``mes line apply`` in another process must reach the running server as well.

What a reload changes in this process: the per-line breaker overrides (with the line's
``config_version``), the plugins switched off by an administrator (routes answer 403
``PLUGIN_DISABLED``, checks stop, panels disappear, permissions are withdrawn, its ``mes_shutdown``
hook runs; switched on again, its ``mes_startup`` runs), and which lines enable which plugin (routes
answer a station of another line 403 ``PLUGIN_NOT_ENABLED``), and the cached line of every station
moved since the last reload (its records' line, its token's principal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Integer, case, func, select

from .audit import write_audit
from .cache import CONFIGURATION, station_line_key, station_token_key
from .db.models import Line, PluginState, Station, StationToken

if TYPE_CHECKING:
    from .kernel import Kernel

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LineScope:
    """One line as the running kernel sees it: which plugins it enables, its breaker overrides.

    ``plugins`` is ``None`` when the line's configuration omits the list: every loaded plugin is
    enabled on it.
    """

    id: int
    code: str
    version: int
    plugins: tuple[str, ...] | None = None
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def enables(self, plugin: str) -> bool:
        return self.plugins is None or plugin in self.plugins


class RuntimeConfig:
    """This process's copy of the line configuration and plugin switches, kept current."""

    def __init__(self, kernel: Kernel, *, poll_seconds: float = 1.0) -> None:
        self.kernel = kernel
        self.poll_seconds = poll_seconds
        self.channel = f"{kernel.settings.redis_namespace}:config:changed"
        self.lines: dict[str, LineScope] = {}
        self._by_id: dict[int, LineScope] = {}
        self.switched_off: dict[str, str] = {}  # plugin name → reason
        #: called (synchronously) after every reload, e.g. to drop the cached health tree
        self.listeners: list[Callable[[], None]] = []
        self._fingerprint: tuple | None = None
        self._station_lines: dict[int, int | None] | None = None  # station id → its line, as last read
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self.reloads = 0

    # ------------------------------------------------------------------ reading
    def line_by_id(self, line_id: int | None) -> LineScope | None:
        return self._by_id.get(line_id) if line_id is not None else None

    def enabled_lines(self, plugin: str) -> list[str]:
        """Codes of the lines that enable ``plugin`` (sorted)."""
        return sorted(code for code, scope in self.lines.items() if scope.enables(plugin))

    def is_idle(self, plugin: str) -> bool:
        """True when lines exist and none enables ``plugin``. With no line configured yet there is
        no scope to enforce, and every plugin counts as enabled."""
        return bool(self.lines) and not self.enabled_lines(plugin)

    # ------------------------------------------------------------------ reloading
    async def _read_fingerprint(self, session) -> tuple:
        query = select(
            select(func.count(Line.id)).scalar_subquery(),
            select(func.coalesce(func.sum(Line.config_version), 0)).scalar_subquery(),
            select(func.coalesce(func.max(Line.id), 0)).scalar_subquery(),
            select(func.count(PluginState.name)).scalar_subquery(),
            select(func.coalesce(func.sum(case((PluginState.enabled, 1), else_=0).cast(Integer)), 0)).scalar_subquery(),
            select(func.max(PluginState.changed_at)).scalar_subquery(),
        )
        row = (await session.execute(query)).one()
        return tuple(str(v) for v in row)

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload when the database's fingerprint differs from the last one seen; True if reloaded."""
        async with self._lock:
            async with self.kernel.sessionmaker() as session:
                fingerprint = await self._read_fingerprint(session)
                if not force and fingerprint == self._fingerprint:
                    return False
                lines = (await session.execute(select(Line))).scalars().all()
                states = (await session.execute(select(PluginState))).scalars().all()
                stations = dict((await session.execute(select(Station.id, Station.line_id))).all())
                known = self._station_lines  # None at the first load: nothing cached to retire
                moved = [i for i, line in stations.items() if known is not None and known.get(i, line) != line]
                tokens = []
                if moved:
                    query = select(StationToken.token_hash).where(StationToken.station_id.in_(moved))
                    tokens = (await session.execute(query)).scalars().all()
            self._install(lines, states)
            self._station_lines = stations
            changed = self._fingerprint is not None  # not the first load: answers may rest on the old one
            self._fingerprint = fingerprint
            self.reloads += 1
        if self.kernel.plugins is not None:
            # start-up of plugins switched on, shut-down of those switched off (outside the reload
            # lock: a shut-down may wait a while for the plugin's work in flight)
            await self.kernel.plugins.follow_switches(kernel=self.kernel)
        if changed:
            # Cached answers computed from the configuration (the dashboard's reports) retire here
            # too when another process made the change (one without Redis: `mes line apply`).
            await self.kernel.cache.invalidate(CONFIGURATION)
        if moved:
            # A station moved to another line (`PUT /stations/{code}/line`, `mes station move`, a
            # line configuration): its records count on the new line, and its token's principal
            # is of the new line, from now on — not when their cached copies expire (5 min).
            await self.kernel.cache.invalidate(
                *(station_line_key(i) for i in moved), *(station_token_key(t) for t in tokens)
            )
        return True

    def _install(self, lines, states) -> None:
        scopes = {}
        for line in lines:
            config = line.config or {}
            plugins = config.get("plugins")
            scopes[line.code] = LineScope(
                id=line.id,
                code=line.code,
                version=line.config_version,
                plugins=tuple(plugins) if plugins is not None else None,
                breakers=dict(config.get("breakers") or {}),
            )
        self.lines = scopes
        self._by_id = {s.id: s for s in scopes.values()}
        self.switched_off = {
            s.name: s.reason or f"disabled by {s.changed_by or 'an administrator'}" for s in states if not s.enabled
        }
        self.kernel.breakers.replace_line_overrides({code: (s.breakers, s.version) for code, s in scopes.items()})
        if self.kernel.plugins is not None:
            self.kernel.plugins.switched_off = dict(self.switched_off)
        for listener in self.listeners:
            listener()

    async def announce(self) -> None:
        """After a committed change: reload here at once, retire every cached answer computed from
        the configuration (on every worker: :data:`~mes_kernel.cache.CONFIGURATION`'s stamp lives
        in Redis) and tell every other worker and node."""
        await self.refresh()
        await self.kernel.cache.invalidate(CONFIGURATION)
        await publish_change(self.kernel.redis, self.channel)

    # ------------------------------------------------------------------ following
    async def start(self) -> None:
        try:
            await self.refresh(force=True)
        except Exception as exc:  # no schema yet (first start before `mes db upgrade`)
            log.warning("runtime_config_not_loaded", error=str(exc))
        self._tasks.append(asyncio.create_task(self._poll(), name="config-version-check"))
        if self.kernel.redis is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="config-announcements"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a Redis client caught mid-connect may take its time to notice the cancellation,
            # and a server must never hang on its way down because of it.
            await asyncio.wait(self._tasks, timeout=5.0)
        self._tasks.clear()

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("config_version_check_failed", error=f"{type(exc).__name__}: {exc}")
                failing = True

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            pubsub = self.kernel.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                delay = 1.0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if asyncio.current_task().cancelling():
                        # the client's read timeout can swallow a cancellation that lands with it
                        raise asyncio.CancelledError
                    if message is not None:
                        await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the periodic check carries on meanwhile
                log.warning("config_announcements_lost", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), timeout=2.0)


async def publish_change(redis, channel: str) -> None:
    """Tell every worker listening that the configuration changed (best effort: the periodic
    version check covers a message that is lost)."""
    if redis is None:
        return
    try:
        await redis.publish(channel, json.dumps({"at": datetime.now(UTC).isoformat()}))
    except Exception as exc:
        log.warning("config_announcement_failed", error=f"{type(exc).__name__}: {exc}")


async def set_plugin_enabled(*, session, name: str, enabled: bool, reason: str, actor: str) -> PluginState:
    """Write the administrator's switch for plugin ``name`` (audited), in the caller's transaction."""
    state = await session.get(PluginState, name)
    before = {"enabled": state.enabled, "reason": state.reason} if state else {"enabled": True, "reason": ""}
    if state is None:
        state = PluginState(name=name)
        session.add(state)
    state.enabled = enabled
    state.reason = reason
    state.changed_by = actor
    state.changed_at = datetime.now(UTC)
    await write_audit(
        session,
        actor=actor,
        action="update",
        entity="plugin",
        entity_id=name,
        before=before,
        after={"enabled": enabled, "reason": reason},
    )
    await session.flush()
    return state
