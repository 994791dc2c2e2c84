"""GUI test fixtures: offscreen Qt, settings and user data under tmp_path, a fake engine."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.engine_backend import EngineStatus, JobRequest
from engine.transcript import Segment, Transcript


class FakeBackend:
    """Stands in for EngineBackend: one segment per ``segment_s`` of audio, ``delay_s`` apart.

    ``busy`` makes it burn CPU in Python instead of sleeping (the responsiveness probe);
    ``fail_for`` names files it refuses, with the one-sentence error the engine would give.
    """

    def __init__(self, segment_s: float = 1.0, delay_s: float = 0.0, busy: bool = False, warnings: tuple[str, ...] = ()):
        self.segment_s = segment_s
        self.delay_s = delay_s
        self.busy = busy
        self.warnings = warnings
        self.fail_for: set[str] = set()
        self.requests: list[JobRequest] = []
        self.cancel_seen_at: float | None = None
        self.threads: set[int] = set()
        self.warmed_up = False
        self.after_step: Callable[[], None] | None = None  # called in the engine's thread after each step

    def check(self, settings) -> EngineStatus:
        return EngineStatus(runtime="CPU · FP32", model="fake model", warnings=self.warnings)

    def warm_up(self, settings) -> None:
        self.threads.add(threading.get_ident())
        self.warmed_up = True

    def prepare(self, settings) -> None:
        self.threads.add(threading.get_ident())

    def transcribe(self, request, settings, progress_callback, on_segment, cancel) -> Transcript:
        from engine.errors import AudioError
        from engine.transcribe import Cancelled

        self.requests.append(request)
        self.threads.add(threading.get_ident())
        if request.audio_path.name in self.fail_for:
            raise AudioError(f"{request.audio_path.name} cannot be read as audio: it is damaged.")
        total_s = sf.info(str(request.audio_path)).duration
        segments = []
        start_s = 0.0
        while start_s < total_s - 1e-9:
            self._work(cancel)
            if cancel.is_set():
                self.cancel_seen_at = time.monotonic()
                raise Cancelled("cancelled")
            end_s = min(total_s, start_s + self.segment_s)
            segment = Segment(start_s, end_s, f"words from {start_s:.0f} to {end_s:.0f} seconds")
            segments.append(segment)
            on_segment(segment)
            progress_callback(end_s, total_s)
            start_s = end_s
        return Transcript(segments=tuple(segments), duration_s=total_s, model="fake", language=settings.language)

    def _work(self, cancel: threading.Event) -> None:
        self._spin(cancel)
        if self.after_step is not None:
            self.after_step()

    def _spin(self, cancel: threading.Event) -> None:
        deadline = time.monotonic() + self.delay_s
        while time.monotonic() < deadline and not cancel.is_set():
            if self.busy:
                sum(i * i for i in range(2000))  # pure Python: holds the GIL as a slow engine step would
            else:
                time.sleep(0.005)


def write_tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("KEYSCRIBE_DATA", str(path))
    return path


@pytest.fixture
def settings(tmp_path):
    from app.settings import Settings, open_settings_file

    return Settings(open_settings_file(tmp_path / "settings.ini"))


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def tone(tmp_path) -> Path:
    return write_tone(tmp_path / "tone.wav", 3.0)


@pytest.fixture
def make_window(qtbot, settings, data_dir):
    """Build MainWindows on the test's settings and data folder; all are closed (thread stopped) at the end."""
    from app.main_window import MainWindow
    from app.project_store import ProjectStore

    windows = []

    def make(backend=None, settings_=None):
        window = MainWindow(settings_ or settings, backend or FakeBackend(), ProjectStore(data_dir / "projects"))
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
