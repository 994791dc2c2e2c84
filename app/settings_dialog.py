"""The Settings window: model, device, precision, decoding and output folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.settings import DEVICES, LANGUAGES, MAX_BEAM_SIZE, QUANTIZATIONS, Settings

_DEVICE_LABELS = {"auto": "Automatic (GPU when present)", "cuda": "NVIDIA GPU (CUDA)", "cpu": "CPU"}
_QUANT_LABELS = {
    "auto": "Automatic (4-bit on GPU, full on CPU)",
    "nf4": "4-bit NF4",
    "int8": "8-bit",
    "bf16": "bfloat16",
    "fp32": "Full precision (fp32)",
}
_LANGUAGE_LABELS = {"en": "English"}


class _FolderField(QWidget):
    def __init__(self, placeholder: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.edit = QLineEdit(placeholderText=placeholder)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", self.edit.text() or str(Path.home()))
        if folder:
            self.edit.setText(folder)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self.settings = settings

        self.model_field = _FolderField("Shipped model")
        self.model_field.edit.setText(str(settings.model_dir or ""))
        self.device_combo = self._combo(DEVICES, _DEVICE_LABELS, settings.device)
        self.quant_combo = self._combo(QUANTIZATIONS, _QUANT_LABELS, settings.quantization)
        self.beam_spin = QSpinBox()
        self.beam_spin.setRange(1, MAX_BEAM_SIZE)
        self.beam_spin.setValue(settings.beam_size)
        self.beam_spin.setToolTip("1 decodes greedily (fastest); larger beams search more hypotheses")
        self.language_combo = self._combo(LANGUAGES, _LANGUAGE_LABELS, settings.language)
        self.draft_check = QCheckBox("With hotwords, favour the other words over finding every name")
        self.draft_check.setChecked(settings.draft_with_hotwords)
        self.draft_check.setToolTip(
            "Far fewer errors on ordinary words in long recordings with a short hotword list, but more listed names "
            "missed (on the test interview: 12.5% word errors against 36.5%; 75% of the names found against 90%)"
        )
        self.output_field = _FolderField(str(Path.home()))
        self.output_field.edit.setText(str(settings.output_dir))

        form = QFormLayout()
        form.addRow("Model folder", self.model_field)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.quant_combo)
        form.addRow("Beam size", self.beam_spin)
        form.addRow("Language", self.language_combo)
        form.addRow("Hotwords", self.draft_check)
        form.addRow("Export folder", self.output_field)
        note = QLabel("Changes apply to the next job. Leave the model folder empty to use the shipped model.")
        note.setObjectName("hint")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    @staticmethod
    def _combo(values: tuple[str, ...], labels: dict[str, str], current: str) -> QComboBox:
        combo = QComboBox()
        for value in values:
            combo.addItem(labels.get(value, value), value)
        combo.setCurrentIndex(values.index(current))
        return combo

    def apply(self) -> None:
        self.settings.model_dir = self.model_field.path()
        self.settings.device = self.device_combo.currentData()
        self.settings.quantization = self.quant_combo.currentData()
        self.settings.beam_size = self.beam_spin.value()
        self.settings.language = self.language_combo.currentData()
        self.settings.draft_with_hotwords = self.draft_check.isChecked()
        output = self.output_field.path()
        if output is not None:
            self.settings.output_dir = output
        self.settings.sync()

    def accept(self) -> None:
        self.apply()
        super().accept()
