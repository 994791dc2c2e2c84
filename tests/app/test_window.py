"""The main window: drop files, the engine banner, projects that survive a restart, responsiveness."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent

from app.engine_backend import UNTRAINED_WARNING
from app.jobs import JobStatus
from tests.app.conftest import FakeBackend, write_tone

REPO = Path(__file__).resolve().parents[2]


def _drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    return event


def test_dropping_files_adds_jobs(make_window, tmp_path):
    window = make_window()
    assert window.drop_hint.isVisibleTo(window) and not window.job_list.isVisibleTo(window)
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    event = _drop(window, [write_tone(tmp_path / "a.wav", 1.0), write_tone(tmp_path / "b.flac", 1.0), notes])
    assert event.isAccepted()
    assert [job.name for job in window.jobs.jobs()] == ["a.wav", "b.flac"]
    assert "notes.txt" in window.statusBar().currentMessage()
    assert window.job_list.isVisibleTo(window) and window.title_label.text() == "b.flac"  # the last one is selected
    assert window.start_button.text() == "Transcribe" and window.start_button.isEnabled()


def test_engine_status_and_first_run_warnings_are_shown(qtbot, make_window):
    window = make_window(FakeBackend(warnings=(UNTRAINED_WARNING,)))
    qtbot.waitUntil(lambda: window.engine_status is not None, timeout=3000)
    assert window.engine_label.text() == "fake model · CPU · FP32"
    assert window.banner.isVisibleTo(window)
    assert "untrained" in window.banner_label.text()


def test_the_model_loads_off_the_gui_thread_when_the_window_opens(qtbot, make_window):
    backend = FakeBackend()
    window = make_window(backend)
    # The backend finishes warming up on its thread; the window hears of it through a queued signal.
    qtbot.waitUntil(lambda: window.engine_status is not None, timeout=3000)
    assert backend.warmed_up and threading.get_ident() not in backend.threads


def test_transcribing_from_the_window_shows_segments_live(qtbot, make_window, tone):
    window = make_window(FakeBackend(segment_s=0.5, delay_s=0.05))
    job_id = window.add_files([tone])[0]
    window.start_button.click()
    assert window.start_button.text() == "Cancel"
    qtbot.waitUntil(lambda: window.review.model.rowCount() >= 2, timeout=3000)
    assert window.jobs.job(job_id).status is JobStatus.RUNNING  # rows arrived before the job finished
    qtbot.waitUntil(lambda: window.jobs.job(job_id).status is JobStatus.DONE, timeout=3000)
    assert window.review.model.rowCount() == 6
    assert window.review.model.transcript == window.jobs.job(job_id).transcript
    assert window.start_button.text() == "Transcribe again" and window.export_button.isEnabled()


def test_projects_reopen_after_a_restart(qtbot, make_window, tone):
    window = make_window()
    window.hotwords_panel.new_list("Study", ("words",))
    job_id = window.add_files([tone])[0]
    window.hotword_combo.setCurrentIndex(window.hotword_combo.findData("Study"))
    window.context_edit.setPlainText("Weekly call with the harbour team.")
    with qtbot.waitSignal(window.queue.jobFinished, timeout=5000):
        window.transcribe(job_id)
    window.review.model.setData(window.review.model.index(0), "Corrected first words.")
    window.close()  # saves at once

    reopened = make_window()
    job = reopened.jobs.job(job_id)
    assert job.audio_path == tone.resolve() and job.status is JobStatus.DONE and job.edited
    assert job.hotword_list == "Study" and job.hotwords == ("words",)
    assert job.context == "Weekly call with the harbour team."
    assert job.transcript.segments[0].text == "Corrected first words."
    assert reopened.context_edit.toPlainText() == "Weekly call with the harbour team."
    assert reopened.review.model.index(0).data() == "Corrected first words."


def test_autosave_happens_without_closing(qtbot, make_window, tone, data_dir):
    window = make_window()
    job_id = window.add_files([tone])[0]
    window.context_edit.setPlainText("Saved while typing.")
    project = data_dir / "projects" / f"{job_id}.json"
    qtbot.waitUntil(lambda: project.is_file() and "Saved while typing." in project.read_text(encoding="utf-8"), timeout=3000)
    window.remove(job_id)
    assert not project.exists()


def test_a_job_running_at_exit_reopens_as_interrupted(qtbot, make_window, tone):
    window = make_window(FakeBackend(delay_s=0.5))
    job_id = window.add_files([tone])[0]
    window.transcribe(job_id)
    qtbot.waitUntil(lambda: window.jobs.job(job_id).status is JobStatus.RUNNING, timeout=2000)
    window.close()
    reopened = make_window()
    job = reopened.jobs.job(job_id)
    assert job.status is JobStatus.CANCELLED and "Retry" in job.message
    assert reopened.retry_button.isEnabled()


def test_gui_stays_responsive_while_the_engine_works(qtbot, make_window, tmp_path):
    """A CPU-bound (fake) engine must run off the GUI thread and leave the event loop running.

    Each of the 16 fake steps burns 0.15 s of pure-Python CPU and then waits until a
    timer on the GUI thread has ticked since the step began. A job that blocked the event
    loop (run on the GUI thread, or with the GUI thread waiting on it) would never see a
    tick, so the step's wait would time out. Timing is not asserted here: a loaded CI
    runner once left 1.9 s between ticks, which says nothing about the window's design.
    How late the loop runs beside the real engine is measured by bench/gui_latency.py.
    """
    backend = FakeBackend(segment_s=1.0, delay_s=0.15, busy=True)
    window = make_window(backend)
    job_id = window.add_files([write_tone(tmp_path / "busy.wav", 16.0)])[0]
    ticked = threading.Event()
    seen: list[bool] = []

    def after_step():  # in the engine's thread
        seen.append(all(seen) and ticked.wait(timeout=10.0))  # after one freeze, fail the rest at once
        ticked.clear()

    backend.after_step = after_step
    timer = QTimer()
    timer.timeout.connect(ticked.set)
    timer.start(20)
    window.transcribe(job_id)
    qtbot.waitUntil(lambda: window.jobs.job(job_id).status is JobStatus.DONE, timeout=15000 + 10000 * 16)
    timer.stop()
    assert threading.get_ident() not in backend.threads and backend.threads  # the engine never ran on the GUI thread
    assert seen == [True] * 16  # the event loop ran during every step of the job


def test_screenshot_mode_renders_the_window(tmp_path):
    out = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, "-m", "app", "--screenshot", str(out)], check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    from PySide6.QtGui import QImage

    image = QImage(str(out))
    assert image.width() >= 1000 and image.height() >= 600
    assert len({image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 37)}) > 10  # not blank


def test_engine_and_the_qt_free_app_modules_import_without_qt():
    code = (
        "import sys; sys.modules['PySide6'] = None; "
        "import engine, engine.transcribe, app.recorder, app.project_store, app.engine_backend, app.paths"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
