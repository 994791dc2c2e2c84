"""The real engine, end to end through the window: a tiny random model transcribes a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine_backend import EngineBackend
from app.jobs import JobStatus

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "interview.flac"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, runtime_cpu) -> Path:
    from engine.model.checkpoint import build_model, save_checkpoint
    from engine.model.tiny import tiny_config

    path = tmp_path_factory.mktemp("tiny-model")
    save_checkpoint(build_model(tiny_config(), runtime_cpu), path)
    return path


def test_real_engine_through_the_gui(qtbot, make_window, settings, tiny_model, tmp_path):
    settings.model_dir = tiny_model
    settings.device = "cpu"
    settings.quantization = "fp32"
    backend = EngineBackend()
    window = make_window(backend)
    qtbot.waitUntil(lambda: window.engine_status is not None, timeout=30000)
    assert window.engine_status.runtime == "CPU · FP32"  # what resolve_runtime chose, shown in the status bar
    assert window.engine_label.text().endswith("CPU · FP32")
    qtbot.waitUntil(lambda: backend._model is not None, timeout=60000)  # loaded while the window sits idle
    loaded = backend._model

    job_id = window.add_files([SAMPLE])[0]
    segments = []
    window.queue.worker.segment.connect(lambda _id, segment: segments.append(segment))
    with qtbot.waitSignal(window.queue.jobFinished, timeout=60000) as blocker:
        window.transcribe(job_id)
    job = window.jobs.job(job_id)
    assert blocker.args == [job_id, "done"], job.message
    transcript = job.transcript
    assert transcript.model == "tiny-random" and transcript.segments
    assert list(transcript.segments) == segments  # every segment was shown live, in order
    starts = [s.start_s for s in transcript.segments]
    assert starts == sorted(starts) and transcript.segments[-1].end_s <= transcript.duration_s + 1e-6
    assert transcript.duration_s == pytest.approx(24.03, abs=0.05)
    assert window.review.model.rowCount() == len(transcript.segments)
    assert backend._model is loaded  # the job used the model loaded at start-up

    out = window.export_job(job_id, tmp_path / "interview.txt", "txt")
    assert out.read_text(encoding="utf-8").split() == transcript.text.split()


def test_a_bad_file_fails_with_one_clear_sentence(qtbot, make_window, settings, tiny_model, tmp_path):
    settings.model_dir = tiny_model
    settings.device = "cpu"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    window = make_window(EngineBackend())
    job_id = window.add_files([broken])[0]
    with qtbot.waitSignal(window.queue.jobFinished, timeout=30000):
        window.transcribe(job_id)
    job = window.jobs.job(job_id)
    assert job.status is JobStatus.FAILED
    assert "broken.wav" in job.message and "Traceback" not in job.message
