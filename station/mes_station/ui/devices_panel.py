"""The devices box of the main screen: print a label, start a firmware flash and follow it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.view import UnitView, describe_error, flash_progress

OK_STYLE = "color: #1b5e20;"
ERROR_STYLE = "color: #b00020; font-weight: bold;"
NEUTRAL_STYLE = "color: #444;"


def say(label: QLabel, text: str, style: str) -> None:
    """Show ``text`` in ``label`` as good news, bad news or neutral."""
    label.setStyleSheet(style)
    label.setText(text)


class DevicesPanel(QGroupBox):
    """Print and flash for the unit (or LOT) the main screen shows."""

    def __init__(self, bridge: AgentBridge, options: UiOptions, parent: QWidget | None = None) -> None:
        super().__init__("Devices", parent)
        self._bridge = bridge
        self._options = options
        self.view: UnitView | None = None
        self._flash_job: str | None = None
        self._flash_poll_busy = False
        self._flash_poll_errors = 0
        self._flash_timer = QTimer(self, interval=options.flash_poll_ms)
        self._flash_timer.timeout.connect(self._poll_flash)

        self.print_button = QPushButton("Print label", objectName="print_button")
        self.print_button.clicked.connect(self.print_label)
        self.image_input = QLineEdit(objectName="image_input")
        self.image_input.setPlaceholderText("firmware image id")
        self.image_input.setText(self._options.firmware_image_id)
        self.flash_button = QPushButton("Start flash", objectName="flash_button")
        self.flash_button.clicked.connect(self.start_flash)
        self.flash_progress = QProgressBar(objectName="flash_progress")
        self.flash_progress.setRange(0, 100)
        self.flash_progress.setValue(0)
        self.device_message = QLabel(objectName="device_message")
        self.device_message.setWordWrap(True)

        flash = QHBoxLayout()
        flash.addWidget(self.image_input, stretch=1)
        flash.addWidget(self.flash_button)
        column = QVBoxLayout(self)
        column.addWidget(self.print_button)
        column.addLayout(flash)
        column.addWidget(self.flash_progress)
        column.addWidget(self.device_message)
        column.addStretch(1)

    def show_view(self, view: UnitView | None) -> None:
        """Follow the main screen's unit: what can be printed or flashed for it."""
        self.view = view
        if view and view.firmware_image_id and not self.image_input.text():
            self.image_input.setText(view.firmware_image_id)
        self.print_button.setEnabled(bool(view and (view.serial_number or view.lot_number)))
        self.flash_button.setEnabled(bool(view and view.serial_number) and self._flash_job is None)

    def reset(self) -> None:
        """Stop watching a flash and clear the messages (on logout)."""
        self._flash_timer.stop()
        self._flash_job = None
        self.flash_progress.setRange(0, 100)
        self.flash_progress.setValue(0)
        self.device_message.clear()

    def print_label(self) -> None:
        view = self.view
        if view is None:
            return
        self.print_button.setEnabled(False)
        say(self.device_message, "Printing…", NEUTRAL_STYLE)
        options = self._options
        template = options.label_template if view.serial_number else options.lot_label_template
        self._bridge.submit(
            self._bridge.agent.print_label,
            template=template,
            fields=view.label_fields(dict(options.label_fields)),
            on_result=self._printed,
            on_error=self._print_failed,
        )

    def _printed(self, answer: Any) -> None:
        self.print_button.setEnabled(self.view is not None)
        answer = answer if isinstance(answer, dict) else {}
        status = answer.get("status") or answer.get("outcome") or "sent"
        job = answer.get("job_id") or answer.get("id") or answer.get("event_key")
        say(self.device_message, f"Label {status}" + (f" (job {str(job)[:12]})" if job else ""), OK_STYLE)

    def _print_failed(self, exc: BaseException) -> None:
        self.print_button.setEnabled(self.view is not None)
        say(self.device_message, describe_error(exc, "Print label"), ERROR_STYLE)

    def start_flash(self) -> None:
        view = self.view
        image_id = self.image_input.text().strip()
        if view is None or not view.serial_number:
            return
        if not image_id:
            say(self.device_message, "Enter the firmware image id to flash.", ERROR_STYLE)
            return
        self.flash_button.setEnabled(False)
        self.flash_progress.setValue(0)
        # Busy until the server answers with a job: it may answer only once the flash is over.
        self.flash_progress.setRange(0, 0)
        say(self.device_message, f"Starting flash of {image_id}…", NEUTRAL_STYLE)
        self._bridge.submit(
            self._bridge.agent.start_flash,
            serial_number=view.serial_number,
            image_id=image_id,
            on_result=self._flash_started,
            on_error=self._flash_failed,
        )

    def _flash_started(self, job_id: str) -> None:
        self.flash_progress.setRange(0, 100)
        self._flash_job = str(job_id)
        self._flash_poll_errors = 0
        say(self.device_message, f"Flashing (job {job_id})…", NEUTRAL_STYLE)
        self._flash_timer.start()

    def _poll_flash(self) -> None:
        if self._flash_job is None or self._flash_poll_busy:
            return
        self._flash_poll_busy = True
        job = self._flash_job
        self._bridge.submit(
            self._bridge.agent.flash_status,
            job,
            on_result=lambda status: self._flash_polled(job, status),
            on_error=lambda exc: self._flash_poll_failed(job, exc),
        )

    def _flash_polled(self, job: str, status: dict[str, Any]) -> None:
        self._flash_poll_busy = False
        if job != self._flash_job:
            return
        self._flash_poll_errors = 0
        percent, state, finished = flash_progress(status or {})
        self.flash_progress.setValue(percent)
        if not finished:
            say(self.device_message, f"Flashing (job {job}): {state} {percent}%", NEUTRAL_STYLE)
            return
        self._flash_timer.stop()
        self._flash_job = None
        self.flash_button.setEnabled(bool(self.view and self.view.serial_number))
        error = (status or {}).get("error")
        if state in {"done", "succeeded", "success"}:
            say(self.device_message, f"Flash done (job {job}).", OK_STYLE)
        else:
            detail = f": {error}" if error else ""
            say(self.device_message, f"Flash {state} (job {job}){detail}", ERROR_STYLE)

    def _flash_poll_failed(self, job: str, exc: BaseException) -> None:
        self._flash_poll_busy = False
        if job != self._flash_job:
            return
        self._flash_poll_errors += 1
        message = describe_error(exc, f"Flash status (job {job})")
        if self._flash_poll_errors >= self._options.flash_max_poll_errors:
            self._flash_timer.stop()
            self._flash_job = None
            self.flash_button.setEnabled(bool(self.view and self.view.serial_number))
            message += " — stopped watching; the job may still be running."
        say(self.device_message, message, ERROR_STYLE)

    def _flash_failed(self, exc: BaseException) -> None:
        self.flash_progress.setRange(0, 100)
        self.flash_button.setEnabled(bool(self.view and self.view.serial_number))
        say(self.device_message, describe_error(exc, "Start flash"), ERROR_STYLE)
