"""Shared look of the shop-floor window: sizes, colours, big buttons, the result banner.

Sizes are for a worker one to two metres away, often with gloves: no text under 16 px,
result buttons at least 120 px tall, a full-width banner after each save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

MIN_TEXT_PX = 16
BASE_TEXT_PX = 18
RESULT_BUTTON_PX = 130
DEFECT_BUTTON_PX = 58
BANNER_PX = 64

GREEN = "#1b7a2b"
RED = "#c62828"
AMBER = "#f2a900"
GREY = "#6b6b6b"

OK_STYLE = f"color: {GREEN};"
ERROR_STYLE = f"color: {RED}; font-weight: bold;"
NEUTRAL_STYLE = "color: #333;"


def window_style_sheet(font_family: str | None) -> str:
    """The window's style sheet: one font (the CJK-capable one when installed), nothing under 16 px."""
    family = f'font-family: "{font_family}";' if font_family else ""
    return (
        f"QWidget {{ {family} font-size: {BASE_TEXT_PX}px; }}"
        f"QHeaderView::section {{ font-size: {MIN_TEXT_PX + 1}px; font-weight: bold; padding: 4px; }}"
        f"QGroupBox {{ font-weight: bold; }}"
        f"QPushButton {{ min-height: 40px; padding: 4px 14px; }}"
        f"QLineEdit, QComboBox {{ min-height: 40px; }}"
        f"QStatusBar QLabel {{ font-size: {BASE_TEXT_PX}px; }}"
        f"QStatusBar QPushButton {{ min-height: 26px; padding: 0px 10px; }}"
    )


def say(label: QLabel, text: str, style: str) -> None:
    """Show ``text`` in ``label`` as good news, bad news or neutral."""
    label.setStyleSheet(style)
    label.setText(text)


class BigButton(QPushButton):
    """A push button that Enter presses too (a plain QPushButton outside a dialog takes only Space)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.isEnabled():
            self.animateClick()
            return
        super().keyPressEvent(event)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


Scheduler = Callable[[int, Callable[[], Any]], Cancellable]
"""``schedule(delay_ms, callback) -> handle``: run ``callback`` once later unless ``handle.cancel()``."""


class _QtHandle:
    def __init__(self, timer: QTimer) -> None:
        self._timer = timer

    def cancel(self) -> None:
        self._timer.stop()
        self._timer.deleteLater()


def qt_scheduler(parent: QWidget) -> Scheduler:
    """A ``Scheduler`` on Qt single-shot timers owned by ``parent`` (the default outside tests)."""

    def schedule(delay_ms: int, callback: Callable[[], Any]) -> Cancellable:
        timer = QTimer(parent)
        timer.setSingleShot(True)
        timer.setInterval(max(0, int(delay_ms)))
        timer.timeout.connect(callback)
        timer.start()
        return _QtHandle(timer)

    return schedule


class ResultBanner(QLabel):
    """The full-width outcome of the last save: green SAVED, red FAIL/NOT SAVED, amber QUEUED.

    It stays ``stay_ms`` after it was last set, then clears; its height is reserved so the
    screen does not jump. ``state`` is ``""`` (empty), ``saved``, ``fail``, ``queued`` or ``error``.
    """

    COLOURS = {"saved": (GREEN, "white"), "fail": (RED, "white"), "error": (RED, "white"), "queued": (AMBER, "black")}

    def __init__(self, schedule: Scheduler, stay_ms: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("result_banner")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setMinimumHeight(BANNER_PX)
        self._schedule = schedule
        self.stay_ms = stay_ms
        self._hide_handle: Cancellable | None = None
        self.state = ""
        self.key: str | None = None
        self.clear_banner()

    def show_outcome(self, state: str, text: str, *, key: str | None = None) -> None:
        """Show ``text`` in ``state``'s colours for ``stay_ms`` (restarted on every call)."""
        background, foreground = self.COLOURS[state]
        self.state = state
        self.key = key
        self.setText(text)
        self.setStyleSheet(
            f"QLabel {{ background: {background}; color: {foreground}; font-size: 26px; font-weight: bold;"
            f" padding: 6px; border-radius: 6px; }}"
        )
        if self._hide_handle is not None:
            self._hide_handle.cancel()
        self._hide_handle = self._schedule(self.stay_ms, self.clear_banner)

    def clear_banner(self) -> None:
        if self._hide_handle is not None:
            self._hide_handle.cancel()
            self._hide_handle = None
        self.state = ""
        self.key = None
        self.setText("")
        self.setStyleSheet("QLabel { background: transparent; font-size: 26px; }")
