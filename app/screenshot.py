"""``python -m app --screenshot out.png``: the main window with sample jobs, rendered offscreen.

No model runs: the transcript is made up (the sample interview's reference
text, timed by hand) and the engine status is fixed. Everything the window
saves goes to a temporary folder, never to the user's data.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication

from app.engine_backend import EngineStatus
from app.jobs import Job, JobStatus
from app.main_window import MainWindow
from app.project_store import ProjectStore
from app.settings import Settings, open_settings_file
from engine.transcript import Segment, Transcript

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "interview.flac"
HOTWORDS = ("Rotterdam", "air quality", "harbour", "sensors", "Maasvlakte")
SAMPLE_SEGMENTS = (
    (0.0, 2.6, "Thanks for making time today."),
    (2.6, 8.4, "Before we start, could you tell our readers how the project in Rotterdam began?"),
    (8.4, 14.2, "It started three years ago, when the city asked us to measure air quality near the harbour."),
    (14.2, 16.9, "We installed forty sensors in one summer."),
    (16.9, 19.6, "And what did the sensors show you in that first year?"),
    (19.6, 24.0, "Mostly what we expected. The worst readings came from the ships, not from the trucks."),
)


class _ScreenshotBackend:
    """Answers the window's engine check; never transcribes."""

    def check(self, settings):
        return EngineStatus(runtime="CPU · FP32", model="keyscribe-default")

    def warm_up(self, settings) -> None:
        pass

    def prepare(self, settings) -> None:
        raise RuntimeError("the screenshot backend does not transcribe")

    def transcribe(self, *args, **kwargs):
        raise RuntimeError("the screenshot backend does not transcribe")


def _wait(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def render_screenshot(out: Path) -> int:
    previous_data = os.environ.get("KEYSCRIBE_DATA")
    with tempfile.TemporaryDirectory(prefix="keyscribe-screenshot-") as tmp:
        os.environ["KEYSCRIBE_DATA"] = tmp
        try:
            return _render(out, Path(tmp))
        finally:
            if previous_data is None:
                os.environ.pop("KEYSCRIBE_DATA", None)
            else:
                os.environ["KEYSCRIBE_DATA"] = previous_data


def _render(out: Path, tmp: Path) -> int:
    settings = Settings(open_settings_file(Path(tmp) / "settings.ini"))
    settings.hotword_lists = {"Rotterdam air study": HOTWORDS, "Newsroom names": ("Ana Ruiz", "Pieter de Vries", "Kees Bakker")}
    settings.current_hotword_list = "Rotterdam air study"
    window = MainWindow(settings, _ScreenshotBackend(), ProjectStore(Path(tmp) / "projects"))
    window.resize(1360, 820)

    now = time.time()
    transcript = Transcript(segments=tuple(Segment(a, b, text) for a, b, text in SAMPLE_SEGMENTS), duration_s=24.0, model="keyscribe-default")
    window.jobs.add_job(Job(job_id="ready", audio_path=Path(tmp) / "Recording 2025-03-04 09-41-12.wav", created=now - 30))
    window.jobs.add_job(Job(
        job_id="running", audio_path=Path(tmp) / "Board meeting, May.m4a", status=JobStatus.RUNNING,
        done_s=1512.0, total_s=3540.0, eta_s=410.0, created=now - 60,
    ))
    window.jobs.add_job(Job(
        job_id="done", audio_path=SAMPLE, hotword_list="Rotterdam air study", hotwords=HOTWORDS, status=JobStatus.DONE,
        context="Interview with the lead of the Rotterdam harbour air-quality study, for the city newsletter.",
        transcript=transcript, total_s=24.0, created=now - 90,
    ))
    window.select_job("done")
    window.show()
    _wait(lambda: window.engine_status is not None)
    window._set_banner([])  # the sample has no warnings to show; this machine's sound hardware is not the point
    window.review.player.seek(9.1)
    _wait(lambda: window.review.model.current_row == 2 and window.review.player.duration_s > 0)
    _wait(lambda: False, 0.3)  # let layouts settle
    image = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out)):
        print(f"keyscribe-gui: could not write {out}")
        return 1
    print(f"keyscribe-gui: wrote {out} ({image.width()}×{image.height()})")
    window.close()
    return 0
