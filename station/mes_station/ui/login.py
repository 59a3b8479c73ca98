"""The login screen: username and password, handed to ``agent.login``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.view import describe_error


class LoginScreen(QWidget):
    """Asks for credentials; calls ``on_logged_in(agent.worker)`` once the agent accepts them."""

    def __init__(
        self,
        bridge: AgentBridge,
        on_logged_in: Callable[[Any], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._on_logged_in = on_logged_in
        self.setObjectName("login_screen")

        title = QLabel("NeuroHub MES — worker login")
        title.setObjectName("login_title")
        title.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.username = QLineEdit(objectName="username")
        self.username.setPlaceholderText("username or badge")
        self.password = QLineEdit(objectName="password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.login_button = QPushButton("Log in", objectName="login_button")
        self.login_button.setDefault(True)
        self.error = QLabel(objectName="login_error")
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)

        panel = QWidget()
        panel.setMaximumWidth(420)
        form = QFormLayout()
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        column = QVBoxLayout(panel)
        column.addWidget(title, alignment=Qt.AlignmentFlag.AlignHCenter)
        column.addLayout(form)
        column.addWidget(self.login_button)
        column.addWidget(self.error)
        box = QVBoxLayout(self)
        box.addStretch(1)
        box.addWidget(panel, alignment=Qt.AlignmentFlag.AlignHCenter)
        box.addStretch(2)

        self.login_button.clicked.connect(self.submit)
        self.username.returnPressed.connect(self.password.setFocus)
        self.password.returnPressed.connect(self.submit)

    def submit(self) -> None:
        """Send the credentials to the agent; the answer arrives on the GUI thread."""
        username = self.username.text().strip()
        if not username or not self.password.text():
            self.error.setText("Enter your username and password.")
            return
        self.error.clear()
        self.login_button.setEnabled(False)
        self.login_button.setText("Logging in…")
        self._bridge.submit(
            self._login,
            username,
            self.password.text(),
            on_result=self._accepted,
            on_error=self._refused,
        )

    async def _login(self, username: str, password: str) -> object:
        # Runs on the agent thread: read ``worker`` there too, right after login.
        agent = self._bridge.agent
        await agent.login(username, password)
        return agent.worker

    def _accepted(self, worker: object) -> None:
        self._reset_button()
        self.password.clear()
        self._on_logged_in(worker)

    def _refused(self, exc: BaseException) -> None:
        self._reset_button()
        self.password.clear()
        self.password.setFocus()
        self.error.setText(describe_error(exc, "Login"))

    def _reset_button(self) -> None:
        self.login_button.setEnabled(True)
        self.login_button.setText("Log in")
