"""The running kernel as plugins see it: settings, database, cache, breakers, drivers, traceability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from . import drivers
from .breakers import BreakerRegistry
from .station_times import StationTimeWindow, window


def _utcnow() -> datetime:
    return datetime.now(UTC)

if TYPE_CHECKING:
    from .cache import Cache
    from .machine_data import MachineDataHub
    from .plugins import PluginManager
    from .runtime import LineScope, RuntimeConfig
    from .settings import Settings


@dataclass
class Kernel:
    """Handed to hooks that take ``kernel``. Everything a plugin may rely on is an attribute here."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    cache: Cache
    breakers: BreakerRegistry
    redis: Any = None
    plugins: PluginManager | None = None
    #: the line configuration and plugin switches as this process follows them (see mes_kernel.runtime)
    runtime: RuntimeConfig | None = None
    state: dict[str, Any] = field(default_factory=dict)
    #: connector plugins' machine data: sinks, writer, health, leases (:class:`mes_kernel.machine_data.MachineDataHub`)
    machine_data: MachineDataHub | None = None
    #: the kernel's wall clock (aware UTC): the receipt time station times are judged against
    #: (:meth:`station_time_window`); a test sets it to stand time still
    clock: Callable[[], datetime] = _utcnow

    def station_time_window(self) -> StationTimeWindow:
        """The station times accepted now (:mod:`mes_kernel.station_times`): receipt (``clock()``)
        minus ``STATION_TIME_MAX_AGE_DAYS`` to plus ``STATION_TIME_MAX_LEAD_SECONDS``."""
        return window(self.settings, self.clock())

    def enabled_lines(self, plugin: str) -> list[str]:
        """Codes of the lines whose configuration enables ``plugin`` (its entry-point name), as of
        now: changes reach every worker within about a second. A health check covers the devices of
        these lines only; an empty list means the plugin is idle (its checks are not run at all)."""
        return self.runtime.enabled_lines(plugin) if self.runtime else []

    def line_scope(self, code: str) -> LineScope | None:
        """The running configuration of line ``code``: enabled plugins, breaker overrides, version."""
        return self.runtime.lines.get(code) if self.runtime else None

    @property
    def files_dir(self) -> Path:
        """Where plugins keep files (firmware images, archived completion JSON)."""
        path = Path(self.settings.files_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def load_driver(self, namespace: str, name: str, **settings: Any) -> Any:
        """Load a driver by its configured name; see :func:`mes_kernel.drivers.load_driver`."""
        return drivers.load_driver(namespace, name, **settings)

    async def record_device_action(self, **kwargs: Any):
        """Write a device action into the LOT/unit history (and the audit trail), in its own
        transaction. Arguments as :func:`mes_kernel.services.device_actions.record_device_action`
        except ``session``. A ``recorded_at`` outside the station-time window (or before the LOT's or
        unit's registration) raises :class:`mes_kernel.station_times.ImplausibleTime` (422
        ``IMPLAUSIBLE_TIME``), nothing written."""
        from .services.device_actions import record_device_action

        async with self.sessionmaker() as session, session.begin():
            # a plugin passing on a time a station or device gave: the same window as every station
            # time, and not before the LOT's or unit's registration
            times = self.station_time_window()
            await times.check(session, kwargs.get("recorded_at"), "recorded_at")
            return await record_device_action(session=session, times=times, **kwargs)
