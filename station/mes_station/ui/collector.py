"""Cyclic garbage collection on the GUI thread only, while the agent's thread runs.

CPython runs the cyclic collector in whichever thread happens to allocate past its threshold.
When that is the agent's asyncio thread and the garbage holds a Qt object (a window, a widget,
a closure over one), PySide deletes the C++ object off its thread, and the process dies
("Fatal Python error: Segmentation fault … Garbage-collecting" on ``mes-station-agent``, seen
once in the station window's tests). So, while a bridge runs, automatic collection is off and a
timer on the GUI thread collects each generation when the collector would have (its own
thresholds, ``gc.get_count`` against ``gc.get_threshold``) — the pattern PyQt applications
such as calibre use. Reference counting, which frees almost everything, is untouched.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer

_lock = threading.Lock()
_users = 0  # running collectors: automatic collection is back on when the last one stops
_was_enabled = True


class GuiThreadCollector(QObject):
    """Turns automatic cyclic collection off and runs it every ``interval_ms`` on the thread that
    made this object (the GUI thread). ``stop()`` collects once more there and turns automatic
    collection back on (when no other collector runs)."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self._threshold = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._running = False

    def start(self) -> None:
        global _users, _was_enabled
        if self._running:
            return
        with _lock:
            if _users == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _users += 1
        self._running = True
        self._timer.start()

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds, youngest first."""
        young, middle, old = gc.get_count()
        if young > self._threshold[0]:
            gc.collect(0)
            if middle > self._threshold[1]:
                gc.collect(1)
                if old > self._threshold[2]:
                    gc.collect(2)

    def stop(self) -> None:
        global _users
        if not self._running:
            return
        self._running = False
        self._timer.stop()
        gc.collect()
        with _lock:
            _users -= 1
            if _users == 0 and _was_enabled:
                gc.enable()
