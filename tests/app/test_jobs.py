"""The job queue: adding files, states, signals from the worker thread, cancel, retry."""

from __future__ import annotations

import threading
import time

import pytest

from app.jobs import JobsModel, JobStatus, format_eta
from app.worker import TranscriptionQueue
from engine.transcript import Transcript
from tests.app.conftest import FakeBackend, write_tone


@pytest.fixture
def queue(qtbot, settings):
    queues = []

    def make(backend):
        jobs = JobsModel()
        q = TranscriptionQueue(jobs, backend, settings.engine)
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.shutdown()


def test_files_join_the_model_as_ready_jobs(qtmodeltester, tmp_path):
    model = JobsModel()
    qtmodeltester.check(model)
    paths = [write_tone(tmp_path / f"{name}.wav", 1.0) for name in ("a", "b", "c")]
    ids = [model.add_file(path, hotword_list="team", hotwords=("Ana",), context="weekly") for path in paths]
    assert model.rowCount() == 3
    assert [model.index(i).data() for i in range(3)] == ["a.wav", "b.wav", "c.wav"]
    assert {model.index(i).data(JobsModel.StatusRole) for i in range(3)} == {"ready"}
    assert model.job(ids[1]).hotwords == ("Ana",) and model.job(ids[1]).context == "weekly"
    model.update(ids[0], status=JobStatus.RUNNING, done_s=1.5, total_s=3.0, eta_s=120.0)
    assert model.index(0).data(JobsModel.ProgressRole) == pytest.approx(0.5)
    assert model.index(0).data(JobsModel.StatusLineRole) == "50% · about 2 min left"
    model.remove(ids[1])
    assert [model.index(i).data() for i in range(2)] == ["a.wav", "c.wav"]
    qtmodeltester.check(model)


def test_eta_wording():
    assert format_eta(5) == "a few seconds"
    assert format_eta(45) == "under a minute"
    assert format_eta(3 * 3600 + 5 * 60) == "about 3 h 05 min"


def test_queue_runs_jobs_in_order_off_the_gui_thread(qtbot, qtmodeltester, queue, tmp_path):
    backend = FakeBackend(segment_s=1.0, delay_s=0.02)
    q = queue(backend)
    first = q.jobs.add_file(write_tone(tmp_path / "first.wav", 3.0), context="board meeting", hotwords=("Rotterdam",))
    second = q.jobs.add_file(write_tone(tmp_path / "second.wav", 2.0))
    segments, progress = [], []
    q.worker.segment.connect(lambda job_id, segment: segments.append((job_id, segment)))
    q.worker.progress.connect(lambda job_id, done_s, total_s: progress.append((job_id, done_s, total_s)))

    with qtbot.waitSignals([q.jobFinished, q.jobFinished], timeout=5000):
        q.enqueue(first)
        q.enqueue(second)
        assert q.jobs.job(first).status is JobStatus.RUNNING
        assert q.jobs.job(second).status is JobStatus.QUEUED  # one at a time

    assert [r.audio_path.name for r in backend.requests] == ["first.wav", "second.wav"]
    assert backend.requests[0].context == "board meeting" and backend.requests[0].hotwords == ("Rotterdam",)
    assert len(backend.threads) == 1 and threading.main_thread().ident not in backend.threads  # one worker, never the GUI thread
    assert [s.start_s for job_id, s in segments if job_id == first] == [0.0, 1.0, 2.0]
    assert [done for job_id, done, _ in progress if job_id == first] == pytest.approx([1.0, 2.0, 3.0])
    done = q.jobs.job(first)
    assert done.status is JobStatus.DONE and done.fraction == pytest.approx(1.0)
    assert isinstance(done.transcript, Transcript) and len(done.transcript.segments) == 3
    assert done.transcript.text == " ".join(s.text for s in done.transcript.segments)
    assert q.jobs.job(second).status is JobStatus.DONE
    qtmodeltester.check(q.jobs)


def test_progress_signal_gives_an_eta(qtbot, queue, tmp_path):
    q = queue(FakeBackend(segment_s=1.0, delay_s=0.05))
    job_id = q.jobs.add_file(write_tone(tmp_path / "long.wav", 6.0))
    q.enqueue(job_id)
    qtbot.waitUntil(lambda: q.jobs.job(job_id).eta_s is not None, timeout=3000)
    job = q.jobs.job(job_id)
    assert 0 < job.eta_s < 5.0  # about 4 more segments of 0.05 s, with slack
    assert "left" in job.status_line
    qtbot.waitUntil(lambda: q.jobs.job(job_id).status is JobStatus.DONE, timeout=5000)


def test_live_segments_reach_the_model_while_running(qtbot, queue, tmp_path):
    q = queue(FakeBackend(segment_s=1.0, delay_s=0.1))
    job_id = q.jobs.add_file(write_tone(tmp_path / "live.wav", 5.0))
    with qtbot.waitSignal(q.jobs.segmentAdded, timeout=3000) as blocker:
        q.enqueue(job_id)
    assert blocker.args[0] == job_id
    job = q.jobs.job(job_id)
    assert job.status is JobStatus.RUNNING and 1 <= len(job.transcript.segments) < 5


def test_cancel_stops_the_engine_within_a_second(qtbot, queue, tmp_path):
    backend = FakeBackend(segment_s=1.0, delay_s=0.2)
    q = queue(backend)
    job_id = q.jobs.add_file(write_tone(tmp_path / "long.wav", 60.0))
    with qtbot.waitSignal(q.worker.segment, timeout=3000):
        q.enqueue(job_id)
    asked_at = time.monotonic()
    with qtbot.waitSignal(q.worker.cancelled, timeout=3000):
        q.cancel(job_id)
        assert q.jobs.job(job_id).status is JobStatus.CANCELLED  # the window shows it at once
    assert backend.cancel_seen_at - asked_at < 1.0  # and the engine stopped within a second
    assert not q.busy
    assert len(q.jobs.job(job_id).transcript.segments) < 60


def test_cancel_a_queued_job_means_it_never_runs(qtbot, queue, tmp_path):
    backend = FakeBackend(delay_s=0.05)
    q = queue(backend)
    first = q.jobs.add_file(write_tone(tmp_path / "first.wav", 2.0))
    second = q.jobs.add_file(write_tone(tmp_path / "second.wav", 2.0))
    q.enqueue(first)
    q.enqueue(second)
    q.cancel(second)
    qtbot.waitUntil(lambda: q.jobs.job(first).status is JobStatus.DONE, timeout=3000)
    qtbot.wait(100)
    assert [r.audio_path.name for r in backend.requests] == ["first.wav"]
    assert q.jobs.job(second).status is JobStatus.CANCELLED


def test_failure_is_shown_and_retry_runs_again(qtbot, queue, tmp_path):
    backend = FakeBackend()
    backend.fail_for.add("broken.wav")
    q = queue(backend)
    job_id = q.jobs.add_file(write_tone(tmp_path / "broken.wav", 1.0))
    with qtbot.waitSignal(q.jobFinished, timeout=3000) as blocker:
        q.enqueue(job_id)
    assert blocker.args == [job_id, "failed"]
    job = q.jobs.job(job_id)
    assert job.status is JobStatus.FAILED and "cannot be read as audio" in job.message
    assert job.status_line.startswith("Failed: ")

    backend.fail_for.clear()
    with qtbot.waitSignal(q.jobFinished, timeout=3000) as blocker:
        q.enqueue(job_id)  # Retry
    assert blocker.args == [job_id, "done"]
    assert q.jobs.job(job_id).message == ""


def test_an_engine_bug_fails_the_job_not_the_app(qtbot, queue, tmp_path):
    class Buggy(FakeBackend):
        def transcribe(self, *args, **kwargs):
            raise ZeroDivisionError("division by zero")

    q = queue(Buggy())
    job_id = q.jobs.add_file(write_tone(tmp_path / "a.wav", 1.0))
    with qtbot.waitSignal(q.jobFinished, timeout=3000):
        q.enqueue(job_id)
    assert "ZeroDivisionError" in q.jobs.job(job_id).message
    assert not q.busy and threading.active_count() >= 1
