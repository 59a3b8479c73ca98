"""The station's main window: login and main screens, the offline banner and a status bar always visible."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QStatusBar, QVBoxLayout, QWidget

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    WorkerLanguages,
    current_language,
    station_font_family,
    translate,
    use_language,
)
from mes_station.ui.login import LoginScreen
from mes_station.ui.main_screen import MainScreen
from mes_station.ui.options import UiOptions
from mes_station.ui.view import login_language, queue_text, scan_code, scan_source, worker_name
from mes_station.ui.wedge import find_wedge
from mes_station.ui.widgets import AMBER, BANNER_PX, RED, BigButton, Scheduler, qt_scheduler, window_style_sheet

_ONLINE = "background: #2e7d32; color: white; padding: 2px 10px; font-weight: bold;"
_OFFLINE = "background: #c62828; color: white; padding: 2px 10px; font-weight: bold;"
_UNKNOWN = "background: #777; color: white; padding: 2px 10px; font-weight: bold;"
_OFFLINE_BANNER = (
    f"QLabel {{ background: {RED}; color: white; font-size: 22px; font-weight: bold; padding: 4px;"
    " border-radius: 6px; }"
)
_QUARANTINE_BANNER = (
    f"QLabel {{ background: {AMBER}; color: black; font-size: 20px; font-weight: bold; padding: 6px;"
    " border-radius: 6px; }"
)


class StationWindow(QMainWindow):
    """The worker's window. It owns no state of its own beyond what is on screen.

    ``schedule`` runs the window's timed hides (the result banner); tests pass a hand-driven
    one (``mes_station.ui.testing.ManualTimers``). The language is the station's
    (``options.language``) until a worker's login answer names theirs or someone presses the
    language switch (Ctrl+L); logout returns to the station's. A worker's switch is remembered
    for their next login at this station (``worker_languages``).
    """

    def __init__(
        self,
        bridge: AgentBridge,
        options: UiOptions | None = None,
        *,
        title: str = "NeuroHub MES station",
        schedule: Scheduler | None = None,
        worker_languages: WorkerLanguages | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker_languages = worker_languages or WorkerLanguages()
        self._worker: str | None = None
        self.setWindowTitle(title)
        self.bridge = bridge
        self.options = options or UiOptions()
        self._status_busy = False
        self._status: dict[str, Any] = {}
        self.font_family = station_font_family()
        self.setStyleSheet(window_style_sheet(self.font_family))
        self.language = use_language(self.options.language)

        self.login_screen = LoginScreen(bridge, on_logged_in=self._on_logged_in)
        self.main_screen = MainScreen(
            bridge, self.options, on_logout=self._on_logout, schedule=schedule or qt_scheduler(self)
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.login_screen)
        self.stack.addWidget(self.main_screen)

        self.offline_banner = QLabel(objectName="offline_banner")
        self.offline_banner.setStyleSheet(_OFFLINE_BANNER)
        self.offline_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.offline_banner.setWordWrap(True)
        self.offline_banner.setMinimumHeight(BANNER_PX)
        self.offline_banner.setVisible(False)
        self.quarantine_banner = QLabel(objectName="quarantine_banner")
        self.quarantine_banner.setStyleSheet(_QUARANTINE_BANNER)
        self.quarantine_banner.setWordWrap(True)
        self.quarantine_banner.setVisible(False)
        self.last_quarantined: dict[str, Any] | None = None
        central = QWidget(objectName="central")
        column = QVBoxLayout(central)
        column.setContentsMargins(8, 8, 8, 0)
        column.addWidget(self.offline_banner)
        column.addWidget(self.quarantine_banner)
        column.addWidget(self.stack, stretch=1)
        self.setCentralWidget(central)

        self.online_label = QLabel("…", objectName="online_label")
        self.queue_label = QLabel(objectName="queue_label")
        self.language_button = BigButton(objectName="language_button")
        self.language_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.language_button.clicked.connect(self.toggle_language)
        status_bar = QStatusBar(objectName="station_status_bar")
        status_bar.addPermanentWidget(self.language_button)
        status_bar.addPermanentWidget(self.queue_label)
        status_bar.addPermanentWidget(self.online_label)
        self.setStatusBar(status_bar)
        self.language_shortcut = QShortcut(QKeySequence("Ctrl+L"), self)
        self.language_shortcut.activated.connect(self.toggle_language)
        self._online: bool | None = None
        self.retranslate()

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

    # -- language ------------------------------------------------------------------

    def set_language(self, language: str | None) -> str:
        """Speak ``language`` (``en``, ``ko``; anything else: English) from now on; returns the one in use."""
        self.language = use_language(language)
        self.retranslate()
        return self.language

    def toggle_language(self) -> None:
        """The language switch: English ↔ Korean (remembered for the logged-in worker)."""
        language = self.set_language("ko" if current_language() == DEFAULT_LANGUAGE else DEFAULT_LANGUAGE)
        if self.logged_in:
            self.worker_languages.remember(self._worker, language)

    def retranslate(self) -> None:
        """Every text of the window again, in the current language."""
        other = "ko" if self.language == DEFAULT_LANGUAGE else DEFAULT_LANGUAGE
        self.language_button.setText(f"{LANGUAGES[other]} [Ctrl+L]")
        self.login_screen.retranslate()
        self.main_screen.retranslate()
        self._show_online(self._online)
        self._show_queue_and_banners()

    # -- screens -----------------------------------------------------------------

    @property
    def logged_in(self) -> bool:
        return self.stack.currentWidget() is self.main_screen

    def _on_logged_in(self, answer: Any, worker: Any) -> None:
        self._worker = worker_name(worker)
        language = self.worker_languages.get(self._worker) or login_language(answer)
        if language:
            self.set_language(language)
        offline = bool(isinstance(answer, dict) and answer.get("offline"))
        self.main_screen.set_worker(self._worker, offline=offline)
        self.stack.setCurrentWidget(self.main_screen)
        self.main_screen.scan_input.setFocus()

    def _on_logout(self) -> None:
        self.bridge.submit(self.bridge.agent.logout)
        self.main_screen.reset()
        self.main_screen.set_worker(None, focus=False)
        self._worker = None
        self.set_language(self.options.language)
        self.stack.setCurrentWidget(self.login_screen)
        self.login_screen.username.setFocus()

    # -- agent events and status -------------------------------------------------

    def _on_agent_event(self, kind: str, payload: Any) -> None:
        if kind == "status" and isinstance(payload, dict):
            self.apply_status(payload)
        elif kind == "delivery" and isinstance(payload, dict):
            self.main_screen.apply_delivery(payload)
        elif kind == "completion" and isinstance(payload, dict):
            # the agent's watcher says ``action``; "outcome"/"status" are read too, for other shapes
            if "quarantined" in (payload.get("action"), payload.get("outcome"), payload.get("status")):
                self.last_quarantined = payload
                self._show_queue_and_banners()
        elif kind == "scan" and self.logged_in:
            # Codes entered by hand were looked up already; the agent echoes them as scans.
            code = scan_code(payload)
            if code and scan_source(payload) != "keyboard":
                self.main_screen.handle_scan(code)

    def refresh_status(self) -> None:
        """Ask the agent for its state (skipped while the previous ask is pending)."""
        if self._status_busy:
            return
        self._status_busy = True
        self.bridge.submit(self.bridge.agent.status, on_result=self._status_read, on_error=self._status_failed)

    def _status_read(self, status: dict[str, Any]) -> None:
        self._status_busy = False
        self.apply_status(status if isinstance(status, dict) else {})

    def _status_failed(self, exc: BaseException) -> None:
        self._status_busy = False
        self._show_online(None)

    def apply_status(self, status: dict[str, Any]) -> None:
        """Show whichever of the agent's status keys a status has (online, queue, quarantine, cache)."""
        self._status.update(status)
        if "online" in status:
            self._online = bool(status["online"])
            self._show_online(self._online)
        if status.get("station_code"):
            self.main_screen.station_code = str(status["station_code"])
        if self.logged_in and "worker" in status:
            self._follow_session(status)
        self._show_queue_and_banners()

    def _follow_session(self, status: dict[str, Any]) -> None:
        """The agent's side of the worker's session: an offline login that became a server session
        drops "(logged in offline)"; one the server refused returns to the login screen, asking for
        the password once, with the reason and its code."""
        worker = worker_name(status.get("worker"))
        error = status.get("session_error")
        if not worker and isinstance(error, dict):
            name = str(error.get("worker") or self._worker or "")
            code = str(error.get("code") or "SESSION_NOT_RESUMED")
            self._on_logout()
            self.login_screen.username.setText(name)
            self.login_screen.password.setFocus()
            self.login_screen.ask_again(code)
            return
        if worker and worker == self._worker and "worker_offline" in status:
            offline = bool(status["worker_offline"])
            if offline != self.main_screen.worker_offline:
                self.main_screen.set_worker(worker, offline=offline, focus=False)

    def _queue(self) -> tuple[int | None, float | None]:
        status = self._status
        depth = status.get("outbox_depth")
        age = status.get("oldest_queued_age", status.get("oldest_queued_age_seconds"))
        return (int(depth) if isinstance(depth, int | float) else None), age

    def _show_queue_and_banners(self) -> None:
        depth, age = self._queue()
        self.queue_label.setText(queue_text(depth, age))
        self.queue_label.setStyleSheet("font-weight: bold;" if depth else "")
        offline = self._online is False
        self.login_screen.set_offline(offline)
        if offline:
            text = translate("StationWindow", "OFFLINE — results are kept here and sent when the server is back.")
            text += " " + translate("StationWindow", "Waiting: {depth}").format(depth=depth or 0)
            cache = self._status.get("cache")
            if isinstance(cache, dict) and cache.get("synced_at"):
                synced = str(cache["synced_at"]).replace("T", " ")[5:16]
                text += " · " + translate("StationWindow", "data from {when}").format(when=synced)
            self.offline_banner.setText(text)
        self.offline_banner.setVisible(offline)
        quarantined = self._status.get("quarantined")
        count = int(quarantined) if isinstance(quarantined, int | float) else 0
        if count or self.last_quarantined:
            text = translate(
                "StationWindow",
                "Completion files refused by the server: {count} (in quarantine, see mes-station status).",
            ).format(count=max(count, 1))
            last = self.last_quarantined
            if last:
                name = str(last.get("path") or last.get("file") or "").replace("\\", "/").rsplit("/", 1)[-1]
                reason = last.get("reason") or ""
                text += "\n" + translate("StationWindow", "Last: {name} — {reason}").format(name=name, reason=reason)
            self.quarantine_banner.setText(text)
        self.quarantine_banner.setVisible(bool(count or self.last_quarantined))

    def _show_online(self, online: bool | None) -> None:
        if online is None:
            self.online_label.setText(translate("StationWindow", "AGENT ?"))
            self.online_label.setStyleSheet(_UNKNOWN)
        elif online:
            self.online_label.setText(translate("StationWindow", "ONLINE"))
            self.online_label.setStyleSheet(_ONLINE)
        else:
            self.online_label.setText(translate("StationWindow", "OFFLINE"))
            self.online_label.setStyleSheet(_OFFLINE)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.status_timer.stop()
        super().closeEvent(event)
