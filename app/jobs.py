"""The job list: one row per recording to transcribe, its state, progress and transcript.

``Job`` is a frozen record; the model replaces a row's record on every change
and emits ``dataChanged`` (views) and ``jobChanged`` (autosave, detail pane).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.project_store import Project
from engine.transcript import Segment, Transcript

_ROOT = QModelIndex()  # the invisible root: a default argument for rowCount


class JobStatus(str, Enum):
    READY = "ready"  # added, waiting for the user to press Transcribe
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def can_cancel(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def can_start(self) -> bool:
        return self in (JobStatus.READY, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DONE)


_LABELS = {
    JobStatus.READY: "Ready",
    JobStatus.QUEUED: "Waiting",
    JobStatus.RUNNING: "Transcribing",
    JobStatus.DONE: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}


@dataclass(frozen=True)
class Job:
    job_id: str
    audio_path: Path
    hotword_list: str = ""
    hotwords: tuple[str, ...] = ()
    context: str = ""
    status: JobStatus = JobStatus.READY
    message: str = ""  # why it failed, or what it is doing ("Loading the model…")
    done_s: float = 0.0
    total_s: float | None = None
    eta_s: float | None = None
    transcript: Transcript | None = None
    edited: bool = False
    created: float = 0.0

    @property
    def name(self) -> str:
        return self.audio_path.name

    @property
    def fraction(self) -> float | None:
        return None if not self.total_s else min(1.0, self.done_s / self.total_s)

    @property
    def status_line(self) -> str:
        if self.status is JobStatus.RUNNING:
            if self.message:
                return self.message
            parts = [f"{self.fraction:.0%}" if self.fraction is not None else "Transcribing"]
            if self.eta_s is not None:
                parts.append(f"{format_eta(self.eta_s)} left")
            return " · ".join(parts)
        if self.status is JobStatus.DONE and self.transcript is not None:
            line = f"Done · {format_clock(self.transcript.duration_s)}"
            return line + " · edited" if self.edited else line
        if self.message:
            return f"{self.status.label}: {self.message}"
        return self.status.label

    def to_project(self) -> Project:
        return Project(
            job_id=self.job_id,
            audio_path=self.audio_path,
            hotword_list=self.hotword_list,
            hotwords=self.hotwords,
            context=self.context,
            status=self.status.value,
            message=self.message,
            transcript=self.transcript,
            edited=self.edited,
            created=self.created,
        )

    @classmethod
    def from_project(cls, project: Project) -> Job:
        status = JobStatus(project.status)
        message = project.message
        if status in (JobStatus.QUEUED, JobStatus.RUNNING):
            # The app closed while it ran; the engine's journal lets a retry continue where it stopped.
            status, message = JobStatus.CANCELLED, "interrupted when Keyscribe closed; Retry continues where it stopped"
        return cls(
            job_id=project.job_id,
            audio_path=project.audio_path,
            hotword_list=project.hotword_list,
            hotwords=project.hotwords,
            context=project.context,
            status=status,
            message=message,
            transcript=project.transcript,
            edited=project.edited,
            created=project.created,
            total_s=project.transcript.duration_s if project.transcript is not None else None,
        )


def format_clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_eta(seconds: float) -> str:
    if seconds < 60:
        return "under a minute" if seconds >= 10 else "a few seconds"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


class JobsModel(QAbstractListModel):
    """The job queue as a Qt list model; the only place jobs change."""

    JobIdRole = Qt.ItemDataRole.UserRole + 1
    StatusRole = Qt.ItemDataRole.UserRole + 2
    ProgressRole = Qt.ItemDataRole.UserRole + 3  # float in [0, 1], or None
    StatusLineRole = Qt.ItemDataRole.UserRole + 4

    jobChanged = Signal(str)  # job id: anything about it changed
    segmentAdded = Signal(str, object)  # job id, Segment: a live segment arrived
    jobRemoved = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._jobs: list[Job] = []

    # -- Qt model interface --------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._jobs)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._jobs):
            return None
        job = self._jobs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return job.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{job.audio_path}\n{job.status_line}"
        if role == self.JobIdRole:
            return job.job_id
        if role == self.StatusRole:
            return job.status.value
        if role == self.ProgressRole:
            return job.fraction
        if role == self.StatusLineRole:
            return job.status_line
        return None

    def roleNames(self) -> dict[int, bytes]:
        names = super().roleNames()
        names.update({self.JobIdRole: b"jobId", self.StatusRole: b"status", self.ProgressRole: b"progress", self.StatusLineRole: b"statusLine"})
        return names

    # -- jobs ------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def job(self, job_id: str) -> Job:
        return self._jobs[self.row_of(job_id)]

    def row_of(self, job_id: str) -> int:
        for row, job in enumerate(self._jobs):
            if job.job_id == job_id:
                return row
        raise KeyError(f"no job with id {job_id!r}")

    def add_file(self, path: str | Path, hotword_list: str = "", hotwords: tuple[str, ...] = (), context: str = "") -> str:
        job = Job(
            job_id=uuid.uuid4().hex,
            audio_path=Path(path).resolve(),
            hotword_list=hotword_list,
            hotwords=tuple(hotwords),
            context=context,
            created=time.time(),
        )
        self.add_job(job)
        return job.job_id

    def add_job(self, job: Job) -> None:
        row = len(self._jobs)
        self.beginInsertRows(QModelIndex(), row, row)
        self._jobs.append(job)
        self.endInsertRows()
        self.jobChanged.emit(job.job_id)

    def remove(self, job_id: str) -> None:
        row = self.row_of(job_id)
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._jobs[row]
        self.endRemoveRows()
        self.jobRemoved.emit(job_id)

    def update(self, job_id: str, **changes) -> Job:
        row = self.row_of(job_id)
        job = dataclasses.replace(self._jobs[row], **changes)
        self._jobs[row] = job
        index = self.index(row)
        self.dataChanged.emit(index, index)
        self.jobChanged.emit(job_id)
        return job

    def append_segment(self, job_id: str, segment: Segment) -> None:
        job = self.job(job_id)
        previous = job.transcript.segments if job.transcript is not None else ()
        duration_s = max(segment.end_s, job.total_s or 0.0)
        self.update(job_id, transcript=Transcript(segments=(*previous, segment), duration_s=duration_s))
        self.segmentAdded.emit(job_id, segment)

    def next_queued(self) -> Job | None:
        return next((job for job in self._jobs if job.status is JobStatus.QUEUED), None)
