"""Run transcriptions off the GUI thread and report back through Qt signals.

``TranscriptionWorker`` lives in a QThread and calls the backend's plain
callbacks-based API; each callback becomes a signal, which Qt delivers to the
GUI thread as a queued call (the ConvertTask pattern of dangerzone). The
``TranscriptionQueue`` lives in the GUI thread: it feeds queued jobs to the
worker one at a time and writes what comes back into the JobsModel.

Cancelling sets a threading.Event that the engine checks between chunks. The
job is marked cancelled at once, and late signals from it are dropped, so the
window reacts within a second even while the engine finishes the chunk it is
decoding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.engine_backend import Backend, EngineSettings, JobRequest
from app.jobs import JobsModel, JobStatus
from engine.errors import KeyscribeError

log = logging.getLogger(__name__)


class TranscriptionWorker(QObject):
    """Runs in the worker thread. Every signal carries the job id it is about."""

    loading = Signal(str)
    started = Signal(str)
    progress = Signal(str, float, object)  # job id, done_s, total_s (float or None)
    segment = Signal(str, object)  # job id, engine.transcript.Segment
    finished = Signal(str, object)  # job id, engine.transcript.Transcript
    failed = Signal(str, str)  # job id, one sentence for the user
    cancelled = Signal(str)
    checked = Signal(object)  # EngineStatus
    checkFailed = Signal(str)

    def __init__(self, backend: Backend):
        super().__init__()
        self.backend = backend

    @Slot(object, object, object)
    def run(self, request: JobRequest, settings: EngineSettings, cancel: threading.Event) -> None:
        from engine.transcribe import Cancelled

        job_id = request.job_id
        try:
            self.loading.emit(job_id)
            self.backend.prepare(settings)
            if cancel.is_set():
                raise Cancelled("cancelled while the model loaded")
            self.started.emit(job_id)
            transcript = self.backend.transcribe(
                request,
                settings,
                progress_callback=lambda done_s, total_s: self.progress.emit(job_id, done_s, total_s),
                on_segment=lambda segment: self.segment.emit(job_id, segment),
                cancel=cancel,
            )
        except Cancelled:
            self.cancelled.emit(job_id)
        except (KeyscribeError, ValueError) as err:
            self.failed.emit(job_id, str(err))
        except Exception as err:  # a bug must not kill the worker thread silently: log it and tell the user
            log.exception("Transcription of %s failed", request.audio_path)
            self.failed.emit(job_id, f"unexpected error ({type(err).__name__}: {err}); details are in the log")
        else:
            self.finished.emit(job_id, transcript)

    @Slot(object)
    def check(self, settings: EngineSettings) -> None:
        try:
            self.checked.emit(self.backend.check(settings))
        except (KeyscribeError, ValueError) as err:
            self.checkFailed.emit(str(err))
            return
        try:
            self.backend.warm_up(settings)  # while the window is idle, not inside the first job
        except (KeyscribeError, ValueError) as err:  # only a head start: the job tries again and tells the user
            log.warning("Loading the model ahead of the first job failed: %s", err)
        except Exception:
            log.exception("Loading the model ahead of the first job failed")


class TranscriptionQueue(QObject):
    """Feeds queued jobs to the worker, one at a time, in list order."""

    engineChecked = Signal(object)  # EngineStatus
    engineCheckFailed = Signal(str)
    jobFinished = Signal(str, str)  # job id, final JobStatus value
    _runRequested = Signal(object, object, object)
    _checkRequested = Signal(object)

    def __init__(self, jobs: JobsModel, backend: Backend, settings: Callable[[], EngineSettings], parent: QObject | None = None):
        super().__init__(parent)
        self.jobs = jobs
        self.settings = settings
        self._running: str | None = None  # the job the worker is busy with (maybe already cancelled here)
        self._cancel: threading.Event | None = None
        self._timing: dict[str, tuple[float, float, float]] = {}  # job id -> (first wall time, first done_s, latest)
        self._thread = QThread()
        self._thread.setObjectName("keyscribe-transcription")
        self.worker = TranscriptionWorker(backend)
        self.worker.moveToThread(self._thread)
        self._runRequested.connect(self.worker.run)
        self._checkRequested.connect(self.worker.check)
        self.worker.loading.connect(self._on_loading)
        self.worker.started.connect(self._on_started)
        self.worker.progress.connect(self._on_progress)
        self.worker.segment.connect(self._on_segment)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.checked.connect(self.engineChecked)
        self.worker.checkFailed.connect(self.engineCheckFailed)
        self._thread.start()

    # -- commands from the window -----------------------------------------------

    def enqueue(self, job_id: str) -> None:
        if not self.jobs.job(job_id).status.can_start:
            return
        self.jobs.update(job_id, status=JobStatus.QUEUED, message="", done_s=0.0, eta_s=None)
        self._dispatch()

    def cancel(self, job_id: str) -> None:
        job = self.jobs.job(job_id)
        if not job.status.can_cancel:
            return
        if job_id == self._running and self._cancel is not None:
            self._cancel.set()
        self.jobs.update(job_id, status=JobStatus.CANCELLED, message="", eta_s=None)
        self.jobFinished.emit(job_id, JobStatus.CANCELLED.value)

    def check_engine(self) -> None:
        self._checkRequested.emit(self.settings())

    @property
    def busy(self) -> bool:
        return self._running is not None

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Cancel what runs and stop the thread; the engine's journal keeps finished segments."""
        if self._cancel is not None:
            self._cancel.set()
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.warning("The transcription thread did not stop within %d ms", timeout_ms)

    # -- internals ------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._running is not None:
            return
        job = self.jobs.next_queued()
        if job is None:
            return
        self._running = job.job_id
        self._cancel = threading.Event()
        self.jobs.update(job.job_id, status=JobStatus.RUNNING, message="Waiting for the engine…", transcript=None, edited=False)
        request = JobRequest(job_id=job.job_id, audio_path=job.audio_path, hotwords=job.hotwords, context=job.context)
        self._runRequested.emit(request, self.settings(), self._cancel)

    def _live(self, job_id: str) -> bool:
        """Signals count only for the job the worker runs, while it is still wanted."""
        try:
            return self.jobs.job(job_id).status is JobStatus.RUNNING
        except KeyError:  # removed from the list meanwhile
            return False

    @Slot(str)
    def _on_loading(self, job_id: str) -> None:
        if self._live(job_id):
            self.jobs.update(job_id, message="Loading the model…")

    @Slot(str)
    def _on_started(self, job_id: str) -> None:
        if self._live(job_id):
            self.jobs.update(job_id, message="")

    @Slot(str, float, object)
    def _on_progress(self, job_id: str, done_s: float, total_s: float | None) -> None:
        if not self._live(job_id):
            return
        now = time.monotonic()
        first_time, first_done, _ = self._timing.setdefault(job_id, (now, done_s, done_s))
        eta_s = None
        # The rate is measured between progress reports, so model loading and resumed segments do not skew it.
        if total_s and now > first_time and done_s > first_done:
            eta_s = (total_s - done_s) * (now - first_time) / (done_s - first_done)
        self.jobs.update(job_id, done_s=done_s, total_s=total_s, eta_s=eta_s)

    @Slot(str, object)
    def _on_segment(self, job_id: str, segment) -> None:
        if self._live(job_id):
            self.jobs.append_segment(job_id, segment)

    @Slot(str, object)
    def _on_finished(self, job_id: str, transcript) -> None:
        if self._live(job_id):
            self.jobs.update(job_id, status=JobStatus.DONE, transcript=transcript, message="", eta_s=None, done_s=transcript.duration_s)
            self.jobFinished.emit(job_id, JobStatus.DONE.value)
        self._worker_free(job_id)

    @Slot(str, str)
    def _on_failed(self, job_id: str, message: str) -> None:
        if self._live(job_id):
            self.jobs.update(job_id, status=JobStatus.FAILED, message=message, eta_s=None)
            self.jobFinished.emit(job_id, JobStatus.FAILED.value)
        self._worker_free(job_id)

    @Slot(str)
    def _on_cancelled(self, job_id: str) -> None:
        if self._live(job_id):  # cancelled by shutdown or the backend itself, not through cancel()
            self.jobs.update(job_id, status=JobStatus.CANCELLED, eta_s=None)
            self.jobFinished.emit(job_id, JobStatus.CANCELLED.value)
        self._worker_free(job_id)

    def _worker_free(self, job_id: str) -> None:
        self._timing.pop(job_id, None)
        if job_id == self._running:
            self._running = None
            self._cancel = None
            self._dispatch()
