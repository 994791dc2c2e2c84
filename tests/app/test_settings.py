"""Typed settings over a QSettings file under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine_backend import EngineSettings
from app.settings import DEVICES, QUANTIZATIONS, Settings, open_settings_file


def test_defaults_on_an_empty_store(settings):
    assert settings.engine() == EngineSettings(model_dir=None, device="auto", quantization="auto", beam_size=1, language="en")
    assert settings.output_dir == Path.home()
    assert settings.hotword_lists == {}


def test_values_round_trip_through_the_file(tmp_path):
    ini = tmp_path / "s.ini"
    settings = Settings(open_settings_file(ini))
    settings.model_dir = tmp_path / "model"
    settings.device = "cpu"
    settings.quantization = "bf16"
    settings.beam_size = 4
    settings.draft_with_hotwords = True
    settings.output_dir = tmp_path / "exports"
    settings.sync()
    assert ini.is_file()
    again = Settings(open_settings_file(ini))
    assert again.engine() == EngineSettings(
        model_dir=tmp_path / "model", device="cpu", quantization="bf16", beam_size=4, language="en", draft_with_hotwords=True
    )
    assert again.output_dir == tmp_path / "exports"
    again.model_dir = None
    assert again.model_dir is None


def test_bad_values_are_refused_with_a_reason(settings):
    with pytest.raises(ValueError, match="device must be one of auto, cuda, cpu"):
        settings.device = "tpu"
    with pytest.raises(ValueError, match="beam size must be between 1 and 16"):
        settings.beam_size = 0


def test_a_hand_edited_file_cannot_crash_the_app(tmp_path):
    ini = tmp_path / "s.ini"
    ini.write_text("[engine]\ndevice=quantum\nbeam_size=lots\nquantization=\ndraft_with_hotwords=maybe\n[hotwords]\nlists=not json{\n", encoding="utf-8")
    settings = Settings(open_settings_file(ini))
    assert settings.device == "auto" and settings.beam_size == 1 and settings.quantization == "auto"
    assert settings.draft_with_hotwords is False
    assert settings.hotword_lists == {}


def test_choices_match_the_engine():
    from engine.model import runtime

    assert DEVICES == runtime.DEVICES and QUANTIZATIONS == runtime.QUANTIZATIONS


def test_settings_dialog_writes_the_store(qtbot, settings, tmp_path):
    from app.settings_dialog import SettingsDialog

    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.model_field.edit.setText(str(tmp_path / "ckpt"))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.beam_spin.setValue(3)
    assert not dialog.draft_check.isChecked()
    dialog.draft_check.setChecked(True)
    dialog.accept()
    assert settings.model_dir == tmp_path / "ckpt" and settings.device == "cpu" and settings.beam_size == 3
    assert settings.engine().draft_with_hotwords is True
