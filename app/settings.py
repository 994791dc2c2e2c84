"""Typed settings over QSettings, injected into the window.

The app opens the user's store (``open_user_settings``); tests hand in a
QSettings IniFormat file under tmp_path. Every value is read through a property
that returns the right type and a valid value, whatever the file holds, so a
hand-edited or old settings file cannot crash the app.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings

from app.engine_backend import EngineSettings

# The same choices as engine.model.runtime (which imports torch, too slow for startup);
# tests/app/test_settings.py checks they match.
DEVICES = ("auto", "cuda", "cpu")
QUANTIZATIONS = ("auto", "nf4", "int8", "bf16", "fp32")
LANGUAGES = ("en",)  # what the shipped model transcribes
MAX_BEAM_SIZE = 16


def open_user_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "keyscribe", "keyscribe")


def open_settings_file(path: str | Path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)


class Settings:
    def __init__(self, store: QSettings):
        self.store = store

    # -- engine ---------------------------------------------------------------

    @property
    def model_dir(self) -> Path | None:
        value = str(self.store.value("engine/model_dir", "") or "")
        return Path(value) if value else None

    @model_dir.setter
    def model_dir(self, value: Path | None) -> None:
        self.store.setValue("engine/model_dir", str(value) if value else "")

    @property
    def device(self) -> str:
        return self._choice("engine/device", DEVICES)

    @device.setter
    def device(self, value: str) -> None:
        self._set_choice("engine/device", value, DEVICES)

    @property
    def quantization(self) -> str:
        return self._choice("engine/quantization", QUANTIZATIONS)

    @quantization.setter
    def quantization(self, value: str) -> None:
        self._set_choice("engine/quantization", value, QUANTIZATIONS)

    @property
    def beam_size(self) -> int:
        try:
            value = int(self.store.value("engine/beam_size", 1))
        except (TypeError, ValueError):
            return 1
        return min(max(value, 1), MAX_BEAM_SIZE)

    @beam_size.setter
    def beam_size(self, value: int) -> None:
        if not 1 <= int(value) <= MAX_BEAM_SIZE:
            raise ValueError(f"beam size must be between 1 and {MAX_BEAM_SIZE}, got {value}")
        self.store.setValue("engine/beam_size", int(value))

    @property
    def language(self) -> str:
        return self._choice("engine/language", LANGUAGES)

    @language.setter
    def language(self, value: str) -> None:
        self._set_choice("engine/language", value, LANGUAGES)

    @property
    def draft_with_hotwords(self) -> bool:
        value = self.store.value("engine/draft_with_hotwords", False)
        return value is True or str(value).lower() == "true"  # an INI file gives back the string "true"

    @draft_with_hotwords.setter
    def draft_with_hotwords(self, value: bool) -> None:
        self.store.setValue("engine/draft_with_hotwords", bool(value))

    def engine(self) -> EngineSettings:
        return EngineSettings(
            model_dir=self.model_dir,
            device=self.device,
            quantization=self.quantization,
            beam_size=self.beam_size,
            language=self.language,
            draft_with_hotwords=self.draft_with_hotwords,
        )

    # -- files ----------------------------------------------------------------

    @property
    def output_dir(self) -> Path:
        value = str(self.store.value("files/output_dir", "") or "")
        return Path(value) if value else Path.home()

    @output_dir.setter
    def output_dir(self, value: Path) -> None:
        self.store.setValue("files/output_dir", str(value))

    @property
    def input_device(self) -> str:
        """The microphone's name as PortAudio lists it ("" = the system default)."""
        return str(self.store.value("recording/input_device", "") or "")

    @input_device.setter
    def input_device(self, value: str) -> None:
        self.store.setValue("recording/input_device", value)

    # -- hotword lists ----------------------------------------------------------

    @property
    def hotword_lists(self) -> dict[str, tuple[str, ...]]:
        """Named lists, in the order they were saved. Stored as JSON so order and odd characters survive."""
        raw = self.store.value("hotwords/lists", "")
        try:
            data = json.loads(raw) if raw else {}
        except (TypeError, json.JSONDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(name): tuple(str(t) for t in terms) for name, terms in data.items() if isinstance(terms, list)}

    @hotword_lists.setter
    def hotword_lists(self, lists: dict[str, tuple[str, ...]]) -> None:
        self.store.setValue("hotwords/lists", json.dumps({name: list(terms) for name, terms in lists.items()}, ensure_ascii=False))

    @property
    def current_hotword_list(self) -> str:
        return str(self.store.value("hotwords/current", "") or "")

    @current_hotword_list.setter
    def current_hotword_list(self, name: str) -> None:
        self.store.setValue("hotwords/current", name)

    # -- window ---------------------------------------------------------------

    @property
    def window_geometry(self) -> bytes:
        value = self.store.value("window/geometry", b"")
        return bytes(value) if value else b""

    @window_geometry.setter
    def window_geometry(self, value: bytes) -> None:
        self.store.setValue("window/geometry", value)

    def sync(self) -> None:
        self.store.sync()

    def _choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = str(self.store.value(key, choices[0]) or choices[0])
        return value if value in choices else choices[0]

    def _set_choice(self, key: str, value: str, choices: tuple[str, ...]) -> None:
        if value not in choices:
            raise ValueError(f"{key.split('/')[-1]} must be one of {', '.join(choices)}, got {value!r}")
        self.store.setValue(key, value)
