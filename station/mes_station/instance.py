"""One agent per work directory: an OS file lock that a crash (even ``kill -9``) releases by itself."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from mes_station.errors import StationError


class AgentAlreadyRunning(StationError):
    """Another agent (the window, or ``mes-station run``) already owns this work directory."""

    code = "AGENT_ALREADY_RUNNING"


def _try_lock(fh: IO[bytes]) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class InstanceLock:
    """Held while an agent runs; two agents on one outbox would send everything twice."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh: IO[bytes] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open for the agent's lifetime
        if not _try_lock(fh):
            fh.seek(0)
            holder = fh.read().decode(errors="replace").strip() or "unknown"
            fh.close()
            raise AgentAlreadyRunning(f"another station agent (pid {holder}) is running on {self.path.parent}")
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()).encode())
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None


def is_running(path: Path) -> bool:
    """Whether an agent holds the lock at ``path`` right now."""
    if not Path(path).exists():
        return False
    with open(path, "a+b") as fh:
        return not _try_lock(fh)
