"""The recording window: pick a microphone, watch the level, pause, resume, stop.

Capture and writing happen in app/recorder.py (no Qt); this dialog only polls
the recorder's level and elapsed time. Stopping emits ``recorded`` with the
file, which the window turns into a job.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QComboBox, QDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.jobs import format_clock
from app.paths import recordings_dir
from app.recorder import SILENCE_DBFS, Recorder, RecorderError, list_input_devices, new_recording_path

POLL_MS = 50  # meter refresh, 20 times a second


class LevelMeter(QWidget):
    """A horizontal bar from SILENCE_DBFS to 0 dBFS; amber near clipping."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._dbfs = SILENCE_DBFS
        self.setMinimumHeight(10)
        self.setMaximumHeight(10)

    @property
    def dbfs(self) -> float:
        return self._dbfs

    def set_level(self, dbfs: float) -> None:
        self._dbfs = dbfs
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        rect = QRectF(self.rect())
        painter.setBrush(QColor("#e4e7ec"))
        painter.drawRoundedRect(rect, 5, 5)
        fraction = min(1.0, max(0.0, (self._dbfs - SILENCE_DBFS) / -SILENCE_DBFS))
        if fraction > 0:
            painter.setBrush(QColor("#e0a100") if self._dbfs > -6 else QColor("#2f9e6b"))
            painter.drawRoundedRect(QRectF(rect.left(), rect.top(), rect.width() * fraction, rect.height()), 5, 5)


class RecordDialog(QDialog):
    recorded = Signal(Path)

    def __init__(self, preferred_device: str = "", folder: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Record")
        self.setMinimumWidth(420)
        self.folder = folder or recordings_dir()
        self.recorder: Recorder | None = None
        self.device_combo = QComboBox()
        self.meter = LevelMeter()
        self.clock = QLabel("0:00")
        self.clock.setObjectName("bigClock")
        self.message = QLabel()
        self.message.setObjectName("hint")
        self.message.setWordWrap(True)
        self.record_button = QPushButton("Record")
        self.record_button.setObjectName("primary")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.record_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)

        form = QFormLayout()
        form.addRow("Microphone", self.device_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.record_button)
        buttons.addWidget(self.pause_button)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        layout.addLayout(form)
        layout.addWidget(self.clock, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.meter)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self.available = self._fill_devices(preferred_device)
        self._update_buttons()

    def _fill_devices(self, preferred: str) -> bool:
        try:
            devices = list_input_devices()
        except RecorderError as err:
            self.device_combo.setEnabled(False)
            self.message.setText(str(err))
            return False
        for device in devices:
            self.device_combo.addItem(device.name + (" (default)" if device.is_default else ""), device.index)
            if device.name == preferred or (not preferred and device.is_default):
                self.device_combo.setCurrentIndex(self.device_combo.count() - 1)
        self.message.setText(f"Recordings are saved as they are made, in {self.folder}.")
        return True

    @property
    def device_name(self) -> str:
        return self.device_combo.currentText().removesuffix(" (default)")

    def start(self) -> None:
        if self.recorder is not None or not self.available:
            return
        recorder = Recorder(new_recording_path(self.folder), device=self.device_combo.currentData())
        try:
            recorder.start()
        except RecorderError as err:
            self.message.setText(str(err))
            return
        self.recorder = recorder
        self.message.setText(f"Recording to {recorder.path.name}")
        self._timer.start()
        self._update_buttons()

    def toggle_pause(self) -> None:
        if self.recorder is None:
            return
        if self.recorder.paused:
            self.recorder.resume()
            self.message.setText(f"Recording to {self.recorder.path.name}")
        else:
            self.recorder.pause()
            self.message.setText("Paused: nothing is recorded until you press Resume.")
        self._update_buttons()

    def stop(self) -> Path | None:
        """Finish the file; returns its path (and emits ``recorded``) unless nothing was recorded."""
        if self.recorder is None:
            self.reject()
            return None
        recorder, self.recorder = self.recorder, None
        self._timer.stop()
        self._update_buttons()
        try:
            recording = recorder.stop()
        except RecorderError as err:
            self.message.setText(str(err))
            return None
        if recording.duration_s <= 0:
            recording.path.unlink(missing_ok=True)
            self.message.setText("Nothing was recorded: check that the microphone is on and not muted.")
            return None
        self.recorded.emit(recording.path)
        self.accept()
        return recording.path

    def reject(self) -> None:
        if self.recorder is not None:  # closing the window keeps what was recorded
            self.stop()
            return
        super().reject()

    def _poll(self) -> None:
        if self.recorder is None:
            return
        self.meter.set_level(self.recorder.level_dbfs)
        self.clock.setText(format_clock(self.recorder.elapsed_s))
        if self.recorder.error is not None:
            self.message.setText(f"Writing the recording failed: {self.recorder.error}. Press Stop to keep what was saved.")

    def _update_buttons(self) -> None:
        recording = self.recorder is not None
        self.device_combo.setEnabled(self.available and not recording)
        self.record_button.setEnabled(self.available and not recording)
        self.pause_button.setEnabled(recording)
        self.pause_button.setText("Resume" if recording and self.recorder.paused else "Pause")
        self.stop_button.setText("Stop" if recording else "Close")
