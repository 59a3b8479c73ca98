"""The main screen: scan a code, see the unit, record pass/fail, print a label, flash firmware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.view import (
    HISTORY_COLUMNS,
    UnitView,
    describe_error,
    flash_progress,
    unit_view,
)
from mes_station.ui.wedge import WedgeFeeder

_OK = "color: #1b5e20;"
_ERROR = "color: #b00020; font-weight: bold;"
_NEUTRAL = "color: #444;"


def _button_style(colour: str, disabled: str) -> str:
    # A coloured button must still look off when disabled (after a save, before a lookup).
    return (
        f"QPushButton {{ background: {colour}; color: white; font-weight: bold; }}"
        f"QPushButton:disabled {{ background: {disabled}; color: #f4f4f4; }}"
    )


class MainScreen(QWidget):
    """Everything a worker does between login and logout; all work goes through the bridge."""

    def __init__(
        self,
        bridge: AgentBridge,
        options: UiOptions,
        on_logout: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_logout = on_logout
        self.setObjectName("main_screen")
        self._bridge = bridge
        self._options = options
        self._worker_id: str | None = None
        self._view: UnitView | None = None
        self._lookup_seq = 0
        self._flash_job: str | None = None
        self._flash_poll_busy = False
        self._flash_poll_errors = 0
        self._flash_timer = QTimer(self, interval=options.flash_poll_ms)
        self._flash_timer.timeout.connect(self._poll_flash)
        self.wedge_feeder: WedgeFeeder | None = None

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_header())
        layout.addLayout(self._build_scan_row())
        layout.addWidget(self._build_unit_box(), stretch=1)
        bottom = QHBoxLayout()
        bottom.addWidget(self._build_result_box(), stretch=1)
        bottom.addWidget(self._build_device_box(), stretch=1)
        layout.addLayout(bottom)
        self._show_view(None)

    # -- layout ------------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        self.worker_label = QLabel(objectName="worker_label")
        self.worker_label.setStyleSheet("font-weight: bold;")
        self.logout_button = QPushButton("Log out", objectName="logout_button")
        self.logout_button.clicked.connect(lambda: self._on_logout())
        row = QHBoxLayout()
        row.addWidget(self.worker_label)
        row.addStretch(1)
        row.addWidget(self.logout_button)
        return row

    def _build_scan_row(self) -> QHBoxLayout:
        self.scan_input = QLineEdit(objectName="scan_input")
        self.scan_input.setPlaceholderText("Scan or type a serial or LOT number, then Enter")
        self.scan_input.setStyleSheet("font-size: 18px; padding: 4px;")
        self.lookup_button = QPushButton("Look up", objectName="lookup_button")
        self.scan_input.returnPressed.connect(self.enter_code)
        self.lookup_button.clicked.connect(self.enter_code)
        row = QHBoxLayout()
        row.addWidget(QLabel("Code"))
        row.addWidget(self.scan_input, stretch=1)
        row.addWidget(self.lookup_button)
        return row

    def _build_unit_box(self) -> QGroupBox:
        box = QGroupBox("Unit")
        self.serial_value = QLabel(objectName="serial_value")
        self.lot_value = QLabel(objectName="lot_value")
        self.product_value = QLabel(objectName="product_value")
        self.lot_status_value = QLabel(objectName="lot_status_value")
        self.next_process_value = QLabel(objectName="next_process_value")
        self.next_process_value.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.lookup_message = QLabel(objectName="lookup_message")
        self.lookup_message.setWordWrap(True)
        facts = QFormLayout()
        facts.addRow("Serial number", self.serial_value)
        facts.addRow("LOT", self.lot_value)
        facts.addRow("Product", self.product_value)
        facts.addRow("LOT status", self.lot_status_value)
        facts.addRow("Next process", self.next_process_value)

        self.history_table = QTableWidget(0, len(HISTORY_COLUMNS), objectName="history_table")
        self.history_table.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.verticalHeader().setVisible(False)
        self.history_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history_table.horizontalHeader().setStretchLastSection(True)

        top = QHBoxLayout()
        top.addLayout(facts, stretch=1)
        column = QVBoxLayout(box)
        column.addLayout(top)
        column.addWidget(self.lookup_message)
        column.addWidget(QLabel("History"))
        column.addWidget(self.history_table, stretch=1)
        return box

    def _build_result_box(self) -> QGroupBox:
        box = QGroupBox("Result")
        self.pass_button = QPushButton("PASS", objectName="pass_button")
        self.pass_button.setStyleSheet(_button_style("#2e7d32", "#a9c7aa"))
        self.fail_button = QPushButton("FAIL", objectName="fail_button")
        self.fail_button.setStyleSheet(_button_style("#c62828", "#d9a9a9"))
        for button in (self.pass_button, self.fail_button):
            button.setMinimumHeight(40)
        self.defect_combo = QComboBox(objectName="defect_combo")
        self.defect_combo.addItem("— defect code —", None)
        for code in self._options.defect_codes:
            self.defect_combo.addItem(code, code)
        self.result_message = QLabel(objectName="result_message")
        self.result_message.setWordWrap(True)
        self.pass_button.clicked.connect(lambda: self.record("pass"))
        self.fail_button.clicked.connect(lambda: self.record("fail"))

        buttons = QHBoxLayout()
        buttons.addWidget(self.pass_button)
        buttons.addWidget(self.fail_button)
        defect = QHBoxLayout()
        defect.addWidget(QLabel("Defect"))
        defect.addWidget(self.defect_combo, stretch=1)
        column = QVBoxLayout(box)
        column.addLayout(buttons)
        column.addLayout(defect)
        column.addWidget(self.result_message)
        column.addStretch(1)
        return box

    def _build_device_box(self) -> QGroupBox:
        box = QGroupBox("Devices")
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
        column = QVBoxLayout(box)
        column.addWidget(self.print_button)
        column.addLayout(flash)
        column.addWidget(self.flash_progress)
        column.addWidget(self.device_message)
        column.addStretch(1)
        return box

    # -- session -----------------------------------------------------------------

    def set_worker(self, worker_id: str | None) -> None:
        """Show who is logged in; results are recorded under this id."""
        self._worker_id = worker_id
        self.worker_label.setText(f"Worker: {worker_id}" if worker_id else "")
        self.scan_input.setFocus()

    def reset(self) -> None:
        """Forget the scanned unit and any running flash watch (on logout)."""
        self._flash_timer.stop()
        self._flash_job = None
        self.flash_progress.setValue(0)
        self.scan_input.clear()
        self._show_view(None)
        for label in (self.result_message, self.device_message, self.lookup_message):
            label.clear()

    @property
    def current_view(self) -> UnitView | None:
        return self._view

    # -- lookup ------------------------------------------------------------------

    def attach_wedge(self, wedge: Any) -> None:
        """Route the scan field's keystrokes through the agent's keyboard-wedge driver."""
        self.wedge_feeder = WedgeFeeder(self._bridge, wedge, self.scan_input, self.enter_code)

    def handle_scan(self, code: str) -> None:
        """A scanner read a code (the agent recorded it and sent a ``scan`` event): look it up."""
        self.scan_input.setText(code)
        self.lookup()

    def enter_code(self) -> None:
        """A person entered the code by hand: record it as a scan event, then look it up."""
        code = self.scan_input.text().strip()
        if not code:
            return
        submit_scan = getattr(self._bridge.agent, "submit_scan", None)
        if callable(submit_scan):
            self._bridge.submit(
                submit_scan,
                code,
                source="keyboard",
                on_error=lambda exc: self._say(self.result_message, describe_error(exc, f"Record scan {code}"), _ERROR),
            )
        self.lookup()

    def lookup(self) -> None:
        code = self.scan_input.text().strip()
        if not code:
            return
        self._lookup_seq += 1
        seq = self._lookup_seq
        self._say(self.lookup_message, f"Looking up {code}…", _NEUTRAL)
        self._bridge.submit(
            lookup_with_history,
            self._bridge.agent,
            code,
            on_result=lambda answer: self._looked_up(seq, code, answer),
            on_error=lambda exc: self._lookup_failed(seq, code, exc),
        )

    def _looked_up(self, seq: int, code: str, answer: dict[str, Any]) -> None:
        if seq != self._lookup_seq:
            return  # a newer scan arrived while this answer was on its way
        view = unit_view(code, answer or {})
        self._show_view(view)
        self.result_message.clear()
        if view.kind == "unknown":
            self._say(self.lookup_message, f"{code}: unknown code.", _ERROR)
        elif view.warnings or view.history_error:
            notes = [*view.warnings, *([view.history_error] if view.history_error else [])]
            self._say(self.lookup_message, f"{code}: {view.kind}. " + " · ".join(notes), _ERROR)
        else:
            self._say(self.lookup_message, f"{code}: {view.kind}.", _OK)
        # The next scanner burst replaces the code instead of appending to it.
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _lookup_failed(self, seq: int, code: str, exc: BaseException) -> None:
        if seq != self._lookup_seq:
            return
        self._show_view(None)
        self._say(self.lookup_message, describe_error(exc, f"Look up {code}"), _ERROR)
        self.scan_input.selectAll()

    def _show_view(self, view: UnitView | None) -> None:
        self._view = view
        dash = "—"
        self.serial_value.setText((view and view.serial_number) or dash)
        self.lot_value.setText((view and view.lot_number) or dash)
        self.product_value.setText((view and view.product) or dash)
        self.lot_status_value.setText((view and view.lot_status) or dash)
        self.next_process_value.setText(view.next_process_text if view else dash)
        if view and view.firmware_image_id and not self.image_input.text():
            self.image_input.setText(view.firmware_image_id)
        self.history_table.setRowCount(0)
        for row in view.history if view else []:
            self._append_history(row)
        self._set_record_enabled(bool(view and view.can_record))
        self.print_button.setEnabled(bool(view and (view.serial_number or view.lot_number)))
        self.flash_button.setEnabled(bool(view and view.serial_number) and self._flash_job is None)

    def _append_history(self, row: tuple[str, ...], *, pending: bool = False) -> None:
        index = self.history_table.rowCount()
        self.history_table.insertRow(index)
        for column, text in enumerate(row):
            item = QTableWidgetItem(text)
            if pending:
                font = item.font()
                font.setItalic(True)
                item.setFont(font)
            self.history_table.setItem(index, column, item)

    # -- results -----------------------------------------------------------------

    def record(self, result: str) -> None:
        """Record pass/fail for the shown unit at its next process (through the outbox)."""
        view = self._view
        if view is None or not view.can_record:
            return
        defect_code = self.defect_combo.currentData() if result == "fail" else None
        if result == "fail" and not defect_code:
            self._say(self.result_message, "Choose a defect code to record a FAIL.", _ERROR)
            self.defect_combo.setFocus()
            return
        if not self._worker_id:
            self._say(self.result_message, "No worker logged in.", _ERROR)
            return
        self._set_record_enabled(False)
        self._say(self.result_message, "Saving…", _NEUTRAL)
        self._bridge.submit(
            self._bridge.agent.record_result,
            lot_number=view.lot_number,
            process_id=view.next_process_id,
            worker_id=self._worker_id,
            result=result,
            serial_number=view.serial_number,
            defect_code=defect_code,
            on_result=lambda key: self._recorded(view, result, defect_code, key),
            on_error=lambda exc: self._record_failed(view, exc),
        )

    def _recorded(self, view: UnitView, result: str, defect_code: str | None, key: str) -> None:
        what = result.upper() + (f" ({defect_code})" if defect_code else "")
        target = view.serial_number or view.lot_number
        self._say(
            self.result_message,
            f"Saved (queued): {what} for {target} at {view.next_process_id}. Key {str(key)[:12]}",
            _OK,
        )
        self.defect_combo.setCurrentIndex(0)
        if self._view is view:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            row = (
                now,
                view.next_process_id or "",
                "queued",
                result,
                defect_code or "",
                self._worker_id or "",
                "this station",
            )
            self._append_history(row, pending=True)
        # One result per scan: the button stays off until the next lookup, so a double
        # press cannot record twice.
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _record_failed(self, view: UnitView, exc: BaseException) -> None:
        self._say(self.result_message, describe_error(exc, "Record result"), _ERROR)
        if self._view is view:
            self._set_record_enabled(True)

    def _set_record_enabled(self, enabled: bool) -> None:
        self.pass_button.setEnabled(enabled)
        self.fail_button.setEnabled(enabled)

    # -- devices -----------------------------------------------------------------

    def print_label(self) -> None:
        view = self._view
        if view is None:
            return
        self.print_button.setEnabled(False)
        self._say(self.device_message, "Printing…", _NEUTRAL)
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
        self.print_button.setEnabled(self._view is not None)
        answer = answer if isinstance(answer, dict) else {}
        status = answer.get("status") or answer.get("outcome") or "sent"
        job = answer.get("job_id") or answer.get("id") or answer.get("event_key")
        self._say(self.device_message, f"Label {status}" + (f" (job {str(job)[:12]})" if job else ""), _OK)

    def _print_failed(self, exc: BaseException) -> None:
        self.print_button.setEnabled(self._view is not None)
        self._say(self.device_message, describe_error(exc, "Print label"), _ERROR)

    def start_flash(self) -> None:
        view = self._view
        image_id = self.image_input.text().strip()
        if view is None or not view.serial_number:
            return
        if not image_id:
            self._say(self.device_message, "Enter the firmware image id to flash.", _ERROR)
            return
        self.flash_button.setEnabled(False)
        self.flash_progress.setValue(0)
        # Busy until the server answers with a job: it may answer only once the flash is over.
        self.flash_progress.setRange(0, 0)
        self._say(self.device_message, f"Starting flash of {image_id}…", _NEUTRAL)
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
        self._say(self.device_message, f"Flashing (job {job_id})…", _NEUTRAL)
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
            self._say(self.device_message, f"Flashing (job {job}): {state} {percent}%", _NEUTRAL)
            return
        self._flash_timer.stop()
        self._flash_job = None
        self.flash_button.setEnabled(bool(self._view and self._view.serial_number))
        error = (status or {}).get("error")
        if state in {"done", "succeeded", "success"}:
            self._say(self.device_message, f"Flash done (job {job}).", _OK)
        else:
            detail = f": {error}" if error else ""
            self._say(self.device_message, f"Flash {state} (job {job}){detail}", _ERROR)

    def _flash_poll_failed(self, job: str, exc: BaseException) -> None:
        self._flash_poll_busy = False
        if job != self._flash_job:
            return
        self._flash_poll_errors += 1
        message = describe_error(exc, f"Flash status (job {job})")
        if self._flash_poll_errors >= self._options.flash_max_poll_errors:
            self._flash_timer.stop()
            self._flash_job = None
            self.flash_button.setEnabled(bool(self._view and self._view.serial_number))
            message += " — stopped watching; the job may still be running."
        self._say(self.device_message, message, _ERROR)

    def _flash_failed(self, exc: BaseException) -> None:
        self.flash_progress.setRange(0, 100)
        self.flash_button.setEnabled(bool(self._view and self._view.serial_number))
        self._say(self.device_message, describe_error(exc, "Start flash"), _ERROR)

    @staticmethod
    def _say(label: QLabel, text: str, style: str) -> None:
        label.setStyleSheet(style)
        label.setText(text)


async def lookup_with_history(agent: Any, code: str) -> dict[str, Any]:
    """``agent.lookup(code)``, plus the unit's or LOT's history when the answer has none.

    Runs on the agent thread. A history that cannot be read does not hide the lookup: the
    answer carries ``history_error`` instead.
    """
    answer = dict(await agent.lookup(code) or {})
    if "history" in answer:
        return answer
    unit = answer.get("unit") if isinstance(answer.get("unit"), dict) else {}
    lot = answer.get("lot") if isinstance(answer.get("lot"), dict) else {}
    serial_number = unit.get("serial_number") or answer.get("serial_number")
    lot_number = lot.get("lot_number") or answer.get("lot_number")
    unit_history = getattr(agent, "unit_history", None)
    lot_history = getattr(agent, "lot_history", None)
    try:
        if serial_number and callable(unit_history):
            answer["history"] = await unit_history(serial_number)
        elif lot_number and callable(lot_history):
            answer["history"] = await lot_history(lot_number)
    except Exception as exc:  # shown beside the lookup, which did succeed
        answer["history_error"] = describe_error(exc, "History")
    return answer
