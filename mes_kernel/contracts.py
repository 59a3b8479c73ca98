"""Plain data types that plugins return from hooks: the kernel's side of the plugin contract."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

KERNEL_API_VERSION = "1.0"


class Status(enum.StrEnum):
    """Health states, worst last: DOWN > DEGRADED > UP."""

    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"

    @property
    def rank(self) -> int:
        return {"UP": 0, "DEGRADED": 1, "DOWN": 2}[self.value]

    @classmethod
    def worst(cls, states: list[Status]) -> Status:
        return max(states, key=lambda s: s.rank, default=cls.UP)


@dataclass(frozen=True)
class Permission:
    """A permission name (``"labels:print"``) and the roles that hold it by default."""

    name: str
    description: str
    roles: tuple[str, ...] = ("admin",)


@dataclass(frozen=True)
class DeviceKind:
    """A kind of device: its name, the stevedore namespace of its drivers, their base class."""

    name: str
    namespace: str
    base_class: type
    description: str = ""


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of a circuit breaker guarding one kind of device action.

    ``expected_exceptions`` are the exceptions that count as failures; any other exception passes
    through without touching the breaker (the spec: only HTTP errors count for the uploader).
    """

    name: str
    failure_threshold: int
    recovery_timeout: float
    expected_exceptions: tuple[type[BaseException], ...] = (Exception,)
    description: str = ""


@dataclass
class CheckResult:
    """What a health check found."""

    status: Status
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: one result per device (printer, uploader …) when a check covers several; shown as a subtree
    components: dict[str, CheckResult] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    """A named async check; ``critical`` ones can make ``/health`` answer 503."""

    name: str
    check: Callable[[], Awaitable[CheckResult]]
    critical: bool = False
    timeout: float = 2.0


@dataclass(frozen=True)
class Panel:
    """A dashboard panel the web shell renders from data at ``endpoint``."""

    id: str
    title: str
    kind: str  # stat | timeseries | bar | table
    endpoint: str
    refresh_seconds: int = 30
    options: dict[str, Any] = field(default_factory=dict)
    #: permission needed to read ``endpoint``; the panel is listed only for roles that hold it
    permission: str | None = None

    KINDS = ("stat", "timeseries", "bar", "table")
