"""Feeds the scan field's keystrokes to a keyboard-wedge scanner driver, with their times.

A wedge scanner types into whatever has focus. The barcode plugin's ``wedge`` driver tells a
scanner's burst from a person's typing by the gaps between keys, so the window hands it every
key of the scan field together with the moment it arrived (``time.monotonic()``, the clock
``loop.time()`` uses). Characters still land in the field at once; only Enter is held back,
because the driver decides what it was: the end of a scan (the agent then announces a
``scan`` event and the window looks the code up) or a person's Enter (handed back through
``on_typed``, and the window looks up what was typed).

The feeder's ``clock`` and the driver's ``clock`` must be the same clock; tests replace both with
one they advance by hand, so the verdict never depends on how busy the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLineEdit

from mes_station.ui.bridge import AgentBridge

_ENTER_KEYS = {Qt.Key.Key_Return, Qt.Key.Key_Enter}
GS = "\x1d"  # GS1's group separator: scanners type it as Ctrl+]; the driver must see it


def find_wedge(agent: Any) -> Any | None:
    """The agent's wedge scanner driver, if the station has one (runs on the agent thread)."""
    wedge = getattr(agent, "wedge", None)
    if wedge is None:
        devices = getattr(agent, "devices", None)
        try:
            wedge = devices.get("scanner") if devices is not None else None
        except Exception:  # no scanner configured, or its driver failed to load
            return None
    if callable(getattr(wedge, "feed", None)) and callable(getattr(wedge, "on_typed", None)):
        return wedge
    return None


class WedgeFeeder(QObject):
    """Event filter on the scan field: every key goes to the wedge driver; Enter waits for it."""

    def __init__(
        self,
        bridge: AgentBridge,
        wedge: Any,
        field: QLineEdit,
        on_enter: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(field)
        self.clock = clock
        self._bridge = bridge
        self._wedge = wedge
        self._field = field
        self._on_enter = on_enter
        self.active = True
        bridge.submit(wedge.on_typed, bridge.on_gui_thread(self._typed), on_error=self._failed)
        field.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not self.active or event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        at = self.clock()
        is_enter = event.key() in _ENTER_KEYS
        char = "\r" if is_enter else event.text()
        if not char or not (is_enter or char.isprintable() or char == GS):
            return False
        # post, not submit: keys stay ahead of the driver's expiry timer even when the agent's loop lags
        self._bridge.post(self._wedge.feed, char, at, on_error=self._failed)
        return is_enter

    def _typed(self, text: str) -> None:
        if "\r" in text or "\n" in text:
            self._on_enter()

    def _failed(self, exc: BaseException) -> None:
        # Without a working driver the field behaves as a plain text field again.
        self.active = False
        self._field.removeEventFilter(self)
