"""The station's main window: login and main screens, and a status bar that is always visible."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QStatusBar, QWidget

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.login import LoginScreen
from mes_station.ui.main_screen import MainScreen
from mes_station.ui.options import UiOptions
from mes_station.ui.view import queue_text, scan_code, scan_source, worker_name
from mes_station.ui.wedge import find_wedge

_ONLINE = "background: #2e7d32; color: white; padding: 2px 10px; font-weight: bold;"
_OFFLINE = "background: #c62828; color: white; padding: 2px 10px; font-weight: bold;"
_UNKNOWN = "background: #777; color: white; padding: 2px 10px; font-weight: bold;"


class StationWindow(QMainWindow):
    """The worker's window. It owns no state of its own beyond what is on screen."""

    def __init__(
        self,
        bridge: AgentBridge,
        options: UiOptions | None = None,
        *,
        title: str = "NeuroHub MES station",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.bridge = bridge
        self.options = options or UiOptions()
        self._status_busy = False

        self.login_screen = LoginScreen(bridge, on_logged_in=self._on_logged_in)
        self.main_screen = MainScreen(bridge, self.options, on_logout=self._on_logout)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.login_screen)
        self.stack.addWidget(self.main_screen)
        self.setCentralWidget(self.stack)

        self.online_label = QLabel("…", objectName="online_label")
        self.queue_label = QLabel("Queue: ?", objectName="queue_label")
        status_bar = QStatusBar(objectName="station_status_bar")
        status_bar.addPermanentWidget(self.queue_label)
        status_bar.addPermanentWidget(self.online_label)
        self.setStatusBar(status_bar)
        self._show_online(None)

        bridge.add_listener(self._on_agent_event)

        # Events push changes; the timer also covers an agent that reports only on change.
        self.status_timer = QTimer(self, interval=self.options.status_poll_ms)
        self.status_timer.timeout.connect(self.refresh_status)
        self.status_timer.start()
        self.refresh_status()
        bridge.submit(find_wedge, bridge.agent, on_result=self._wedge_found)

    def _wedge_found(self, wedge: Any) -> None:
        if wedge is not None:
            self.main_screen.attach_wedge(wedge)

    # -- screens -----------------------------------------------------------------

    @property
    def logged_in(self) -> bool:
        return self.stack.currentWidget() is self.main_screen

    def _on_logged_in(self, worker: Any) -> None:
        self.main_screen.set_worker(worker_name(worker))
        self.stack.setCurrentWidget(self.main_screen)
        self.main_screen.scan_input.setFocus()

    def _on_logout(self) -> None:
        if callable(getattr(self.bridge.agent, "logout", None)):
            self.bridge.submit(self.bridge.agent.logout)
        self.main_screen.reset()
        self.main_screen.set_worker(None)
        self.stack.setCurrentWidget(self.login_screen)
        self.login_screen.username.setFocus()

    # -- agent events and status -------------------------------------------------

    def _on_agent_event(self, kind: str, payload: Any) -> None:
        if kind == "status" and isinstance(payload, dict):
            self.apply_status(payload)
        elif kind == "scan" and self.logged_in:
            # Codes entered by hand were looked up already; the agent echoes them as scans.
            code = scan_code(payload)
            if code and scan_source(payload) != "keyboard":
                self.main_screen.handle_scan(code)

    def refresh_status(self) -> None:
        """Ask the agent for online/queue state (skipped while the previous ask is pending)."""
        if self._status_busy:
            return
        self._status_busy = True
        self.bridge.submit(_read_status, self.bridge.agent, on_result=self._status_read, on_error=self._status_failed)

    def _status_read(self, status: dict[str, Any]) -> None:
        self._status_busy = False
        self.apply_status(status)

    def _status_failed(self, exc: BaseException) -> None:
        self._status_busy = False
        self._show_online(None)
        self.statusBar().showMessage(f"Agent status unavailable: {exc}", 5000)

    def apply_status(self, status: dict[str, Any]) -> None:
        """Show whichever of ``online``, ``outbox_depth``, ``oldest_queued_age`` a status has."""
        if "online" in status:
            self._show_online(bool(status["online"]))
        if "outbox_depth" in status:
            depth = status["outbox_depth"]
            age = status.get("oldest_queued_age", status.get("oldest_queued_age_seconds"))
            self.queue_label.setText(queue_text(depth, age))
            self.queue_label.setStyleSheet("font-weight: bold;" if depth else "")

    def _show_online(self, online: bool | None) -> None:
        if online is None:
            self.online_label.setText("AGENT ?")
            self.online_label.setStyleSheet(_UNKNOWN)
        elif online:
            self.online_label.setText("ONLINE")
            self.online_label.setStyleSheet(_ONLINE)
        else:
            self.online_label.setText("OFFLINE")
            self.online_label.setStyleSheet(_OFFLINE)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.status_timer.stop()
        super().closeEvent(event)


def _read_status(agent: Any) -> dict[str, Any]:
    # Runs on the agent thread: one consistent read of the three figures.
    return {
        "online": bool(agent.online),
        "outbox_depth": agent.outbox_depth(),
        "oldest_queued_age": agent.oldest_queued_age(),
    }
