"""One agent per work directory: an OS file lock that a crash (even ``kill -9``) releases by itself
(:mod:`mes_kernel.locks`)."""

from __future__ import annotations

import os
from pathlib import Path

from mes_kernel.locks import DirectoryLock, is_locked
from mes_station.errors import StationError


class AgentAlreadyRunning(StationError):
    """Another agent (the window, or ``mes-station run``) already owns this work directory."""

    code = "AGENT_ALREADY_RUNNING"


class InstanceLock:
    """Held while an agent runs; two agents on one outbox would send everything twice."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = DirectoryLock(self.path)

    def acquire(self) -> None:
        holder = self._lock.acquire(str(os.getpid()))
        if holder is not None:
            raise AgentAlreadyRunning(f"another station agent (pid {holder}) is running on {self.path.parent}")

    def release(self) -> None:
        self._lock.release()


def is_running(path: Path) -> bool:
    """Whether an agent holds the lock at ``path`` right now."""
    return is_locked(path)
