"""The devices box of the main screen: print a label, pick a firmware image, flash it and follow it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.i18n import translate
from mes_station.ui.options import UiOptions
from mes_station.ui.view import UnitView, describe_error, event_word, firmware_choice_text, flash_progress
from mes_station.ui.widgets import ERROR_STYLE, NEUTRAL_STYLE, OK_STYLE, BigButton, say

__all__ = ["DevicesPanel", "ERROR_STYLE", "NEUTRAL_STYLE", "OK_STYLE", "say"]


class DevicesPanel(QGroupBox):
    """Print and flash for the unit (or LOT) the main screen shows.

    The firmware picker lists the images valid for the unit's product
    (``agent.firmware_images(product)``); the lookup's ``firmware_image_id`` or the station's
    ``[ui] firmware_image_id`` is pre-selected when it is among them. When the agent cannot
    list images, the picker offers only those two (the station's configured choice).
    """

    def __init__(self, bridge: AgentBridge, options: UiOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("devices_panel")
        self._bridge = bridge
        self._options = options
        self.view: UnitView | None = None
        self._flash_job: str | None = None
        self._flash_poll_busy = False
        self._flash_poll_errors = 0
        self._images_seq = 0
        self._message: tuple[Any, str] | None = None
        self._flash_timer = QTimer(self, interval=options.flash_poll_ms)
        self._flash_timer.timeout.connect(self._poll_flash)

        self.print_button = BigButton(objectName="print_button")
        self.print_button.clicked.connect(self.print_label)
        self.firmware_caption = QLabel(objectName="firmware_caption")
        self.image_combo = QComboBox(objectName="image_combo")
        self.image_combo.setMinimumWidth(180)
        self.flash_button = BigButton(objectName="flash_button")
        self.flash_button.clicked.connect(self.start_flash)
        self.flash_progress = QProgressBar(objectName="flash_progress")
        self.flash_progress.setRange(0, 100)
        self.flash_progress.setValue(0)
        self.flash_progress.setMinimumHeight(28)
        self.device_message = QLabel(objectName="device_message")
        self.device_message.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.print_button)
        row.addSpacing(12)
        row.addWidget(self.firmware_caption)
        row.addWidget(self.image_combo, stretch=1)
        row.addWidget(self.flash_button)
        column = QVBoxLayout(self)
        column.addLayout(row)
        column.addWidget(self.flash_progress)
        column.addWidget(self.device_message)
        self.retranslate()
        self.show_view(None)

    def focus_chain(self) -> list[QWidget]:
        """The panel's controls in Tab order."""
        return [self.print_button, self.image_combo, self.flash_button]

    def retranslate(self) -> None:
        self.setTitle(translate("DevicesPanel", "Devices"))
        self.print_button.setText(translate("DevicesPanel", "Print label  [Ctrl+P]"))
        self.firmware_caption.setText(translate("DevicesPanel", "Firmware"))
        self.flash_button.setText(translate("DevicesPanel", "Start flash"))
        if self._message is not None:
            self._say(*self._message)

    def _say(self, text: Any, style: str) -> None:
        # ``text`` is a function when the message must follow a language switch.
        self._message = (text, style)
        say(self.device_message, text() if callable(text) else str(text), style)

    def show_view(self, view: UnitView | None) -> None:
        """Follow the main screen's unit: what can be printed or flashed for it."""
        changed = view is not self.view
        self.view = view
        self.print_button.setEnabled(bool(view and (view.serial_number or view.lot_number)))
        if changed:
            self._load_images(view)
        self._update_flash_button()

    @property
    def watching_flash(self) -> bool:
        """A flash was started and its end is not shown yet: the start is awaited or its job polled."""
        return self._flash_job is not None or self.flash_progress.maximum() == 0

    def _update_flash_button(self) -> None:
        view = self.view
        self.flash_button.setEnabled(
            bool(view and view.serial_number and view.kind == "unit")
            and self._flash_job is None
            and self.selected_image() is not None
        )

    def selected_image(self) -> str | None:
        """The id of the firmware image picked, or None."""
        data = self.image_combo.currentData()
        return str(data) if data not in (None, "") else None

    def _load_images(self, view: UnitView | None) -> None:
        self._images_seq += 1
        seq = self._images_seq
        self.image_combo.clear()
        if view is None or not view.serial_number or view.kind != "unit":
            return
        preferred = [i for i in (view.firmware_image_id, self._options.firmware_image_id) if i]

        def listed(images: Any) -> None:
            if seq != self._images_seq:
                return
            self._fill_images([image for image in images or [] if isinstance(image, dict)], preferred)

        def unavailable(exc: BaseException) -> None:
            if seq != self._images_seq:
                return
            self._fill_images([{"id": image_id, "name": image_id} for image_id in dict.fromkeys(preferred)], preferred)
            if not preferred:
                self._say(
                    lambda: describe_error(exc, translate("DevicesPanel", "Firmware list")),
                    ERROR_STYLE,
                )

        agent = self._bridge.agent
        # The attribute is read on the agent thread too: an agent without it answers with an error there.
        self._bridge.submit(lambda: agent.firmware_images(view.product), on_result=listed, on_error=unavailable)

    def _fill_images(self, images: list[dict[str, Any]], preferred: list[str]) -> None:
        self.image_combo.clear()
        for image in images:
            image_id = image.get("id")
            if image_id in (None, ""):
                continue
            self.image_combo.addItem(firmware_choice_text(image), str(image_id))
        for image_id in preferred:
            index = self.image_combo.findData(str(image_id))
            if index >= 0:
                self.image_combo.setCurrentIndex(index)
                break
        self._update_flash_button()

    def reset(self) -> None:
        """Stop watching a flash and clear the messages (on logout)."""
        self._flash_timer.stop()
        self._flash_job = None
        self.flash_progress.setRange(0, 100)
        self.flash_progress.setValue(0)
        self._message = None
        self.device_message.clear()

    def print_label(self) -> None:
        view = self.view
        if view is None or not self.print_button.isEnabled():
            return
        self.print_button.setEnabled(False)
        self._say(lambda: translate("DevicesPanel", "Printing…"), NEUTRAL_STYLE)
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

        def text() -> str:
            line = translate("DevicesPanel", "Label {status}").format(status=event_word(str(status)))
            if job:
                line += " " + translate("DevicesPanel", "(job {job})").format(job=str(job)[:12])
            return line

        self._say(text, OK_STYLE)

    def _print_failed(self, exc: BaseException) -> None:
        self.print_button.setEnabled(self.view is not None)
        self._say(lambda: describe_error(exc, translate("DevicesPanel", "Print label")), ERROR_STYLE)

    def start_flash(self) -> None:
        view = self.view
        image_id = self.selected_image()
        if view is None or not view.serial_number or not self.flash_button.isEnabled():
            return
        if not image_id:
            self._say(lambda: translate("DevicesPanel", "Choose the firmware image to flash."), ERROR_STYLE)
            return
        self.flash_button.setEnabled(False)
        self.flash_progress.setValue(0)
        # Busy until the server answers with a job: it may answer only once the flash is over.
        self.flash_progress.setRange(0, 0)
        label = self.image_combo.currentText()
        self._say(lambda: translate("DevicesPanel", "Starting flash of {image}…").format(image=label), NEUTRAL_STYLE)
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
        self._say(lambda: translate("DevicesPanel", "Flashing (job {job})…").format(job=job_id), NEUTRAL_STYLE)
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
            self._say(
                lambda: translate("DevicesPanel", "Flashing (job {job}): {state} {percent}%").format(
                    job=job, state=event_word(state), percent=percent
                ),
                NEUTRAL_STYLE,
            )
            return
        self._flash_timer.stop()
        self._flash_job = None
        self._update_flash_button()
        error = (status or {}).get("error")
        if state in {"done", "succeeded", "success"}:
            self._say(lambda: translate("DevicesPanel", "Flash done (job {job}).").format(job=job), OK_STYLE)
        else:
            detail = f": {error}" if error else ""
            self._say(
                lambda: (
                    translate("DevicesPanel", "Flash {state} (job {job})").format(state=event_word(state), job=job)
                    + detail
                ),
                ERROR_STYLE,
            )

    def _flash_poll_failed(self, job: str, exc: BaseException) -> None:
        self._flash_poll_busy = False
        if job != self._flash_job:
            return
        self._flash_poll_errors += 1
        gave_up = self._flash_poll_errors >= self._options.flash_max_poll_errors
        if gave_up:
            self._flash_timer.stop()
            self._flash_job = None
            self._update_flash_button()

        def text() -> str:
            line = describe_error(exc, translate("DevicesPanel", "Flash status (job {job})").format(job=job))
            if gave_up:
                line += " " + translate("DevicesPanel", "Stopped watching; the job may still be running.")
            return line

        self._say(text, ERROR_STYLE)

    def _flash_failed(self, exc: BaseException) -> None:
        self.flash_progress.setRange(0, 100)
        self._update_flash_button()
        self._say(lambda: describe_error(exc, translate("DevicesPanel", "Start flash")), ERROR_STYLE)
