"""The login screen: username and password, handed to ``agent.login`` (online, or offline from the cache)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.i18n import translate
from mes_station.ui.view import describe_error
from mes_station.ui.widgets import BigButton


class LoginScreen(QWidget):
    """Asks for credentials; calls ``on_logged_in(answer, agent.worker)`` once the agent accepts them.

    While the server is unreachable the agent checks the password against the credential it
    cached at the worker's last login at this station; the screen says so.
    """

    def __init__(
        self,
        bridge: AgentBridge,
        on_logged_in: Callable[[Any, Any], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._on_logged_in = on_logged_in
        self._error: Callable[[], str] | None = None
        self._busy = False
        self.offline = False
        self.setObjectName("login_screen")

        self.title = QLabel(objectName="login_title")
        self.title.setStyleSheet("font-size: 30px; font-weight: bold;")
        self.username_caption = QLabel(objectName="username_caption")
        self.username = QLineEdit(objectName="username")
        self.password_caption = QLabel(objectName="password_caption")
        self.password = QLineEdit(objectName="password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        for field in (self.username, self.password):
            field.setStyleSheet("font-size: 22px; min-height: 48px;")
        self.login_button = BigButton(objectName="login_button")
        self.login_button.setMinimumHeight(60)
        self.offline_hint = QLabel(objectName="login_offline_hint")
        self.offline_hint.setWordWrap(True)
        self.offline_hint.setStyleSheet("color: #8a5a00; font-weight: bold;")
        self.error = QLabel(objectName="login_error")
        self.error.setStyleSheet("color: #b00020; font-weight: bold;")
        self.error.setWordWrap(True)

        panel = QWidget()
        panel.setMaximumWidth(620)
        panel.setMinimumWidth(480)
        form = QFormLayout()
        form.addRow(self.username_caption, self.username)
        form.addRow(self.password_caption, self.password)
        column = QVBoxLayout(panel)
        column.addWidget(self.title, alignment=Qt.AlignmentFlag.AlignHCenter)
        column.addLayout(form)
        column.addWidget(self.login_button)
        column.addWidget(self.offline_hint)
        column.addWidget(self.error)
        box = QVBoxLayout(self)
        box.addStretch(1)
        box.addWidget(panel, alignment=Qt.AlignmentFlag.AlignHCenter)
        box.addStretch(2)

        self.login_button.clicked.connect(self.submit)
        self.username.returnPressed.connect(self.password.setFocus)
        self.password.returnPressed.connect(self.submit)
        QWidget.setTabOrder(self.username, self.password)
        QWidget.setTabOrder(self.password, self.login_button)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(translate("LoginScreen", "NeuroHub MES — worker login"))
        self.username_caption.setText(translate("LoginScreen", "Username"))
        self.password_caption.setText(translate("LoginScreen", "Password"))
        self.username.setPlaceholderText(translate("LoginScreen", "username or badge"))
        self._reset_button()
        self.set_offline(self.offline)
        if self._error is not None:
            self.error.setText(self._error())

    def set_offline(self, offline: bool) -> None:
        """Say that a login now is checked at the station (the server is unreachable)."""
        self.offline = offline
        self.offline_hint.setText(
            translate(
                "LoginScreen",
                "The server cannot be reached. "
                "Workers who logged in at this station in the last days can still log in.",
            )
            if offline
            else ""
        )

    def _show_error(self, error: Callable[[], str] | None) -> None:
        self._error = error
        self.error.setText(error() if error is not None else "")

    def ask_again(self, code: str) -> None:
        """The server refused the session of an offline login once it was reachable again (the
        password changed, the account was locked): say so, with the code, and ask once more."""
        self._show_error(
            lambda: translate(
                "LoginScreen", "The server did not accept your offline login. Enter your password again. ({code})"
            ).format(code=code)
        )

    def submit(self) -> None:
        """Send the credentials to the agent; the answer arrives on the GUI thread."""
        if self._busy:
            return
        username = self.username.text().strip()
        if not username or not self.password.text():
            self._show_error(lambda: translate("LoginScreen", "Enter your username and password."))
            return
        self._show_error(None)
        self._busy = True
        self._reset_button()
        self._bridge.submit(
            self._login,
            username,
            self.password.text(),
            on_result=self._accepted,
            on_error=self._refused,
        )

    async def _login(self, username: str, password: str) -> tuple[Any, Any]:
        # Runs on the agent thread: read ``worker`` there too, right after login.
        agent = self._bridge.agent
        answer = await agent.login(username, password)
        return answer, agent.worker

    def _accepted(self, outcome: tuple[Any, Any]) -> None:
        self._busy = False
        self._reset_button()
        self.password.clear()
        answer, worker = outcome
        self._on_logged_in(answer, worker)

    def _refused(self, exc: BaseException) -> None:
        self._busy = False
        self._reset_button()
        self.password.clear()
        self.password.setFocus()
        self._show_error(lambda: describe_error(exc, translate("LoginScreen", "Login")))

    def _reset_button(self) -> None:
        self.login_button.setEnabled(not self._busy)
        self.login_button.setText(
            translate("LoginScreen", "Logging in…") if self._busy else translate("LoginScreen", "Log in")
        )
