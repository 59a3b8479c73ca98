"""One process per directory: an OS file lock held for the process's life, which a crash (even
``kill -9``) releases by itself (``flock`` on POSIX, ``msvcrt.locking`` on Windows).

Used by ``mes serve`` (one server per data directory: ``var/serve.lock``) and by the station agent
(one agent per work directory: two on one outbox would send everything twice). Standard library
only: the station imports it from the kernel's base distribution.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO


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


class DirectoryLock:
    """The lock file at ``path``; :meth:`acquire` takes it for this process and writes ``note``
    (who holds it: a pid, a URL) into it for whoever finds it taken."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh: IO[bytes] | None = None

    def acquire(self, note: str) -> str | None:
        """Take the lock and keep it until :meth:`release` or the process ends: None. Held by
        another process: that holder's note ("unknown" when it wrote none), and nothing held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        if not _try_lock(fh):
            fh.seek(0)
            holder = fh.read().decode(errors="replace").strip() or "unknown"
            fh.close()
            return holder
        fh.seek(0)
        fh.truncate()
        fh.write(note.encode())
        fh.flush()
        self._fh = fh
        return None

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None


def is_locked(path: Path) -> bool:
    """Whether a process holds the lock at ``path`` right now."""
    if not Path(path).exists():
        return False
    with open(path, "a+b") as fh:
        return not _try_lock(fh)
